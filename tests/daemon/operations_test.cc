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
    EXPECT_NE(launched.out.find("ns:tenant-a:echo STATE_RUNNING"), std::string::npos)
        << launched.out;

    CommandResult listed = ctl({"list"});
    ASSERT_EQ(listed.exit_code, 0) << listed.err;
    EXPECT_NE(listed.out.find("PATTERN"), std::string::npos);
    EXPECT_NE(listed.out.find("PROCESS ID"), std::string::npos);
    EXPECT_NE(listed.out.find("UPTIME"), std::string::npos);
    EXPECT_NE(listed.out.find("ns:tenant-a:echo"), std::string::npos) << listed.out;
    EXPECT_NE(listed.out.find(" STATE_RUNNING "), std::string::npos) << listed.out;

    CommandResult json = ctl({"--output", "json", "status", "ns:tenant-a:echo"});
    ASSERT_EQ(json.exit_code, 0) << json.err;
    EXPECT_NE(json.out.find("\"state\": \"STATE_RUNNING\""), std::string::npos) << json.out;

    CommandResult health = ctl({"health"});
    EXPECT_EQ(health.exit_code, 0) << health.err;
    EXPECT_NE(health.out.find("running: 1"), std::string::npos) << health.out;

    CommandResult stopped = ctl({"terminate", "ns:tenant-a:echo"});
    EXPECT_EQ(stopped.exit_code, 0) << stopped.err;
    EXPECT_NE(stopped.out.find("exited with code 0"), std::string::npos) << stopped.out;
}

// --state takes the wire name, or the short form in any case, as a convenience.
TEST_F(PatternctlTest, ListFiltersByStateGivenByItsWireOrShortName) {
    ASSERT_EQ(ctl({"launch", "echo", "--namespace", "tenant-a"}).exit_code, 0);
    for (const char* running : {"STATE_RUNNING", "RUNNING", "running"}) {
        CommandResult r = ctl({"list", "--state", running});
        ASSERT_EQ(r.exit_code, 0) << running << ": " << r.err;
        EXPECT_NE(r.out.find("ns:tenant-a:echo"), std::string::npos) << running << ": " << r.out;
    }
    CommandResult failed = ctl({"list", "--state", "STATE_FAILED"});
    ASSERT_EQ(failed.exit_code, 0) << failed.err;
    EXPECT_EQ(failed.out.find("ns:tenant-a:echo"), std::string::npos) << failed.out;
    CommandResult bogus = ctl({"list", "--state", "UP"});
    EXPECT_EQ(bogus.exit_code, 2);
    EXPECT_NE(bogus.err.find("expects a state of the API, e.g. STATE_RUNNING"), std::string::npos)
        << bogus.err;
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

// The TLS and token options, checked before any connection: exit 2 and a
// message naming the option (and the file). The calls against a daemon with
// TLS and tokens are in the API security tests.
class PatternctlSecurityFlags : public ::testing::Test {
protected:
    void SetUp() override {
        char dir_template[] = "/tmp/pl-ctl-flags-XXXXXX";
        ASSERT_NE(::mkdtemp(dir_template), nullptr);
        dir = dir_template;
    }
    void TearDown() override { std::filesystem::remove_all(dir); }
    std::string write(const std::string& name, const std::string& text, mode_t mode = 0600) {
        const std::string path = dir + "/" + name;
        std::ofstream(path) << text;
        ::chmod(path.c_str(), mode);
        return path;
    }
    static CommandResult ctl(std::vector<std::string> args) {
        args.insert(args.begin(), PL_PATTERNCTL);
        return run_command(args);
    }
    // A real self-signed certificate and key (openssl is a test dependency).
    static constexpr const char* kOpenssl = "/usr/bin/openssl";
    void make_certificate() {
        CommandResult r =
            run_command({kOpenssl, "req", "-x509", "-newkey", "ec", "-pkeyopt",
                         "ec_paramgen_curve:P-256", "-nodes", "-days", "1", "-subj",
                         "/CN=localhost", "-keyout", dir + "/c.key", "-out", dir + "/c.crt"});
        ASSERT_EQ(r.exit_code, 0) << r.err;
    }
    std::string dir;
};

TEST_F(PatternctlSecurityFlags, OptionsThatNeedOthersAreUsageErrors) {
    const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
        {{"--address", "127.0.0.1:1", "--tls-ca", "ca", "--tls-cert", "c", "list"},
         "--tls-cert requires --tls-key"},
        {{"--address", "127.0.0.1:1", "--tls-ca", "ca", "--tls-key", "k", "list"},
         "--tls-key requires --tls-cert"},
        {{"--address", "127.0.0.1:1", "--tls-cert", "c", "--tls-key", "k", "list"},
         "requires --tls-ca"},
        {{"--tls-ca", "ca", "list"}, "--tls-ca requires --address"},
        {{"--address", "127.0.0.1:1", "--tls-server-name", "localhost", "list"},
         "--tls-server-name requires --tls-ca"},
    };
    for (const auto& [args, message] : cases) {
        CommandResult r = ctl(args);
        EXPECT_EQ(r.exit_code, 2) << message;
        EXPECT_NE(r.err.find(message), std::string::npos) << r.err;
    }
}

