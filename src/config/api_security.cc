#include "config/api_security.h"

#include <arpa/inet.h>
#include <grp.h>

#include <charconv>

namespace launcher {
namespace fs = std::filesystem;
using yaml_strict::Field;
using yaml_strict::Mapping;

namespace {

// "127.0.0.1:7443", "[::1]:7443": numeric hosts only, so that binding never
// waits for a name service.
void parse_listen(const fs::path& file, const Field& field, ApiSecurity::Tls& tls) {
    const std::string text = yaml_strict::to_nonempty_string(file, field);
    std::string host;
    std::string port;
    if (text.front() == '[') {
        const auto close = text.find("]:");
        if (close == std::string::npos) yaml_strict::fail(file, field, "expects [v6-address]:port");
        host = text.substr(1, close - 1);
        port = text.substr(close + 2);
    } else {
        const auto colon = text.rfind(':');
        if (colon == std::string::npos) yaml_strict::fail(file, field, "expects address:port");
        host = text.substr(0, colon);
        port = text.substr(colon + 1);
    }
    in6_addr any{};
    if (::inet_pton(AF_INET, host.c_str(), &any) != 1 &&
        ::inet_pton(AF_INET6, host.c_str(), &any) != 1) {
        yaml_strict::fail(file, field,
                          "'" + host +
                              "' is not a numeric IPv4 or IPv6 address (names are not "
                              "resolved: the launcher binds before any name service)");
    }
    int value = -1;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc() || end != port.data() + port.size() || value < 1 || value > 65535) {
        yaml_strict::fail(file, field, "port must be between 1 and 65535, got '" + port + "'");
    }
    tls.listen_host = host;
    tls.listen_port = value;
}

std::vector<std::string> to_strings(const fs::path& file, const Field& field) {
    std::vector<std::string> out;
    if (field.value.IsScalar()) {
        out.push_back(yaml_strict::to_nonempty_string(file, field));
        return out;
    }
    for (const Field& item : yaml_strict::to_items(file, field))
        out.push_back(yaml_strict::to_nonempty_string(file, item));
    if (out.empty()) yaml_strict::fail(file, field, "must not be empty");
    return out;
}

ApiSecurity::Tokens to_tokens(const fs::path& file, const Field& field, const fs::path& base) {
    const Mapping map(file, field, {"issuer", "audience", "keys", "namespaces_claim", "leeway"});
    ApiSecurity::Tokens tokens;
    tokens.settings.issuer = yaml_strict::to_nonempty_string(file, map.require("issuer"));
    tokens.settings.audiences = to_strings(file, map.require("audience"));
    tokens.keys = yaml_strict::to_path(file, map.require("keys"), base);
    if (const Field* f = map.find("namespaces_claim")) {
        tokens.settings.namespaces_claim = yaml_strict::to_nonempty_string(file, *f);
    }
    if (const Field* f = map.find("leeway")) {
        const auto leeway = yaml_strict::to_duration(file, *f);
        if (leeway > std::chrono::minutes(5)) yaml_strict::fail(file, *f, "must be at most 5m");
        tokens.settings.leeway = std::chrono::duration_cast<std::chrono::seconds>(leeway);
    }
    return tokens;
}

// token_claims is the one mapping whose keys are the user's (claim names),
// so it is read without a fixed key list.
void read_token_claims(const fs::path& file, const Field& field, auth::GrantMatch& match) {
    if (!field.value.IsMap() || field.value.size() == 0) {
        yaml_strict::fail(file, field, "expects a mapping of claim names to value globs");
    }
    for (const auto& entry : field.value) {
        const YAML::Node key = entry.first;
        const YAML::Node value = entry.second;
        if (!key.IsScalar() || key.Scalar().empty() || !value.IsScalar() ||
            value.Scalar().empty()) {
            throw FileError(file, yaml_strict::line_of(key, field.line()),
                            field.path + ": each claim needs a name and a non-empty value glob");
        }
        for (const auto& [existing, glob] : match.token_claims) {
            if (existing == key.Scalar()) {
                throw FileError(file, yaml_strict::line_of(key, field.line()),
                                field.path + ": claim '" + existing + "' given twice");
            }
        }
        match.token_claims.emplace_back(key.Scalar(), value.Scalar());
    }
}

auth::GrantMatch to_match(const fs::path& file, const Field& field) {
    const Mapping map(file, field,
                      {"uid", "group", "certificate", "token_subject", "token_claims"});
    auth::GrantMatch match;
    int kinds = 0;
    if (const Field* f = map.find("uid")) {
        match.uid = static_cast<uid_t>(yaml_strict::to_integer(file, *f, 0, 4294967294));
        ++kinds;
    }
    if (const Field* f = map.find("group")) {
        const std::string name = yaml_strict::to_nonempty_string(file, *f);
        match.group = name;
        gid_t numeric = 0;
        auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), numeric);
        if (ec == std::errc() && end == name.data() + name.size()) {
            match.gid = numeric;
        } else if (const group* g = ::getgrnam(name.c_str())) {
            match.gid = g->gr_gid;
        } else {
            yaml_strict::fail(file, *f, "no such group '" + name + "'");
        }
        ++kinds;
    }
    if (const Field* f = map.find("certificate")) {
        match.certificate = yaml_strict::to_nonempty_string(file, *f);
        ++kinds;
    }
    const bool token = map.find("token_subject") || map.find("token_claims");
    if (const Field* f = map.find("token_subject"))
        match.token_subject = yaml_strict::to_nonempty_string(file, *f);
    if (const Field* f = map.find("token_claims")) read_token_claims(file, *f, match);
    if (token) ++kinds;
    if (kinds != 1) {
        yaml_strict::fail(file, field,
                          "needs exactly one of uid, group, certificate or token_subject/"
                          "token_claims");
    }
    return match;
}

