// Mutual TLS on connections the daemon accepts itself: a real grpc::Server
// fed by an accept loop through an ExternalConnectionAcceptor, real
// handshakes over 127.0.0.1, certificates made by
// tests/fixtures/make_test_pki.sh, reloads while connections stay open.
#include "api/tls_credentials.h"

#include <grpc/grpc_security_constants.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>

#include "api/api_listener.h"
#include "auth/certificate_identity.h"
#include "prism/launcher/launcher.grpc.pb.h"
#include "sandbox/error.h"

namespace {

namespace fs = std::filesystem;
using launcher::ReloadableTlsCredentials;
using launcher::TlsFiles;
using launcher::auth::certificate_identity_from_pem;

std::string read_file(const fs::path& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

std::string fingerprint_of_pem(const std::string& pem) {
    auto id = certificate_identity_from_pem(pem);
    return id ? id->sha256_fingerprint : "unparsable: " + pem.substr(0, 40);
}

std::string fingerprint_of_file(const fs::path& path) {
    return fingerprint_of_pem(read_file(path));
}

// Health only; remembers who called, by the certificate gRPC verified.
class HealthService final : public prism::launcher::PatternLauncher::CallbackService {
public:
    grpc::ServerUnaryReactor* Health(grpc::CallbackServerContext* ctx,
                                     const prism::launcher::HealthRequest*,
                                     prism::launcher::HealthResponse* response) override {
        std::string who = "no certificate";
        const auto auth = ctx->auth_context();
        if (auth && auth->IsPeerAuthenticated()) {
            const auto pems = auth->FindPropertyValues(GRPC_X509_PEM_CERT_PROPERTY_NAME);
            if (!pems.empty()) {
                auto id =
                    certificate_identity_from_pem(std::string(pems[0].data(), pems[0].size()));
                who = id ? id->primary() : "unparsable certificate";
            }
        }
        {
            std::lock_guard lock(mutex_);
            last_caller_ = who;
            last_peer_ = ctx->peer();
            ++calls_;
        }
        response->set_healthy(true);
        auto* reactor = ctx->DefaultReactor();
        reactor->Finish(grpc::Status::OK);
        return reactor;
    }
    std::string last_caller() const {
        std::lock_guard lock(mutex_);
        return last_caller_;
    }
    std::string last_peer() const {
        std::lock_guard lock(mutex_);
        return last_peer_;
    }
    int calls() const {
        std::lock_guard lock(mutex_);
        return calls_;
    }

private:
    mutable std::mutex mutex_;
    std::string last_caller_;
    std::string last_peer_;
    int calls_ = 0;
};

// The daemon's way in: accept(2) on our own listener, hand the fd to gRPC.
class AcceptLoop {
public:
    AcceptLoop(int listener, grpc::experimental::ExternalConnectionAcceptor& acceptor)
        : listener_(listener), acceptor_(acceptor), thread_([this] { run(); }) {}
    ~AcceptLoop() {
        stop_ = true;
        thread_.join();
    }
    int accepted() const { return accepted_; }

private:
    void run() {
        while (!stop_) {
            pollfd p{listener_, POLLIN, 0};
            if (::poll(&p, 1, 20) <= 0) continue;
            // Non-blocking, as gRPC's own accept path makes them.
            const int fd = ::accept4(listener_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0) continue;
            grpc::experimental::ExternalConnectionAcceptor::NewConnectionParameters params;
            params.listener_fd = listener_;
            params.fd = fd;  // gRPC owns it from here on
            ++accepted_;     // before: the handshake may finish before the call returns
            acceptor_.HandleNewConnection(&params);
        }
    }

    int listener_;
    grpc::experimental::ExternalConnectionAcceptor& acceptor_;
    std::atomic<bool> stop_{false};
    std::atomic<int> accepted_{0};
    std::thread thread_;
};

class TlsCredentialsTest : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        char tmpl[] = "/tmp/pl-tls-credentials.XXXXXX";
        ASSERT_NE(::mkdtemp(tmpl), nullptr);
        pki_ = tmpl;
        const std::string cmd = std::string("sh " PL_MAKE_TEST_PKI " '") + pki_.string() + "'";
        ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    }
    static void TearDownTestSuite() { fs::remove_all(pki_); }

