#include "api/caller_authenticator.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <string_view>

namespace launcher {
namespace {

constexpr std::string_view kBearer = "Bearer ";

std::string property(const grpc::AuthContext& auth, const char* name) {
    const std::vector<grpc::string_ref> values = auth.FindPropertyValues(name);
    if (values.empty()) return {};
    return std::string(values.front().data(), values.front().size());
}

}  // namespace

CallerAuthenticator::CallerAuthenticator(const ApiListener& listener,
                                         std::optional<ApiSecurity::Tokens> tokens)
    : listener_(listener), tokens_(std::move(tokens)) {
    if (tokens_)
        keys_ = std::make_shared<const auth::JwtKeySet>(auth::JwtKeySet::load(tokens_->keys));
}

void CallerAuthenticator::reload() {
    if (!tokens_) return;
    auto fresh = std::make_shared<const auth::JwtKeySet>(auth::JwtKeySet::load(tokens_->keys));
    std::lock_guard lock(mutex_);
    keys_ = std::move(fresh);
}

std::shared_ptr<const auth::JwtKeySet> CallerAuthenticator::keys() const {
    std::lock_guard lock(mutex_);
    return keys_;
}

auth::CallerIdentity CallerAuthenticator::identify(const grpc::ServerContextBase& ctx) const {
    auth::CallerIdentity id;
    id.peer = ctx.peer();
    const std::shared_ptr<const grpc::AuthContext> auth = ctx.auth_context();
    const bool tls = auth && property(*auth, "transport_security_type") == "ssl";
    if (tls) {
        id.transport = "tls";
        std::string error;
        const std::string pem = property(*auth, "x509_pem_cert");
        id.certificate = auth::certificate_identity_from_pem(pem, &error);
        if (!id.certificate) id.failure = "the client certificate cannot be read: " + error;
    } else if (std::optional<ApiListener::Connection> c = listener_.connection(ctx.peer())) {
        id.transport = c->transport;
        id.peer = c->peer;
        id.unix_peer = c->unix_peer;
    } else {
        id.transport = "unknown";
        id.failure = "the connection is not one of the launcher's listeners";
    }

    const auto& metadata = ctx.client_metadata();
    auto [first, last] = metadata.equal_range("authorization");
    if (first != last) {
        if (std::next(first) != last) {
            id.failure = "more than one authorization header";
            return id;
        }
        const std::string_view value(first->second.data(), first->second.size());
        if (!tokens_) {
            id.failure = "bearer tokens are not accepted here (api.tokens is not configured)";
            return id;
        }
        // The scheme is case-insensitive (RFC 9110 section 11.1).
        if (value.size() < kBearer.size() ||
            !std::equal(kBearer.begin(), kBearer.end(), value.begin(), [](char a, char b) {
                return std::tolower(static_cast<unsigned char>(a)) ==
                       std::tolower(static_cast<unsigned char>(b));
            })) {
            id.failure = "the authorization header is not 'Bearer <token>'";
            return id;
        }
        const std::int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count();
        auth::JwtResult result =
            auth::verify_jwt(value.substr(kBearer.size()), *keys(), tokens_->settings, now);
        if (auto* rejected = std::get_if<auth::JwtRejection>(&result)) {
            id.failure = "token refused: " + rejected->message;
            return id;
        }
        id.token = std::get<auth::VerifiedToken>(std::move(result));
        id.method = auth::AuthMethod::kToken;
        return id;
    }
    if (tls && id.certificate) {
        id.method = auth::AuthMethod::kCertificate;
    } else if (id.unix_peer) {
        id.method = auth::AuthMethod::kUnixPeer;
    } else if (id.failure.empty()) {
        id.failure = id.transport == "unix"
                         ? "the unix peer's credentials could not be read"
                         : "a plain TCP connection carries no identity (present a bearer token)";
    }
    return id;
}

}  // namespace launcher
