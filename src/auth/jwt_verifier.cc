#include "auth/jwt_verifier.h"

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <exception>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <utility>

#include "auth/jwt_encoding.h"

namespace launcher::auth {
namespace {

using nlohmann::json;

// Far deeper than any header or claim set; bounds the work an attacker's
// nesting can cause before the signature is checked.
constexpr int kMaxJsonDepth = 32;
constexpr std::size_t kEs256SignatureBytes = 64;  // r || s, 32 bytes each (RFC 7518 3.4)
// A leeway longer than this is a configuration mistake; clamping it keeps
// the arithmetic below far from overflow.
constexpr std::int64_t kMaxLeewaySeconds = 24 * 60 * 60;

// Thrown inside this file only; verify_jwt turns it into its result.
struct Rejected {
    JwtRejection rejection;
};

[[noreturn]] void reject(JwtFailure failure, std::string message) {
    throw Rejected{{failure, std::move(message)}};
}

std::int64_t saturating_add(std::int64_t a, std::int64_t b) {
    std::int64_t sum = 0;
    if (__builtin_add_overflow(a, b, &sum)) {
        return b > 0 ? std::numeric_limits<std::int64_t>::max()
                     : std::numeric_limits<std::int64_t>::min();
    }
    return sum;
}

std::int64_t saturating_sub(std::int64_t a, std::int64_t b) {
    std::int64_t difference = 0;
    if (__builtin_sub_overflow(a, b, &difference)) {
        return b < 0 ? std::numeric_limits<std::int64_t>::max()
                     : std::numeric_limits<std::int64_t>::min();
    }
    return difference;
}

// One JSON object, with no member name twice at any level (RFC 7515 section
// 4 and RFC 7519 section 4 let a parser refuse duplicates; taking the first
// or the last one would let two parsers read different claims).
json parse_object(std::string_view text, const char* what) {
    std::vector<std::set<std::string>> open_objects;
    std::optional<std::string> duplicate;
    bool too_deep = false;
    const json::parser_callback_t watch = [&](int depth, json::parse_event_t event, json& parsed) {
        switch (event) {
            case json::parse_event_t::object_start:
                open_objects.emplace_back();
                [[fallthrough]];
            case json::parse_event_t::array_start:
                if (depth > kMaxJsonDepth) too_deep = true;
                break;
            case json::parse_event_t::key:
                if (!open_objects.empty() && !duplicate &&
                    !open_objects.back().insert(parsed.get<std::string>()).second) {
                    duplicate = parsed.get<std::string>();
                }
                break;
            case json::parse_event_t::object_end:
                if (!open_objects.empty()) open_objects.pop_back();
                break;
            default:
                break;
        }
        return true;
    };
    json value;
    try {
        value = json::parse(text.begin(), text.end(), watch);
    } catch (const json::parse_error& e) {
        // Not e.what(): it quotes the text around the error.
        reject(JwtFailure::kMalformed, std::string(what) +
                                           " is not valid UTF-8 JSON (error at byte " +
                                           std::to_string(e.byte) + ")");
    }
    if (too_deep) {
        reject(JwtFailure::kMalformed, std::string(what) + " nests deeper than " +
                                           std::to_string(kMaxJsonDepth) + " levels");
    }
    if (duplicate) {
        reject(JwtFailure::kMalformed,
               std::string(what) + " has the member " + quoted_value(*duplicate) + " twice");
    }
    if (!value.is_object()) {
        reject(JwtFailure::kMalformed, std::string(what) + " is not a JSON object");
    }
    return value;
}

std::string decoded_part(std::string_view part, const char* what) {
    auto bytes = base64url_decode(part);
    if (!bytes) {
        reject(JwtFailure::kMalformed,
               std::string(what) + " is not unpadded base64url (RFC 7515 section 2)");
    }
    return std::move(*bytes);
}

// A NumericDate (RFC 7519 section 2): seconds since the epoch, maybe with a
// fraction, rounded towards the stricter side (`round_up` for nbf and iat).
std::int64_t numeric_date(const json& value, const char* claim, bool round_up) {
    if (value.is_number_unsigned()) {
        const auto v = value.get<std::uint64_t>();
        if (v > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
            reject(JwtFailure::kMalformed, "claim " + quoted_value(claim) + " is out of range");
        }
        return static_cast<std::int64_t>(v);
    }
    if (value.is_number_integer()) return value.get<std::int64_t>();
    if (value.is_number_float()) {
        const double v = value.get<double>();
        if (!std::isfinite(v) || std::fabs(v) > 1e17) {
            reject(JwtFailure::kMalformed, "claim " + quoted_value(claim) + " is out of range");
        }
        return static_cast<std::int64_t>(round_up ? std::ceil(v) : std::floor(v));
    }
    reject(JwtFailure::kMalformed,
           "claim " + quoted_value(claim) + " is not a number (NumericDate)");
}

// A claim that is a string or an array of strings; nullopt when it is neither.
std::optional<std::vector<std::string>> strings_of(const json& value) {
    if (value.is_string()) return std::vector<std::string>{value.get<std::string>()};
    if (!value.is_array()) return std::nullopt;
    std::vector<std::string> out;
    for (const json& element : value) {
        if (!element.is_string()) return std::nullopt;
        out.push_back(element.get<std::string>());
    }
    return out;
}

std::string quoted_list(const std::vector<std::string>& values) {
    constexpr std::size_t kShown = 4;
    std::string out = "[";
    for (std::size_t i = 0; i < values.size() && i < kShown; ++i) {
        if (i > 0) out += ", ";
        out += quoted_value(values[i]);
    }
    if (values.size() > kShown) out += ", ... " + std::to_string(values.size()) + " in all";
    return out + "]";
}

std::string lower(std::string_view text) {
    std::string out(text);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

struct Header {
    std::string algorithm;
    std::optional<std::string> kid;
};

Header checked_header(const json& header) {
    Header out;
    const auto alg = header.find("alg");
    if (alg == header.end()) reject(JwtFailure::kMalformed, "header has no \"alg\"");
    if (!alg->is_string()) reject(JwtFailure::kMalformed, "header \"alg\" is not a string");
    out.algorithm = alg->get<std::string>();
    // Exactly these spellings: "none", HS256 (an HMAC whose secret would be
    // the public key), PS256 and any other are refused here.
    if (out.algorithm != "RS256" && out.algorithm != "ES256") {
        reject(JwtFailure::kUnsupportedAlgorithm, "algorithm " + quoted_value(out.algorithm) +
                                                      " is not accepted (only RS256 and ES256)");
    }
    // RFC 7515 section 4.1.11: a recipient must refuse critical extensions
    // it does not implement, and this verifier implements none (e.g. "b64").
    if (header.contains("crit")) {
        reject(JwtFailure::kMalformed,
               "header marks extensions critical (\"crit\"); none is implemented here");
    }
    if (const auto typ = header.find("typ"); typ != header.end()) {
        if (!typ->is_string()) reject(JwtFailure::kMalformed, "header \"typ\" is not a string");
        // RFC 7515 section 4.1.9: "application/" may be left out; case-insensitive.
        std::string type = lower(typ->get<std::string>());
        if (type.rfind("application/", 0) == 0) type.erase(0, 12);
        if (type != "jwt" && type != "at+jwt") {
            reject(JwtFailure::kMalformed, "token type (\"typ\") " +
                                               quoted_value(typ->get<std::string>()) +
                                               " is neither JWT nor at+jwt");
        }
    }
    if (const auto kid = header.find("kid"); kid != header.end()) {
        if (!kid->is_string()) reject(JwtFailure::kMalformed, "header \"kid\" is not a string");
        out.kid = kid->get<std::string>();
    }
    return out;
}

// The keys that may verify this header's token (see the header file).
std::vector<const JwtKey*> candidate_keys(const JwtKeySet& keys, const Header& header) {
    std::vector<const JwtKey*> named;
    if (header.kid) {
        for (const JwtKey& key : keys.keys()) {
            if (key.kid == *header.kid) named.push_back(&key);
        }
        if (named.empty()) {
            for (const JwtKey& key : keys.keys()) {
                if (key.kid.empty()) named.push_back(&key);
            }
        }
        if (named.empty()) {
            reject(JwtFailure::kUnknownKey, "no key has the token's kid " +
                                                quoted_value(*header.kid) + " (" + keys.describe() +
                                                ")");
        }
    } else {
        for (const JwtKey& key : keys.keys())
            named.push_back(&key);
    }
    std::vector<const JwtKey*> usable;
    std::string why;
    for (const JwtKey* key : named) {
        const std::string problem = key->unusable_for(header.algorithm);
        if (problem.empty()) {
            usable.push_back(key);
        } else if (why.empty()) {
            why = key->describe() + ": " + problem;
        }
    }
    if (usable.empty()) {
        std::string message = "no key may verify " + header.algorithm;
        if (header.kid) message += " with kid " + quoted_value(*header.kid);
        message += why.empty() ? " (the key set is empty)" : " (" + why + ")";
        reject(JwtFailure::kUnknownKey, message);
    }
    return usable;
}

struct MdCtxFree {
    void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); }
};
struct EcdsaSigFree {
    void operator()(ECDSA_SIG* p) const { ECDSA_SIG_free(p); }
};

// EVP_DigestVerify with SHA-256; RSA with PKCS #1 v1.5 padding (RS256).
bool digest_verifies(const JwtKey& key, std::string_view input, const unsigned char* signature,
                     std::size_t signature_size) {
    const std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
    EVP_PKEY_CTX* pctx = nullptr;
    bool ok = ctx && EVP_DigestVerifyInit_ex(ctx.get(), &pctx, "SHA256", nullptr, nullptr,
                                             key.pkey.get(), nullptr) == 1;
    if (ok && key.type == JwtKeyType::kRsa) {
        ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) == 1;
    }
    ok = ok &&
         EVP_DigestVerify(ctx.get(), signature, signature_size,
                          reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1;
    // A failed verification queues errors; left there, they would surface
    // in the next unrelated OpenSSL call on this thread (gRPC's TLS).
    ERR_clear_error();
    return ok;
}

// JWS carries r || s (RFC 7518 section 3.4); OpenSSL verifies DER
// (SEC 1 ECDSA-Sig-Value). Empty when r or s cannot be represented.
std::string ecdsa_der(const std::string& raw) {
    const auto* bytes = reinterpret_cast<const unsigned char*>(raw.data());
    BIGNUM* r = BN_bin2bn(bytes, 32, nullptr);
    BIGNUM* s = BN_bin2bn(bytes + 32, 32, nullptr);
    const std::unique_ptr<ECDSA_SIG, EcdsaSigFree> sig(ECDSA_SIG_new());
    if (!r || !s || !sig || ECDSA_SIG_set0(sig.get(), r, s) != 1) {
        BN_free(r);
        BN_free(s);
        ERR_clear_error();
        return {};
    }
    unsigned char* der = nullptr;
    const int length = i2d_ECDSA_SIG(sig.get(), &der);
    if (length <= 0) {
        ERR_clear_error();
        return {};
    }
    std::string out(reinterpret_cast<char*>(der), static_cast<std::size_t>(length));
    OPENSSL_free(der);
    return out;
}

const JwtKey& verifying_key(const std::vector<const JwtKey*>& candidates, const Header& header,
                            std::string_view signing_input, const std::string& signature) {
    std::string der;
    if (header.algorithm == "ES256") {
        if (signature.size() != kEs256SignatureBytes) {
            reject(JwtFailure::kBadSignature,
                   "an ES256 signature is 64 bytes (r || s), this one is " +
                       std::to_string(signature.size()));
        }
        der = ecdsa_der(signature);
        if (der.empty()) reject(JwtFailure::kBadSignature, "ES256 signature is not encodable");
    }
    std::string why;
    for (const JwtKey* key : candidates) {
        if (header.algorithm == "RS256") {
            // RFC 7518 section 3.3: the signature has the modulus' length.
            const auto expected = static_cast<std::size_t>(EVP_PKEY_get_size(key->pkey.get()));
            if (signature.size() != expected) {
                why = "the signature is " + std::to_string(signature.size()) + " bytes, " +
                      key->describe() + " makes " + std::to_string(expected);
                continue;
            }
            if (digest_verifies(*key, signing_input,
                                reinterpret_cast<const unsigned char*>(signature.data()),
                                signature.size())) {
                return *key;
            }
        } else if (digest_verifies(*key, signing_input,
                                   reinterpret_cast<const unsigned char*>(der.data()),
                                   der.size())) {
            return *key;
        }
        why = "it does not verify with " + key->describe();
    }
    if (candidates.size() > 1) {
        reject(JwtFailure::kBadSignature, "the signature verifies with none of the " +
                                              std::to_string(candidates.size()) + " " +
                                              header.algorithm + " keys");
    }
    reject(JwtFailure::kBadSignature, "bad signature: " + why);
}

VerifiedToken checked_claims(const json& claims, const JwtSettings& settings, std::int64_t now) {
    VerifiedToken token;

    const auto exp = claims.find("exp");
    if (exp == claims.end()) {
        reject(JwtFailure::kMissingClaim, "no \"exp\" claim: tokens must expire");
    }
    token.expires_at = numeric_date(*exp, "exp", /*round_up=*/false);

    const auto iss = claims.find("iss");
    if (iss == claims.end()) reject(JwtFailure::kMissingClaim, "no \"iss\" claim");
    if (!iss->is_string()) reject(JwtFailure::kMalformed, "claim \"iss\" is not a string");
    token.issuer = iss->get<std::string>();
    if (settings.issuer.empty()) reject(JwtFailure::kWrongIssuer, "no issuer is configured");
    if (token.issuer != settings.issuer) {
        reject(JwtFailure::kWrongIssuer, "issuer " + quoted_value(token.issuer) +
                                             " is not the configured " +
                                             quoted_value(settings.issuer));
    }

    const auto aud = claims.find("aud");
    if (aud == claims.end()) reject(JwtFailure::kMissingClaim, "no \"aud\" claim");
    const auto audiences = strings_of(*aud);
    if (!audiences) {
        reject(JwtFailure::kMalformed, "claim \"aud\" is neither a string nor an array of strings");
    }
    const bool audience_matches =
        std::any_of(audiences->begin(), audiences->end(), [&](const std::string& a) {
            return std::find(settings.audiences.begin(), settings.audiences.end(), a) !=
                   settings.audiences.end();
        });
    if (!audience_matches) {
        reject(JwtFailure::kWrongAudience, "audience " + quoted_list(*audiences) +
                                               " holds none of the configured " +
                                               quoted_list(settings.audiences));
    }

    const std::int64_t leeway =
        std::clamp<std::int64_t>(settings.leeway.count(), 0, kMaxLeewaySeconds);
    const std::string leeway_text = " (leeway " + std::to_string(leeway) + " s)";
    if (token.expires_at <= saturating_sub(now, leeway)) {
        reject(JwtFailure::kExpired, "token expired at " + std::to_string(token.expires_at) + ", " +
                                         std::to_string(saturating_sub(now, token.expires_at)) +
                                         " s ago" + leeway_text);
    }
    if (const auto nbf = claims.find("nbf"); nbf != claims.end()) {
        const std::int64_t not_before = numeric_date(*nbf, "nbf", /*round_up=*/true);
        if (not_before > saturating_add(now, leeway)) {
            reject(JwtFailure::kNotYetValid,
                   "token is valid from " + std::to_string(not_before) + ", in " +
                       std::to_string(saturating_sub(not_before, now)) + " s" + leeway_text);
        }
    }
    if (const auto iat = claims.find("iat"); iat != claims.end()) {
        const std::int64_t issued_at = numeric_date(*iat, "iat", /*round_up=*/true);
        if (issued_at > saturating_add(now, leeway)) {
            reject(JwtFailure::kIssuedInFuture, "token issued at " + std::to_string(issued_at) +
                                                    ", " +
                                                    std::to_string(saturating_sub(issued_at, now)) +
                                                    " s in the future" + leeway_text);
        }
    }

    // The subject is the identity the policy matches (token_subject): an
    // empty one would be matched by "*" without naming anybody.
    const auto sub = claims.find("sub");
    if (sub == claims.end()) reject(JwtFailure::kMissingClaim, "no \"sub\" claim");
    if (!sub->is_string()) reject(JwtFailure::kMalformed, "claim \"sub\" is not a string");
    token.subject = sub->get<std::string>();
    if (token.subject.empty()) reject(JwtFailure::kMissingClaim, "claim \"sub\" is empty");

    if (!settings.namespaces_claim.empty()) {
        if (const auto ns = claims.find(settings.namespaces_claim); ns != claims.end()) {
            auto namespaces = strings_of(*ns);
            if (!namespaces) {
                reject(JwtFailure::kMalformed, "claim " + quoted_value(settings.namespaces_claim) +
                                                   " is neither a string nor an array of strings");
            }
            token.namespaces = std::move(*namespaces);
            token.has_namespaces_claim = true;
        }
    }

    for (const auto& [name, value] : claims.items()) {
        if (auto strings = strings_of(value)) token.string_claims[name] = std::move(*strings);
    }
    return token;
}

JwtResult verify(std::string_view compact, const JwtKeySet& keys, const JwtSettings& settings,
                 std::int64_t now) {
    if (compact.size() > kMaxTokenBytes) {
        reject(JwtFailure::kMalformed, "token is " + std::to_string(compact.size()) +
                                           " bytes, more than the " +
                                           std::to_string(kMaxTokenBytes) + " accepted");
    }
    const std::size_t first = compact.find('.');
    const std::size_t second =
        first == std::string_view::npos ? first : compact.find('.', first + 1);
    if (second == std::string_view::npos ||
        compact.find('.', second + 1) != std::string_view::npos) {
        const auto parts = std::count(compact.begin(), compact.end(), '.') + 1;
        reject(JwtFailure::kMalformed,
               "not a JWS in compact serialization: " + std::to_string(parts) +
                   " parts, expected 3 (header.payload.signature)" +
                   (parts == 5 ? "; an encrypted JWE is not supported" : ""));
    }
    const std::string_view signing_input = compact.substr(0, second);
    const Header header = checked_header(
        parse_object(decoded_part(compact.substr(0, first), "the header"), "the header"));
    const std::string payload =
        decoded_part(compact.substr(first + 1, second - first - 1), "the payload");
    const std::string signature = decoded_part(compact.substr(second + 1), "the signature");

    const JwtKey& key =
        verifying_key(candidate_keys(keys, header), header, signing_input, signature);

    VerifiedToken token = checked_claims(parse_object(payload, "the claim set"), settings, now);
    token.key_id = key.kid;
    token.algorithm = header.algorithm;
    return token;
}

}  // namespace

