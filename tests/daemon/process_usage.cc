#include "process_usage.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

namespace pltest {

namespace fs = std::filesystem;

namespace {

// The number after `field` in /proc/<pid>/status, or -1.
long status_field(pid_t pid, const std::string& field) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    for (std::string line; std::getline(in, line);) {
        if (line.starts_with(field)) return std::stol(line.substr(field.size()));
    }
    return -1;
}

}  // namespace

// A report file a sanitizer runtime opened when it first had something to
// say (dev.sh points log_path at <build>/sanitizer-logs): not the daemon's.
bool sanitizer_log(const fs::path& fd) {
    std::error_code ec;
    return fs::read_symlink(fd, ec).parent_path().filename() == "sanitizer-logs";
}

int fd_count(pid_t pid) {
    int n = 0;
    std::error_code ec;
    for (auto it = fs::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec);
         !ec && it != fs::directory_iterator(); it.increment(ec)) {
        if (!sanitizer_log(it->path())) ++n;
    }
    return n;
}

long rss_kib(pid_t pid) {
    return status_field(pid, "VmRSS:");
}

int thread_count(pid_t pid) {
    return static_cast<int>(status_field(pid, "Threads:"));
}

std::map<std::string, int> fd_kinds(pid_t pid) {
    std::map<std::string, int> kinds;
    std::error_code ec;
    for (auto it = fs::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec);
         !ec && it != fs::directory_iterator(); it.increment(ec)) {
        if (sanitizer_log(it->path())) continue;
        std::string target = fs::read_symlink(it->path(), ec).string();
        if (target.starts_with("socket:")) target = "socket";
        ++kinds[target];
    }
    return kinds;
}

std::string describe_fds(const std::map<std::string, int>& kinds) {
    std::string out;
    for (const auto& [kind, n] : kinds)
        out += "\n  " + std::to_string(n) + " x " + kind;
    return out;
}

int settle_fds(pid_t pid, int at_most, std::chrono::milliseconds within) {
    const auto deadline = std::chrono::steady_clock::now() + within;
    int n = fd_count(pid);
    while (n > at_most && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        n = fd_count(pid);
    }
    return n;
}

void expect_rss_growth_below(long before_kib, long after_kib, long bound_kib,
                             const std::string& what) {
    if (kSanitizedMemory) {
        std::cout << "[rss] " << what << ": grew " << after_kib - before_kib
                  << " KiB (not bounded in a sanitized build)" << std::endl;
        return;
    }
    EXPECT_LT(after_kib - before_kib, bound_kib)
        << what << ": VmRSS grew from " << before_kib << " to " << after_kib << " KiB";
}

}  // namespace pltest
