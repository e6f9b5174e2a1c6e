#include "auth/jwt_keys.h"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>

#include "auth/jwt_encoding.h"
#include "auth/openssl_support.h"

namespace launcher::auth {
namespace {

using nlohmann::json;

constexpr int kMinRsaBits = 2048;
constexpr std::size_t kMaxKeyFileBytes = 1 << 20;
constexpr std::size_t kP256CoordinateBytes = 32;

struct PkeyCtxFree {
    void operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); }
};
struct BnFree {
    void operator()(BIGNUM* p) const { BN_free(p); }
};
struct ParamBldFree {
    void operator()(OSSL_PARAM_BLD* p) const { OSSL_PARAM_BLD_free(p); }
};
struct ParamFree {
    void operator()(OSSL_PARAM* p) const { OSSL_PARAM_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree>;
using BnPtr = std::unique_ptr<BIGNUM, BnFree>;

[[noreturn]] void fail(const std::string& where, const std::string& reason) {
    ERR_clear_error();
    throw JwtKeyError(where + ": " + reason);
}

// Accepts RSA >= 2048 bits and EC P-256 only, after OpenSSL's own public key
// check (RSA: odd modulus and exponent, not a prime power; EC: the point is
// on the curve and not at infinity).
JwtKey checked_key(PkeyPtr pkey, const std::string& where) {
    JwtKey key;
    if (EVP_PKEY_is_a(pkey.get(), "RSA")) {
        key.type = JwtKeyType::kRsa;
        key.bits = EVP_PKEY_get_bits(pkey.get());
        if (key.bits < kMinRsaBits) {
            fail(where, "RSA modulus is " + std::to_string(key.bits) + " bits, fewer than the " +
                            std::to_string(kMinRsaBits) + " required");
        }
    } else if (EVP_PKEY_is_a(pkey.get(), "EC")) {
        char group[64] = {};
        std::size_t length = 0;
        if (EVP_PKEY_get_group_name(pkey.get(), group, sizeof group, &length) != 1) {
            fail(where, "EC key without a named curve (only P-256 is supported)");
        }
        const std::string name(group, length);
        if (name != "prime256v1" && name != "P-256") {
            fail(where, "EC curve " + name + " is not supported (only P-256, for ES256)");
        }
        key.type = JwtKeyType::kEcP256;
        key.bits = EVP_PKEY_get_bits(pkey.get());
    } else {
        const char* type = EVP_PKEY_get0_type_name(pkey.get());
        fail(where, std::string("key type ") + (type ? type : "(unknown)") +
                        " is not supported (RSA for RS256, EC P-256 for ES256)");
    }
    const PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey.get(), nullptr));
    if (!ctx || EVP_PKEY_public_check(ctx.get()) != 1) {
        fail(where, "not a valid public key: " + openssl_errors());
    }
    key.pkey = std::shared_ptr<EVP_PKEY>(pkey.release(), PkeyFree{});
    return key;
}

PkeyPtr pkey_from_params(const char* type, OSSL_PARAM_BLD* builder, const std::string& where) {
    const std::unique_ptr<OSSL_PARAM, ParamFree> params(OSSL_PARAM_BLD_to_param(builder));
    const PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
    EVP_PKEY* raw = nullptr;
    if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
        EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
        fail(where,
             std::string("OpenSSL refused the ") + type + " parameters: " + openssl_errors());
    }
    return PkeyPtr(raw);
}

// A JWK member that must be a string; nullopt when absent.
std::optional<std::string> string_member(const json& jwk, const char* name,
                                         const std::string& where) {
    const auto it = jwk.find(name);
    if (it == jwk.end()) return std::nullopt;
    if (!it->is_string()) fail(where, std::string("\"") + name + "\" is not a string");
    return it->get<std::string>();
}

// A required base64url member (RFC 7518 section 6: n, e, x, y).
std::string bytes_member(const json& jwk, const char* name, const std::string& kty,
                         const std::string& where) {
    const auto text = string_member(jwk, name, where);
    if (!text) fail(where, kty + " key without \"" + name + "\"");
    auto bytes = base64url_decode(*text);
    if (!bytes) fail(where, std::string("\"") + name + "\" is not unpadded base64url");
    if (bytes->empty()) fail(where, std::string("\"") + name + "\" is empty");
    return std::move(*bytes);
}

void refuse_private_members(const json& jwk, std::initializer_list<const char*> names,
                            const std::string& where) {
    for (const char* name : names) {
        if (jwk.contains(name)) {
            fail(where, std::string("holds private key material (\"") + name +
                            "\"): the key file must hold public keys only");
        }
    }
}

