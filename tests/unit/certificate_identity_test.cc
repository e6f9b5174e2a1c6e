// Client certificates' names: real certificates made by
// tests/fixtures/make_test_pki.sh, and hostile ones built here with OpenSSL.
#include "auth/certificate_identity.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

using launcher::auth::certificate_identity_from_pem;
using launcher::auth::CertificateIdentity;

std::string read_file(const std::filesystem::path& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

// `openssl x509 -fingerprint -sha256`, as lowercase hex without colons: an
// opinion on the fingerprint that is not our code's.
std::string cli_fingerprint(const std::filesystem::path& cert) {
    const std::string cmd = "openssl x509 -noout -fingerprint -sha256 -in '" + cert.string() + "'";
    FILE* p = ::popen(cmd.c_str(), "r");
    if (!p) return "";
    char buf[512] = {};
    std::string out;
    while (std::fgets(buf, sizeof buf, p))
        out += buf;
    ::pclose(p);
    std::string hex;
    for (char c : out.substr(out.find('=') + 1)) {
        if (std::isxdigit(static_cast<unsigned char>(c))) {
            hex += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        }
    }
    return hex;
}

// A self-signed certificate whose SAN holds exactly `names` (type, raw bytes,
// NULs included) and whose subject holds the CNs `cns`.
std::string make_cert(const std::vector<std::pair<int, std::string>>& names,
                      const std::vector<std::string>& cns) {
    EVP_PKEY* key = EVP_EC_gen("P-256");
    X509* cert = X509_new();
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), 0);
    X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
    X509_NAME* subject = X509_get_subject_name(cert);
    for (const std::string& cn : cns) {
        X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC,
                                   reinterpret_cast<const unsigned char*>(cn.data()),
                                   static_cast<int>(cn.size()), -1, 0);
    }
    X509_set_issuer_name(cert, subject);
    X509_set_pubkey(cert, key);
    if (!names.empty()) {
        GENERAL_NAMES* gens = sk_GENERAL_NAME_new_null();
        for (const auto& [type, value] : names) {
            ASN1_IA5STRING* s = ASN1_IA5STRING_new();
            ASN1_STRING_set(s, value.data(), static_cast<int>(value.size()));
            GENERAL_NAME* gen = GENERAL_NAME_new();
            GENERAL_NAME_set0_value(gen, type, s);
            sk_GENERAL_NAME_push(gens, gen);
        }
        X509_add1_ext_i2d(cert, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT);
        GENERAL_NAMES_free(gens);
    }
    X509_sign(cert, key, EVP_sha256());
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(bio, cert);
    char* data = nullptr;
    const long len = BIO_get_mem_data(bio, &data);
    std::string pem(data, static_cast<std::size_t>(len));
    BIO_free(bio);
    X509_free(cert);
    EVP_PKEY_free(key);
    return pem;
}

class CertificateIdentityTest : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        char tmpl[] = "/tmp/pl-cert-identity.XXXXXX";
        ASSERT_NE(::mkdtemp(tmpl), nullptr);
        dir_ = tmpl;
        const std::string cmd =
            "sh " PL_SOURCE_DIR "/tests/fixtures/make_test_pki.sh '" + dir_.string() + "'";
        ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    }
    static void TearDownTestSuite() { std::filesystem::remove_all(dir_); }

    static CertificateIdentity identity_of(const std::string& name) {
        std::string error;
        auto id = certificate_identity_from_pem(read_file(dir_ / (name + ".crt")), &error);
        EXPECT_TRUE(id.has_value()) << name << ": " << error;
        return id.value_or(CertificateIdentity{});
    }

    static inline std::filesystem::path dir_;
};

TEST_F(CertificateIdentityTest, UriSanIsThePrimaryName) {
    const CertificateIdentity id = identity_of("client-a");
    ASSERT_EQ(id.uris, std::vector<std::string>{"spiffe://pattern-launcher.test/tenant-a"});
    EXPECT_TRUE(id.dns_names.empty());
    EXPECT_EQ(id.common_name, "client-a");
    EXPECT_EQ(id.primary(), "spiffe://pattern-launcher.test/tenant-a");
}

TEST_F(CertificateIdentityTest, FingerprintIsTheSha256OfTheDer) {
    const CertificateIdentity id = identity_of("client-a");
    const std::string expected = cli_fingerprint(dir_ / "client-a.crt");
    ASSERT_EQ(expected.size(), 64u);
    EXPECT_EQ(id.sha256_fingerprint, expected);
    EXPECT_NE(identity_of("client-b").sha256_fingerprint, id.sha256_fingerprint);
}