TEST_F(PatternctlSecurityFlags, UnusableFilesAreNamedInTheError) {
    ASSERT_NO_FATAL_FAILURE(make_certificate());
    const std::string crt = dir + "/c.crt", key = dir + "/c.key";
    const std::string missing = dir + "/missing.crt";
    const std::string text = write("notes.txt", "not a certificate\n");
    const std::vector<std::string> tcp = {"--address", "127.0.0.1:1"};
    auto with = [&](std::vector<std::string> more) {
        std::vector<std::string> args = tcp;
        args.insert(args.end(), more.begin(), more.end());
        args.push_back("list");
        return ctl(args);
    };
    const std::vector<std::pair<CommandResult, std::string>> cases = {
        {with({"--tls-ca", missing}),
         "--tls-ca " + missing + ": cannot open: No such file or directory"},
        {with({"--tls-ca", dir}), "--tls-ca " + dir + ": is a directory"},
        {with({"--tls-ca", text}), "--tls-ca " + text + ": no PEM certificate in it"},
        {with({"--tls-ca", crt, "--tls-cert", text, "--tls-key", key}),
         "--tls-cert " + text + ": no PEM certificate in it"},
        {with({"--tls-ca", crt, "--tls-cert", crt, "--tls-key", crt}),
         "--tls-key " + crt + ": no PEM private key in it"},
        {with({"--tls-ca", crt, "--tls-cert", crt, "--tls-key", missing}),
         "--tls-key " + missing + ": cannot open"},
    };
    for (const auto& [r, message] : cases) {
        EXPECT_EQ(r.exit_code, 2) << message;
        EXPECT_NE(r.err.find(message), std::string::npos) << r.err;
    }
    // Good files pass the checks: the call itself fails (nothing listens on port 1).
    CommandResult good = with(
        {"--tls-ca", crt, "--tls-cert", crt, "--tls-key", key, "--tls-server-name", "localhost"});
    EXPECT_EQ(good.exit_code, 1) << good.err;
    EXPECT_NE(good.err.find("UNAVAILABLE"), std::string::npos) << good.err;
}

TEST_F(PatternctlSecurityFlags, TokenFileIsCheckedAndWarnedAbout) {
    const std::string nowhere = dir + "/no.sock";  // the calls fail: UNAVAILABLE, exit 1
    const std::string empty = write("empty", " \n\t\n");
    CommandResult r = ctl({"--socket", nowhere, "--token-file", empty, "list"});
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_NE(r.err.find("--token-file " + empty + ": is empty"), std::string::npos) << r.err;

    const std::string two = write("two", "aaa.bbb.ccc\nddd.eee.fff\n");
    r = ctl({"--socket", nowhere, "--token-file", two, "list"});
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_NE(r.err.find("--token-file " + two + ": holds more than one token"), std::string::npos)
        << r.err;

    r = ctl({"--socket", nowhere, "--token-file", dir + "/absent", "list"});
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_NE(r.err.find("--token-file " + dir + "/absent: cannot open"), std::string::npos)
        << r.err;

    // A good token (whitespace trimmed) in a private file: no warning; the call is made.
    const std::string mine = write("token", "  aaa.bbb.ccc\n");
    r = ctl({"--socket", nowhere, "--token-file", mine, "list"});
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_NE(r.err.find("UNAVAILABLE"), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("warning"), std::string::npos) << r.err;

    // Readable by everyone: a warning, not a refusal.
    const std::string open_file = write("open-token", "aaa.bbb.ccc\n", 0644);
    r = ctl({"--socket", nowhere, "--token-file", open_file, "list"});
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_NE(
        r.err.find("warning: --token-file " + open_file + " is readable by every user (mode 0644)"),
        std::string::npos)
        << r.err;

    // Over TCP without TLS: a warning too.
    r = ctl({"--address", "127.0.0.1:1", "--token-file", mine, "list"});
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_NE(r.err.find("warning: the token goes to 127.0.0.1:1 over TCP without TLS"),
              std::string::npos)
        << r.err;
}

}  // namespace
