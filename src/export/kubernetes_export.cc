// export_kubernetes(): which objects a set of manifests becomes, and in
// which order. The pod itself is pod_template.cc, its network
// network_policy.cc.
#include "export/kubernetes_export.h"

#include <algorithm>
#include <set>

#include "config/confinement_report.h"
#include "core/egress_plan.h"
#include "export/kubernetes_names.h"
#include "export/kubernetes_parts.h"
#include "export/oci_seccomp.h"
#include "export/yaml_writer.h"

namespace launcher::kubernetes {
namespace detail {

using nlohmann::ordered_json;

std::string describe(const KeyTarget& t) {
    if (t.template_only) return "the sessions of " + t.key.pattern + " in " + t.key.namespace_id;
    return t.key.process_id();
}

ordered_json selector_labels(const KeyTarget& t) {
    ordered_json labels = {{"prism.io/pattern", label_value(t.key.pattern)},
                           {"prism.io/isolation", isolation_name(t.key.level)}};
    if (t.key.level != Isolation::kNone)
        labels["prism.io/namespace"] = label_value(t.key.namespace_id);
    if (t.key.level == Isolation::kSession && !t.template_only)
        labels["prism.io/session"] = label_value(t.key.session_id);
    return labels;
}

ordered_json pod_labels(const KeyTarget& t) {
    ordered_json labels = {{"app.kubernetes.io/name", label_value(t.key.pattern)},
                           {"app.kubernetes.io/managed-by", "patternctl"}};
    labels.update(selector_labels(t));
    return labels;
}

ordered_json pod_annotations(const KeyTarget& t, const std::vector<std::string>& key_notes) {
    ordered_json a = ordered_json::object();
    // The ids as the launcher spells them (a label may have had to change
    // one to fit), so that the proxy finds a key's pods by its process id.
    if (!t.template_only) a["prism.io/process-id"] = t.key.process_id();
    a["prism.io/pattern-version"] = t.manifest->version;
    if (t.key.level != Isolation::kNone) a["prism.io/namespace"] = t.key.namespace_id;
    if (t.key.level == Isolation::kSession && !t.template_only)
        a["prism.io/session"] = t.key.session_id;
    const std::vector<std::string> weakened = confinement_weakenings(*t.manifest);
    std::string joined;
    for (const std::string& w : weakened)
        joined += (joined.empty() ? "" : "; ") + w;
    if (!joined.empty()) a["prism.io/weakened"] = joined;
    joined.clear();
    for (const std::string& n : key_notes)
        joined += (joined.empty() ? "" : "; ") + n;
    if (!joined.empty()) a["prism.io/not-carried-over"] = joined;
    return a;
}

}  // namespace detail

namespace {

using detail::KeyTarget;
using detail::ResolvedEgress;
using nlohmann::ordered_json;

// Pod Security Admission levels, weakest last.
enum class PodSecurity { kRestricted, kBaseline, kPrivileged };

const char* pod_security_name(PodSecurity level) {
    switch (level) {
        case PodSecurity::kRestricted:
            return "restricted";
        case PodSecurity::kBaseline:
            return "baseline";
        case PodSecurity::kPrivileged:
            break;
    }
    return "privileged";
}

// The strictest Pod Security Standard the manifest's pod meets
// (kubernetes.io/docs/concepts/security/pod-security-standards).
PodSecurity pod_security(const Manifest& m) {
    if (m.sandbox.network == NetworkMode::kHost || m.sandbox.seccomp == "none")
        return PodSecurity::kPrivileged;
    static const std::set<std::string> kBaselineCaps = {
        "AUDIT_WRITE",      "CHOWN",   "DAC_OVERRIDE", "FOWNER",  "FSETID", "KILL",      "MKNOD",
        "NET_BIND_SERVICE", "SETFCAP", "SETGID",       "SETPCAP", "SETUID", "SYS_CHROOT"};
    PodSecurity level = PodSecurity::kRestricted;
    for (std::string c : m.sandbox.capabilities) {
        std::transform(c.begin(), c.end(), c.begin(),
                       [](unsigned char ch) { return static_cast<char>(std::toupper(ch)); });
        if (c.starts_with("CAP_")) c.erase(0, 4);
        if (!kBaselineCaps.count(c)) return PodSecurity::kPrivileged;
        if (c != "NET_BIND_SERVICE") level = PodSecurity::kBaseline;
    }
    if (m.sandbox.uid && *m.sandbox.uid == 0) level = PodSecurity::kBaseline;
    return level;
}

ordered_json namespace_object(const std::string& name, PodSecurity level,
                              const std::string& tenant) {
    ordered_json labels = ordered_json::object();
    labels["pod-security.kubernetes.io/enforce"] = pod_security_name(level);
    labels["pod-security.kubernetes.io/warn"] = "restricted";
    labels["pod-security.kubernetes.io/audit"] = "restricted";
    if (!tenant.empty()) labels["prism.io/namespace"] = label_value(tenant);
    ordered_json metadata = {{"name", name}, {"labels", labels}};
    if (!tenant.empty()) metadata["annotations"] = {{"prism.io/namespace", tenant}};
    return {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", metadata}};
}

std::vector<std::string> config_tenants(const LauncherConfig& config) {
    std::set<std::string> ids;
    for (const auto& [id, quota] : config.namespace_quotas)
        ids.insert(id);
    for (const auto& [id, list] : config.egress.tenants)
        ids.insert(id);
    for (const auto& [id, patterns] : config.warm_pool.tenants)
        ids.insert(id);
    return {ids.begin(), ids.end()};
}

// The tenant's ceiling (its `ns:<id>` cgroup in the launcher) as a quota on
// the whole Kubernetes namespace, and as the most one container may ask.
void add_tenant_ceilings(std::vector<ExportedObject>& out, const std::string& tenant,
                         const std::string& ns, const LauncherConfig& config,
                         std::vector<std::string>& notes) {
    const auto quota = config.namespace_quotas.find(tenant);
    std::optional<int> max_processes = config.quotas.max_processes_per_namespace;
    Resources ceiling;
    if (quota != config.namespace_quotas.end()) {
        ceiling = quota->second.resources;
        if (quota->second.max_processes) max_processes = quota->second.max_processes;
    }
    ordered_json hard = ordered_json::object();
    if (ceiling.cpu_limit) {
        hard["limits.cpu"] = detail::cpu_quantity(*ceiling.cpu_limit);
        hard["requests.cpu"] = detail::cpu_quantity(*ceiling.cpu_limit);
    }
    if (ceiling.memory_limit) {
        hard["limits.memory"] = detail::memory_quantity(*ceiling.memory_limit);
        hard["requests.memory"] = detail::memory_quantity(*ceiling.memory_limit);
    }
    // One process per key in the launcher, one pod per key here.
    if (max_processes) hard["pods"] = std::to_string(*max_processes);
    if (ceiling.pids_limit)
        notes.push_back("namespace '" + tenant + "': pids_limit " +
                        std::to_string(*ceiling.pids_limit) +
                        " is not carried over (pids are limited per node on Kubernetes)");
    if (hard.empty()) return;
    const ordered_json labels = {{"app.kubernetes.io/managed-by", "patternctl"},
                                 {"prism.io/namespace", label_value(tenant)}};
    out.push_back(
        {ns,
         "ResourceQuota",
         "tenant-ceiling",
         {{"apiVersion", "v1"},
          {"kind", "ResourceQuota"},
          {"metadata", {{"name", "tenant-ceiling"}, {"namespace", ns}, {"labels", labels}}},
          {"spec", {{"hard", hard}}}}});
    if (!ceiling.cpu_limit && !ceiling.memory_limit) return;
    // A quota on cpu or memory makes Kubernetes refuse pods that do not say
    // theirs: the launcher's defaults fill in for those, and no container may
    // ask for more than the whole tenant has.
    ordered_json max = ordered_json::object();
    ordered_json defaults = ordered_json::object();
    if (ceiling.cpu_limit) max["cpu"] = detail::cpu_quantity(*ceiling.cpu_limit);
    if (ceiling.memory_limit) max["memory"] = detail::memory_quantity(*ceiling.memory_limit);
    // Kubernetes refuses a LimitRange whose default exceeds its max.
    const auto too_big = [&](const char* what) {
        notes.push_back("namespace '" + tenant + "': the config's default " + what +
                        " is more than the tenant's whole ceiling: no LimitRange default for it");
    };
    if (const auto& cpu = config.resources.cpu_limit) {
        if (ceiling.cpu_limit && *cpu > *ceiling.cpu_limit) {
            too_big("cpu_limit");
        } else {
            defaults["cpu"] = detail::cpu_quantity(*cpu);
        }
    }
    if (const auto& memory = config.resources.memory_limit) {
        if (ceiling.memory_limit && *memory > *ceiling.memory_limit) {
            too_big("memory_limit");
        } else {
            defaults["memory"] = detail::memory_quantity(*memory);
        }
    }
    ordered_json limit = {{"type", "Container"}, {"max", max}};
    if (!defaults.empty()) {
        limit["default"] = defaults;
        limit["defaultRequest"] = defaults;
    }
    out.push_back(
        {ns,
         "LimitRange",
         "tenant-ceiling",
         {{"apiVersion", "v1"},
          {"kind", "LimitRange"},
          {"metadata", {{"name", "tenant-ceiling"}, {"namespace", ns}, {"labels", labels}}},
          {"spec", {{"limits", ordered_json::array({limit})}}}}});
}

class Exporter {
public:
    Exporter(const LauncherConfig& config, const ExportOptions& options, const Resolver& resolve)
        : config_(config), options_(options), resolve_(resolve) {}

    void add_key(KubernetesExport& out, KeyTarget t) {
        const Manifest& m = *t.manifest;
        const bool deployment = t.key.level != Isolation::kSession;
        const std::vector<std::string> key_notes = detail::not_carried_over(m, deployment);
        const ResolvedEgress egress = resolved_egress(t, out.notes);
        const ordered_json pod = detail::pod_template(t, config_, options_, egress, key_notes);
        const ordered_json labels = detail::pod_labels(t);
        ordered_json metadata = {{"name", t.name},
                                 {"namespace", t.kube_namespace},
                                 {"labels", labels},
                                 {"annotations", pod["metadata"]["annotations"]}};
        if (deployment) {
            ordered_json spec = {
                {"replicas", 1},
                // One process per key: the old pod is gone before the new one starts.
                {"strategy", {{"type", "Recreate"}}},
                {"selector", {{"matchLabels", detail::selector_labels(t)}}},
                {"template", pod}};
            push(out, {t.kube_namespace,
                       "Deployment",
                       t.name,
                       {{"apiVersion", "apps/v1"},
                        {"kind", "Deployment"},
                        {"metadata", metadata},
                        {"spec", spec}}});
        } else if (t.template_only) {
            metadata.erase("annotations");
            push(out, {t.kube_namespace,
                       "PodTemplate",
                       t.name,
                       {{"apiVersion", "v1"},
                        {"kind", "PodTemplate"},
                        {"metadata", metadata},
                        {"template", pod}}});
        } else {
            push(out, {t.kube_namespace,
                       "Pod",
                       t.name,
                       {{"apiVersion", "v1"},
                        {"kind", "Pod"},
                        {"metadata", metadata},
                        {"spec", pod["spec"]}}});
        }
        if (!t.template_only) {
            ordered_json svc = detail::service(t, options_);
            push(out, {t.kube_namespace, "Service", svc["metadata"]["name"], svc});
        }
        push(out, {t.kube_namespace, "NetworkPolicy", t.name,
                   detail::network_policy(t, options_, egress, out.notes)});
        for (const std::string& n : key_notes)
            note(out, "pattern '" + m.name + "': " + n);
    }

    void note(KubernetesExport& out, const std::string& text) {
        if (std::find(out.notes.begin(), out.notes.end(), text) == out.notes.end())
            out.notes.push_back(text);
    }

private:
    void push(KubernetesExport& out, ExportedObject o) {
        if (!seen_.insert(o.namespace_name + "/" + o.kind + "/" + o.name).second) {
            throw ExportError("two objects would be " + o.kind + " '" + o.name +
                              "' in namespace '" + o.namespace_name +
                              "': rename a pattern or a session");
        }
        out.objects.push_back(std::move(o));
    }

    ResolvedEgress resolved_egress(const KeyTarget& t, std::vector<std::string>& notes) {
        ResolvedEgress r;
        r.list = effective_egress(*t.manifest, t.key, config_.egress);
        for (const std::string& name : egress_names(r.list)) {
            auto cached = resolved_.find(name);
            if (cached == resolved_.end()) {
                std::vector<sandbox::Ipv4Address> addresses = resolve_(name);
                std::sort(addresses.begin(), addresses.end());
                addresses.erase(std::unique(addresses.begin(), addresses.end()), addresses.end());
                if (addresses.empty()) {
                    throw ExportError("pattern '" + t.manifest->name + "': egress host '" + name +
                                      "' does not resolve (--resolve " + name +
                                      "=ADDRESS gives it an address)");
                }
                std::string text = "egress host '" + name + "' resolved at export time to";
                for (const auto& a : addresses)
                    text += " " + sandbox::to_string(a);
                notes.push_back(text +
                                " (the launcher follows a name as it moves; the exported "
                                "NetworkPolicy does not)");
                cached = resolved_.emplace(name, std::move(addresses)).first;
            }
            r.names.insert(*cached);
        }
        return r;
    }

    const LauncherConfig& config_;
    const ExportOptions& options_;
    const Resolver& resolve_;
    std::map<std::string, std::vector<sandbox::Ipv4Address>> resolved_;
    std::set<std::string> seen_;
};

}  // namespace

KubernetesExport export_kubernetes(const std::map<std::string, Manifest>& patterns,
                                   const LauncherConfig& config, const ExportOptions& options,
                                   const Resolver& resolve) {
    std::vector<std::string> tenants =
        options.tenants.empty() ? config_tenants(config) : options.tenants;
    std::sort(tenants.begin(), tenants.end());
    tenants.erase(std::unique(tenants.begin(), tenants.end()), tenants.end());
    for (const std::string& t : tenants) {
        if (const std::string problem = identifier_problem("namespace", t); !problem.empty())
            throw ExportError(problem);
    }
    for (const auto& [tenant, session] : options.sessions) {
        if (const std::string problem = identifier_problem("session", session); !problem.empty())
            throw ExportError(problem);
        if (!std::binary_search(tenants.begin(), tenants.end(), tenant))
            throw ExportError("session '" + session + "' is of namespace '" + tenant +
                              "', which is not exported (--tenant " + tenant + ")");
    }
    bool any_shared = false;
    bool any_tenant = false;
    for (const auto& [name, m] : patterns) {
        (m.isolation_level == Isolation::kNone ? any_shared : any_tenant) = true;
    }
    if (any_tenant && tenants.empty()) {
        throw ExportError(
            "patterns with namespace or session isolation need tenants: give --tenant ID, or list "
            "them in the config (namespace_quotas, egress.tenants, warm_pool.tenants)");
    }
    const std::string shared_ns = dns_label(options.shared_namespace);
    std::map<std::string, std::string> tenant_ns;  // tenant id -> Kubernetes namespace
    for (const std::string& t : tenants) {
        const std::string ns = dns_label(t);
        if (ns == shared_ns && any_shared)
            throw ExportError("namespace '" + t + "' would share the Kubernetes namespace '" + ns +
                              "' of the shared patterns (--shared-namespace)");
        tenant_ns[t] = ns;
    }

    KubernetesExport out;
    Exporter exporter(config, options, resolve);
    // Namespaces first, each at the Pod Security level its pods meet.
    PodSecurity shared_level = PodSecurity::kRestricted;
    PodSecurity tenant_level = PodSecurity::kRestricted;
    for (const auto& [name, m] : patterns) {
        PodSecurity& level = m.isolation_level == Isolation::kNone ? shared_level : tenant_level;
        const PodSecurity meets = pod_security(m);
        level = std::max(level, meets);
        if (meets != PodSecurity::kRestricted)
            exporter.note(out, "pattern '" + name + "' meets only the " + pod_security_name(meets) +
                                   " Pod Security Standard; its namespace enforces that level");
        for (const std::string& w : confinement_weakenings(m))
            exporter.note(out, "pattern '" + name + "' weakened: " + w);
    }
    if (any_shared)
        out.objects.push_back(
            {"", "Namespace", shared_ns, namespace_object(shared_ns, shared_level, "")});
    if (any_tenant) {
        for (const auto& [t, ns] : tenant_ns)
            out.objects.push_back({"", "Namespace", ns, namespace_object(ns, tenant_level, t)});
        for (const auto& [t, ns] : tenant_ns)
            add_tenant_ceilings(out.objects, t, ns, config, out.notes);
    }

    for (const auto& [name, m] : patterns) {
        KeyTarget base;
        base.manifest = &m;
        base.key.pattern = name;
        base.key.level = m.isolation_level;
        if (m.isolation_level == Isolation::kNone) {
            base.kube_namespace = shared_ns;
            base.name = dns_label(name);
            exporter.add_key(out, base);
            continue;
        }
        for (const auto& [t, ns] : tenant_ns) {
            KeyTarget target = base;
            target.key.namespace_id = t;
            target.kube_namespace = ns;
            target.name = dns_label(name);
            if (m.isolation_level == Isolation::kNamespace) {
                exporter.add_key(out, target);
                continue;
            }
            target.template_only = true;
            exporter.add_key(out, target);
            for (const auto& [session_tenant, session] : options.sessions) {
                if (session_tenant != t) continue;
                KeyTarget one = target;
                one.template_only = false;
                one.key.session_id = session;
                one.name = dns_label(name + "-" + session);
                exporter.add_key(out, one);
            }
        }
    }

    std::set<std::string> profiles;
    for (const auto& [name, m] : patterns) {
        if (m.sandbox.seccomp != "none") profiles.insert(m.sandbox.seccomp);
    }
    for (const std::string& p : profiles)
        out.seccomp_profiles[p + ".json"] = oci_seccomp_builtin_json(p);
    return out;
}

std::string to_yaml_stream(const KubernetesExport& exported) {
    std::vector<nlohmann::ordered_json> documents;
    documents.reserve(exported.objects.size());
    for (const ExportedObject& o : exported.objects)
        documents.push_back(o.body);
    return launcher::to_yaml_stream(documents);
}

std::string object_file_name(const ExportedObject& object) {
    std::string kind = object.kind;
    std::transform(kind.begin(), kind.end(), kind.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (object.namespace_name.empty()) return "00-" + kind + "-" + object.name + ".yaml";
    return object.namespace_name + "/" + kind + "-" + object.name + ".yaml";
}

}  // namespace launcher::kubernetes
