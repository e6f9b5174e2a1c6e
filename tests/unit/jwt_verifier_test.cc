// Bearer tokens signed here, with keys made here (OpenSSL, in process), are
// accepted or refused by issuer, audience, time, signature and algorithm;
// key files with unusable keys are refused with a message naming the key.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "auth/jwt_encoding.h"
#include "auth/jwt_keys.h"
#include "auth/jwt_verifier.h"

namespace launcher::auth {
namespace {

using nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr std::int64_t kNow = 1'800'000'000;
const std::string kIssuer = "https://issuer.example";
const std::string kAudience = "pattern-launcher";

struct PkeyFree {
    void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;

Pkey rsa_key(std::size_t bits) {
    Pkey key(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", bits));
    if (!key) std::abort();
    return key;
}

Pkey ec_key() {
    Pkey key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
    if (!key) std::abort();
    return key;
}

// Each made once per process, when first used: RSA key generation takes a
// noticeable fraction of a second (and ctest runs every test in a process).
EVP_PKEY* rsa() {
    static const Pkey key = rsa_key(2048);
    return key.get();
}
EVP_PKEY* rsa_other() {
    static const Pkey key = rsa_key(2048);
    return key.get();
}
EVP_PKEY* ec() {
    static const Pkey key = ec_key();
    return key.get();
}

// A big-endian parameter of `key`, left-padded to `width` bytes if given.
std::string bn_param(EVP_PKEY* key, const char* name, int width = 0) {
    BIGNUM* bn = nullptr;
    if (EVP_PKEY_get_bn_param(key, name, &bn) != 1) std::abort();
    std::string out(static_cast<std::size_t>(width > 0 ? width : BN_num_bytes(bn)), '\0');
    BN_bn2binpad(bn, reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(out.size()));
    BN_free(bn);
    return out;
}

json rsa_jwk(EVP_PKEY* key, const std::string& kid = "") {
    json jwk = {{"kty", "RSA"},
                {"n", base64url_encode(bn_param(key, OSSL_PKEY_PARAM_RSA_N))},
                {"e", base64url_encode(bn_param(key, OSSL_PKEY_PARAM_RSA_E))}};
    if (!kid.empty()) jwk["kid"] = kid;
    return jwk;
}

json ec_jwk(EVP_PKEY* key, const std::string& kid = "") {
    json jwk = {{"kty", "EC"},
                {"crv", "P-256"},
                {"x", base64url_encode(bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X, 32))},
                {"y", base64url_encode(bn_param(key, OSSL_PKEY_PARAM_EC_PUB_Y, 32))}};
    if (!kid.empty()) jwk["kid"] = kid;
    return jwk;
}

JwtKeySet jwks(const std::vector<json>& keys) {
    return JwtKeySet::parse(json{{"keys", keys}}.dump(), "test-jwks");
}

std::string pem_of(EVP_PKEY* key) {
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(bio, key);
    char* data = nullptr;
    const long length = BIO_get_mem_data(bio, &data);
    std::string out(data, static_cast<std::size_t>(length));
    BIO_free(bio);
    return out;
}

// SHA-256 signature as OpenSSL makes it: PKCS #1 v1.5 for RSA, DER for EC.
std::string openssl_signature(EVP_PKEY* key, const std::string& input) {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    std::size_t length = 0;
    const auto* data = reinterpret_cast<const unsigned char*>(input.data());
    if (EVP_DigestSignInit_ex(ctx, nullptr, "SHA256", nullptr, nullptr, key, nullptr) != 1 ||
        EVP_DigestSign(ctx, nullptr, &length, data, input.size()) != 1) {
        std::abort();
    }
    std::string out(length, '\0');
    if (EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(out.data()), &length, data,
                       input.size()) != 1) {
        std::abort();
    }
    EVP_MD_CTX_free(ctx);
    out.resize(length);
    return out;
}

// The JWS form: RSA as is, ECDSA as r || s (RFC 7518 section 3.4).
std::string jws_signature(EVP_PKEY* key, const std::string& input) {
    const std::string der = openssl_signature(key, input);
    if (!EVP_PKEY_is_a(key, "EC")) return der;
    const auto* p = reinterpret_cast<const unsigned char*>(der.data());
    ECDSA_SIG* sig = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size()));
    std::string raw(64, '\0');
    BN_bn2binpad(ECDSA_SIG_get0_r(sig), reinterpret_cast<unsigned char*>(raw.data()), 32);
    BN_bn2binpad(ECDSA_SIG_get0_s(sig), reinterpret_cast<unsigned char*>(raw.data()) + 32, 32);
    ECDSA_SIG_free(sig);
    return raw;
}

