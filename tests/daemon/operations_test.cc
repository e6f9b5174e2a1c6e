// Operating the daemon: manifests at start and on SIGHUP, patternctl, the socket.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "test_daemon.h"

namespace {

using namespace pltest;
using namespace std::chrono_literals;

TEST(Manifests, InvalidOnesAreListedWithFileAndLineAndSkipped) {
    TestDaemon d;
    d.add_pattern("good", misbehave_manifest("sleep"));
    d.add_pattern("typo", misbehave_manifest("sleep", "", "resources:\n  memroy_limit: 64Mi\n"));
    d.start();
    std::string log = d.log();
    EXPECT_NE(log.find(d.patterns_dir() + "/typo/manifest.yaml:"), std::string::npos) << log;
    EXPECT_NE(log.find("memroy_limit"), std::string::npos) << log;
    pb::LaunchResponse r;
    EXPECT_TRUE(d.launch("good", pb::ISOLATION_NONE, "", "", &r).ok());
    EXPECT_EQ(d.launch("typo", pb::ISOLATION_NONE, "", "", &r).error_code(),
              grpc::StatusCode::NOT_FOUND);
}

TEST(Manifests, TheDaemonRefusesToStartWithoutAValidOne) {
    TestDaemon d;
    d.add_pattern("typo", misbehave_manifest("sleep", "", "resources:\n  memroy_limit: 64Mi\n"));
    try {
        d.start();
        FAIL() << "the daemon must refuse to start";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("no valid pattern manifest"), std::string::npos)
            << e.what();
    }
}

TEST(Reload, SighupAddsAndRemovesPatternsWithoutTouchingProcesses) {
    TestDaemon d;
    d.add_pattern("first", misbehave_manifest("sleep"));
    d.start();
    pb::LaunchResponse running;
    ASSERT_TRUE(d.launch("first", pb::ISOLATION_NONE, "", "", &running).ok());

    std::filesystem::remove_all(d.patterns_dir() + "/first");
    d.add_pattern("second", misbehave_manifest("sleep"));
    ::kill(d.pid(), SIGHUP);
    pb::LaunchResponse r;
    grpc::Status s;
    for (int i = 0; i < 200; ++i) {  // the reload is asynchronous to this test
        s = d.launch("second", pb::ISOLATION_NONE, "", "", &r);
        if (s.ok()) break;
        std::this_thread::sleep_for(10ms);
    }
    EXPECT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(d.launch("first", pb::ISOLATION_NONE, "", "", &r).error_code(),
              grpc::StatusCode::NOT_FOUND)
        << "a removed manifest stops new launches";
    EXPECT_TRUE(process_alive(running.pid())) << "but not the running process";
    EXPECT_EQ(d.list().total_count(), 2);
}

