#include "auth/certificate_identity.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <climits>
#include <memory>

#include "auth/openssl_support.h"
namespace launcher::auth {

namespace {

struct GeneralNamesFree {
    void operator()(GENERAL_NAMES* n) const { GENERAL_NAMES_free(n); }
};
struct Utf8Free {
    void operator()(unsigned char* p) const { OPENSSL_free(p); }
};

std::optional<CertificateIdentity> fail(std::string* error, std::string reason) {
    if (error) *error = std::move(reason);
    return std::nullopt;
}

// Printable ASCII only: URI and DNS names are IA5Strings, where a space, a
// control byte or a NUL has no business; a CN may hold spaces. Anything else
// could make one name look like another in a policy match or an audit line.
bool printable(std::string_view s, bool allow_space) {
    for (unsigned char c : s) {
        if (c == ' ' && allow_space) continue;
        if (c < 0x21 || c > 0x7e) return false;
    }
    return true;
}

std::string ia5(const ASN1_IA5STRING* s) {
    return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                       static_cast<std::size_t>(ASN1_STRING_length(s)));
}

}  // namespace

const std::string& CertificateIdentity::primary() const {
    if (!uris.empty()) return uris.front();
    if (!dns_names.empty()) return dns_names.front();
    return common_name;
}

std::optional<CertificateIdentity> certificate_identity_from_pem(std::string_view pem,
                                                                 std::string* error) {
    ERR_clear_error();
    if (pem.size() > INT_MAX) return fail(error, "certificate PEM too large");
    std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    if (!bio) return fail(error, "BIO_new_mem_buf: " + openssl_errors());
    std::unique_ptr<X509, X509Free> cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!cert) return fail(error, "no PEM certificate: " + openssl_errors());

    CertificateIdentity id;

    int critical = -1;
    std::unique_ptr<GENERAL_NAMES, GeneralNamesFree> names(static_cast<GENERAL_NAMES*>(
        X509_get_ext_d2i(cert.get(), NID_subject_alt_name, &critical, nullptr)));
    // critical: -1 no such extension, -2 more than one, else it was found.
    if (critical == -2) return fail(error, "certificate has more than one subjectAltName");
    if (!names && critical >= 0) {
        return fail(error, "malformed subjectAltName: " + openssl_errors());
    }
    for (int i = 0; names && i < sk_GENERAL_NAME_num(names.get()); ++i) {
        const GENERAL_NAME* name = sk_GENERAL_NAME_value(names.get(), i);
        if (name->type != GEN_URI && name->type != GEN_DNS) continue;
        const char* kind = name->type == GEN_URI ? "URI" : "DNS";
        std::string value =
            ia5(name->type == GEN_URI ? name->d.uniformResourceIdentifier : name->d.dNSName);
        if (value.empty()) return fail(error, std::string("empty ") + kind + " SAN");
        if (!printable(value, false)) {
            return fail(error, std::string(kind) + " SAN holds a byte outside printable ASCII");
        }
        (name->type == GEN_URI ? id.uris : id.dns_names).push_back(std::move(value));
    }

    const X509_NAME* subject = X509_get_subject_name(cert.get());
    const int cn_index = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
    if (cn_index >= 0) {
        if (X509_NAME_get_index_by_NID(subject, NID_commonName, cn_index) >= 0) {
            return fail(error, "certificate subject has more than one CN");
        }
        const ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, cn_index));
        unsigned char* utf8 = nullptr;
        const int len = ASN1_STRING_to_UTF8(&utf8, data);
        if (len < 0) return fail(error, "unreadable CN: " + openssl_errors());
        std::unique_ptr<unsigned char, Utf8Free> owned(utf8);
        id.common_name.assign(reinterpret_cast<const char*>(utf8), static_cast<std::size_t>(len));
        if (id.common_name.empty()) return fail(error, "empty CN");
        if (!printable(id.common_name, true)) {
            return fail(error, "CN holds a byte outside printable ASCII");
        }
    }

    if (id.primary().empty()) return fail(error, "certificate names no URI SAN, DNS SAN or CN");

    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (X509_digest(cert.get(), EVP_sha256(), md, &md_len) != 1) {
        return fail(error, "SHA-256 of the certificate: " + openssl_errors());
    }
    static constexpr char kHex[] = "0123456789abcdef";
    id.sha256_fingerprint.reserve(md_len * 2);
    for (unsigned int i = 0; i < md_len; ++i) {
        id.sha256_fingerprint += kHex[md[i] >> 4];
        id.sha256_fingerprint += kHex[md[i] & 0xf];
    }
    return id;
}

}  // namespace launcher::auth