std::string signing_input(const std::string& header, const std::string& payload) {
    return base64url_encode(header) + "." + base64url_encode(payload);
}

// A token from literal header and payload texts (for duplicates, non-objects).
std::string raw_token(const std::string& header, const std::string& payload, EVP_PKEY* key) {
    const std::string input = signing_input(header, payload);
    return input + "." + base64url_encode(jws_signature(key, input));
}

std::string token(const json& header, const json& claims, EVP_PKEY* key) {
    return raw_token(header.dump(), claims.dump(), key);
}

json claims() {
    return {{"iss", kIssuer},    {"aud", kAudience}, {"sub", "alice"},
            {"exp", kNow + 300}, {"iat", kNow - 10}, {"jti", "id-1"}};
}
json rs256(const std::string& kid = "") {
    json header = {{"alg", "RS256"}, {"typ", "JWT"}};
    if (!kid.empty()) header["kid"] = kid;
    return header;
}
json es256(const std::string& kid = "") {
    json header = {{"alg", "ES256"}, {"typ", "JWT"}};
    if (!kid.empty()) header["kid"] = kid;
    return header;
}

JwtSettings settings() {
    JwtSettings s;
    s.issuer = kIssuer;
    s.audiences = {kAudience};
    return s;
}

const JwtKeySet& default_keys() {
    static const JwtKeySet keys = jwks({rsa_jwk(rsa(), "rsa-1"), ec_jwk(ec(), "ec-1")});
    return keys;
}

// "accepted" or "<failure_name>: <message>", so that a failed expectation
// shows why. Also checks that no rejection message repeats the token's
// payload or signature.
std::string outcome(const JwtResult& result, const std::string& compact) {
    if (std::holds_alternative<VerifiedToken>(result)) return "accepted";
    const auto& rejection = std::get<JwtRejection>(result);
    std::size_t start = 0;
    for (std::size_t dot = 0; dot != std::string::npos; start = dot + 1) {
        dot = compact.find('.', start);
        const std::string part = compact.substr(start, dot - start);
        if (part.size() >= 8) {
            EXPECT_THAT(rejection.message, ::testing::Not(HasSubstr(part)))
                << "a rejection message quotes the token";
        }
    }
    return std::string(failure_name(rejection.failure)) + ": " + rejection.message;
}

std::string verdict(const std::string& compact, const JwtKeySet& keys = default_keys(),
                    const JwtSettings& s = settings(), std::int64_t now = kNow) {
    return outcome(verify_jwt(compact, keys, s, now), compact);
}

VerifiedToken accepted(const std::string& compact, const JwtKeySet& keys = default_keys(),
                       const JwtSettings& s = settings()) {
    const JwtResult result = verify_jwt(compact, keys, s, kNow);
    EXPECT_EQ(outcome(result, compact), "accepted");
    if (const auto* token = std::get_if<VerifiedToken>(&result)) return *token;
    return {};
}

// --- accepted tokens ---

TEST(JwtVerifier, AcceptsRs256FromAJwks) {
    const VerifiedToken t = accepted(token(rs256("rsa-1"), claims(), rsa()));
    EXPECT_EQ(t.subject, "alice");
    EXPECT_EQ(t.issuer, kIssuer);
    EXPECT_EQ(t.key_id, "rsa-1");
    EXPECT_EQ(t.algorithm, "RS256");
    EXPECT_EQ(t.expires_at, kNow + 300);
    EXPECT_FALSE(t.has_namespaces_claim);
    EXPECT_TRUE(t.namespaces.empty());
    EXPECT_THAT(t.string_claims.at("jti"), ElementsAre("id-1"));
    EXPECT_THAT(t.string_claims.at("aud"), ElementsAre(kAudience));
    EXPECT_EQ(t.string_claims.count("exp"), 0u);  // a number, not a string claim
}

