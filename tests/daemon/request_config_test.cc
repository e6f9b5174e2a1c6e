// A launch request's config through the real API: only the keys a manifest
// declares (config_keys), with the values it allows, reach the pattern; the
// loader and shell variables never do, declared or not; a refusal leaves no
// process, cgroup or record behind and never repeats the value.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <set>
#include <string>

#include "test_daemon.h"

namespace {

using namespace pltest;
using Config = std::map<std::string, std::string>;

class RequestConfigTest : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        d = new TestDaemon();
        d->add_pattern("declared",
                       misbehave_manifest("sleep", "",
                                          "config_keys:\n"
                                          "  - name: BACKEND_URL\n"
                                          "    pattern: \"^https://[a-z0-9.-]+(:[0-9]+)?/.*$\"\n"
                                          "    max_length: 256\n"
                                          "  - name: LOG_LEVEL\n"
                                          "    values: [debug, info, warn]\n"
                                          "  - \"FEATURE_*\"\n"));
        d->add_pattern("plain", misbehave_manifest("sleep"));
        d->add_pattern("open", misbehave_manifest("sleep", "", "accept_any_config: true\n"));
        d->start();
    }
    static void TearDownTestSuite() {
        delete d;
        d = nullptr;
    }
    void TearDown() override {
        const pb::ListPatternsResponse listed = d->list();
        for (const auto& p : listed.patterns()) {
            pb::TerminateResponse t;
            (void)d->terminate(p.process_id(), &t, 0, true);
        }
    }

    // A refused launch: INVALID_ARGUMENT naming `fragment`, no value marked
    // "pl-cfg" in the answer or the log, and nothing left of it.
    static void expect_refused(const std::string& pattern, const Config& config,
                               const std::string& fragment) {
        const int keys_before = d->list().total_count();
        const auto cgroups_before = d->tenant_cgroups();
        const auto records_before = records();
        pb::LaunchResponse r;
        const grpc::Status s = d->launch(pattern, pb::ISOLATION_NAMESPACE, "cfg", "", &r, config);
        EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
        EXPECT_NE(s.error_message().find(fragment), std::string::npos)
            << "'" << s.error_message() << "' should say '" << fragment << "'";
        for (const auto& [key, value] : config) {
            if (value.find("pl-cfg") == std::string::npos) continue;
            EXPECT_EQ(s.error_message().find(value), std::string::npos)
                << "the value of " << key << " is echoed: " << s.error_message();
            EXPECT_EQ(d->log().find(value), std::string::npos)
                << "the value of " << key << " is in the launcher's log";
        }
        EXPECT_EQ(d->list().total_count(), keys_before) << "no key was made";
        EXPECT_EQ(d->tenant_cgroups(), cgroups_before) << "no cgroup was made";
        EXPECT_EQ(records(), records_before) << "no state record was written";
    }

    // The names in the daemon's state directory.
    static std::set<std::string> records() {
        std::set<std::string> names;
        std::error_code ec;
        for (const auto& entry : std::filesystem::directory_iterator(d->state_dir(), ec))
            names.insert(entry.path().filename().string());
        return names;
    }

    // The value of `name` in the environment of the pattern that `r` started.
    static std::string environ_of(const pb::LaunchResponse& r, const std::string& name) {
        const pid_t pattern = pattern_pid(r.pid());
        return read_environ(pattern > 0 ? pattern : r.pid(), name);
    }

    static TestDaemon* d;
};
TestDaemon* RequestConfigTest::d = nullptr;