    void SetUp() override {
        live_ = pki_ / ("live-" + std::to_string(::getpid()) + "-" +
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::create_directories(live_);
        install("server", "ca");
    }
    void TearDown() override {
        accept_loop_.reset();
        if (server_) server_->Shutdown(std::chrono::system_clock::now());
        server_.reset();
        acceptor_.reset();
        fs::remove_all(live_);
    }

    // The files the credentials read: copies, so that a test can replace them.
    TlsFiles live_files() const {
        return {live_ / "server.crt", live_ / "server.key", live_ / "client-ca.crt"};
    }
    void install(const std::string& server, const std::string& ca) {
        fs::copy_file(pki_ / (server + ".crt"), live_ / "server.crt",
                      fs::copy_options::overwrite_existing);
        fs::copy_file(pki_ / (server + ".key"), live_ / "server.key",
                      fs::copy_options::overwrite_existing);
        fs::copy_file(pki_ / (ca + ".crt"), live_ / "client-ca.crt",
                      fs::copy_options::overwrite_existing);
    }

    void start(ReloadableTlsCredentials& tls) {
        listener_ = launcher::bind_tcp_listener(0, port_);
        grpc::ServerBuilder builder;
        builder.RegisterService(&service_);
        acceptor_ = builder.experimental().AddExternalConnectionAcceptor(
            grpc::ServerBuilder::experimental_type::ExternalConnectionType::FROM_FD,
            tls.server_credentials());
        server_ = builder.BuildAndStart();
        ASSERT_TRUE(server_);
        accept_loop_ = std::make_unique<AcceptLoop>(listener_.get(), *acceptor_);
    }

    // A channel of its own (no subchannel shared with another channel), as
    // `client` (a PKI name, or "" for no client certificate).
    std::shared_ptr<grpc::Channel> channel(const std::string& client, int port = 0) const {
        grpc::SslCredentialsOptions options;
        options.pem_root_certs = read_file(pki_ / "ca.crt");
        if (!client.empty()) {
            options.pem_private_key = read_file(pki_ / (client + ".key"));
            options.pem_cert_chain = read_file(pki_ / (client + ".crt"));
        }
        grpc::ChannelArguments args;
        args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
        return grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(port ? port : port_),
                                         grpc::SslCredentials(options), args);
    }

    struct Outcome {
        grpc::Status status;
        std::string server_fingerprint;  // of the certificate the client saw
    };
    static Outcome call(const std::shared_ptr<grpc::Channel>& channel) {
        auto stub = prism::launcher::PatternLauncher::NewStub(channel);
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
        prism::launcher::HealthRequest request;
        prism::launcher::HealthResponse response;
        Outcome out;
        out.status = stub->Health(&ctx, request, &response);
        if (out.status.ok()) {
            const auto auth = ctx.auth_context();
            const auto pems = auth->FindPropertyValues(GRPC_X509_PEM_CERT_PROPERTY_NAME);
            if (!pems.empty()) {
                out.server_fingerprint =
                    fingerprint_of_pem(std::string(pems[0].data(), pems[0].size()));
            }
        }
        return out;
    }

    static inline fs::path pki_;
    fs::path live_;
    HealthService service_;
    sandbox::UniqueFd listener_;
    int port_ = 0;
    std::unique_ptr<grpc::experimental::ExternalConnectionAcceptor> acceptor_;
    std::unique_ptr<grpc::Server> server_;
    std::unique_ptr<AcceptLoop> accept_loop_;
};

