// Who is calling the API, and how the launcher knows: the kernel's word for
// a unix socket peer, a verified client certificate, or a verified bearer
// token. Built by the API layer from the connection and the call; read by
// the policy and the audit trail.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "auth/certificate_identity.h"
#include "auth/jwt_verifier.h"

namespace launcher::auth {

// A local caller, from SO_PEERCRED / SO_PEERGROUPS of its connection.
struct UnixPeer {
    pid_t pid = 0;
    uid_t uid = 0;
    gid_t gid = 0;
    std::vector<gid_t> groups;
    std::string cgroup;             // "" when it could not be read
    bool in_tenant_cgroup = false;  // inside the tenants' cgroup subtree: never authorized
};

enum class AuthMethod {
    kNone,         // no identity could be established: UNAUTHENTICATED
    kUnixPeer,     // SO_PEERCRED of the unix socket
    kCertificate,  // mutual TLS: the client certificate verified against client_ca
    kToken,        // a JWT bearer token verified against tokens.keys
};
const char* auth_method_name(AuthMethod method);  // "none", "unix", "mtls", "jwt"

struct CallerIdentity {
    AuthMethod method = AuthMethod::kNone;
    std::string transport;  // "unix", "tls", "tcp"
    std::string peer;       // "pid 12", "ipv4:127.0.0.1:5555"
    std::optional<UnixPeer> unix_peer;
    std::optional<CertificateIdentity> certificate;
    std::optional<VerifiedToken> token;
    std::string failure;  // kNone: why no identity was established (never the token itself)

    // What messages and the audit trail call the caller: "uid 0", "uid 1000
    // gid 1000", "cert spiffe://x/y", "token sub=alice (iss=...)",
    // "unauthenticated".
    std::string name() const;
};

}  // namespace launcher::auth
