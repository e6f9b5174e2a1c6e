// Who may do what through the API: grants that map identities (uid, group,
// client certificate, token subject or claims) to RPCs, namespaces and
// patterns. Pure decisions; the API layer establishes the identity and
// applies the answer. Everything not granted is denied.
#pragma once

#include <sys/types.h>

#include <array>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "auth/caller_identity.h"

namespace launcher::auth {

enum class Rpc {
    kLaunchPattern,
    kListPatterns,
    kTerminatePattern,
    kHealth,
    kGetProcessStatus,
    kReload,
};
inline constexpr std::array<Rpc, 6> kAllRpcs{Rpc::kLaunchPattern,    Rpc::kListPatterns,
                                             Rpc::kTerminatePattern, Rpc::kHealth,
                                             Rpc::kGetProcessStatus, Rpc::kReload};
const char* rpc_name(Rpc rpc);  // the method name on the wire: "LaunchPattern"
std::optional<Rpc> parse_rpc(std::string_view name);

// Whom a grant is for. Exactly one kind is set; `token_subject` and
// `token_claims` may be combined (both must match).
struct GrantMatch {
    std::optional<uid_t> uid;   // a unix peer with this uid
    std::optional<gid_t> gid;   // a unix peer with this primary or supplementary group
    std::string group;          // the group's name as configured (for messages)
    std::string certificate;    // glob over a client certificate's identity
    std::string token_subject;  // glob over a token's "sub"
    std::vector<std::pair<std::string, std::string>> token_claims;  // claim name, value glob

    bool matches(const CallerIdentity& caller) const;
    std::string describe() const;  // "uid 0", "group pattern-launcher", "certificate spiffe://x/*"
};

struct Grant {
    std::string name;  // for messages and the audit trail
    GrantMatch match;
    std::set<Rpc> rpcs;
    // Globs (fnmatch(3)). A key without a namespace (isolation none, or a
    // session launched without one) is covered only by "*".
    std::vector<std::string> namespaces{"*"};
    std::vector<std::string> patterns{"*"};
};

struct Decision {
    bool allowed = false;
    bool unauthenticated = false;  // no identity at all: UNAUTHENTICATED, not PERMISSION_DENIED
    std::string grant;             // allowed: the grant that allowed it
    std::string message;           // denied: names the identity and what is missing
};

// The grants that apply to one caller.
class Permissions {
public:
    Permissions() = default;
    Permissions(CallerIdentity caller, std::vector<const Grant*> grants, std::string refusal)
        : caller_(std::move(caller)), grants_(std::move(grants)), refusal_(std::move(refusal)) {}

    const CallerIdentity& caller() const { return caller_; }
    // May the caller use `rpc` at all (on some namespace)?
    Decision check(Rpc rpc) const;
    // On one key (or launch request): its namespace ("" for none) and pattern.
    Decision check(Rpc rpc, std::string_view namespace_id, std::string_view pattern) const;
    bool allows(Rpc rpc, std::string_view namespace_id, std::string_view pattern) const {
        return check(rpc, namespace_id, pattern).allowed;
    }

private:
    Decision deny(std::string what) const;
    bool namespace_allowed_by_token(std::string_view namespace_id) const;

    CallerIdentity caller_;
    std::vector<const Grant*> grants_;  // owned by the ApiPolicy, which outlives this
    std::string refusal_;               // set: nothing is allowed, and this is why
};

class ApiPolicy {
public:
    ApiPolicy() = default;
    explicit ApiPolicy(std::vector<Grant> grants) : grants_(std::move(grants)) {}

    // Without a configured policy: root and members of `launcher_group` (the
    // `pattern-launcher` group, when it exists) may do everything over the
    // unix socket; nobody else may do anything.
    static ApiPolicy local_default(std::optional<gid_t> launcher_group);

    // The caller's grants. A unix peer inside the tenants' cgroup subtree,
    // and a caller without an identity, get none.
    Permissions permissions_for(CallerIdentity caller) const;

    const std::vector<Grant>& grants() const { return grants_; }

private:
    std::vector<Grant> grants_;
};

// fnmatch(3) without flags: '*' also matches '/' (SPIFFE paths).
bool glob_match(std::string_view glob, std::string_view text);

}  // namespace launcher::auth