PkeyPtr rsa_from_jwk(const json& jwk, const std::string& where) {
    refuse_private_members(jwk, {"d", "p", "q", "dp", "dq", "qi", "oth"}, where);
    const std::string n = bytes_member(jwk, "n", "RSA", where);
    const std::string e = bytes_member(jwk, "e", "RSA", where);
    const BnPtr bn_n(BN_bin2bn(reinterpret_cast<const unsigned char*>(n.data()),
                               static_cast<int>(n.size()), nullptr));
    const BnPtr bn_e(BN_bin2bn(reinterpret_cast<const unsigned char*>(e.data()),
                               static_cast<int>(e.size()), nullptr));
    const std::unique_ptr<OSSL_PARAM_BLD, ParamBldFree> builder(OSSL_PARAM_BLD_new());
    if (!bn_n || !bn_e || !builder ||
        OSSL_PARAM_BLD_push_BN(builder.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get()) != 1 ||
        OSSL_PARAM_BLD_push_BN(builder.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get()) != 1) {
        fail(where, "cannot build the RSA parameters: " + openssl_errors());
    }
    return pkey_from_params("RSA", builder.get(), where);
}

PkeyPtr ec_from_jwk(const json& jwk, const std::string& where) {
    refuse_private_members(jwk, {"d"}, where);
    const auto crv = string_member(jwk, "crv", where);
    if (!crv) fail(where, "EC key without \"crv\"");
    if (*crv != "P-256") {
        fail(where, "curve " + quoted_value(*crv) + " is not supported (only P-256, for ES256)");
    }
    const std::string x = bytes_member(jwk, "x", "EC", where);
    const std::string y = bytes_member(jwk, "y", "EC", where);
    // RFC 7518 section 6.2.1.2: the full coordinate length, 32 bytes on P-256.
    for (const auto& [name, value] : {std::pair{"x", &x}, std::pair{"y", &y}}) {
        if (value->size() != kP256CoordinateBytes) {
            fail(where, std::string("\"") + name + "\" is " + std::to_string(value->size()) +
                            " bytes, a P-256 coordinate is 32");
        }
    }
    // Uncompressed point (SEC 1 section 2.3.3): 0x04 || x || y.
    const std::string point = std::string(1, '\x04') + x + y;
    const std::unique_ptr<OSSL_PARAM_BLD, ParamBldFree> builder(OSSL_PARAM_BLD_new());
    if (!builder ||
        OSSL_PARAM_BLD_push_utf8_string(builder.get(), OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1",
                                        0) != 1 ||
        OSSL_PARAM_BLD_push_octet_string(builder.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                         point.size()) != 1) {
        fail(where, "cannot build the EC parameters: " + openssl_errors());
    }
    return pkey_from_params("EC", builder.get(), where);
}

JwtKey key_from_jwk(const json& jwk, const std::string& where_in) {
    std::string where = where_in;
    if (!jwk.is_object()) fail(where, "is not a JSON object");
    std::optional<std::string> kid = string_member(jwk, "kid", where);
    if (kid) where += " (kid " + quoted_value(*kid) + ")";
    const auto kty = string_member(jwk, "kty", where);
    if (!kty) fail(where, "has no \"kty\"");
    PkeyPtr pkey;
    if (*kty == "RSA") {
        pkey = rsa_from_jwk(jwk, where);
    } else if (*kty == "EC") {
        pkey = ec_from_jwk(jwk, where);
    } else {
        fail(where, "key type " + quoted_value(*kty) + " is not supported (\"RSA\" or \"EC\")");
    }
    JwtKey key = checked_key(std::move(pkey), where);
    key.kid = kid.value_or("");
    key.alg = string_member(jwk, "alg", where).value_or("");
    key.use = string_member(jwk, "use", where).value_or("");
    // An "alg" of the other supported type is a contradiction in the file,
    // not a key to skip. Other values ("RS512", "RSA-OAEP") are legal JWKs
    // that simply never verify a token here.
    if ((key.alg == "RS256" && key.type != JwtKeyType::kRsa) ||
        (key.alg == "ES256" && key.type != JwtKeyType::kEcP256)) {
        fail(where, "\"alg\" " + quoted_value(key.alg) + " does not fit a " +
                        key_type_name(key.type) + " key");
    }
    return key;
}

std::vector<JwtKey> parse_jwks(std::string_view text, const std::string& origin) {
    json document;
    try {
        document = json::parse(text);
    } catch (const json::exception& e) {
        fail(origin, std::string("not valid JSON: ") + e.what());
    }
    if (!document.is_object()) fail(origin, "a JWKS document must be a JSON object");
    const auto keys = document.find("keys");
    if (keys == document.end()) fail(origin, "JWKS document without \"keys\"");
    if (!keys->is_array()) fail(origin, "\"keys\" is not an array");
    if (keys->empty()) fail(origin, "\"keys\" is empty: no key could verify a token");
    std::vector<JwtKey> out;
    for (std::size_t i = 0; i < keys->size(); ++i) {
        out.push_back(key_from_jwk((*keys)[i], origin + ": keys[" + std::to_string(i) + "]"));
    }
    return out;
}

struct PemBlock {
    std::string name;
    std::string data;
};