TEST_F(TlsCredentialsTest, ClientCertificateIsVerifiedAndReachesTheService) {
    ReloadableTlsCredentials tls(live_files());
    ASSERT_NO_FATAL_FAILURE(start(tls));

    const Outcome a = call(channel("client-a"));
    ASSERT_TRUE(a.status.ok()) << a.status.error_message();
    EXPECT_EQ(service_.last_caller(), "spiffe://pattern-launcher.test/tenant-a");
    EXPECT_EQ(a.server_fingerprint, fingerprint_of_file(pki_ / "server.crt"));
    // gRPC names an externally accepted connection by getpeername(), unlike
    // AddInsecureChannelFromFd's "fd:N".
    EXPECT_EQ(service_.last_peer().rfind("ipv4:127.0.0.1:", 0), 0u) << service_.last_peer();

    ASSERT_TRUE(call(channel("client-b")).status.ok());
    EXPECT_EQ(service_.last_caller(), "b.clients.test");
    ASSERT_TRUE(call(channel("client-cn")).status.ok());
    EXPECT_EQ(service_.last_caller(), "cn-client");
    EXPECT_EQ(service_.calls(), 3);
    EXPECT_EQ(accept_loop_->accepted(), 3);  // they came in through our accept loop
}

TEST_F(TlsCredentialsTest, ClientsWithoutAValidCertificateAreRefused) {
    ReloadableTlsCredentials tls(live_files());
    ASSERT_NO_FATAL_FAILURE(start(tls));
    for (const char* client : {"", "client-other", "client-expired"}) {
        const Outcome out = call(channel(client));
        EXPECT_EQ(out.status.error_code(), grpc::StatusCode::UNAVAILABLE)
            << (*client ? client : "no certificate") << ": " << out.status.error_message();
    }
    EXPECT_EQ(service_.calls(), 0);
    // They did reach the server: the refusal is the handshake's.
    EXPECT_GE(accept_loop_->accepted(), 3);
    // And the server still serves a good client.
    EXPECT_TRUE(call(channel("client-a")).status.ok());
    EXPECT_EQ(service_.calls(), 1);
}

TEST_F(TlsCredentialsTest, ReloadServesNewHandshakesAndKeepsEstablishedConnections) {
    ReloadableTlsCredentials tls(live_files());
    ASSERT_NO_FATAL_FAILURE(start(tls));
    const std::string first = fingerprint_of_file(pki_ / "server.crt");
    const std::string second = fingerprint_of_file(pki_ / "server2.crt");
    ASSERT_NE(first, second);

    const auto established = channel("client-a");
    ASSERT_EQ(call(established).server_fingerprint, first);
    const int accepted = accept_loop_->accepted();
    EXPECT_EQ(tls.generation(), 1u);

    install("server2", "ca");
    tls.reload();
    EXPECT_EQ(tls.generation(), 2u);

    // The open connection is untouched: same connection (no new accept),
    // still the first certificate, and it keeps working.
    const Outcome again = call(established);
    ASSERT_TRUE(again.status.ok()) << again.status.error_message();
    EXPECT_EQ(again.server_fingerprint, first);
    EXPECT_EQ(accept_loop_->accepted(), accepted);

    // A new connection gets the new certificate.
    const Outcome fresh = call(channel("client-a"));
    ASSERT_TRUE(fresh.status.ok()) << fresh.status.error_message();
    EXPECT_EQ(fresh.server_fingerprint, second);
    EXPECT_EQ(accept_loop_->accepted(), accepted + 1);
}

TEST_F(TlsCredentialsTest, FailedReloadNamesTheFileAndKeepsServingTheOldMaterial) {
    ReloadableTlsCredentials tls(live_files());
    ASSERT_NO_FATAL_FAILURE(start(tls));
    const std::string first = fingerprint_of_file(pki_ / "server.crt");

    // server2's certificate with another certificate's key.
    install("server2", "ca");
    fs::copy_file(pki_ / "client-a.key", live_ / "server.key",
                  fs::copy_options::overwrite_existing);
    try {
        tls.reload();
        ADD_FAILURE() << "reload with a mismatched key succeeded";
    } catch (const sandbox::ConfigError& e) {
        EXPECT_NE(std::string(e.what()).find((live_ / "server.key").string()), std::string::npos)
            << e.what();
        EXPECT_NE(std::string(e.what()).find("does not match the certificate"), std::string::npos)
            << e.what();
    }
    // Not a key at all.
    std::ofstream(live_ / "server.key") << "garbage\n";
    try {
        tls.reload();
        ADD_FAILURE() << "reload with a garbage key succeeded";
    } catch (const sandbox::ConfigError& e) {
        EXPECT_NE(std::string(e.what()).find("TLS key " + (live_ / "server.key").string()),
                  std::string::npos)
            << e.what();
    }
    EXPECT_EQ(tls.generation(), 1u);

    const Outcome out = call(channel("client-a"));
    ASSERT_TRUE(out.status.ok()) << out.status.error_message();
    EXPECT_EQ(out.server_fingerprint, first);
}