TEST(JwtVerifier, AcceptsEs256FromAJwks) {
    const VerifiedToken t = accepted(token(es256("ec-1"), claims(), ec()));
    EXPECT_EQ(t.key_id, "ec-1");
    EXPECT_EQ(t.algorithm, "ES256");
    // Without a kid, the key that fits the algorithm is found.
    EXPECT_EQ(accepted(token(es256(), claims(), ec())).key_id, "ec-1");
    EXPECT_EQ(accepted(token(rs256(), claims(), rsa())).key_id, "rsa-1");
}

TEST(JwtVerifier, AcceptsRs256AndEs256FromPemKeys) {
    const JwtKeySet pem = JwtKeySet::parse(pem_of(rsa()) + "\n" + pem_of(ec()), "test-pem");
    ASSERT_EQ(pem.size(), 2u);
    EXPECT_EQ(accepted(token(rs256(), claims(), rsa()), pem).algorithm, "RS256");
    EXPECT_EQ(accepted(token(es256(), claims(), ec()), pem).algorithm, "ES256");
    // PEM keys have no kid: a token's kid that no key has falls back to them.
    EXPECT_EQ(accepted(token(es256("issuer-key-7"), claims(), ec()), pem).key_id, "");
    // And they are still the keys: another key's signature is refused.
    EXPECT_THAT(verdict(token(rs256(), claims(), rsa_other()), pem), StartsWith("bad_signature"));
}

TEST(JwtVerifier, AcceptsTheTokenTypesOfJwtAndAccessTokens) {
    for (const char* typ : {"JWT", "jwt", "at+jwt", "application/at+JWT"}) {
        json header = rs256();
        header["typ"] = typ;
        EXPECT_EQ(verdict(token(header, claims(), rsa())), "accepted") << typ;
    }
    json header = rs256();
    header["typ"] = "JOSE";
    EXPECT_THAT(verdict(token(header, claims(), rsa())), StartsWith("malformed: token type"));
    header.erase("typ");
    EXPECT_EQ(verdict(token(header, claims(), rsa())), "accepted");
}

// --- issuer and audience ---

TEST(JwtVerifier, RefusesAnotherIssuer) {
    json c = claims();
    c["iss"] = "https://issuer.example/";  // exact match only: not even a trailing slash
    EXPECT_THAT(verdict(token(rs256(), c, rsa())), StartsWith("wrong_issuer: issuer"));
    c.erase("iss");
    EXPECT_THAT(verdict(token(rs256(), c, rsa())), StartsWith("missing_claim"));
}

TEST(JwtVerifier, RefusesAnotherAudienceAsStringOrArray) {
    json c = claims();
    c["aud"] = "other-service";
    EXPECT_THAT(verdict(token(rs256(), c, rsa())), StartsWith("wrong_audience"));
    c["aud"] = json::array({"other-service", "third"});
    EXPECT_THAT(verdict(token(rs256(), c, rsa())), StartsWith("wrong_audience"));
    c["aud"] = json::array();
    EXPECT_THAT(verdict(token(rs256(), c, rsa())), StartsWith("wrong_audience"));
    c["aud"] = json::array({"other-service", kAudience});
    EXPECT_EQ(verdict(token(rs256(), c, rsa())), "accepted");
    // Any one of several configured audiences will do.
    JwtSettings s = settings();
    s.audiences = {"first", "other-service"};
    c["aud"] = "other-service";
    EXPECT_EQ(verdict(token(rs256(), c, rsa()), default_keys(), s), "accepted");
    c["aud"] = 7;
    EXPECT_THAT(verdict(token(rs256(), c, rsa())), StartsWith("malformed: claim \"aud\""));
    c.erase("aud");
    EXPECT_THAT(verdict(token(rs256(), c, rsa())), StartsWith("missing_claim"));
}

// --- time ---