// The next PEM block, nullopt at the end of the text.
std::optional<PemBlock> next_pem_block(BIO* bio, const std::string& where) {
    char* name = nullptr;
    char* header = nullptr;
    unsigned char* data = nullptr;
    long length = 0;
    if (PEM_read_bio(bio, &name, &header, &data, &length) != 1) {
        const unsigned long code = ERR_peek_last_error();
        if (ERR_GET_LIB(code) == ERR_LIB_PEM && ERR_GET_REASON(code) == PEM_R_NO_START_LINE) {
            ERR_clear_error();
            return std::nullopt;
        }
        fail(where, "unreadable PEM: " + openssl_errors());
    }
    PemBlock block{name, std::string(reinterpret_cast<char*>(data), static_cast<size_t>(length))};
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_free(data);
    return block;
}

std::vector<JwtKey> parse_pem(std::string_view text, const std::string& origin) {
    const std::unique_ptr<BIO, BioFree> bio(
        BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
    if (!bio) fail(origin, "cannot read the text: " + openssl_errors());
    std::vector<JwtKey> out;
    for (std::size_t i = 0;; ++i) {
        const std::string where = origin + ": PEM block " + std::to_string(i + 1);
        const auto block = next_pem_block(bio.get(), where);
        if (!block) break;
        if (block->name != "PUBLIC KEY") {
            std::string hint = " (expected PUBLIC KEY";
            if (block->name == "CERTIFICATE") hint += "; openssl x509 -pubkey -noout prints it";
            if (block->name.find("PRIVATE") != std::string::npos) {
                hint += "; the key file must hold public keys only";
            }
            fail(where, "is a " + block->name + hint + ")");
        }
        const auto* p = reinterpret_cast<const unsigned char*>(block->data.data());
        PkeyPtr pkey(d2i_PUBKEY(nullptr, &p, static_cast<long>(block->data.size())));
        if (!pkey) fail(where, "not a SubjectPublicKeyInfo: " + openssl_errors());
        if (p != reinterpret_cast<const unsigned char*>(block->data.data()) + block->data.size()) {
            fail(where, "bytes after the public key");
        }
        out.push_back(checked_key(std::move(pkey), where));
    }
    if (out.empty()) fail(origin, "no PEM block");
    return out;
}

}  // namespace

const char* key_type_name(JwtKeyType type) {
    switch (type) {
        case JwtKeyType::kRsa:
            return "RSA";
        case JwtKeyType::kEcP256:
            return "EC P-256";
    }
    return "unknown";
}

std::string JwtKey::unusable_for(std::string_view algorithm) const {
    const JwtKeyType needed = algorithm == "ES256" ? JwtKeyType::kEcP256 : JwtKeyType::kRsa;
    if (algorithm != "RS256" && algorithm != "ES256") {
        return "no key verifies " + quoted_value(algorithm);
    }
    if (type != needed) return std::string("it is an ") + key_type_name(type) + " key";
    if (!alg.empty() && alg != algorithm) return "its \"alg\" is " + quoted_value(alg);
    if (!use.empty() && use != "sig") return "its \"use\" is " + quoted_value(use);
    return {};
}

std::string JwtKey::describe() const {
    std::string out = type == JwtKeyType::kRsa ? "RSA-" + std::to_string(bits) : "EC P-256";
    out += " key ";
    out += kid.empty() ? "(no kid)" : quoted_value(kid);
    return out;
}

JwtKeySet::JwtKeySet() : keys_(std::make_shared<const std::vector<JwtKey>>()) {}

JwtKeySet::JwtKeySet(std::vector<JwtKey> keys)
    : keys_(std::make_shared<const std::vector<JwtKey>>(std::move(keys))) {}

JwtKeySet JwtKeySet::parse(std::string_view text, const std::string& origin) {
    const auto start = text.find_first_not_of(" \t\r\n");
    if (start == std::string_view::npos) fail(origin, "is empty");
    if (text[start] == '{') return JwtKeySet(parse_jwks(text, origin));
    if (text.find("-----BEGIN ") != std::string_view::npos) {
        return JwtKeySet(parse_pem(text, origin));
    }
    fail(origin,
         "neither a JWKS document (a JSON object with \"keys\") nor PEM public keys "
         "(-----BEGIN PUBLIC KEY-----)");
}

JwtKeySet JwtKeySet::load(const std::filesystem::path& file) {
    const std::string origin = file.string();
    const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) fail(origin, std::string("cannot open: ") + std::strerror(errno));
    std::string text;
    char buf[8192];
    for (;;) {
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            const int error = errno;
            ::close(fd);
            fail(origin, std::string("cannot read: ") + std::strerror(error));
        }
        if (n == 0) break;
        text.append(buf, static_cast<std::size_t>(n));
        if (text.size() > kMaxKeyFileBytes) {
            ::close(fd);
            fail(origin,
                 "larger than " + std::to_string(kMaxKeyFileBytes) + " bytes: not a key file");
        }
    }
    ::close(fd);
    return parse(text, origin);
}

std::string JwtKeySet::describe() const {
    std::string out = std::to_string(size()) + (size() == 1 ? " key" : " keys");
    const char* separator = ": ";
    for (const JwtKey& key : keys()) {
        out += separator + key.describe();
        separator = ", ";
    }
    return out;
}

}  // namespace launcher::auth
