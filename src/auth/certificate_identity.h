// The names in a client's TLS certificate, as the API policy matches them and
// the audit trail shows them. Pure: OpenSSL parses, nothing is verified here
// (gRPC has already verified the chain against the configured client CA by
// the time a call reaches the service).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace launcher::auth {

struct CertificateIdentity {
    std::vector<std::string> uris;       // URI SANs, in order
    std::vector<std::string> dns_names;  // DNS SANs, in order
    std::string common_name;             // subject CN ("" if none)
    std::string sha256_fingerprint;      // hex, lowercase, of the DER

    // What the policy matches and the audit shows: the first URI SAN (SPIFFE
    // style), else the first DNS SAN, else the CN. Never empty for an identity
    // that certificate_identity_from_pem returned.
    const std::string& primary() const;
};

// The leaf certificate in `pem`: the first certificate of a PEM text, as
// gRPC's AuthContext property "x509_pem_cert" gives it. nullopt, and the
// reason in *error, when the text holds no certificate, when a URI, DNS or CN
// name is empty or holds a byte outside printable ASCII (a CA-signed
// "a\0b" must not pass for "a"), when the subjectAltName extension is
// malformed or repeated, when the subject has more than one CN, or when the
// certificate names nobody at all.
std::optional<CertificateIdentity> certificate_identity_from_pem(std::string_view pem,
                                                                 std::string* error = nullptr);

}  // namespace launcher::auth
