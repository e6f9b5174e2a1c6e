// HealthProbe::start_grpc against a real grpc++ server in this process (its
// built-in grpc.health.v1 service) and against sockets that never answer:
// the verdicts, the timeout, and that a cancelled or destroyed probe never
// calls back, nor touches a loop that is gone.
#include <arpa/inet.h>
#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "common/event_loop.h"
#include "core/health_probe.h"

namespace {

using namespace std::chrono_literals;
using launcher::EventLoop;
using launcher::HealthProbe;

struct Verdict {
    bool ok = false;
    std::string detail;
};

// A gRPC server on 127.0.0.1 with only the built-in health service.
class HealthServer {
public:
    HealthServer() {
        grpc::EnableDefaultHealthCheckService(true);
        grpc::ServerBuilder builder;
        builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
        builder.RegisterCallbackGenericService(&unimplemented_);
        server_ = builder.BuildAndStart();
    }
    ~HealthServer() { server_->Shutdown(std::chrono::system_clock::now()); }
    int port() const { return port_; }
    grpc::HealthCheckServiceInterface& health() { return *server_->GetHealthCheckService(); }

private:
    int port_ = 0;
    grpc::CallbackGenericService unimplemented_;
    std::unique_ptr<grpc::Server> server_;
};

// A socket that listens and never accepts: connects succeed (the backlog),
// nothing ever answers.
struct SilentListener {
    SilentListener() {
        fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
        ::listen(fd, 16);
        socklen_t len = sizeof addr;
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
        port = ntohs(addr.sin_port);
    }
    ~SilentListener() { ::close(fd); }
    int fd = -1;
    int port = 0;
};

// Runs the loop until the probe has answered (or `limit` passed).
std::optional<Verdict> probe(EventLoop& loop, int port, const std::string& service,
                             std::chrono::milliseconds timeout,
                             std::chrono::milliseconds limit = 10s) {
    std::optional<Verdict> verdict;
    auto p = HealthProbe::start_grpc(loop, port, service, timeout,
                                     [&](bool ok, const std::string& detail) {
                                         EXPECT_FALSE(verdict) << "done ran twice";
                                         verdict = Verdict{ok, detail};
                                     });
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!verdict && std::chrono::steady_clock::now() < deadline)
        loop.run_once(50);
    return verdict;
}

TEST(GrpcHealthProbe, ServingIsHealthy) {
    HealthServer server;
    server.health().SetServingStatus(true);
    EventLoop loop;
    auto v = probe(loop, server.port(), "", 2s);
    ASSERT_TRUE(v);
    EXPECT_TRUE(v->ok) << v->detail;
    EXPECT_EQ(v->detail, "SERVING");
}

TEST(GrpcHealthProbe, NotServingIsUnhealthyAndNamed) {
    HealthServer server;
    server.health().SetServingStatus(false);
    EventLoop loop;
    auto v = probe(loop, server.port(), "", 2s);
    ASSERT_TRUE(v);
    EXPECT_FALSE(v->ok);
    EXPECT_EQ(v->detail, "grpc.health.v1.Health/Check on 127.0.0.1:" +
                             std::to_string(server.port()) + " answered NOT_SERVING");
}

TEST(GrpcHealthProbe, AsksAboutTheNamedService) {
    HealthServer server;
    server.health().SetServingStatus(false);  // the server as a whole
    server.health().SetServingStatus("pl.test.Named", true);
    EventLoop loop;
    auto named = probe(loop, server.port(), "pl.test.Named", 2s);
    ASSERT_TRUE(named);
    EXPECT_TRUE(named->ok) << named->detail;
    auto other = probe(loop, server.port(), "pl.test.Other", 2s);
    ASSERT_TRUE(other);
    EXPECT_FALSE(other->ok);
    EXPECT_NE(other->detail.find("for service 'pl.test.Other'"), std::string::npos)
        << other->detail;
    EXPECT_NE(other->detail.find("NOT_FOUND"), std::string::npos) << other->detail;
}

TEST(GrpcHealthProbe, NothingListeningIsUnavailable) {
    SilentListener taken;  // a port that is ours, then closed
    const int port = taken.port;
    ::close(taken.fd);
    taken.fd = -1;
    EventLoop loop;
    auto v = probe(loop, port, "", 2s);
    ASSERT_TRUE(v);
    EXPECT_FALSE(v->ok);
    EXPECT_NE(v->detail.find("UNAVAILABLE"), std::string::npos) << v->detail;
    EXPECT_NE(v->detail.find("is the pattern a gRPC server"), std::string::npos) << v->detail;
}

TEST(GrpcHealthProbe, ASilentPeerTimesOutAtTheDeadline) {
    SilentListener silent;
    EventLoop loop;
    const auto started = std::chrono::steady_clock::now();
    auto v = probe(loop, silent.port, "", 300ms);
    const auto took = std::chrono::steady_clock::now() - started;
    ASSERT_TRUE(v);
    EXPECT_FALSE(v->ok);
    EXPECT_NE(v->detail.find("timed out after 300 ms"), std::string::npos) << v->detail;
    EXPECT_GE(took, 250ms);
    EXPECT_LT(took, 5s);
}

TEST(GrpcHealthProbe, TheLoopKeepsRunningWhileACallIsInFlight) {
    SilentListener silent;
    EventLoop loop;
    bool answered = false;
    auto p = HealthProbe::start_grpc(loop, silent.port, "", 2s,
                                     [&](bool, const std::string&) { answered = true; });
    bool ticked = false;
    auto timer = loop.timer(50ms, [&] { ticked = true; });
    const auto started = std::chrono::steady_clock::now();
    while (!ticked)
        loop.run_once(20);
    EXPECT_LT(std::chrono::steady_clock::now() - started, 1s);
    EXPECT_FALSE(answered);
    p->cancel();
}

TEST(GrpcHealthProbe, ACancelledProbeNeverCallsBack) {
    SilentListener silent;
    EventLoop loop;
    int calls = 0;
    auto p = HealthProbe::start_grpc(loop, silent.port, "", 300ms,
                                     [&](bool, const std::string&) { ++calls; });
    p->cancel();
    const auto until = std::chrono::steady_clock::now() + 800ms;  // past the deadline
    while (std::chrono::steady_clock::now() < until)
        loop.run_once(20);
    EXPECT_EQ(calls, 0);
}

// The key (and its probe), then the loop, go while the call is in flight:
// its completion must find nothing to post to.
TEST(GrpcHealthProbe, ADestroyedProbeAndLoopAreNotTouchedByALateCompletion) {
    SilentListener silent;
    int calls = 0;
    for (int i = 0; i < 20; ++i) {
        auto loop = std::make_unique<EventLoop>();
        auto p = HealthProbe::start_grpc(*loop, silent.port, "", 100ms,
                                         [&](bool, const std::string&) { ++calls; });
        loop->run_once(0);
        p.reset();
        loop.reset();
    }
    std::this_thread::sleep_for(400ms);  // every deadline has passed
    EXPECT_EQ(calls, 0);
}

}  // namespace
