// A key's egress in the firewall's terms: its manifest's `sandbox.egress`
// plus its tenant's additions (the launcher config's `egress.tenants`), with
// host names replaced by the addresses they resolved to, and the name files
// the pattern's view shows instead of the host's. Pure: the names are
// resolved elsewhere (off the loop), the rules enforced by sandbox/.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "common/isolation_key.h"
#include "config/egress.h"
#include "config/manifest.h"
#include "sandbox/egress_ruleset.h"
#include "sandbox/ipv4.h"

namespace launcher {

// What each host name resolved to; a name without addresses did not resolve.
using ResolvedNames = std::map<std::string, std::vector<sandbox::Ipv4Address>>;

// The manifest's list, then the tenant's for a NAMESPACE or SESSION key of
// that namespace; empty when the manifest has none. A shared key serves every tenant, so no
// tenant's additions apply to it: tenant-a's database is never open to a process tenant-b uses.
std::vector<EgressDestination> effective_egress(const Manifest& manifest, const IsolationKey& key,
                                                const EgressSettings& settings);

// The host names in `list`, sorted, each once.
std::vector<std::string> egress_names(const std::vector<EgressDestination>& list);

struct AllowedElements {
    std::vector<sandbox::EgressAllow> allowed;
    std::vector<std::string> unresolved;  // names with no address in `resolved`
};

// The firewall's allow-list: an address or network as written, and a name
// as one /32 per address it resolved to. The result may overlap; the
// ruleset makes it disjoint (sandbox::disjoint_elements).
AllowedElements allowed_elements(const std::vector<EgressDestination>& list,
                                 const ResolvedNames& resolved);

// /etc/hosts of the key's view: localhost, then each listed name with each of
// its addresses, and nothing else: a name the list does not hold does not
// resolve.
std::string render_hosts(const std::vector<std::string>& names, const ResolvedNames& resolved);

// /etc/resolv.conf of the key's view: no nameserver reachable. glibc then
// asks 127.0.0.1:53, which in the pattern's own namespace refuses at once,
// so a lookup of an unlisted name fails fast instead of timing out.
std::string render_resolv_conf();

}  // namespace launcher
