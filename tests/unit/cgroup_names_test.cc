#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "sandbox/cgroup.h"
#include "sandbox/cgroup_mount.h"
#include "sandbox/error.h"

namespace {

TEST(CgroupNames, AcceptsIsolationKeys) {
    for (const char* good : {"shared:echo", "ns:tenant-a:echo", "session:s.1:echo", "a", "A_b@c"}) {
        EXPECT_TRUE(sandbox::is_valid_cgroup_name(good)) << good;
    }
}

TEST(CgroupNames, RejectsWhatCouldEscapeOrCollide) {
    for (const std::string& bad : std::vector<std::string>{
             "", ".", "..", "a/b", "/abs", "../x", std::string("a\0b", 3), "cgroup.procs",
             "cgroup.kill", "sp ace", "tab\t", "new\nline", std::string(256, 'x'), "ünïcode"}) {
        EXPECT_FALSE(sandbox::is_valid_cgroup_name(bad)) << bad;
        EXPECT_THROW(sandbox::validate_cgroup_name(bad), sandbox::ConfigError);
    }
    EXPECT_TRUE(sandbox::is_valid_cgroup_name(std::string(255, 'x')));
}

TEST(ProcCgroup, FindsTheV2Entry) {
    EXPECT_EQ(sandbox::parse_v2_cgroup_entry("0::/system.slice/pl.service\n"),
              "/system.slice/pl.service");
    EXPECT_EQ(sandbox::parse_v2_cgroup_entry("12:pids:/\n4:memory:/x\n0::/\n"), "/");
    EXPECT_THROW(sandbox::parse_v2_cgroup_entry("4:memory:/x\n"), sandbox::ConfigError);
}

TEST(ProcCgroup, JoinsMountAndPath) {
    sandbox::CgroupMount mount{"/sys/fs/cgroup", sandbox::CgroupLayout::kUnified};
    EXPECT_EQ(sandbox::cgroup_dir(mount, "/"), "/sys/fs/cgroup");
    EXPECT_EQ(sandbox::cgroup_dir(mount, "/a/b"), "/sys/fs/cgroup/a/b");
}

}  // namespace
