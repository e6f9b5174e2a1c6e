// Fuzz target: bearer tokens and key files (verify_jwt, JwtKeySet::parse,
// base64url_decode). verify_jwt must never throw; JwtKeySet::parse throws
// JwtKeyError only. The first byte picks what the rest is:
//   0: a compact token, verified as is against keys made at start. Nobody
//      outside this process holds their private halves, so it must never be
//      accepted (a forgery or an algorithm confusion would be).
//   1: "<header JSON>\n<claims JSON>", signed here ES256 with the EC key, so
//      that the claim checks are reached. Accepted implies ES256 by that key
//      (an RS256 acceptance of an EC signature is algorithm confusion), the
//      configured issuer, an unexpired exp and a non-empty subject.
//   2: a key file (JWKS or PEM): what loads is RSA >= 2048 or EC P-256.
// Always: a rejection never quotes the token's signature, and base64url
// decodings are canonical (decode then encode gives the input back).
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <variant>

#include "auth/jwt_encoding.h"
#include "auth/jwt_keys.h"
#include "auth/jwt_verifier.h"
#include "fuzz_support.h"

namespace {

using namespace launcher::auth;

constexpr std::int64_t kNow = 1'800'000'000;

struct Keys {
    EVP_PKEY* rsa = nullptr;
    EVP_PKEY* ec = nullptr;
    JwtKeySet set;
    JwtSettings settings;
};

std::string parameter(EVP_PKEY* key, const char* name, int width) {
    BIGNUM* bn = nullptr;
    if (EVP_PKEY_get_bn_param(key, name, &bn) != 1) fuzz::finding("no key parameter", name);
    std::string out(static_cast<std::size_t>(width > 0 ? width : BN_num_bytes(bn)), '\0');
    BN_bn2binpad(bn, reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(out.size()));
    BN_free(bn);
    return base64url_encode(out);
}

// Made once per process (an RSA key takes a fraction of a second).
const Keys& keys() {
    static const Keys keys = [] {
        Keys k;
        k.rsa = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", std::size_t{2048});
        k.ec = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
        if (!k.rsa || !k.ec) fuzz::finding("key generation failed");
        const std::string jwks =
            R"({"keys":[{"kty":"RSA","kid":"fuzz-rsa","n":")" + parameter(k.rsa, "n", 0) +
            R"(","e":")" + parameter(k.rsa, "e", 0) +
            R"("},{"kty":"EC","crv":"P-256","kid":"fuzz-ec","x":")" + parameter(k.ec, "qx", 32) +
            R"(","y":")" + parameter(k.ec, "qy", 32) + R"("}]})";
        k.set = JwtKeySet::parse(jwks, "fuzz");
        k.settings.issuer = "https://issuer.fuzz";
        k.settings.audiences = {"pattern-launcher"};
        return k;
    }();
    return keys;
}

// ES256 over `input`, as r || s.
std::string es256_signature(EVP_PKEY* key, const std::string& input) {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    unsigned char der[80];
    std::size_t length = sizeof der;
    if (EVP_DigestSignInit_ex(ctx, nullptr, "SHA256", nullptr, nullptr, key, nullptr) != 1 ||
        EVP_DigestSign(ctx, der, &length, reinterpret_cast<const unsigned char*>(input.data()),
                       input.size()) != 1) {
        fuzz::finding("signing failed");
    }
    EVP_MD_CTX_free(ctx);
    const unsigned char* p = der;
    ECDSA_SIG* sig = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(length));
    std::string raw(64, '\0');
    BN_bn2binpad(ECDSA_SIG_get0_r(sig), reinterpret_cast<unsigned char*>(raw.data()), 32);
    BN_bn2binpad(ECDSA_SIG_get0_s(sig), reinterpret_cast<unsigned char*>(raw.data()) + 32, 32);
    ECDSA_SIG_free(sig);
    return raw;
}

void check_canonical_base64url(std::string_view text) {
    if (const auto bytes = base64url_decode(text)) {
        fuzz::check(base64url_encode(*bytes) == text, "base64url decoding not canonical");
    }
}

// The common properties of a result; true when the token was accepted.
bool accepted(const JwtResult& result, std::string_view compact) {
    if (const auto* rejection = std::get_if<JwtRejection>(&result)) {
        fuzz::check(std::string_view(failure_name(rejection->failure)) != "unknown",
                    "rejection without a failure name");
        const auto dot = compact.rfind('.');
        const std::string_view signature =
            dot == std::string_view::npos ? std::string_view{} : compact.substr(dot + 1);
        // Only a signature of the alphabet signatures have (base64url) counts:
        // the fuzzer otherwise finds the message's own words ("arts, expected
        // 3 (h" out of "...parts, expected 3 (header...") and takes them as one.
        const bool base64url = std::all_of(signature.begin(), signature.end(), [](char c) {
            return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
        });
        fuzz::check(signature.size() < 16 || !base64url ||
                        rejection->message.find(signature) == std::string::npos,
                    "a rejection message quotes the signature", rejection->message);
        return false;
    }
    const auto& token = std::get<VerifiedToken>(result);
    const Keys& k = keys();
    fuzz::check(!token.subject.empty(), "accepted without a subject");
    fuzz::check(token.issuer == k.settings.issuer, "accepted from another issuer", token.issuer);
    fuzz::check(token.expires_at > kNow - k.settings.leeway.count(), "accepted expired");
    fuzz::check(token.algorithm == "RS256" || token.algorithm == "ES256", "accepted algorithm");
    return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
    const Keys& k = keys();
    switch (data[0] % 3) {
        case 0: {
            fuzz::check(!accepted(verify_jwt(input, k.set, k.settings, kNow), input),
                        "accepted a token nobody could sign");
            for (std::size_t start = 0, dot = 0; dot != std::string_view::npos; start = dot + 1) {
                dot = input.find('.', start);
                check_canonical_base64url(input.substr(start, dot - start));
            }
            break;
        }
        case 1: {
            const auto nl = input.find('\n');
            const std::string header(input.substr(0, nl));
            const std::string claims(nl == std::string_view::npos ? "{}" : input.substr(nl + 1));
            const std::string signing_input =
                base64url_encode(header) + "." + base64url_encode(claims);
            const std::string compact =
                signing_input + "." + base64url_encode(es256_signature(k.ec, signing_input));
            const JwtResult result = verify_jwt(compact, k.set, k.settings, kNow);
            if (accepted(result, compact)) {
                const auto& token = std::get<VerifiedToken>(result);
                fuzz::check(token.algorithm == "ES256" && token.key_id == "fuzz-ec",
                            "an EC signature accepted as", token.algorithm + " " + token.key_id);
            }
            break;
        }
        default: {
            try {
                const JwtKeySet set = JwtKeySet::parse(input, "fuzz");
                fuzz::check(set.size() > 0, "an empty key set loaded");
                for (const JwtKey& key : set.keys()) {
                    fuzz::check(key.pkey != nullptr, "a key without EVP_PKEY");
                    fuzz::check(key.type == JwtKeyType::kRsa ? key.bits >= 2048 : key.bits == 256,
                                "a weak key loaded", key.describe());
                }
                (void)set.describe();
            } catch (const JwtKeyError&) {
            }
            break;
        }
    }
    return 0;
}
