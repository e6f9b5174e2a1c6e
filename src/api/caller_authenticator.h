// Establishes who is behind one API call (any gRPC thread): the bearer
// token if the call carries one, else the verified client certificate of a
// TLS connection, else the unix peer's kernel credentials. Token keys are
// re-read on reload; calls in flight keep the keys they started with.
#pragma once

#include <grpcpp/server_context.h>

#include <memory>
#include <mutex>
#include <optional>

#include "api/api_listener.h"
#include "auth/caller_identity.h"
#include "auth/jwt_keys.h"
#include "config/api_security.h"

namespace launcher {

class CallerAuthenticator {
public:
    // Loads the token keys now (throws JwtKeyError naming the file).
    CallerAuthenticator(const ApiListener& listener, std::optional<ApiSecurity::Tokens> tokens);

    auth::CallerIdentity identify(const grpc::ServerContextBase& ctx) const;

    // Re-reads tokens.keys; on failure throws and keeps the old keys. Off
    // the event loop: file I/O.
    void reload();

private:
    std::shared_ptr<const auth::JwtKeySet> keys() const;

    const ApiListener& listener_;
    std::optional<ApiSecurity::Tokens> tokens_;
    mutable std::mutex mutex_;
    std::shared_ptr<const auth::JwtKeySet> keys_;
};

}  // namespace launcher