TEST(JwtVerifier, RefusesExpiredTokensBeyondTheLeeway) {
    json c = claims();
    c["exp"] = kNow - 30;  // exp <= now - leeway: expired
    EXPECT_THAT(verdict(token(rs256(), c, rsa())), StartsWith("expired: token expired at"));
    c["exp"] = kNow - 3600;
    EXPECT_THAT(verdict(token(rs256(), c, rsa())), HasSubstr("3600 s ago (leeway 30 s)"));
    c["exp"] = kNow - 29;  // within the leeway
    EXPECT_EQ(verdict(token(rs256(), c, rsa())), "accepted");
    JwtSettings strict = settings();
    strict.leeway = std::chrono::seconds(0);
    EXPECT_THAT(verdict(token(rs256(), c, rsa()), default_keys(), strict), StartsWith("expired"));
}

TEST(JwtVerifier, RequiresANumericExpiry) {
    json c = claims();
    c.erase("exp");
    EXPECT_THAT(verdict(token(rs256(), c, rsa())), StartsWith("missing_claim: no \"exp\""));
    c["exp"] = "tomorrow";
    EXPECT_THAT(verdict(token(rs256(), c, rsa())), StartsWith("malformed: claim \"exp\""));
    c["exp"] = static_cast<double>(kNow) + 60.5;  // NumericDate may have a fraction
    EXPECT_EQ(verdict(token(rs256(), c, rsa())), "accepted");
}

TEST(JwtVerifier, RefusesTokensNotYetValid) {
    json c = claims();
    c["nbf"] = kNow + 31;
    EXPECT_THAT(verdict(token(rs256(), c, rsa())), StartsWith("not_yet_valid"));
    c["nbf"] = kNow + 30;
    EXPECT_EQ(verdict(token(rs256(), c, rsa())), "accepted");
}

TEST(JwtVerifier, RefusesTokensIssuedInTheFuture) {
    json c = claims();
    c["iat"] = kNow + 31;
    EXPECT_THAT(verdict(token(rs256(), c, rsa())), StartsWith("issued_in_future"));
    c["iat"] = kNow + 30;
    EXPECT_EQ(verdict(token(rs256(), c, rsa())), "accepted");
}

TEST(JwtVerifier, RequiresASubject) {
    json c = claims();
    c["sub"] = "";
    EXPECT_THAT(verdict(token(rs256(), c, rsa())), StartsWith("missing_claim: claim \"sub\""));
    c.erase("sub");
    EXPECT_THAT(verdict(token(rs256(), c, rsa())), StartsWith("missing_claim: no \"sub\""));
}

// --- signatures ---

TEST(JwtVerifier, RefusesAFlippedByteInThePayload) {
    for (EVP_PKEY* key : {rsa(), ec()}) {
        const std::string header = (key == rsa() ? rs256() : es256()).dump();
        const std::string payload = claims().dump();
        const std::string signature = jws_signature(key, signing_input(header, payload));
        std::string forged = payload;
        forged[forged.find("alice")] = 'A';  // "Alice"
        EXPECT_THAT(verdict(signing_input(header, forged) + "." + base64url_encode(signature)),
                    StartsWith("bad_signature"));
        // The untouched token passes: it is the byte that made the difference.
        EXPECT_EQ(verdict(signing_input(header, payload) + "." + base64url_encode(signature)),
                  "accepted");
    }
}

TEST(JwtVerifier, RefusesAFlippedByteInTheSignature) {
    for (EVP_PKEY* key : {rsa(), ec()}) {
        const std::string header = (key == rsa() ? rs256() : es256()).dump();
        const std::string input = signing_input(header, claims().dump());
        std::string signature = jws_signature(key, input);
        signature[signature.size() / 2] ^= 0x01;
        EXPECT_THAT(verdict(input + "." + base64url_encode(signature)),
                    StartsWith("bad_signature"));
    }
}

TEST(JwtVerifier, RefusesAnEs256SignatureInDer) {
    const std::string input = signing_input(es256().dump(), claims().dump());
    const std::string der = openssl_signature(ec(), input);
    EXPECT_THAT(verdict(input + "." + base64url_encode(der)),
                StartsWith("bad_signature: an ES256 signature is 64 bytes"));
}

// --- algorithms ---