TEST(Socket, ApiSocketIsGroupOnly) {
    TestDaemon d;
    d.add_pattern("p", misbehave_manifest("sleep"));
    d.start();
    struct stat st {};
    ASSERT_EQ(::stat(d.socket().c_str(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
    EXPECT_EQ(st.st_mode & 0777, 0660u);
}

class PatternctlTest : public ::testing::Test {
protected:
    void SetUp() override {
        d.add_pattern("echo", echo_manifest("http"), PL_ECHO);
        d.start();
    }
    CommandResult ctl(std::vector<std::string> args) {
        args.insert(args.begin(), {PL_PATTERNCTL, "--socket", d.socket()});
        return run_command(args);
    }
    TestDaemon d;
};

TEST_F(PatternctlTest, LaunchListStatusTerminate) {
    CommandResult launched = ctl({"launch", "echo", "--namespace", "tenant-a"});
    ASSERT_EQ(launched.exit_code, 0) << launched.err;
    EXPECT_NE(launched.out.find("ns:tenant-a:echo RUNNING"), std::string::npos) << launched.out;

    CommandResult listed = ctl({"list"});
    ASSERT_EQ(listed.exit_code, 0) << listed.err;
    EXPECT_NE(listed.out.find("PATTERN"), std::string::npos);
    EXPECT_NE(listed.out.find("PROCESS ID"), std::string::npos);
    EXPECT_NE(listed.out.find("UPTIME"), std::string::npos);
    EXPECT_NE(listed.out.find("ns:tenant-a:echo"), std::string::npos) << listed.out;

    CommandResult json = ctl({"--output", "json", "status", "ns:tenant-a:echo"});
    ASSERT_EQ(json.exit_code, 0) << json.err;
    EXPECT_NE(json.out.find("\"state\": \"RUNNING\""), std::string::npos) << json.out;

    CommandResult health = ctl({"health"});
    EXPECT_EQ(health.exit_code, 0) << health.err;
    EXPECT_NE(health.out.find("running: 1"), std::string::npos) << health.out;

    CommandResult stopped = ctl({"terminate", "ns:tenant-a:echo"});
    EXPECT_EQ(stopped.exit_code, 0) << stopped.err;
    EXPECT_NE(stopped.out.find("exited with code 0"), std::string::npos) << stopped.out;
}

TEST_F(PatternctlTest, FailuresPrintTheServersMessageAndExitNonZero) {
    CommandResult r = ctl({"launch", "echo", "--namespace", "../etc"});
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find("namespace '../etc' is invalid"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("INVALID_ARGUMENT"), std::string::npos) << r.err;
    CommandResult missing = ctl({"terminate", "ns:x:echo"});
    EXPECT_NE(missing.exit_code, 0);
    EXPECT_NE(missing.err.find("process not found"), std::string::npos) << missing.err;
}

TEST(PatternctlValidate, ReportsEachManifestOffline) {
    TestDaemon d;  // only for its directory
    d.add_pattern("good", misbehave_manifest("sleep"));
    d.add_pattern("typo", misbehave_manifest("sleep", "", "resources:\n  memroy_limit: 64Mi\n"));
    CommandResult r = run_command({PL_PATTERNCTL, "validate", d.patterns_dir()});
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.out.find("ok       good"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("invalid  " + d.patterns_dir() + "/typo/manifest.yaml:"),
              std::string::npos)
        << r.out;
    EXPECT_NE(r.out.find("1 valid, 1 invalid"), std::string::npos) << r.out;
    std::filesystem::remove_all(d.patterns_dir() + "/typo");
    EXPECT_EQ(run_command({PL_PATTERNCTL, "validate", d.patterns_dir()}).exit_code, 0);
}

TEST(PatternctlValidate, ListsWhatEachManifestGivesUpOfTheDefaultConfinement) {
    TestDaemon d;  // only for its directory
    d.add_pattern("strong", misbehave_manifest("sleep"));
    d.add_pattern("weak", misbehave_manifest("sleep", "",
                                             "sandbox:\n  network: host\n  seccomp: none\n"
                                             "  namespaces: [mount, pid]\n"));
    CommandResult r = run_command({PL_PATTERNCTL, "validate", d.patterns_dir()});
    EXPECT_EQ(r.exit_code, 0) << r.out;
    EXPECT_EQ(r.out.find("weakened strong"), std::string::npos) << r.out;
    for (const char* what : {"weakened weak: network: host", "weakened weak: seccomp: none",
                             "weakened weak: no ipc namespace", "weakened weak: no uts namespace",
                             "weakened weak: no cgroup namespace"}) {
        EXPECT_NE(r.out.find(what), std::string::npos) << what << "\n" << r.out;
    }
}

TEST(HostCheck, SpawnsWithTheFullDefaultCompartmentAndListsWeakenings) {
    TestDaemon d;  // only for its directory
    d.add_pattern("strong", misbehave_manifest("sleep"));
    d.add_pattern("rooted",
                  misbehave_manifest("sleep", "", "sandbox: {user: root, allow_root: true}\n"));
    CommandResult r = run_command({PL_LAUNCHER, "check", "--patterns-dir", d.patterns_dir()});
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_NE(r.out.find("sandboxed spawn:      ok"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("private file view"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("landlock"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("strong               default confinement"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("rooted               WEAKENED: runs as root"), std::string::npos)
        << r.out;
}

}  // namespace
