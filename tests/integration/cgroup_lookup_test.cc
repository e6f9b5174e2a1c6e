// Lookups below the cgroup2 mount start at a descriptor of its root, never
// walking /sys (sandbox/cgroup_lookup.h says why). Real kernel.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "sandbox/cgroup.h"
#include "sandbox/cgroup_lookup.h"
#include "sandbox/cgroup_mount.h"
#include "test_support.h"

namespace {

using sandbox::detail::lookup_start;

TEST(CgroupLookup, APathBelowTheMountStartsAtADescriptorOfItsRoot) {
    const std::string mount = sandbox::find_cgroup2_mount().path;
    const std::string below = mount + "/a/b";
    const sandbox::detail::LookupStart at = lookup_start(below);
    ASSERT_NE(at.dir_fd, AT_FDCWD) << below;
    EXPECT_STREQ(at.relative, "a/b");
    struct stat by_fd {
    }, by_path{};
    ASSERT_EQ(::fstat(at.dir_fd, &by_fd), 0);
    ASSERT_EQ(::stat(mount.c_str(), &by_path), 0);
    EXPECT_EQ(by_fd.st_dev, by_path.st_dev) << "the descriptor is the cgroup2 root";
    EXPECT_EQ(by_fd.st_ino, by_path.st_ino);

    EXPECT_STREQ(lookup_start(mount).relative, ".");
    EXPECT_STREQ(lookup_start(mount + "/").relative, ".");
    EXPECT_STREQ(lookup_start(mount + "//a").relative, "a");
    EXPECT_EQ(lookup_start(mount + "//a").dir_fd, at.dir_fd) << "one descriptor for all";
}

TEST(CgroupLookup, AnyOtherPathIsLookedUpAsGiven) {
    const std::string mount = sandbox::find_cgroup2_mount().path;
    for (const std::string& path : {std::string("/proc/self/status"), mount + "x/cgroup.procs",
                                    std::string("relative/x"), std::string("/sys/fs")}) {
        const sandbox::detail::LookupStart at = lookup_start(path);
        EXPECT_EQ(at.dir_fd, AT_FDCWD) << path;
        EXPECT_STREQ(at.relative, path.c_str());
    }
}

// The attack on the claim: a process whose /sys is no longer the kernel's
// (a tmpfs mounted over it in a mount namespace of its own) still creates,
// writes and removes real cgroups by their absolute paths, which only a
// walk that starts at the held descriptor can do.
TEST(CgroupLookup, GroupsAreReachedWithoutWalkingSys) {
    pltest::TestTree t;
    const std::string path = t.root() + "/lookup";
    const std::string kept = t.root() + "/kept";
    ASSERT_NE(lookup_start(path).dir_fd, AT_FDCWD);  // opened before the fork, inherited
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        if (::unshare(CLONE_NEWNS) != 0) ::_exit(10);
        if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) ::_exit(11);
        if (::mount("tmpfs", "/sys", "tmpfs", 0, nullptr) != 0) ::_exit(12);
        if (::access((t.root() + "/cgroup.procs").c_str(), F_OK) == 0) ::_exit(13);  // shadowed
        try {
            sandbox::Cgroup group = sandbox::Cgroup::create(path);
            if (!sandbox::cgroup_exists(path) || !group.processes().empty()) ::_exit(14);
            if (!group.try_remove()) ::_exit(15);
            if (sandbox::cgroup_exists(path)) ::_exit(16);
            sandbox::Cgroup::create(kept).release();
        } catch (...) {
            ::_exit(17);
        }
        ::_exit(0);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0) << "10-13: the shadowing failed; 14-17: a cgroup step";
    struct stat st {};
    EXPECT_EQ(::stat((kept + "/cgroup.procs").c_str(), &st), 0)
        << "the group the child made is in the real hierarchy";
    EXPECT_NE(::stat(path.c_str(), &st), 0) << "and the one it removed is gone";
    ::rmdir(kept.c_str());
}

}  // namespace