TEST(JwtVerifier, RefusesAlgNone) {
    for (const char* alg : {"none", "None", "NONE"}) {
        const std::string unsigned_token =
            signing_input(json{{"alg", alg}, {"typ", "JWT"}}.dump(), claims().dump()) + ".";
        EXPECT_THAT(verdict(unsigned_token), StartsWith("unsupported_algorithm")) << alg;
    }
    json no_alg = rs256();
    no_alg.erase("alg");
    EXPECT_THAT(verdict(token(no_alg, claims(), rsa())), StartsWith("malformed: header has no"));
}

TEST(JwtVerifier, RefusesHs256WithThePublicKeyAsSecret) {
    // The classic confusion: HMAC keyed with the RSA public key the server
    // holds, which a verifier trusting "alg" would check with that same key.
    const std::string secret = pem_of(rsa());
    const JwtKeySet pem = JwtKeySet::parse(secret, "test-pem");
    for (const char* alg : {"HS256", "RS384", "PS256", "ES384", "rs256"}) {
        const std::string input =
            signing_input(json{{"alg", alg}, {"typ", "JWT"}}.dump(), claims().dump());
        unsigned char mac[64];
        std::size_t length = 0;
        ASSERT_NE(EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, secret.data(),
                            secret.size(), reinterpret_cast<const unsigned char*>(input.data()),
                            input.size(), mac, sizeof mac, &length),
                  nullptr);
        const std::string forged =
            input + "." + base64url_encode(std::string(reinterpret_cast<char*>(mac), length));
        EXPECT_THAT(verdict(forged, pem), StartsWith("unsupported_algorithm")) << alg;
    }
}

TEST(JwtVerifier, RefusesAnRs256HeaderOverAnEcSignature) {
    // An EC signature in OpenSSL's DER form would verify through
    // EVP_DigestVerify with the EC key: only the key type check refuses it.
    const std::string input = signing_input(rs256("ec-1").dump(), claims().dump());
    const std::string der = base64url_encode(openssl_signature(ec(), input));
    EXPECT_THAT(verdict(input + "." + der), StartsWith("unknown_key: no key may verify RS256"));
    const std::string input_no_kid = signing_input(rs256().dump(), claims().dump());
    const std::string der_no_kid = base64url_encode(openssl_signature(ec(), input_no_kid));
    EXPECT_THAT(verdict(input_no_kid + "." + der_no_kid), StartsWith("bad_signature"));
    const JwtKeySet ec_only = jwks({ec_jwk(ec())});
    EXPECT_THAT(verdict(input_no_kid + "." + der_no_kid, ec_only), StartsWith("unknown_key"));
}

TEST(JwtVerifier, HonoursTheJwkAlgAndUse) {
    json rs384 = rsa_jwk(rsa(), "k");
    rs384["alg"] = "RS384";
    EXPECT_THAT(verdict(token(rs256("k"), claims(), rsa()), jwks({rs384})),
                StartsWith("unknown_key"));
    json encryption = rsa_jwk(rsa(), "k");
    encryption["use"] = "enc";
    EXPECT_THAT(verdict(token(rs256("k"), claims(), rsa()), jwks({encryption})),
                StartsWith("unknown_key"));
    json signing = rsa_jwk(rsa(), "k");
    signing["use"] = "sig";
    signing["alg"] = "RS256";
    EXPECT_EQ(verdict(token(rs256("k"), claims(), rsa()), jwks({signing})), "accepted");
}

// --- key ids ---

TEST(JwtVerifier, TheKidSelectsTheKey) {
    const JwtKeySet two = jwks({rsa_jwk(rsa(), "a"), rsa_jwk(rsa_other(), "b")});
    EXPECT_EQ(accepted(token(rs256("b"), claims(), rsa_other()), two).key_id, "b");
    EXPECT_EQ(accepted(token(rs256("a"), claims(), rsa()), two).key_id, "a");
    // Signed by b but naming a: only a is tried.
    EXPECT_THAT(
        verdict(token(rs256("a"), claims(), rsa_other()), two),
        StartsWith("bad_signature: bad signature: it does not verify with RSA-2048 key \"a\""));
    // Without a kid, both are tried.
    EXPECT_EQ(accepted(token(rs256(), claims(), rsa_other()), two).key_id, "b");
    EXPECT_THAT(verdict(token(rs256("c"), claims(), rsa()), two),
                StartsWith("unknown_key: no key has the token's kid \"c\""));
    EXPECT_THAT(verdict(token(rs256(), claims(), rsa()), JwtKeySet()), StartsWith("unknown_key"));
}

