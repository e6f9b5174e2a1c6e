// Who a pattern runs as, through the real daemon: each key its own uid and
// gid from identity_range, kept across restarts of the pattern and of the
// launcher; sandbox.user as an explicit override (with notify health checks
// and with a user namespace); root only by sandbox.allow_root; the per-key
// state directory.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "test_daemon.h"

namespace {

using namespace pltest;
using namespace std::chrono_literals;

constexpr std::uint32_t kFirstId = 1879048192;  // the default identity_range
constexpr std::uint32_t kIdCount = 65536;

struct Ids {
    std::uint32_t uid = 0, gid = 0;
    std::string groups;
};

// The real, effective, saved and fs ids must all agree; returns the real ones.
Ids ids_of(pid_t pid) {
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    Ids ids;
    for (std::string line; std::getline(status, line);) {
        std::istringstream fields(line);
        std::string key;
        fields >> key;
        std::uint32_t a = 0, b = 0, c = 0, d = 0;
        if (key == "Uid:" && fields >> a >> b >> c >> d) {
            EXPECT_TRUE(a == b && b == c && c == d) << line;
            ids.uid = a;
        } else if (key == "Gid:" && fields >> a >> b >> c >> d) {
            EXPECT_TRUE(a == b && b == c && c == d) << line;
            ids.gid = a;
        } else if (key == "Groups:") {
            std::getline(fields, ids.groups);
            ids.groups.erase(0, ids.groups.find_first_not_of(" \t"));
        }
    }
    return ids;
}

bool in_range(std::uint32_t id) {
    return id >= kFirstId && id - kFirstId < kIdCount;
}

pb::PatternInfo wait_for_new_pid(TestDaemon& d, const std::string& id, int old_pid) {
    for (int i = 0; i < 500; ++i) {
        pb::PatternInfo info = d.status(id);
        if (info.state() == pb::STATE_RUNNING && info.pid() != 0 && info.pid() != old_pid)
            return info;
        std::this_thread::sleep_for(20ms);
    }
    ADD_FAILURE() << "no new process for " << id << "\n" << d.log();
    return {};
}

TEST(Identity, EveryKeyRunsUnderItsOwnIdsWithoutSupplementaryGroups) {
    TestDaemon d;
    d.add_pattern("sleeper", misbehave_manifest("sleep"));
    d.start();
    std::set<std::uint32_t> uids;
    std::vector<pb::LaunchResponse> launched(3);
    ASSERT_TRUE(d.launch("sleeper", pb::ISOLATION_NONE, "", "", &launched[0]).ok()) << d.log();
    ASSERT_TRUE(d.launch("sleeper", pb::ISOLATION_NAMESPACE, "a", "", &launched[1]).ok());
    ASSERT_TRUE(d.launch("sleeper", pb::ISOLATION_SESSION, "a", "s1", &launched[2]).ok());
    for (const pb::LaunchResponse& r : launched) {
        pb::PatternInfo info = d.status(r.process_id());
        const Ids init = ids_of(r.pid());
        const Ids pattern = ids_of(pattern_pid(r.pid()));
        EXPECT_TRUE(in_range(info.uid())) << info.uid();
        EXPECT_EQ(info.gid(), info.uid());
        EXPECT_EQ(init.uid, info.uid()) << "the API says what the kernel runs";
        EXPECT_EQ(pattern.uid, info.uid());
        EXPECT_EQ(pattern.gid, info.uid());
        EXPECT_EQ(pattern.groups, "") << "no supplementary groups";
        EXPECT_NE(info.confinement().find("private file view"), std::string::npos)
            << info.confinement();
        EXPECT_EQ(info.weakened_size(), 0);
        uids.insert(info.uid());
    }
    EXPECT_EQ(uids.size(), 3u) << "never one id for two live keys";
}

TEST(Identity, KeptAcrossRestartsOfThePatternAndOfTheLauncher) {
    TestDaemon d;
    d.add_pattern("sleeper", misbehave_manifest("sleep", "", "restart: always\n"));
    d.start();
    pb::LaunchResponse r;
    ASSERT_TRUE(d.launch("sleeper", pb::ISOLATION_NAMESPACE, "a", "", &r).ok()) << d.log();
    const std::uint32_t uid = d.status(r.process_id()).uid();
    ASSERT_TRUE(in_range(uid));

    ::kill(pattern_pid(r.pid()), SIGKILL);  // the pattern dies; its init follows
    pb::PatternInfo again = wait_for_new_pid(d, r.process_id(), r.pid());
    EXPECT_EQ(again.uid(), uid) << "a restart keeps the key's id";
    EXPECT_EQ(ids_of(again.pid()).uid, uid);

    d.kill_hard();
    d.start();
    pb::PatternInfo adopted = d.status(r.process_id());
    ASSERT_EQ(adopted.pid(), again.pid()) << "adopted, not restarted\n" << d.log();
    EXPECT_EQ(adopted.uid(), uid) << "the state record keeps the id";

    pb::LaunchResponse other;
    ASSERT_TRUE(d.launch("sleeper", pb::ISOLATION_NAMESPACE, "b", "", &other).ok());
    EXPECT_NE(d.status(other.process_id()).uid(), uid)
        << "a restarted launcher never hands out an adopted key's id";
}

TEST(Identity, TerminatedKeysLeaveNothingRunningAsTheirId) {
    TestDaemon d;
    d.add_pattern("forker", misbehave_manifest("fork", "3"));
    d.start();
    pb::LaunchResponse r;
    ASSERT_TRUE(d.launch("forker", pb::ISOLATION_NAMESPACE, "a", "", &r).ok()) << d.log();
    const std::uint32_t uid = d.status(r.process_id()).uid();
    pb::TerminateResponse t;
    ASSERT_TRUE(d.terminate(r.process_id(), &t).ok());
    // Before the id may go to another key, nothing of this one runs as it.
    for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
        const std::string name = entry.path().filename().string();
        if (name.find_first_not_of("0123456789") != std::string::npos) continue;
        struct stat st {};
        if (::stat(entry.path().c_str(), &st) == 0) {
            EXPECT_NE(st.st_uid, uid) << "pid " << name;
        }
    }
}