TEST_F(CertificateIdentityTest, DnsSanWhenThereIsNoUri) {
    const CertificateIdentity id = identity_of("client-b");
    EXPECT_TRUE(id.uris.empty());
    EXPECT_EQ(id.dns_names, std::vector<std::string>{"b.clients.test"});
    EXPECT_EQ(id.primary(), "b.clients.test");
}

TEST_F(CertificateIdentityTest, IpSansAreNotNames) {
    // server.crt: DNS:localhost, IP:127.0.0.1.
    const CertificateIdentity id = identity_of("server");
    EXPECT_EQ(id.dns_names, std::vector<std::string>{"localhost"});
    EXPECT_EQ(id.primary(), "localhost");
}

TEST_F(CertificateIdentityTest, CommonNameWhenThereIsNoSan) {
    const CertificateIdentity id = identity_of("client-cn");
    EXPECT_TRUE(id.uris.empty());
    EXPECT_TRUE(id.dns_names.empty());
    EXPECT_EQ(id.common_name, "cn-client");
    EXPECT_EQ(id.primary(), "cn-client");
}

TEST_F(CertificateIdentityTest, UriWinsOverAnEarlierDnsSan) {
    const std::string pem = make_cert(
        {{GEN_DNS, "first.example"}, {GEN_URI, "spiffe://x/one"}, {GEN_URI, "spiffe://x/two"}},
        {"cn"});
    std::string error;
    auto id = certificate_identity_from_pem(pem, &error);
    ASSERT_TRUE(id) << error;
    EXPECT_EQ(id->uris, (std::vector<std::string>{"spiffe://x/one", "spiffe://x/two"}));
    EXPECT_EQ(id->primary(), "spiffe://x/one");
}

TEST_F(CertificateIdentityTest, TheLeafOfAChainIsTheOneRead) {
    const std::string chain = read_file(dir_ / "client-b.crt") + read_file(dir_ / "ca.crt");
    auto id = certificate_identity_from_pem(chain);
    ASSERT_TRUE(id);
    EXPECT_EQ(id->primary(), "b.clients.test");
}

TEST_F(CertificateIdentityTest, GarbageIsRefusedWithAReason) {
    for (const std::string& text :
         {std::string(), std::string("not a certificate"),
          std::string("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
          read_file(dir_ / "client-a.key")}) {
        std::string error;
        EXPECT_FALSE(certificate_identity_from_pem(text, &error)) << text;
        EXPECT_NE(error.find("no PEM certificate"), std::string::npos) << error;
    }
}

TEST_F(CertificateIdentityTest, NulInAUriSanIsRefused) {
    // A CA-signed "spiffe://x/a\0.evil" must not pass for "spiffe://x/a".
    std::string error;
    EXPECT_FALSE(certificate_identity_from_pem(
        make_cert({{GEN_URI, std::string("spiffe://x/a\0.evil", 18)}}, {"cn"}), &error));
    EXPECT_NE(error.find("URI SAN holds a byte outside printable ASCII"), std::string::npos)
        << error;
}

TEST_F(CertificateIdentityTest, ControlBytesInDnsSanOrCnAreRefused) {
    std::string error;
    EXPECT_FALSE(
        certificate_identity_from_pem(make_cert({{GEN_DNS, "a.test\nb.test"}}, {"cn"}), &error));
    EXPECT_NE(error.find("DNS SAN holds a byte outside printable ASCII"), std::string::npos)
        << error;
    EXPECT_FALSE(certificate_identity_from_pem(make_cert({}, {"cn\x1b[0m"}), &error));
    EXPECT_NE(error.find("CN holds a byte outside printable ASCII"), std::string::npos) << error;
    // The same certificates without the bytes are fine: the refusal is the bytes'.
    EXPECT_TRUE(certificate_identity_from_pem(make_cert({{GEN_DNS, "a.test"}}, {"cn"})));
    EXPECT_TRUE(certificate_identity_from_pem(make_cert({}, {"cn client"})));
}

TEST_F(CertificateIdentityTest, AmbiguousOrAbsentNamesAreRefused) {
    std::string error;
    EXPECT_FALSE(certificate_identity_from_pem(make_cert({}, {"one", "two"}), &error));
    EXPECT_NE(error.find("more than one CN"), std::string::npos) << error;
    EXPECT_FALSE(certificate_identity_from_pem(make_cert({{GEN_URI, ""}}, {"cn"}), &error));
    EXPECT_NE(error.find("empty URI SAN"), std::string::npos) << error;
    EXPECT_FALSE(certificate_identity_from_pem(make_cert({}, {}), &error));
    EXPECT_NE(error.find("names no URI SAN, DNS SAN or CN"), std::string::npos) << error;
}

}  // namespace