auth::Grant to_grant(const fs::path& file, const Field& field, std::size_t index) {
    const Mapping map(file, field, {"name", "match", "rpcs", "namespaces", "patterns"});
    auth::Grant grant;
    grant.name = map.find("name") ? yaml_strict::to_nonempty_string(file, *map.find("name"))
                                  : "policy[" + std::to_string(index) + "]";
    grant.match = to_match(file, map.require("match"));
    for (const std::string& name : to_strings(file, map.require("rpcs"))) {
        if (name == "*") {
            grant.rpcs.insert(auth::kAllRpcs.begin(), auth::kAllRpcs.end());
        } else if (const auto rpc = auth::parse_rpc(name)) {
            grant.rpcs.insert(*rpc);
        } else {
            yaml_strict::fail(file, map.require("rpcs"),
                              "unknown RPC '" + name +
                                  "' (known: LaunchPattern, ListPatterns, TerminatePattern, "
                                  "Health, GetProcessStatus, Reload, or *)");
        }
    }
    if (const Field* f = map.find("namespaces")) grant.namespaces = to_strings(file, *f);
    if (const Field* f = map.find("patterns")) grant.patterns = to_strings(file, *f);
    return grant;
}

}  // namespace

ApiSecurity to_api_security(const fs::path& file, const Field& field, const fs::path& base) {
    const Mapping map(file, field,
                      {"allow_insecure_loopback", "tls", "tokens", "audit_log", "policy"});
    ApiSecurity api;
    if (const Field* f = map.find("allow_insecure_loopback"))
        api.allow_insecure_loopback = yaml_strict::to_bool(file, *f);
    if (const Field* f = map.find("tls")) {
        const Mapping tls(file, *f, {"listen", "cert", "key", "client_ca"});
        ApiSecurity::Tls t;
        parse_listen(file, tls.require("listen"), t);
        t.cert = yaml_strict::to_path(file, tls.require("cert"), base);
        t.key = yaml_strict::to_path(file, tls.require("key"), base);
        t.client_ca = yaml_strict::to_path(file, tls.require("client_ca"), base);
        api.tls = t;
    }
    if (const Field* f = map.find("tokens")) api.tokens = to_tokens(file, *f, base);
    if (const Field* f = map.find("audit_log"))
        api.audit_log = yaml_strict::to_path(file, *f, base);
    if (const Field* f = map.find("policy")) {
        std::vector<auth::Grant> grants;
        const std::vector<Field> items = yaml_strict::to_items(file, *f);
        for (std::size_t i = 0; i < items.size(); ++i)
            grants.push_back(to_grant(file, items[i], i));
        for (const auth::Grant& g : grants) {
            if ((!g.match.token_subject.empty() || !g.match.token_claims.empty()) && !api.tokens) {
                yaml_strict::fail(file, *f,
                                  "grant '" + g.name +
                                      "' matches tokens, but api.tokens is not "
                                      "configured");
            }
            if (!g.match.certificate.empty() && !api.tls) {
                yaml_strict::fail(file, *f,
                                  "grant '" + g.name +
                                      "' matches certificates, but api.tls is "
                                      "not configured");
            }
        }
        api.policy = auth::ApiPolicy(std::move(grants));
    }
    return api;
}

}  // namespace launcher