// --- malformed input ---

TEST(JwtVerifier, RefusesMalformedTokensWithoutCrashing) {
    const std::string good = token(rs256(), claims(), rsa());
    const std::size_t dot = good.find('.');
    const std::size_t dot2 = good.find('.', dot + 1);
    EXPECT_EQ(verdict(good), "accepted");
    for (const std::string& bad : {
             std::string(), std::string("."), std::string(".."), good.substr(0, dot2),  // 2 parts
             good + ".extra",                                                           // 4 parts
             good + ".a.b",                                             // 5 parts (JWE shape)
             "+" + good.substr(1),                                      // not base64url
             good.substr(0, dot) + "=" + good.substr(dot),              // padding
             good.substr(0, dot) + " " + good.substr(dot),              // whitespace
             good.substr(0, dot2 + 1) + "aaa" + good.substr(dot2 + 1),  // 1 mod 4 characters
         }) {
        EXPECT_THAT(verdict(bad), StartsWith("malformed")) << bad;
    }
    // The same bytes spelled with non-zero unused bits: refused, not verified.
    std::string malleable = good;
    char& last = malleable.back();
    last = last == 'A' ? 'B' : last == 'Q' ? 'R' : last == 'g' ? 'h' : last == 'w' ? 'x' : last;
    ASSERT_NE(malleable, good) << "the signature's last character has no unused bits";
    EXPECT_THAT(verdict(malleable), StartsWith("malformed: the signature"));
}

TEST(JwtVerifier, RefusesHugeTokensBeforeParsing) {
    json c = claims();
    c["padding"] = std::string(kMaxTokenBytes, 'x');
    EXPECT_THAT(verdict(token(rs256(), c, rsa())), StartsWith("malformed: token is"));
    EXPECT_THAT(verdict(std::string(1 << 20, 'a')), HasSubstr("more than the 16384 accepted"));
}

TEST(JwtVerifier, RefusesHeadersAndClaimSetsThatAreNotJsonObjects) {
    EXPECT_THAT(verdict(raw_token("[\"RS256\"]", claims().dump(), rsa())),
                StartsWith("malformed: the header is not a JSON object"));
    EXPECT_THAT(verdict(raw_token("{\"alg\":\"RS256\"", claims().dump(), rsa())),
                StartsWith("malformed: the header is not valid"));
    EXPECT_THAT(verdict(raw_token(rs256().dump(), "\"alice\"", rsa())),
                StartsWith("malformed: the claim set is not a JSON object"));
    EXPECT_THAT(verdict(raw_token(rs256().dump(), "{\"sub\":\"\xff\"}", rsa())),
                StartsWith("malformed: the claim set is not valid UTF-8 JSON"));
}

TEST(JwtVerifier, RefusesDuplicateMembers) {
    // Two parsers taking different copies would disagree on who this is.
    std::string payload = claims().dump();
    payload.insert(1, "\"sub\":\"mallory\",");
    EXPECT_THAT(verdict(raw_token(rs256().dump(), payload, rsa())),
                StartsWith("malformed: the claim set has the member \"sub\" twice"));
    EXPECT_THAT(verdict(raw_token("{\"alg\":\"none\",\"alg\":\"RS256\"}", claims().dump(), rsa())),
                StartsWith("malformed: the header has the member \"alg\" twice"));
    // Same name in different objects is fine.
    json c = claims();
    c["nested"] = {{"sub", "x"}};
    EXPECT_EQ(verdict(token(rs256(), c, rsa())), "accepted");
}

TEST(JwtVerifier, RefusesCriticalHeaderExtensions) {
    json header = rs256();
    header["crit"] = json::array({"b64"});
    header["b64"] = false;
    EXPECT_THAT(verdict(token(header, claims(), rsa())), StartsWith("malformed: header marks"));
}

// --- namespaces ---

