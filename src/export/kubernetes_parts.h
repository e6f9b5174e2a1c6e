// Internal to src/export: the pieces export_kubernetes() assembles, one
// Kubernetes concern per file (pod_template.cc, network_policy.cc).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/isolation_key.h"
#include "config/config.h"
#include "config/manifest.h"
#include "export/kubernetes_export.h"

namespace launcher::kubernetes::detail {

// One key as Kubernetes runs it: a Deployment's pods (NONE, NAMESPACE), one
// session's Pod, or the template of every session of a tenant (`session_id`
// empty, `template_only`).
struct KeyTarget {
    const Manifest* manifest = nullptr;
    IsolationKey key;
    std::string kube_namespace;
    bool template_only = false;
    std::string name;  // of the workload, its Service and its NetworkPolicy
};

// "ns:tenant-a:echo", or for a template "the sessions of echo in tenant-a".
std::string describe(const KeyTarget& target);

// The labels that select the key's pods (the Deployment's selector, the
// Service's, the NetworkPolicy's), and the proxy's discovery labels.
nlohmann::ordered_json selector_labels(const KeyTarget& target);
nlohmann::ordered_json pod_labels(const KeyTarget& target);
// Raw ids (which labels may have had to change), the RFC process id, the
// version, the weakenings and what does not carry over.
nlohmann::ordered_json pod_annotations(const KeyTarget& target,
                                       const std::vector<std::string>& key_notes);

// The host names in the key's egress list and their addresses, resolved once
// per export.
struct ResolvedEgress {
    std::vector<EgressDestination> list;  // manifest's, then the tenant's
    std::map<std::string, std::vector<sandbox::Ipv4Address>> names;
};

// metadata + spec of a pod (Deployment template, PodTemplate, Pod).
nlohmann::ordered_json pod_template(const KeyTarget& target, const LauncherConfig& config,
                                    const ExportOptions& options, const ResolvedEgress& egress,
                                    const std::vector<std::string>& key_notes);

// What is not carried over for this manifest, or carried over differently
// (pids limit, swap, cpu weight, Landlock, restart policy of a Deployment,
// notify health checks), one sentence each.
std::vector<std::string> not_carried_over(const Manifest& manifest, bool deployment);

// Adds a note for each destination it leaves out because a closed network
// holds all of it.
nlohmann::ordered_json network_policy(const KeyTarget& target, const ExportOptions& options,
                                      const ResolvedEgress& egress,
                                      std::vector<std::string>& notes);

nlohmann::ordered_json service(const KeyTarget& target, const ExportOptions& options);

// Kubernetes quantity text: CPUs as millicores ("500m", "2"), bytes as the
// largest binary unit that divides them ("64Mi", "1536Ki", "1000").
std::string cpu_quantity(double cpus);
std::string memory_quantity(std::uint64_t bytes);

// The manifest's resources, with the config's defaults for what it leaves unset.
Resources effective_resources(const Manifest& manifest, const LauncherConfig& config);

}  // namespace launcher::kubernetes::detail
