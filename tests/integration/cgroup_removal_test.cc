// What an event loop needs from cgroupfs without ever blocking: removal in
// one non-waiting attempt, the walk of child groups, pid membership, and
// systemd's delegation mark. Real kernel, real processes.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "sandbox/cgroup.h"
#include "sandbox/cgroup_mount.h"
#include "sandbox/error.h"
#include "test_support.h"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using pltest::TestTree;

bool exists(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0;
}

TEST(CgroupTryRemove, ABusyGroupStaysAndNothingWaitsOrIsKilled) {
    TestTree t;
    sandbox::Cgroup group = t.tree().create_group("key");
    sandbox::Cgroup run = group.create_child("run.1");
    sandbox::Cgroup spare = group.create_child("run.0");
    auto spec = pltest::misbehave({"sleep"});
    spec.cgroup_fd = run.dir_fd();
    sandbox::SpawnResult child = sandbox::spawn(spec);
    const std::string run_path = run.release();
    const std::string spare_path = spare.release();

    const auto before = Clock::now();
    EXPECT_FALSE(group.try_remove()) << "a group with a process in it cannot be removed";
    // remove() would have waited for its timeout here; try_remove() makes
    // one rmdir per directory and returns.
    EXPECT_LT(Clock::now() - before, 1s);
    EXPECT_TRUE(exists(group.path()));
    EXPECT_TRUE(exists(run_path));
    EXPECT_FALSE(exists(spare_path)) << "empty descendants go on the first attempt";
    EXPECT_TRUE(group.owned());
    EXPECT_FALSE(child.process.has_exited()) << "try_remove() must not kill";
    group.kill();
}

// The loop's way: kill, wait for POLLPRI on cgroup.events until populated is
// 0, then try_remove() on a short timer until the kernel has let go.
TEST(CgroupTryRemove, AfterTheGroupEmptiesItIsRemovedDeepestFirst) {
    TestTree t;
    sandbox::Cgroup group = t.tree().create_group("key");
    sandbox::Cgroup run = group.create_child("run.1");
    run.create_child("deeper").release();
    auto spec = pltest::misbehave({"fork", "3"});
    spec.cgroup_fd = run.dir_fd();
    pltest::Running running = pltest::start_captured(spec);
    running.read_until("forked 3");
    const std::string path = group.path();
    run.release();

    sandbox::UniqueFd events = group.open_events();
    ASSERT_FALSE(group.try_remove());
    group.kill();
    const auto deadline = Clock::now() + 10s;
    while (group.populated() && Clock::now() < deadline) {
        pollfd p{events.get(), POLLPRI, 0};
        ::poll(&p, 1, 100);
    }
    ASSERT_FALSE(group.populated());
    int attempts = 1;
    while (!group.try_remove() && Clock::now() < deadline) {
        std::this_thread::sleep_for(1ms);  // the loop's short retry timer
        ++attempts;
    }
    EXPECT_FALSE(exists(path)) << "after " << attempts << " attempts";
    EXPECT_FALSE(group.owned()) << "a removed group is owned no more";
    EXPECT_TRUE(group.try_remove()) << "gone already (ENOENT) counts as removed";
    EXPECT_NO_THROW(group.kill()) << "killing a group that is gone is no error";
    running.process.reap();
}

TEST(CgroupTryRemove, AnErrorOtherThanBusyIsThrownWithThePath) {
    // Not cgroupfs: a directory with a file in it, which rmdir refuses with
    // ENOTEMPTY, an error that retrying never cures.
    const std::filesystem::path dir =
        std::filesystem::temp_directory_path() / ("pl-try-remove." + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    std::ofstream(dir / "file") << "x";
    sandbox::Cgroup group = sandbox::Cgroup::adopt(dir.string());
    try {
        group.try_remove();
        ADD_FAILURE() << "ENOTEMPTY must be thrown";
    } catch (const sandbox::SysError& e) {
        EXPECT_EQ(e.code(), ENOTEMPTY);
        EXPECT_NE(std::string(e.what()).find(dir.string()), std::string::npos) << e.what();
    }
    group.release();
    std::filesystem::remove_all(dir);
}

TEST(CgroupWalk, ChildNamesAreTheSubgroupsSorted) {
    TestTree t;
    sandbox::Cgroup group = t.tree().create_group("walk");
    for (const char* name : {"run.2", "run.10", "a"})
        group.create_child(name).release();
    const std::vector<std::string> want{"a", "run.10", "run.2"};
    EXPECT_EQ(group.child_names(), want) << "no interface files, every group, sorted";
    EXPECT_EQ(sandbox::cgroup_child_names(group.path()), want);
    EXPECT_TRUE(sandbox::cgroup_child_names(group.path() + "/run.2").empty());
    EXPECT_TRUE(sandbox::cgroup_child_names(group.path() + "/missing").empty());
    group.remove();
}

TEST(CgroupWalk, HasPidSeesOnlyTheGroupsOwnProcesses) {
    TestTree t;
    sandbox::Cgroup group = t.tree().create_group("member");
    sandbox::Cgroup leaf = group.create_child("run.1");
    auto spec = pltest::misbehave({"sleep"});
    spec.cgroup_fd = leaf.dir_fd();
    sandbox::SpawnResult child = sandbox::spawn(spec);
    const pid_t pid = child.process.pid();
    EXPECT_TRUE(sandbox::cgroup_has_pid(leaf.path(), pid));
    EXPECT_FALSE(sandbox::cgroup_has_pid(group.path(), pid)) << "descendants do not count";
    EXPECT_FALSE(sandbox::cgroup_has_pid(leaf.path(), ::getpid()));
    EXPECT_FALSE(sandbox::cgroup_has_pid(leaf.path() + "/missing", pid));
    leaf.kill();
}

TEST(CgroupDelegation, TheXattrSystemdSetsMarksADelegatedGroup) {
    TestTree t;
    sandbox::Cgroup group = t.tree().create_group("unit.service");
    const std::string path = group.path();
    EXPECT_FALSE(sandbox::cgroup_is_delegated(path));
    if (::setxattr(path.c_str(), "trusted.delegate", "1", 1, 0) != 0) {
        GTEST_SKIP() << "cannot set trusted.* xattrs on cgroupfs here (errno " << errno
                     << "; runs in the VM suite)";
    }
    EXPECT_TRUE(sandbox::cgroup_is_delegated(path));
    ASSERT_EQ(::setxattr(path.c_str(), "trusted.delegate", "0", 1, 0), 0);
    EXPECT_FALSE(sandbox::cgroup_is_delegated(path)) << "the trusted mark decides when present";
    ASSERT_EQ(::removexattr(path.c_str(), "trusted.delegate"), 0);
    if (::setxattr(path.c_str(), "user.delegate", "1", 1, 0) == 0) {  // Linux 5.7
        EXPECT_TRUE(sandbox::cgroup_is_delegated(path));
    }
    EXPECT_FALSE(sandbox::cgroup_is_delegated(path + "/missing"));
}

}  // namespace
