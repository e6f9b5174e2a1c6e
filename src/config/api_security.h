// The `api:` section of the launcher config: who may drive the launcher
// (policy), how callers prove who they are (mutual TLS, JWT bearer tokens,
// unix peer credentials) and where the audit trail goes. Documented in
// docs/configuration.md ("api") and docs/security.md ("The API").
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "auth/api_policy.h"
#include "auth/jwt_verifier.h"
#include "config/yaml_strict.h"

namespace launcher {

struct ApiSecurity {
    // grpc_port (plain TCP) is refused at start unless this is set; even then
    // it listens on 127.0.0.1 only, and its callers get no identity but a
    // token's.
    bool allow_insecure_loopback = false;

    struct Tls {
        std::string listen_host;  // numeric: "127.0.0.1", "0.0.0.0", "::1"
        int listen_port = 0;
        std::filesystem::path cert, key, client_ca;
    };
    std::optional<Tls> tls;

    struct Tokens {
        auth::JwtSettings settings;
        std::filesystem::path keys;  // a JWKS document or PEM public keys
    };
    std::optional<Tokens> tokens;

    // Empty: the journal under systemd, else /var/log/pattern-launcher/audit.jsonl.
    std::filesystem::path audit_log;

    // Unset: auth::ApiPolicy::local_default (root and group pattern-launcher).
    std::optional<auth::ApiPolicy> policy;
};

// Parses the `api` mapping. Group names in the policy are resolved to gids
// here (a name-service lookup: never on the event loop). Throws FileError.
ApiSecurity to_api_security(const std::filesystem::path& file, const yaml_strict::Field& field,
                            const std::filesystem::path& base);

}  // namespace launcher
