// Offline verification of OIDC/JWT bearer tokens (api.tokens): a JWS in
// compact serialization (RFC 7515), signed RS256 or ES256 (RFC 7518) by one of
// the configured keys, whose claims (RFC 7519) name the configured issuer and
// one of the configured audiences and are valid now, within a small skew.
//
// Refused on purpose: "alg" other than exactly "RS256" or "ES256" ("none",
// HS*, PS*, ...: no algorithm confusion with an HMAC over a public key), a
// key whose type does not fit the algorithm, any "crit" header (no extension
// is implemented), "typ" other than JWT or at+jwt (RFC 9068), keys carried in
// the token itself ("jwk", "jku", "x5c", "x5u" are ignored, never trusted),
// padded or non-canonical base64url, duplicate member names in the header or
// the claims, and tokens over 16 KiB (checked before anything else).
//
// Key choice: with a "kid" in the header, only the keys with that kid; when
// no key has it, the keys without a kid (PEM keys cannot carry one). Without
// a "kid", every key that fits the algorithm is tried.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "auth/jwt_keys.h"

namespace launcher::auth {

inline constexpr std::size_t kMaxTokenBytes = 16 * 1024;

struct JwtSettings {
    std::string issuer;                  // "iss" must equal it exactly
    std::vector<std::string> audiences;  // "aud" (string or array of strings) must contain one
    std::chrono::seconds leeway{30};     // allowed clock skew for exp, nbf and iat
    // Names the namespaces the token grants: a string (one namespace) or an
    // array of strings; optional in the token. Empty: not read.
    std::string namespaces_claim = "prism_namespaces";
};

struct VerifiedToken {
    std::string subject;    // "sub", never empty
    std::string issuer;     // "iss"
    std::string key_id;     // the kid of the key that verified it (empty: a key without one)
    std::string algorithm;  // "RS256" or "ES256"
    std::vector<std::string> namespaces;  // from namespaces_claim; empty if absent
    bool has_namespaces_claim = false;
    // Every top-level claim that is a string (one element) or an array of
    // strings, "sub", "iss" and a string "aud" included.
    std::map<std::string, std::vector<std::string>> string_claims;
    std::int64_t expires_at = 0;  // "exp", unix seconds
};

enum class JwtFailure {
    kMalformed,             // not a JWS of JSON objects, bad base64url, bad claim types, too big
    kUnsupportedAlgorithm,  // "alg" not RS256 or ES256
    kUnknownKey,            // no configured key may verify it (kid, type, use, alg)
    kBadSignature,          // the signature does not verify (or has the wrong length)
    kWrongIssuer,           // "iss" is not the configured issuer
    kWrongAudience,         // "aud" holds none of the configured audiences
    kExpired,               // exp <= now - leeway
    kNotYetValid,           // nbf > now + leeway
    kIssuedInFuture,        // iat > now + leeway
    kMissingClaim,          // no "exp", "iss", "aud" or "sub" (or an empty "sub")
};

// "malformed", "unsupported_algorithm", "unknown_key", "bad_signature",
// "wrong_issuer", "wrong_audience", "expired", "not_yet_valid",
// "issued_in_future", "missing_claim" (for metrics labels and audit records).
const char* failure_name(JwtFailure failure);

struct JwtRejection {
    JwtFailure failure;
    // Precise ("token expired at 1767000000, 45 s ago (leeway 30 s)"); it
    // quotes header fields and claims (escaped, cut at 64 bytes) but never the
    // token, its signature or a key.
    std::string message;
};

using JwtResult = std::variant<VerifiedToken, JwtRejection>;

// Never throws: every problem with the token is a JwtRejection. Signature
// before claims: nothing in the payload is judged before it is authentic.
JwtResult verify_jwt(std::string_view compact, const JwtKeySet& keys, const JwtSettings& settings,
                     std::int64_t now_unix_seconds);

}  // namespace launcher::auth
