// Every request the API must refuse, with the status code and a message
// that names the field.
#include <gtest/gtest.h>

#include "test_daemon.h"

namespace {

using namespace pltest;

class ValidationTest : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        d = new TestDaemon();
        d->add_pattern("sleeper", misbehave_manifest("sleep"));
        d->start();
    }
    static void TearDownTestSuite() {
        delete d;
        d = nullptr;
    }
    static grpc::Status launch(const std::string& pattern, pb::IsolationLevel level,
                               const std::string& ns, const std::string& session,
                               const std::map<std::string, std::string>& config = {}) {
        pb::LaunchResponse r;
        return d->launch(pattern, level, ns, session, &r, config);
    }
    static TestDaemon* d;
};
TestDaemon* ValidationTest::d = nullptr;

void expect_status(const grpc::Status& s, grpc::StatusCode code, const std::string& fragment) {
    EXPECT_EQ(s.error_code(), code) << s.error_message();
    EXPECT_NE(s.error_message().find(fragment), std::string::npos)
        << "message '" << s.error_message() << "' should mention '" << fragment << "'";
}

TEST_F(ValidationTest, MissingOrUnknownPattern) {
    expect_status(launch("", pb::ISOLATION_NONE, "", ""), grpc::StatusCode::INVALID_ARGUMENT,
                  "pattern_name is required");
    expect_status(launch("nope", pb::ISOLATION_NONE, "", ""), grpc::StatusCode::NOT_FOUND,
                  "pattern not found: nope");
}

TEST_F(ValidationTest, IsolationNeedsItsIds) {
    expect_status(launch("sleeper", pb::ISOLATION_NAMESPACE, "", ""),
                  grpc::StatusCode::INVALID_ARGUMENT, "namespace is required");
    expect_status(launch("sleeper", pb::ISOLATION_SESSION, "a", ""),
                  grpc::StatusCode::INVALID_ARGUMENT, "session_id is required");
    expect_status(launch("sleeper", static_cast<pb::IsolationLevel>(7), "a", ""),
                  grpc::StatusCode::INVALID_ARGUMENT, "isolation");
}

TEST_F(ValidationTest, HostileNamesNeverTouchAPath) {
    for (const std::string& bad :
         {std::string(".."), std::string("../etc"), std::string("a/b"), std::string("A"),
          std::string("-x"), std::string(64, 'a'), std::string("nul\0x", 5), std::string("sp ace"),
          std::string("ns:colon")}) {
        expect_status(launch("sleeper", pb::ISOLATION_NAMESPACE, bad, ""),
                      grpc::StatusCode::INVALID_ARGUMENT, "namespace");
        expect_status(launch("sleeper", pb::ISOLATION_SESSION, "ok", bad),
                      grpc::StatusCode::INVALID_ARGUMENT, "session_id");
    }
    EXPECT_TRUE(d->tenant_cgroups().empty());
}

TEST_F(ValidationTest, RequestConfigIsChecked) {
    expect_status(launch("sleeper", pb::ISOLATION_NAMESPACE, "a", "", {{"GRPC_PORT", "1"}}),
                  grpc::StatusCode::INVALID_ARGUMENT, "config key 'GRPC_PORT' is reserved");
    expect_status(launch("sleeper", pb::ISOLATION_NAMESPACE, "a", "", {{"BAD-NAME", "1"}}),
                  grpc::StatusCode::INVALID_ARGUMENT, "config key 'BAD-NAME'");
    expect_status(
        launch("sleeper", pb::ISOLATION_NAMESPACE, "a", "", {{"BIG", std::string(5000, 'x')}}),
        grpc::StatusCode::INVALID_ARGUMENT, "config value of 'BIG'");
    std::map<std::string, std::string> many;
    for (int i = 0; i < 65; ++i)
        many["K" + std::to_string(i)] = "v";
    expect_status(launch("sleeper", pb::ISOLATION_NAMESPACE, "a", "", many),
                  grpc::StatusCode::INVALID_ARGUMENT, "at most 64");
}

TEST_F(ValidationTest, TerminateAndStatusOfUnknownIds) {
    pb::TerminateResponse t;
    expect_status(d->terminate("", &t), grpc::StatusCode::INVALID_ARGUMENT,
                  "process_id is required");
    expect_status(d->terminate("shared:ghost", &t), grpc::StatusCode::NOT_FOUND,
                  "process not found: shared:ghost");
    expect_status(d->terminate("shared:sleeper", &t, -1), grpc::StatusCode::INVALID_ARGUMENT,
                  "grace_period_secs");
    grpc::ClientContext ctx;
    pb::GetProcessStatusRequest req;
    req.set_process_id("shared:ghost");
    pb::GetProcessStatusResponse resp;
    ASSERT_TRUE(d->api().GetProcessStatus(&ctx, req, &resp).ok());
    EXPECT_TRUE(resp.not_found());
}

}  // namespace