TEST_F(RequestConfigTest, LoaderAndShellVariablesAreNeverAccepted) {
    for (const char* pattern : {"declared", "plain", "open"}) {
        SCOPED_TRACE(pattern);
        expect_refused(pattern, {{"LD_PRELOAD", "/tmp/pl-cfg-evil.so"}},
                       "config key 'LD_PRELOAD' is never accepted from a request (loader "
                       "variable)");
        expect_refused(pattern, {{"GCONV_PATH", "/tmp/pl-cfg-gconv"}},
                       "config key 'GCONV_PATH' is never accepted from a request (C library "
                       "variable)");
        expect_refused(pattern, {{"PATH", "/tmp/pl-cfg-bin"}},
                       "config key 'PATH' is never accepted from a request (shell variable)");
        expect_refused(pattern, {{"BASH_ENV", "/tmp/pl-cfg-rc"}},
                       "config key 'BASH_ENV' is never accepted from a request");
        // One bad key refuses the whole request, declared neighbours or not.
        expect_refused(pattern, {{"FEATURE_X", "1"}, {"LD_AUDIT", "/tmp/pl-cfg-audit.so"}},
                       "config key 'LD_AUDIT' is never accepted");
    }
}

TEST_F(RequestConfigTest, UndeclaredKeysAreRefused) {
    expect_refused("declared", {{"OTHER", "pl-cfg-other-value"}},
                   "config key 'OTHER' is not declared by pattern 'declared' (declared: "
                   "BACKEND_URL, LOG_LEVEL, FEATURE_*)");
    expect_refused("plain", {{"LOG_LEVEL", "debug"}},
                   "config key 'LOG_LEVEL' is not declared by pattern 'plain' (it declares no "
                   "config_keys)");
}

TEST_F(RequestConfigTest, ValuesThatTheirDeclarationRefusesAreRefused) {
    expect_refused("declared", {{"BACKEND_URL", "http://pl-cfg-secret-host/"}},
                   "config value of 'BACKEND_URL' does not match its declared pattern");
    expect_refused("declared", {{"BACKEND_URL", "https://pl-cfg-host/" + std::string(300, 'q')}},
                   "longer than its declared max_length (256)");
    expect_refused("declared", {{"LOG_LEVEL", "pl-cfg-verbose"}},
                   "config value of 'LOG_LEVEL' is not one of its declared values (debug, info, "
                   "warn)");
}

TEST_F(RequestConfigTest, DeclaredKeysReachThePatternsEnvironment) {
    pb::LaunchResponse r;
    const grpc::Status s = d->launch("declared", pb::ISOLATION_NAMESPACE, "cfg-ok", "", &r,
                                     {{"BACKEND_URL", "https://db.example:5432/app"},
                                      {"LOG_LEVEL", "warn"},
                                      {"FEATURE_NEW_UI", "on"}});
    ASSERT_TRUE(s.ok()) << s.error_message() << "\n" << d->log();
    EXPECT_EQ(environ_of(r, "BACKEND_URL"), "https://db.example:5432/app");
    EXPECT_EQ(environ_of(r, "LOG_LEVEL"), "warn");
    EXPECT_EQ(environ_of(r, "FEATURE_NEW_UI"), "on");
    EXPECT_EQ(environ_of(r, "PATH"), "/usr/local/bin:/usr/bin:/bin");
}

TEST_F(RequestConfigTest, AcceptAnyConfigLetsUndeclaredKeysThroughAndIsShownAsWeakened) {
    pb::LaunchResponse r;
    const grpc::Status s =
        d->launch("open", pb::ISOLATION_NAMESPACE, "cfg-open", "", &r, {{"ANYTHING", "1"}});
    ASSERT_TRUE(s.ok()) << s.error_message() << "\n" << d->log();
    EXPECT_EQ(environ_of(r, "ANYTHING"), "1");
    const pb::PatternInfo info = d->status(r.process_id());
    bool shown = false;
    for (const std::string& w : info.weakened())
        shown |= w.starts_with("accept_any_config: true");
    EXPECT_TRUE(shown) << "the process status lists accept_any_config as a weakening";
    EXPECT_NE(d->log().find("WARNING: confinement weakened by its manifest: accept_any_config"),
              std::string::npos)
        << d->log();

    const CommandResult v = run_command({PL_PATTERNCTL, "validate", d->patterns_dir()});
    EXPECT_NE(v.out.find("weakened open: accept_any_config: true"), std::string::npos) << v.out;
    EXPECT_EQ(v.out.find("weakened declared"), std::string::npos) << v.out;
}

}  // namespace