TEST_F(TlsCredentialsTest, ReloadReplacesTheClientCa) {
    ReloadableTlsCredentials tls(live_files());
    ASSERT_NO_FATAL_FAILURE(start(tls));
    const auto established = channel("client-a");
    ASSERT_TRUE(call(established).status.ok());
    ASSERT_EQ(call(channel("client-other")).status.error_code(), grpc::StatusCode::UNAVAILABLE);

    install("server", "other-ca");
    tls.reload();

    EXPECT_TRUE(call(channel("client-other")).status.ok());
    EXPECT_EQ(service_.last_caller(), "spiffe://pattern-launcher.test/tenant-a");
    EXPECT_EQ(call(channel("client-a")).status.error_code(), grpc::StatusCode::UNAVAILABLE);
    // Trust is checked at the handshake: the connection made under the old CA stays.
    EXPECT_TRUE(call(established).status.ok());
}

TEST_F(TlsCredentialsTest, AlsoWorksOnAListeningPort) {
    ReloadableTlsCredentials tls(live_files());
    grpc::ServerBuilder builder;
    builder.RegisterService(&service_);
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", tls.server_credentials(), &port);
    server_ = builder.BuildAndStart();
    ASSERT_TRUE(server_);
    ASSERT_GT(port, 0);
    EXPECT_TRUE(call(channel("client-a", port)).status.ok());
    EXPECT_EQ(call(channel("", port)).status.error_code(), grpc::StatusCode::UNAVAILABLE);
    install("server2", "ca");
    tls.reload();
    EXPECT_EQ(call(channel("client-a", port)).server_fingerprint,
              fingerprint_of_file(pki_ / "server2.crt"));
}

TEST_F(TlsCredentialsTest, BadFilesAreRefusedAtConstructionNamingTheFile) {
    auto what = [&](TlsFiles files) -> std::string {
        try {
            ReloadableTlsCredentials tls(std::move(files));
        } catch (const std::exception& e) {
            return e.what();
        }
        return "no error";
    };
    TlsFiles files = live_files();
    files.cert = live_ / "missing.crt";
    EXPECT_NE(what(files).find("open TLS certificate " + files.cert.string()), std::string::npos)
        << what(files);

    files = live_files();
    files.key = pki_ / "server2.key";
    EXPECT_NE(what(files).find("TLS key " + files.key.string() + ": does not match"),
              std::string::npos)
        << what(files);

    files = live_files();
    files.client_ca = pki_ / "client-a.crt";
    EXPECT_NE(what(files).find("TLS client CA " + files.client_ca.string()), std::string::npos)
        << what(files);
    EXPECT_NE(what(files).find("is not a CA certificate"), std::string::npos) << what(files);

    files = {pki_ / "client-expired.crt", pki_ / "client-expired.key", pki_ / "ca.crt"};
    EXPECT_NE(what(files).find("TLS certificate " + files.cert.string() + ": has expired"),
              std::string::npos)
        << what(files);

    files = live_files();
    files.cert = pki_ / "client-a.key";  // a key where the certificate belongs
    EXPECT_NE(what(files).find("no readable PEM certificate"), std::string::npos) << what(files);

    EXPECT_EQ(what(live_files()), "no error");
}

}  // namespace