TEST(JwtVerifier, ReadsTheNamespacesClaimAsStringOrArray) {
    json c = claims();
    c["prism_namespaces"] = "tenant-a";
    VerifiedToken t = accepted(token(rs256(), c, rsa()));
    EXPECT_TRUE(t.has_namespaces_claim);
    EXPECT_THAT(t.namespaces, ElementsAre("tenant-a"));
    c["prism_namespaces"] = json::array({"tenant-a", "team-b"});
    t = accepted(token(rs256(), c, rsa()));
    EXPECT_TRUE(t.has_namespaces_claim);
    EXPECT_THAT(t.namespaces, ElementsAre("tenant-a", "team-b"));
    c["prism_namespaces"] = json::array();
    t = accepted(token(rs256(), c, rsa()));
    EXPECT_TRUE(t.has_namespaces_claim);
    EXPECT_TRUE(t.namespaces.empty());
    c["prism_namespaces"] = json::array({"tenant-a", 3});
    EXPECT_THAT(verdict(token(rs256(), c, rsa())),
                StartsWith("malformed: claim \"prism_namespaces\""));
    // The claim's name is configurable.
    JwtSettings s = settings();
    s.namespaces_claim = "groups";
    c["groups"] = "ops";
    t = accepted(token(rs256(), c, rsa()), default_keys(), s);
    EXPECT_THAT(t.namespaces, ElementsAre("ops"));
}

// --- key files ---

std::string key_error(const std::string& text) {
    try {
        JwtKeySet::parse(text, "keys.json");
    } catch (const JwtKeyError& e) {
        return e.what();
    }
    return "parsed";
}

std::string jwks_error(const json& jwk) {
    return key_error(json{{"keys", {jwk}}}.dump());
}

TEST(JwtKeys, ParsesAJwksWithRsaAndEcKeys) {
    const JwtKeySet keys = jwks({rsa_jwk(rsa(), "a"), ec_jwk(ec(), "b")});
    ASSERT_EQ(keys.size(), 2u);
    EXPECT_EQ(keys.keys()[0].type, JwtKeyType::kRsa);
    EXPECT_EQ(keys.keys()[0].bits, 2048);
    EXPECT_EQ(keys.keys()[1].type, JwtKeyType::kEcP256);
    EXPECT_EQ(keys.describe(), "2 keys: RSA-2048 key \"a\", EC P-256 key \"b\"");
    const JwtKeySet copy = keys;  // shares the keys
    EXPECT_EQ(copy.keys()[0].pkey.get(), keys.keys()[0].pkey.get());
}

TEST(JwtKeys, RefusesAnRsaKeyWithoutModulus) {
    json jwk = rsa_jwk(rsa(), "k1");
    jwk.erase("n");
    EXPECT_EQ(jwks_error(jwk), "keys.json: keys[0] (kid \"k1\"): RSA key without \"n\"");
    jwk["n"] = "AQAB==";
    EXPECT_EQ(jwks_error(jwk), "keys.json: keys[0] (kid \"k1\"): \"n\" is not unpadded base64url");
}

TEST(JwtKeys, RefusesRsaKeysUnder2048Bits) {
    const Pkey small = rsa_key(1024);
    EXPECT_EQ(jwks_error(rsa_jwk(small.get(), "old")),
              "keys.json: keys[0] (kid \"old\"): RSA modulus is 1024 bits, fewer than the 2048 "
              "required");
    EXPECT_THAT(key_error(pem_of(small.get())), HasSubstr("PEM block 1: RSA modulus is 1024 bits"));
}

