// `patternctl export kubernetes`: the Kubernetes objects that run a set of
// patterns with the promises the launcher makes for them (limits, seccomp,
// identities, egress), built offline from the manifests and the launcher
// config. Pure and deterministic: the same input gives the same objects in
// the same order; host names in egress lists are resolved by the caller's
// resolver. docs/kubernetes.md describes the mapping point by point.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "config/config.h"
#include "config/manifest.h"
#include "sandbox/ipv4.h"

namespace launcher::kubernetes {

// What cannot be exported as asked (an unknown tenant, an id a pod cannot
// have, a name that resolves to nothing); what() says which and why.
class ExportError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

struct ExportOptions {
    // NAMESPACE and SESSION patterns are exported for these tenants; empty:
    // every tenant the config names (namespace_quotas, egress.tenants,
    // warm_pool.tenants).
    std::vector<std::string> tenants;
    // SESSION patterns: a Pod (with its Service and NetworkPolicy) for each
    // of these (tenant, session id), next to the PodTemplate every session
    // is made from.
    std::vector<std::pair<std::string, std::string>> sessions;
    // Kubernetes namespace of NONE patterns (one process for all tenants).
    std::string shared_namespace = "prism";
    // The proxy's pods, the only ones allowed to connect to a pattern: their
    // labels and their Kubernetes namespace (both must match, so that a
    // tenant cannot label a pod of its own as the proxy).
    std::map<std::string, std::string> proxy_labels{{"app.kubernetes.io/name", "prism-proxy"}};
    std::string proxy_namespace = "prism-system";
    // Container image per pattern; default: <image_prefix><name>:<version>.
    std::map<std::string, std::string> images;
    std::string image_prefix = "prism/";
    // The ports the pattern binds itself (there is no LISTEN_FDS on Kubernetes).
    int grpc_port = 50051;
    int health_port = 8081;
    // Networks no pattern may reach whatever its list says, besides the
    // launcher's never-reachable ranges: typically the cluster's pod and
    // Service CIDRs (the launcher closes other tenants' veths the same way).
    std::vector<sandbox::Ipv4Network> never_reach;
    // The kubelet seccomp directory's subdirectory the profiles go into:
    // localhostProfile is "<seccomp_subdir>/<profile>.json".
    std::string seccomp_subdir = "prism";
};

// A host name's IPv4 addresses; empty when it does not resolve.
using Resolver = std::function<std::vector<sandbox::Ipv4Address>(const std::string& name)>;

struct ExportedObject {
    std::string namespace_name;  // "" for cluster-scoped objects (Namespace)
    std::string kind;
    std::string name;
    nlohmann::ordered_json body;
};

struct KubernetesExport {
    std::vector<ExportedObject> objects;  // in apply order: namespaces first
    // "<profile>.json" -> the OCI seccomp profile (oci_seccomp.h), for the
    // kubelet's seccomp directory under <seccomp_subdir>/ on every node.
    std::map<std::string, std::string> seccomp_profiles;
    // One sentence each: weakenings, names resolved at export time, what
    // does not carry over. Also in the objects' annotations.
    std::vector<std::string> notes;
};

// Throws ExportError.
KubernetesExport export_kubernetes(const std::map<std::string, Manifest>& patterns,
                                   const LauncherConfig& config, const ExportOptions& options,
                                   const Resolver& resolve);

// The objects as one multi-document YAML stream.
std::string to_yaml_stream(const KubernetesExport& exported);

// Relative file name of each object in an output directory, kinds in lower
// case: "<namespace>/<kind>-<name>.yaml", and "00-<kind>-<name>.yaml" for
// cluster-scoped ones (Namespaces), which sort before the directories, so
// that `kubectl apply -R -f DIR` creates them first.
std::string object_file_name(const ExportedObject& object);

}  // namespace launcher::kubernetes
