#include "api/tls_credentials.h"

#include <fcntl.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpcpp/security/server_credentials.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <cerrno>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "auth/openssl_support.h"
#include "sandbox/error.h"
#include "sandbox/unique_fd.h"

namespace launcher {

namespace {

// What a handshake needs, as gRPC takes it: PEM text.
struct TlsMaterial {
    std::string cert_chain;
    std::string private_key;
    std::string client_ca;
    TlsMaterial() = default;
    TlsMaterial(const TlsMaterial&) = delete;
    TlsMaterial& operator=(const TlsMaterial&) = delete;
    ~TlsMaterial() { OPENSSL_cleanse(private_key.data(), private_key.size()); }
};

using auth::BioFree;
using auth::openssl_errors;
using auth::PkeyFree;
using auth::X509Free;
using X509Ptr = std::unique_ptr<X509, X509Free>;

[[noreturn]] void bad_file(std::string_view what, const std::filesystem::path& path,
                           std::string_view problem) {
    throw sandbox::ConfigError("TLS " + std::string(what) + " " + path.string() + ": " +
                               std::string(problem));
}

std::string read_small_file(std::string_view what, const std::filesystem::path& path) {
    constexpr std::size_t kMax = 1 << 20;  // a PEM chain is a few KiB
    sandbox::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
    if (!fd) sandbox::throw_sys_error(errno, "open TLS " + std::string(what), path.string());
    std::string data;
    char buf[8192];
    for (;;) {
        const ssize_t n = ::read(fd.get(), buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) sandbox::throw_sys_error(errno, "read TLS " + std::string(what), path.string());
        if (n == 0) break;
        data.append(buf, static_cast<std::size_t>(n));
        if (data.size() > kMax) bad_file(what, path, "larger than 1 MiB");
    }
    OPENSSL_cleanse(buf, sizeof buf);
    return data;
}

std::unique_ptr<BIO, BioFree> memory_bio(const std::string& data) {
    std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
    if (!bio) throw std::bad_alloc();
    return bio;
}

// Every certificate in a PEM text, in order; none is an error.
std::vector<X509Ptr> read_certificates(std::string_view what, const std::filesystem::path& path,
                                       const std::string& pem) {
    ERR_clear_error();
    auto bio = memory_bio(pem);
    std::vector<X509Ptr> certs;
    while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
        certs.emplace_back(cert);
    }
    // The loop ends at the end of the text (PEM_R_NO_START_LINE) or at a
    // block that does not parse: only the former is fine.
    const unsigned long last = ERR_peek_last_error();
    if (!certs.empty() && ERR_GET_LIB(last) == ERR_LIB_PEM &&
        ERR_GET_REASON(last) == PEM_R_NO_START_LINE) {
        ERR_clear_error();
    } else if (last != 0 || certs.empty()) {
        bad_file(what, path, "no readable PEM certificate (" + openssl_errors() + ")");
    }
    return certs;
}

// No passphrase prompt on the daemon's terminal: an encrypted key fails.
int no_passphrase(char*, int, int, void*) {
    return 0;
}

std::shared_ptr<const TlsMaterial> load_material(const TlsFiles& files) {
    auto material = std::make_shared<TlsMaterial>();
    material->cert_chain = read_small_file("certificate", files.cert);
    material->private_key = read_small_file("key", files.key);
    material->client_ca = read_small_file("client CA", files.client_ca);

    const std::vector<X509Ptr> chain =
        read_certificates("certificate", files.cert, material->cert_chain);
    X509* leaf = chain.front().get();
    if (X509_cmp_current_time(X509_get0_notAfter(leaf)) < 0) {
        bad_file("certificate", files.cert, "has expired");
    }
    if (X509_cmp_current_time(X509_get0_notBefore(leaf)) > 0) {
        bad_file("certificate", files.cert, "is not valid yet");
    }

    ERR_clear_error();
    auto key_bio = memory_bio(material->private_key);
    std::unique_ptr<EVP_PKEY, PkeyFree> key(
        PEM_read_bio_PrivateKey(key_bio.get(), nullptr, no_passphrase, nullptr));
    if (!key) {
        bad_file("key", files.key,
                 "no readable unencrypted PEM private key (" + openssl_errors() + ")");
    }
    if (X509_check_private_key(leaf, key.get()) != 1) {
        ERR_clear_error();
        bad_file("key", files.key, "does not match the certificate " + files.cert.string());
    }

    const std::vector<X509Ptr> cas =
        read_certificates("client CA", files.client_ca, material->client_ca);
    for (std::size_t i = 0; i < cas.size(); ++i) {
        if (X509_check_ca(cas[i].get()) < 1) {
            char subject[256] = {};
            X509_NAME_oneline(X509_get_subject_name(cas[i].get()), subject, sizeof subject);
            bad_file("client CA", files.client_ca,
                     "certificate " + std::to_string(i + 1) + " (" + subject +
                         ") is not a CA certificate");
        }
    }
    return material;
}

}  // namespace

class ReloadableTlsCredentials::Store {
public:
    explicit Store(std::shared_ptr<const TlsMaterial> material) : material_(std::move(material)) {}