const char* failure_name(JwtFailure failure) {
    switch (failure) {
        case JwtFailure::kMalformed:
            return "malformed";
        case JwtFailure::kUnsupportedAlgorithm:
            return "unsupported_algorithm";
        case JwtFailure::kUnknownKey:
            return "unknown_key";
        case JwtFailure::kBadSignature:
            return "bad_signature";
        case JwtFailure::kWrongIssuer:
            return "wrong_issuer";
        case JwtFailure::kWrongAudience:
            return "wrong_audience";
        case JwtFailure::kExpired:
            return "expired";
        case JwtFailure::kNotYetValid:
            return "not_yet_valid";
        case JwtFailure::kIssuedInFuture:
            return "issued_in_future";
        case JwtFailure::kMissingClaim:
            return "missing_claim";
    }
    return "unknown";
}

JwtResult verify_jwt(std::string_view compact, const JwtKeySet& keys, const JwtSettings& settings,
                     std::int64_t now_unix_seconds) {
    try {
        return verify(compact, keys, settings, now_unix_seconds);
    } catch (Rejected& rejected) {
        return std::move(rejected.rejection);
    } catch (const std::exception& e) {
        // Not expected (a json type error would be a bug here, bad_alloc
        // a full machine); still a refusal, never an exception to the caller.
        ERR_clear_error();
        return JwtRejection{JwtFailure::kMalformed,
                            std::string("token could not be checked: ") + e.what()};
    }
}

}  // namespace launcher::auth
