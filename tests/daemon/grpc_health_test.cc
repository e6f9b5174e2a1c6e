// `healthcheck: {type: grpc}`: the launcher calls the standard
// grpc.health.v1.Health/Check on the pattern's handed socket and counts it
// ready (and alive) only while the answer is SERVING. The pattern is
// pl-grpc-health (tests/fixtures/grpc_health_pattern.cc), grpc++'s own
// health service on the launcher's socket.
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <string>
#include <thread>

#include "test_daemon.h"

namespace {

using namespace pltest;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// A grpc-checked manifest body for pl-grpc-health with `env` (YAML lines
// under environment:, each "  NAME: value\n") and extra healthcheck keys.
std::string grpc_manifest(const std::string& healthcheck_keys, const std::string& env) {
    return "version: 1.0.0\n"
           "isolation_level: namespace\n"
           "healthcheck: {type: grpc, timeout: 1s" +
           healthcheck_keys +
           "}\n"
           "sandbox:\n"
           "  network: isolated\n" +
           (env.empty() ? "" : "environment:\n" + env);
}

pb::PatternInfo wait_for(TestDaemon& d, const std::string& id,
                         const std::function<bool(const pb::PatternInfo&)>& done,
                         milliseconds limit = milliseconds(20000)) {
    const auto deadline = Clock::now() + limit;
    pb::PatternInfo info;
    while (Clock::now() < deadline) {
        info = d.status(id);
        if (done(info)) return info;
        std::this_thread::sleep_for(milliseconds(50));
    }
    ADD_FAILURE() << "timed out waiting for " << id << "; last state " << info.state()
                  << ", last_error: " << info.last_error() << "\n"
                  << d.log();
    return info;
}

class GrpcHealthTest : public ::testing::Test {
protected:
    void SetUp() override {
        // NOT_SERVING for 1.5 s after start, then SERVING.
        d.add_pattern(
            "late",
            grpc_manifest(", start_timeout: 15s", "  GRPC_HEALTH_NOT_SERVING_MS: \"1500\"\n"),
            PL_GRPC_HEALTH);
        d.add_pattern(
            "never",
            grpc_manifest(", start_timeout: 2s", "  GRPC_HEALTH_NOT_SERVING_MS: forever\n"),
            PL_GRPC_HEALTH);
        d.add_pattern("named",
                      grpc_manifest(", service: pl.test.Named, start_timeout: 15s",
                                    "  GRPC_HEALTH_SERVICE: pl.test.Named\n"),
                      PL_GRPC_HEALTH);
        d.add_pattern("unknown-service",
                      grpc_manifest(", service: pl.test.Other, start_timeout: 2s",
                                    "  GRPC_HEALTH_SERVICE: pl.test.Named\n"),
                      PL_GRPC_HEALTH);
        // The echo pattern on its "grpc" socket echoes bytes: not a gRPC server.
        d.add_pattern("echo", grpc_manifest(", start_timeout: 2s", ""), PL_ECHO);
        d.start();
    }
    TestDaemon d;
};

TEST_F(GrpcHealthTest, RunningOnlyOnceThePatternReportsServing) {
    const auto asked = Clock::now();
    pb::LaunchResponse r;
    grpc::Status s = d.launch("late", pb::ISOLATION_NAMESPACE, "tenant-a", "", &r);
    const auto took = Clock::now() - asked;
    ASSERT_TRUE(s.ok()) << s.error_message() << "\n" << d.log();
    EXPECT_EQ(r.state(), pb::STATE_RUNNING);
    EXPECT_TRUE(r.healthy());
    // The socket accepts at once and the server answers at once: only the
    // status it answers (NOT_SERVING for 1.5 s) can hold the launch back.
    EXPECT_GE(took, milliseconds(1500)) << "RUNNING before the pattern said SERVING";
    EXPECT_TRUE(d.status(r.process_id()).healthy());
}

TEST_F(GrpcHealthTest, ChecksTheNamedService) {
    pb::LaunchResponse r;
    grpc::Status s = d.launch("named", pb::ISOLATION_NAMESPACE, "tenant-a", "", &r);
    ASSERT_TRUE(s.ok()) << s.error_message() << "\n" << d.log();
    EXPECT_EQ(r.state(), pb::STATE_RUNNING);

    // Same server, another service name: its health service does not know it.
    s = d.launch("unknown-service", pb::ISOLATION_NAMESPACE, "tenant-a", "", &r);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INTERNAL);
    EXPECT_NE(s.error_message().find("for service 'pl.test.Other'"), std::string::npos)
        << s.error_message();
    EXPECT_NE(s.error_message().find("NOT_FOUND"), std::string::npos) << s.error_message();
}

TEST_F(GrpcHealthTest, StayingNotServingFailsAtTheStartTimeoutNamingTheStatus) {
    const auto asked = Clock::now();
    pb::LaunchResponse r;
    grpc::Status s = d.launch("never", pb::ISOLATION_NAMESPACE, "tenant-a", "", &r);
    const auto took = Clock::now() - asked;
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INTERNAL) << s.error_message();
    EXPECT_NE(s.error_message().find("did not become healthy within 2000 ms"), std::string::npos)
        << s.error_message();
    EXPECT_NE(s.error_message().find("answered NOT_SERVING"), std::string::npos)
        << s.error_message();
    EXPECT_LT(took, milliseconds(8000)) << "well within the start timeout and the teardown";
    EXPECT_EQ(d.list().total_count(), 0);
}

TEST_F(GrpcHealthTest, APatternThatIsNoGrpcServerFailsWithAClearMessage) {
    pb::LaunchResponse r;
    grpc::Status s = d.launch("echo", pb::ISOLATION_NAMESPACE, "tenant-a", "", &r);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INTERNAL) << s.error_message();
    EXPECT_NE(s.error_message().find("did not become healthy within 2000 ms"), std::string::npos)
        << s.error_message();
    EXPECT_NE(s.error_message().find("grpc.health.v1.Health/Check on 127.0.0.1:"),
              std::string::npos)
        << s.error_message();
    EXPECT_NE(s.error_message().find("is the pattern a gRPC server"), std::string::npos)
        << s.error_message();
    EXPECT_EQ(d.list().total_count(), 0);
}

// Liveness uses the same check: a pattern that turns NOT_SERVING while
// RUNNING is restarted after failure_threshold answers in a row.
TEST(GrpcLiveness, APatternThatTurnsNotServingIsRestarted) {
    TestDaemon d;
    d.add_pattern("flaky",
                  grpc_manifest(", interval: 200ms, failure_threshold: 2, start_timeout: 15s",
                                "  GRPC_HEALTH_SERVING_MS: \"1000\"\n"),
                  PL_GRPC_HEALTH);
    d.start();
    pb::LaunchResponse r;
    ASSERT_TRUE(d.launch("flaky", pb::ISOLATION_NAMESPACE, "a", "", &r).ok()) << d.log();
    pb::PatternInfo back = wait_for(d, r.process_id(), [&](const pb::PatternInfo& i) {
        return i.restart_count() >= 1 && i.pid() != 0 && i.pid() != r.pid();
    });
    EXPECT_NE(back.last_error().find("liveness check failed 2 times"), std::string::npos)
        << back.last_error();
    EXPECT_NE(back.last_error().find("NOT_SERVING"), std::string::npos) << back.last_error();
}

}  // namespace
