#include "auth/caller_identity.h"

namespace launcher::auth {

const char* auth_method_name(AuthMethod method) {
    switch (method) {
        case AuthMethod::kNone:
            return "none";
        case AuthMethod::kUnixPeer:
            return "unix";
        case AuthMethod::kCertificate:
            return "mtls";
        case AuthMethod::kToken:
            return "jwt";
    }
    return "none";
}

std::string CallerIdentity::name() const {
    switch (method) {
        case AuthMethod::kUnixPeer:
            return unix_peer ? "uid " + std::to_string(unix_peer->uid) + " gid " +
                                   std::to_string(unix_peer->gid)
                             : "unix peer";
        case AuthMethod::kCertificate:
            return certificate ? "cert " + certificate->primary() : "cert";
        case AuthMethod::kToken:
            return token ? "token sub=" + token->subject + " iss=" + token->issuer : "token";
        case AuthMethod::kNone:
            break;
    }
    return "unauthenticated";
}

}  // namespace launcher::auth
