// The public keys that may sign bearer tokens (api.tokens.keys): a JWKS
// document (RFC 7517) or PEM public keys, checked once at load so that the
// verifier only meets keys it can use safely.
//
// Accepted: RSA keys of at least 2048 bits (RS256) and EC keys on P-256
// (ES256). Refused, with a message naming the file and the key: other key
// types and curves, smaller RSA keys, private key material, a JWK whose
// "alg" contradicts its key type, invalid points and moduli (OpenSSL's
// public key check), and documents without any key.
#pragma once

#include <openssl/types.h>

#include <cstddef>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace launcher::auth {

struct JwtKeyError : std::runtime_error {
    using runtime_error::runtime_error;
};

enum class JwtKeyType { kRsa, kEcP256 };

// "RSA", "EC P-256".
const char* key_type_name(JwtKeyType type);

struct JwtKey {
    JwtKeyType type = JwtKeyType::kRsa;
    int bits = 0;                    // the RSA modulus or the curve's size
    std::string kid;                 // the JWK's "kid"; empty for PEM keys and JWKs without one
    std::string alg;                 // the JWK's "alg"; empty when absent (PEM: always)
    std::string use;                 // the JWK's "use"; empty when absent (PEM: always)
    std::shared_ptr<EVP_PKEY> pkey;  // never null; shared, never modified after load

    // Whether this key may verify a token whose header says `algorithm`
    // ("RS256", "ES256"): its type is the one the algorithm needs (no
    // algorithm confusion), its "alg" is absent or the same, its "use" is
    // absent or "sig". Empty when it may, else why not ("it is an EC P-256
    // key", "its \"use\" is \"enc\"").
    std::string unusable_for(std::string_view algorithm) const;

    // `RSA-2048 key "kid"`, `EC P-256 key (no kid)`.
    std::string describe() const;
};

// Immutable after construction: copies share the keys, and any number of
// threads may verify with one set at once (OpenSSL 3 allows concurrent use
// of an EVP_PKEY that nobody modifies).
class JwtKeySet {
public:
    JwtKeySet();  // no keys: every token is refused with kUnknownKey

    // A JWKS document (text starting with '{') or one or more PEM blocks
    // "-----BEGIN PUBLIC KEY-----" (SubjectPublicKeyInfo; their keys have no
    // kid). Throws JwtKeyError "<origin>: <reason>", e.g.
    // "jwks.json: keys[1] (kid \"old\"): RSA modulus is 1024 bits, fewer than the 2048 required".
    static JwtKeySet parse(std::string_view text, const std::string& origin);

    // Reads `file` (at most 1 MiB) and parses it; errors name the path.
    static JwtKeySet load(const std::filesystem::path& file);

    std::size_t size() const { return keys_->size(); }
    const std::vector<JwtKey>& keys() const { return *keys_; }

    // For logs: `2 keys: RSA-2048 key "a", EC P-256 key "b"`.
    std::string describe() const;

private:
    explicit JwtKeySet(std::vector<JwtKey> keys);
    std::shared_ptr<const std::vector<JwtKey>> keys_;
};

}  // namespace launcher::auth