    void replace(std::shared_ptr<const TlsMaterial> material) {
        std::lock_guard lock(mutex_);
        material_ = std::move(material);
        ++generation_;
    }
    std::pair<std::shared_ptr<const TlsMaterial>, std::uint64_t> current() const {
        std::lock_guard lock(mutex_);
        return {material_, generation_};
    }

private:
    mutable std::mutex mutex_;
    std::shared_ptr<const TlsMaterial> material_;
    std::uint64_t generation_ = 1;
};

namespace {

// One per C credentials object, i.e. per security connector (gRPC makes one
// connector per port or acceptor): the generation its handshaker factory was
// built from. Owned by the C credentials, which free it through the auth
// metadata processor's destroy hook when the last connector lets go, so it
// lives exactly as long as gRPC may call fetch().
struct Fetcher {
    std::shared_ptr<ReloadableTlsCredentials::Store> store;
    std::mutex mutex;
    std::uint64_t delivered = 0;  // nothing yet: the first fetch builds the factory
};

// grpc_ssl_server_certificate_config_callback: called by the SSL security
// connector when it is created and at the start of every handshake
// (add_handshakers in ssl_security_connector.cc). RELOAD_NEW makes it build a
// new handshaker factory from *config (it copies the strings and destroys
// the config); a factory that fails to build leaves the old one serving.
grpc_ssl_certificate_config_reload_status fetch(void* user_data,
                                                grpc_ssl_server_certificate_config** config) {
    auto* fetcher = static_cast<Fetcher*>(user_data);
    try {
        auto [material, generation] = fetcher->store->current();
        std::lock_guard lock(fetcher->mutex);
        if (generation == fetcher->delivered) return GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_UNCHANGED;
        grpc_ssl_pem_key_cert_pair pair{material->private_key.c_str(),
                                        material->cert_chain.c_str()};
        *config = grpc_ssl_server_certificate_config_create(material->client_ca.c_str(), &pair, 1);
        if (*config == nullptr) return GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_FAIL;
        fetcher->delivered = generation;
        return GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_NEW;
    } catch (...) {
        // Never unwind into C: gRPC keeps the previous factory.
        return GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_FAIL;
    }
}

void destroy_fetcher(void* state) {
    delete static_cast<Fetcher*>(state);
}

class FetcherServerCredentials final : public grpc::ServerCredentials {
public:
    explicit FetcherServerCredentials(std::shared_ptr<ReloadableTlsCredentials::Store> store)
        : store_(std::move(store)) {}
    ~FetcherServerCredentials() override {
        for (grpc_server_credentials* c : created_)
            grpc_server_credentials_release(c);
    }

    // The slot holds our fetcher's lifetime hook; authorization is the
    // service's job (api_policy), not an AuthMetadataProcessor's.
    void SetAuthMetadataProcessor(const std::shared_ptr<grpc::AuthMetadataProcessor>&) override {
        throw std::logic_error(
            "ReloadableTlsCredentials do not take an AuthMetadataProcessor; authorize in the "
            "service");
    }

private:
    // Called by grpc::Server::Start for an external connection acceptor
    // ("external:N") or by Server::AddListeningPort: before the server starts,
    // on the thread that builds it.
    int AddPortToServer(const std::string& addr, grpc_server* server) override {
        auto fetcher = std::make_unique<Fetcher>();
        fetcher->store = store_;
        grpc_ssl_server_credentials_options* options =
            grpc_ssl_server_credentials_create_options_using_config_fetcher(
                GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY, fetch, fetcher.get());
        // Takes ownership of options, even on failure.
        grpc_server_credentials* creds = grpc_ssl_server_credentials_create_with_options(options);
        if (creds == nullptr) return 0;
        // process == nullptr: the server auth filter skips the processor
        // (server_auth_filter.cc) and only destroy runs, with the credentials.
        grpc_server_credentials_set_auth_metadata_processor(
            creds, grpc_auth_metadata_processor{nullptr, destroy_fetcher, fetcher.release()});
        created_.push_back(creds);
        // The security connector is made here and fetches the first material
        // now; a failure returns 0 (which Server::Start ignores for acceptors:
        // hence the checks in ReloadableTlsCredentials' constructor).
        return grpc_server_add_http2_port(server, addr.c_str(), creds);
    }

    std::shared_ptr<ReloadableTlsCredentials::Store> store_;
    std::vector<grpc_server_credentials*> created_;
};

}  // namespace

ReloadableTlsCredentials::ReloadableTlsCredentials(TlsFiles files)
    : files_(std::move(files)), store_(std::make_shared<Store>(load_material(files_))) {}

ReloadableTlsCredentials::~ReloadableTlsCredentials() = default;

std::shared_ptr<grpc::ServerCredentials> ReloadableTlsCredentials::server_credentials() {
    return std::make_shared<FetcherServerCredentials>(store_);
}

void ReloadableTlsCredentials::reload() {
    store_->replace(load_material(files_));
}

std::uint64_t ReloadableTlsCredentials::generation() const {
    return store_->current().second;
}

}  // namespace launcher
