// What every user of OpenSSL in the launcher needs: deleters for the
// handles several files hold, and the error queue as text.
#pragma once

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <string>

namespace launcher::auth {

struct BioFree {
    void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
    void operator()(X509* x) const { X509_free(x); }
};
struct PkeyFree {
    void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};

// OpenSSL's queued errors as one string, and the queue emptied: a stale
// error left in this thread's queue would be reported later by unrelated
// TLS code (gRPC's) on the same thread.
std::string openssl_errors();

}  // namespace launcher::auth
