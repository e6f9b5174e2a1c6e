// Mutual-TLS server credentials for the API's TCP listener, re-readable
// without restarting the grpc::Server or dropping a connection.
//
// grpc++ 1.51 offers no reloadable SSL credentials in C++: SslServerCredentials
// is fixed at creation, and TlsServerCredentials' certificate providers either
// never change (StaticDataCertificateProvider) or poll files on a timer
// (FileWatcherCertificateProvider), which would make SIGHUP and Reload
// meaningless and could pick up a half-written pair. The C core has what we
// need: SSL server credentials with a certificate config fetcher
// (grpc_ssl_server_credentials_create_options_using_config_fetcher), which
// the security connector calls at the start of every handshake; answering
// GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_NEW swaps its handshaker factory, so new
// handshakes use the new material while established connections keep theirs.
// server_credentials() wraps those C credentials in a grpc::ServerCredentials
// that grpc::ServerBuilder::experimental().AddExternalConnectionAcceptor
// accepts: grpc::Server::Start only calls the (private virtual)
// AddPortToServer(acceptor name, grpc_server*) of an acceptor's credentials
// (src/cpp/server/server_cc.cc), which we implement with
// grpc_server_add_http2_port, the same call SecureServerCredentials makes.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>

namespace grpc {
class ServerCredentials;
}

namespace launcher {

struct TlsFiles {
    std::filesystem::path cert;  // PEM: the server's certificate, then its chain
    std::filesystem::path key;   // PEM: its private key (unencrypted)
    std::filesystem::path
        client_ca;  // PEM: the CA certificate(s) client certificates must chain to
};

class ReloadableTlsCredentials {
public:
    // Reads and checks the three files now: the certificate parses and is
    // within its validity, the key parses and matches it, the client CA file
    // holds CA certificates. Throws sandbox::SysError (cannot read) or
    // sandbox::ConfigError (bad content), naming the file.
    explicit ReloadableTlsCredentials(TlsFiles files);
    ~ReloadableTlsCredentials();
    ReloadableTlsCredentials(const ReloadableTlsCredentials&) = delete;
    ReloadableTlsCredentials& operator=(const ReloadableTlsCredentials&) = delete;

    // Credentials that require a client certificate and verify it against
    // the client CA (GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY),
    // for ServerBuilder::experimental().AddExternalConnectionAcceptor (or
    // AddListeningPort). They follow reload() and may outlive this object.
    // A fresh object per call; each acceptor or port given one keeps its own
    // record of which generation its handshakes use.
    std::shared_ptr<grpc::ServerCredentials> server_credentials();

    // Re-reads and checks the files (file I/O: call it off the event loop).
    // On error throws as the constructor does and keeps serving the old
    // material. Otherwise the next handshake on every listener uses the new
    // material; established connections are untouched. Any thread.
    void reload();

    // 1 after construction, +1 per successful reload(). Any thread.
    std::uint64_t generation() const;

    const TlsFiles& files() const { return files_; }

    class Store;  // the current material, shared with the credentials

private:
    TlsFiles files_;
    std::shared_ptr<Store> store_;
};

}  // namespace launcher