TEST(SandboxUser, NotifyHealthcheckWorksForAFixedUnprivilegedUser) {
    TestDaemon d;
    d.add_pattern("nobody", misbehave_manifest("sleep", "", "sandbox: {user: \"65534\"}\n"));
    d.start();
    pb::LaunchResponse r;
    ASSERT_TRUE(d.launch("nobody", pb::ISOLATION_NAMESPACE, "a", "", &r).ok()) << d.log();
    EXPECT_TRUE(r.healthy());
    EXPECT_EQ(ids_of(pattern_pid(r.pid())).uid, 65534u);
    pb::PatternInfo info = d.status(r.process_id());
    EXPECT_EQ(info.uid(), 65534u);
    ASSERT_EQ(info.weakened_size(), 1);
    EXPECT_NE(info.weakened(0).find("fixed identity"), std::string::npos) << info.weakened(0);
}

TEST(SandboxUser, AFixedUserInAUserNamespaceIsMappedOneToOne) {
    TestDaemon d;
    d.add_pattern("mapped", misbehave_manifest("sleep", "",
                                               "sandbox:\n"
                                               "  user: \"65534\"\n"
                                               "  namespaces: [mount, pid, ipc, uts, cgroup, "
                                               "user]\n"));
    d.start();
    pb::LaunchResponse r;
    ASSERT_TRUE(d.launch("mapped", pb::ISOLATION_NAMESPACE, "a", "", &r).ok()) << d.log();
    const pid_t pattern = pattern_pid(r.pid());
    EXPECT_EQ(ids_of(pattern).uid, 65534u) << "the host sees the configured uid";
    std::ifstream map("/proc/" + std::to_string(pattern) + "/uid_map");
    std::uint32_t inside = 1, outside = 0, count = 0;
    map >> inside >> outside >> count;
    EXPECT_EQ(inside, 65534u);
    EXPECT_EQ(outside, 65534u);
    EXPECT_EQ(count, 1u);
}

TEST(SandboxUser, AFixedUserInsideTheIdentityRangeIsRefused) {
    TestDaemon d;
    d.add_pattern("squatter", misbehave_manifest("sleep", "", "sandbox: {user: \"1879048300\"}\n"));
    d.start();
    pb::LaunchResponse r;
    grpc::Status s = d.launch("squatter", pb::ISOLATION_NAMESPACE, "a", "", &r);
    EXPECT_FALSE(s.ok());
    EXPECT_NE(s.error_message().find("lies in identity_range 1879048192-1879113727"),
              std::string::npos)
        << s.error_message();
    EXPECT_TRUE(d.tenant_cgroups().empty()) << "nothing left of the refused start";
}

TEST(SandboxUser, RootNeedsAllowRootAndIsLoggedLoudly) {
    TestDaemon d;
    d.add_pattern("rooty", misbehave_manifest("sleep", "", "sandbox: {user: root}\n"));
    d.add_pattern("root-ok",
                  misbehave_manifest("sleep", "", "sandbox: {user: root, allow_root: true}\n"));
    d.start();
    pb::LaunchResponse r;
    grpc::Status refused = d.launch("rooty", pb::ISOLATION_NAMESPACE, "a", "", &r);
    EXPECT_EQ(refused.error_code(), grpc::StatusCode::NOT_FOUND)
        << "an invalid manifest is skipped";
    EXPECT_NE(d.log().find("allow_root"), std::string::npos) << d.log();
    ASSERT_TRUE(d.launch("root-ok", pb::ISOLATION_NAMESPACE, "a", "", &r).ok()) << d.log();
    EXPECT_EQ(ids_of(pattern_pid(r.pid())).uid, 0u);
    EXPECT_NE(d.log().find("ns:a:root-ok: WARNING: confinement weakened by its manifest: runs "
                           "as root"),
              std::string::npos)
        << d.log();
}

TEST(StateDirectory, OwnedByTheKeyKeptAcrossRestartsAndRemovedWithTheKey) {
    TestDaemon d;
    d.add_pattern(
        "keeper",
        misbehave_manifest("sleep", "", "restart: always\nsandbox: {state_directory: true}\n"));
    d.start();
    pb::LaunchResponse r;
    ASSERT_TRUE(d.launch("keeper", pb::ISOLATION_NAMESPACE, "a", "", &r).ok()) << d.log();
    const std::string host_dir = d.dir() + "/run/keys/" + r.process_id();
    struct stat st {};
    ASSERT_EQ(::stat(host_dir.c_str(), &st), 0) << host_dir;
    EXPECT_EQ(st.st_uid, d.status(r.process_id()).uid());
    EXPECT_EQ(st.st_mode & 0777, 0700u);
    EXPECT_EQ(read_environ(pattern_pid(r.pid()), "STATE_DIRECTORY"), "/run/pattern/state");
    std::ofstream(host_dir + "/kept") << "x";

    ::kill(pattern_pid(r.pid()), SIGKILL);
    wait_for_new_pid(d, r.process_id(), r.pid());
    EXPECT_TRUE(std::filesystem::exists(host_dir + "/kept")) << "kept across a restart";

    pb::TerminateResponse t;
    ASSERT_TRUE(d.terminate(r.process_id(), &t).ok());
    EXPECT_FALSE(std::filesystem::exists(host_dir)) << "removed with its key";
}

}  // namespace
