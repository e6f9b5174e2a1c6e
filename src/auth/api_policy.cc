#include "auth/api_policy.h"

#include <fnmatch.h>

#include <algorithm>

namespace launcher::auth {

const char* rpc_name(Rpc rpc) {
    switch (rpc) {
        case Rpc::kLaunchPattern:
            return "LaunchPattern";
        case Rpc::kListPatterns:
            return "ListPatterns";
        case Rpc::kTerminatePattern:
            return "TerminatePattern";
        case Rpc::kHealth:
            return "Health";
        case Rpc::kGetProcessStatus:
            return "GetProcessStatus";
        case Rpc::kReload:
            return "Reload";
    }
    return "?";
}

std::optional<Rpc> parse_rpc(std::string_view name) {
    for (Rpc rpc : kAllRpcs) {
        if (name == rpc_name(rpc)) return rpc;
    }
    return std::nullopt;
}

bool glob_match(std::string_view glob, std::string_view text) {
    // fnmatch needs NUL-terminated strings; a NUL inside either never matches.
    if (glob.find('\0') != std::string_view::npos || text.find('\0') != std::string_view::npos)
        return false;
    return ::fnmatch(std::string(glob).c_str(), std::string(text).c_str(), 0) == 0;
}

namespace {

// A key without a namespace is covered only by "*", so a grant for
// "team-*" never reaches the processes every tenant shares.
bool namespace_matches(std::string_view glob, std::string_view namespace_id) {
    if (namespace_id.empty()) return glob == "*";
    return glob_match(glob, namespace_id);
}

bool any_matches(const std::vector<std::string>& globs, std::string_view text, bool is_namespace) {
    return std::any_of(globs.begin(), globs.end(), [&](const std::string& g) {
        return is_namespace ? namespace_matches(g, text) : glob_match(g, text);
    });
}

}  // namespace

bool GrantMatch::matches(const CallerIdentity& caller) const {
    switch (caller.method) {
        case AuthMethod::kUnixPeer: {
            if (!caller.unix_peer) return false;
            const UnixPeer& p = *caller.unix_peer;
            if (uid) return p.uid == *uid;
            if (gid) {
                return p.gid == *gid ||
                       std::find(p.groups.begin(), p.groups.end(), *gid) != p.groups.end();
            }
            return false;
        }
        case AuthMethod::kCertificate:
            return !certificate.empty() && caller.certificate &&
                   glob_match(certificate, caller.certificate->primary());
        case AuthMethod::kToken: {
            if (!caller.token || (token_subject.empty() && token_claims.empty())) return false;
            if (!token_subject.empty() && !glob_match(token_subject, caller.token->subject))
                return false;
            for (const auto& claim : token_claims) {
                auto it = caller.token->string_claims.find(claim.first);
                if (it == caller.token->string_claims.end()) return false;
                const std::string& value_glob = claim.second;
                if (!std::any_of(it->second.begin(), it->second.end(),
                                 [&](const std::string& v) { return glob_match(value_glob, v); }))
                    return false;
            }
            return true;
        }
        case AuthMethod::kNone:
            break;
    }
    return false;
}

std::string GrantMatch::describe() const {
    if (uid) return "uid " + std::to_string(*uid);
    if (gid) return "group " + (group.empty() ? std::to_string(*gid) : group);
    if (!certificate.empty()) return "certificate " + certificate;
    std::string out = "token";
    if (!token_subject.empty()) out += " sub=" + token_subject;
    for (const auto& [claim, value] : token_claims)
        out += " " + claim + "=" + value;
    return out;
}

Decision Permissions::deny(std::string what) const {
    Decision d;
    d.unauthenticated = caller_.method == AuthMethod::kNone;
    d.message = caller_.name() + " (" + auth_method_name(caller_.method) + ") may not " + what;
    return d;
}

Decision Permissions::check(Rpc rpc) const {
    if (caller_.method == AuthMethod::kNone) {
        Decision d = deny(std::string(rpc_name(rpc)));
        d.message =
            "no identity: " + (caller_.failure.empty() ? "none presented" : caller_.failure);
        return d;
    }
    if (!refusal_.empty()) return deny(std::string(rpc_name(rpc)) + ": " + refusal_);
    for (const Grant* g : grants_) {
        if (g->rpcs.count(rpc)) return {true, false, g->name, {}};
    }
    return deny(std::string(rpc_name(rpc)) + ": no grant of this identity includes " +
                rpc_name(rpc));
}

bool Permissions::namespace_allowed_by_token(std::string_view namespace_id) const {
    if (caller_.method != AuthMethod::kToken || !caller_.token ||
        !caller_.token->has_namespaces_claim)
        return true;
    return any_matches(caller_.token->namespaces, namespace_id, true);
}

Decision Permissions::check(Rpc rpc, std::string_view namespace_id,
                            std::string_view pattern) const {
    Decision overall = check(rpc);
    if (!overall.allowed) return overall;
    const std::string what =
        std::string(rpc_name(rpc)) + " pattern '" + std::string(pattern) + "' in " +
        (namespace_id.empty() ? std::string("no namespace (a shared key)")
                              : "namespace '" + std::string(namespace_id) + "'");
    if (!namespace_allowed_by_token(namespace_id)) {
        return deny(what + ": the token's namespaces claim does not include it");
    }
    for (const Grant* g : grants_) {
        if (g->rpcs.count(rpc) && any_matches(g->namespaces, namespace_id, true) &&
            any_matches(g->patterns, pattern, false)) {
            return {true, false, g->name, {}};
        }
    }
    return deny(what + ": missing grant of " + rpc_name(rpc) + " on that namespace and pattern");
}

ApiPolicy ApiPolicy::local_default(std::optional<gid_t> launcher_group) {
    std::vector<Grant> grants;
    Grant root;
    root.name = "default: root";
    root.match.uid = 0;
    root.rpcs.insert(kAllRpcs.begin(), kAllRpcs.end());
    grants.push_back(root);
    if (launcher_group) {
        Grant group;
        group.name = "default: group pattern-launcher";
        group.match.gid = *launcher_group;
        group.match.group = "pattern-launcher";
        group.rpcs.insert(kAllRpcs.begin(), kAllRpcs.end());
        grants.push_back(group);
    }
    return ApiPolicy(std::move(grants));
}

Permissions ApiPolicy::permissions_for(CallerIdentity caller) const {
    if (caller.method == AuthMethod::kNone) return Permissions(std::move(caller), {}, {});
    if (caller.unix_peer && caller.unix_peer->in_tenant_cgroup) {
        std::string why = "the calling process (pid " + std::to_string(caller.unix_peer->pid) +
                          ") runs inside the tenants' cgroup subtree (" + caller.unix_peer->cgroup +
                          ")";
        return Permissions(std::move(caller), {}, std::move(why));
    }
    std::vector<const Grant*> matched;
    for (const Grant& g : grants_) {
        if (g.match.matches(caller)) matched.push_back(&g);
    }
    return Permissions(std::move(caller), std::move(matched), {});
}

}  // namespace launcher::auth
