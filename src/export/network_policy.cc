// A key's network: its Service, and the NetworkPolicy that lets in only the
// proxy and lets out only the manifest's egress list (the launcher's veth
// and nftables rules, sandbox/egress_ruleset.h).
#include <algorithm>

#include "export/kubernetes_names.h"
#include "export/kubernetes_parts.h"

namespace launcher::kubernetes::detail {
namespace {

using nlohmann::ordered_json;

// Whether `inner` lies inside `outer` and is smaller: NetworkPolicy's
// `except` takes only such networks.
bool strictly_inside(const sandbox::Ipv4Network& inner, const sandbox::Ipv4Network& outer) {
    return inner.prefix > outer.prefix && outer.contains(inner.address);
}

bool inside(const sandbox::Ipv4Network& inner, const sandbox::Ipv4Network& outer) {
    return inner.prefix >= outer.prefix && outer.contains(inner.address);
}

// The launcher closes its never-reachable ranges whatever a list says; here
// they, and the operator's --never-reach networks, become `except`.
std::vector<sandbox::Ipv4Network> closed_networks(const ExportOptions& o) {
    std::vector<sandbox::Ipv4Network> closed;
    for (const NeverReachable& n : never_reachable_networks())
        closed.push_back(n.network);
    closed.insert(closed.end(), o.never_reach.begin(), o.never_reach.end());
    return closed;
}

ordered_json ports_of(const EgressDestination& d) {
    ordered_json port = {
        {"protocol", d.protocol == EgressDestination::Protocol::kUdp ? "UDP" : "TCP"},
        {"port", d.first_port}};
    if (d.last_port != d.first_port) port["endPort"] = d.last_port;
    return ordered_json::array({port});
}

}  // namespace

ordered_json network_policy(const KeyTarget& t, const ExportOptions& o,
                            const ResolvedEgress& egress, std::vector<std::string>& notes) {
    ordered_json proxy_labels = ordered_json::object();
    for (const auto& [k, v] : o.proxy_labels)
        proxy_labels[k] = v;
    ordered_json ingress_ports = ordered_json::array();
    ingress_ports.push_back({{"protocol", "TCP"}, {"port", o.grpc_port}});
    ordered_json from = ordered_json::array();
    from.push_back({{"namespaceSelector",
                     {{"matchLabels", {{"kubernetes.io/metadata.name", o.proxy_namespace}}}}},
                    {"podSelector", {{"matchLabels", proxy_labels}}}});
    ordered_json ingress = ordered_json::array();
    ingress.push_back({{"from", from}, {"ports", ingress_ports}});

    const std::vector<sandbox::Ipv4Network> closed = closed_networks(o);
    ordered_json egress_rules = ordered_json::array();
    for (const EgressDestination& d : egress.list) {
        std::vector<sandbox::Ipv4Network> networks;
        if (d.is_host_name()) {
            const auto found = egress.names.find(std::get<std::string>(d.host));
            if (found != egress.names.end()) {
                for (const auto& a : found->second)
                    networks.push_back({a, 32});
            }
        } else {
            networks.push_back(std::get<sandbox::Ipv4Network>(d.host));
        }
        ordered_json to = ordered_json::array();
        for (const auto& n : networks) {
            const auto holder = std::find_if(closed.begin(), closed.end(),
                                             [&](const auto& c) { return inside(n, c); });
            if (holder != closed.end()) {
                // Wholly closed: the launcher would never open it either.
                notes.push_back("egress " + d.text + " of " + describe(t) + " (" +
                                sandbox::to_string(n) + ") lies inside the closed network " +
                                sandbox::to_string(*holder) + ": left out");
                continue;
            }
            ordered_json block = {{"cidr", sandbox::to_string(n)}};
            ordered_json except = ordered_json::array();
            for (const auto& c : closed) {
                if (strictly_inside(c, n)) except.push_back(sandbox::to_string(c));
            }
            if (!except.empty()) block["except"] = except;
            to.push_back({{"ipBlock", block}});
        }
        if (to.empty()) continue;
        egress_rules.push_back({{"to", to}, {"ports", ports_of(d)}});
    }

    ordered_json spec;
    spec["podSelector"] = {{"matchLabels", selector_labels(t)}};
    spec["policyTypes"] = {"Ingress", "Egress"};
    spec["ingress"] = ingress;
    spec["egress"] = egress_rules;  // empty: nothing goes out, as with no list
    ordered_json metadata = {
        {"name", t.name}, {"namespace", t.kube_namespace}, {"labels", pod_labels(t)}};
    if (!egress.names.empty()) {
        // Flagged: a name the launcher would follow as it moves is fixed here
        // to what it resolved to when the objects were made.
        std::string resolved;
        for (const auto& [name, addresses] : egress.names) {
            if (!resolved.empty()) resolved += "; ";
            resolved += name + " =";
            for (const auto& a : addresses)
                resolved += " " + sandbox::to_string(a);
        }
        metadata["annotations"] = {{"prism.io/egress-resolved-at-export", resolved}};
    }
    return {{"apiVersion", "networking.k8s.io/v1"},
            {"kind", "NetworkPolicy"},
            {"metadata", metadata},
            {"spec", spec}};
}

ordered_json service(const KeyTarget& t, const ExportOptions& o) {
    ordered_json port = {
        {"name", "grpc"}, {"protocol", "TCP"}, {"port", o.grpc_port}, {"targetPort", "grpc"}};
    ordered_json spec = {{"type", "ClusterIP"},
                         {"selector", selector_labels(t)},
                         {"ports", ordered_json::array({port})}};
    return {{"apiVersion", "v1"},
            {"kind", "Service"},
            {"metadata",
             {{"name", dns_label(t.name, true)},
              {"namespace", t.kube_namespace},
              {"labels", pod_labels(t)}}},
            {"spec", spec}};
}

}  // namespace launcher::kubernetes::detail
