// What a running key costs the daemon in descriptors (issue 15): only what
// the loop must watch (the process's pidfd) and the listening sockets that
// outlive restarts, not the notify socket of a start that is over nor the
// key's cgroup directories.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <map>
#include <string>

#include "test_daemon.h"

namespace {

using namespace pltest;

// The daemon's descriptors by kind: "socket", "anon_inode:[pidfd]", "cgroup
// directory" (anything below `cgroup_root`), another path's directory, ...
std::map<std::string, int> open_descriptors(pid_t pid, const std::string& cgroup_root) {
    std::map<std::string, int> kinds;
    std::error_code ec;
    for (auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec);
         !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
        std::error_code link_ec;
        std::string target = std::filesystem::read_symlink(it->path(), link_ec).string();
        if (target.starts_with("socket:")) target = "socket";
        if (target.starts_with("pipe:")) target = "pipe";
        // A sanitizer's report file (log_path), opened by its runtime at
        // the first report: not the daemon's.
        if (target.find("/sanitizer-logs/") != std::string::npos) continue;
        if (target.starts_with(cgroup_root)) {
            target = "cgroup directory";
        } else if (target.starts_with("/")) {
            target = std::filesystem::path(target).parent_path().string();
        }
        ++kinds[target];
    }
    return kinds;
}

int total(const std::map<std::string, int>& kinds) {
    int sum = 0;
    for (const auto& [kind, count] : kinds)
        sum += count;
    return sum;
}

TEST(Descriptors, ARunningNotifyKeyHoldsAtMostTwo) {
    constexpr int kKeys = 40;
    TestDaemon d;
    d.add_pattern("echo-notify", echo_manifest("notify"), PL_ECHO);
    d.start();
    // One key first: what the daemon opens once, on its first launch, is
    // not a per-key cost.
    pb::LaunchResponse r;
    ASSERT_TRUE(d.launch("echo-notify", pb::ISOLATION_NAMESPACE, "warmup", "", &r).ok());
    const std::map<std::string, int> before_kinds = open_descriptors(d.pid(), d.cgroup_root());
    const int before = total(before_kinds);
    for (int i = 0; i < kKeys; ++i) {
        grpc::Status s =
            d.launch("echo-notify", pb::ISOLATION_NAMESPACE, "fd" + std::to_string(i), "", &r);
        ASSERT_TRUE(s.ok()) << s.error_message();
        ASSERT_EQ(r.state(), pb::STATE_RUNNING);
    }
    const std::map<std::string, int> after_kinds = open_descriptors(d.pid(), d.cgroup_root());
    const int after = total(after_kinds);
    const double per_key = static_cast<double>(after - before) / kKeys;
    std::cout << "descriptors: " << before << " with one key, " << after << " with " << kKeys + 1
              << " (" << per_key << " per running key)\n";
    for (const auto& [kind, count] : after_kinds) {
        auto was = before_kinds.find(kind);
        const int grew = count - (was == before_kinds.end() ? 0 : was->second);
        if (grew != 0) std::cout << "  " << kind << ": " << grew << "\n";
    }
    EXPECT_LE(after - before, 2 * kKeys) << per_key << " descriptors per running key";
    // The notify sockets of the finished starts are gone from the disk too.
    EXPECT_TRUE(std::filesystem::is_empty(d.dir() + "/run/notify"));
}

}  // namespace