TEST(JwtKeys, RefusesUnknownKeyTypesAndCurves) {
    EXPECT_EQ(jwks_error(json{{"kty", "oct"}, {"k", "c2VjcmV0"}}),
              "keys.json: keys[0]: key type \"oct\" is not supported (\"RSA\" or \"EC\")");
    json p384 = ec_jwk(ec());
    p384["crv"] = "P-384";
    EXPECT_THAT(jwks_error(p384), HasSubstr("curve \"P-384\" is not supported"));
    const Pkey ed25519(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
    EXPECT_THAT(key_error(pem_of(ed25519.get())), HasSubstr("key type ED25519 is not supported"));
    EXPECT_THAT(jwks_error(json{{"n", "AQAB"}}), HasSubstr("keys[0]: has no \"kty\""));
}

TEST(JwtKeys, RefusesInvalidPointsAndModuli) {
    json jwk = ec_jwk(ec(), "p");
    jwk["x"] = base64url_encode(std::string(31, '\x01'));
    EXPECT_THAT(jwks_error(jwk), HasSubstr("(kid \"p\"): \"x\" is 31 bytes"));
    jwk = ec_jwk(ec(), "p");
    std::string y = *base64url_decode(jwk["y"].get<std::string>());
    y.back() ^= 0x01;  // no longer on the curve
    jwk["y"] = base64url_encode(y);
    EXPECT_THAT(jwks_error(jwk), StartsWith("keys.json: keys[0] (kid \"p\"): "));
    // OpenSSL imports any RSA numbers; its public key check refuses these.
    json rsa_jwk_e1 = rsa_jwk(rsa(), "r");
    rsa_jwk_e1["e"] = base64url_encode(std::string(1, '\x01'));
    EXPECT_THAT(jwks_error(rsa_jwk_e1), HasSubstr("(kid \"r\"): not a valid public key"));
    json even = rsa_jwk(rsa(), "r");
    std::string n = *base64url_decode(even["n"].get<std::string>());
    n.back() &= '\xfe';
    even["n"] = base64url_encode(n);
    EXPECT_THAT(jwks_error(even), HasSubstr("(kid \"r\"): not a valid public key"));
}

TEST(JwtKeys, RefusesPrivateKeysAndContradictions) {
    json jwk = ec_jwk(ec());
    jwk["d"] = base64url_encode(std::string(32, '\x01'));
    EXPECT_THAT(jwks_error(jwk), HasSubstr("holds private key material (\"d\")"));
    jwk = rsa_jwk(rsa());
    jwk["alg"] = "ES256";
    EXPECT_THAT(jwks_error(jwk), HasSubstr("\"alg\" \"ES256\" does not fit a RSA key"));
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(bio, ec(), nullptr, nullptr, 0, nullptr, nullptr);
    char* data = nullptr;
    const long length = BIO_get_mem_data(bio, &data);
    const std::string private_pem(data, static_cast<std::size_t>(length));
    BIO_free(bio);
    EXPECT_THAT(key_error(private_pem), HasSubstr("is a PRIVATE KEY"));
}

TEST(JwtKeys, RefusesGarbageAndEmptySets) {
    EXPECT_THAT(key_error("hello"), StartsWith("keys.json: neither a JWKS document"));
    EXPECT_THAT(key_error(""), StartsWith("keys.json: is empty"));
    EXPECT_THAT(key_error("{\"keys\": [}"), StartsWith("keys.json: not valid JSON"));
    EXPECT_EQ(key_error("{\"keys\": []}"),
              "keys.json: \"keys\" is empty: no key could verify a token");
    EXPECT_EQ(key_error("{\"key\": []}"), "keys.json: JWKS document without \"keys\"");
    EXPECT_THAT(key_error("-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n"),
                StartsWith("keys.json: PEM block 1: "));
}

TEST(JwtKeys, LoadNamesTheFile) {
    const std::filesystem::path dir =
        std::filesystem::temp_directory_path() / ("jwt-keys-test-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    const std::filesystem::path file = dir / "jwks.json";
    std::ofstream(file) << json{{"keys", {ec_jwk(ec(), "file-key")}}}.dump();
    const JwtKeySet keys = JwtKeySet::load(file);
    EXPECT_EQ(keys.size(), 1u);
    EXPECT_EQ(accepted(token(es256("file-key"), claims(), ec()), keys).key_id, "file-key");
    std::ofstream(file) << "{\"keys\": [{\"kty\": \"RSA\"}]}";
    try {
        JwtKeySet::load(file);
        ADD_FAILURE() << "loaded a key without n";
    } catch (const JwtKeyError& e) {
        EXPECT_EQ(std::string(e.what()), file.string() + ": keys[0]: RSA key without \"n\"");
    }
    try {
        JwtKeySet::load(dir / "missing.json");
        ADD_FAILURE() << "loaded a missing file";
    } catch (const JwtKeyError& e) {
        EXPECT_EQ(std::string(e.what()),
                  (dir / "missing.json").string() + ": cannot open: No such file or directory");
    }
    std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace launcher::auth
