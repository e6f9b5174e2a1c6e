#include "core/pattern_logs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <syslog.h>
#include <systemd/sd-journal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "sandbox/error.h"

namespace launcher {

PatternLogs::PatternLogs(std::filesystem::path dir, std::uint64_t max_bytes)
    : dir_(std::move(dir)), max_bytes_(max_bytes) {
    journald_ = ::access("/run/systemd/journal/stdout", W_OK) == 0;
    if (!journald_) {
        std::filesystem::create_directories(dir_);
        ::chmod(dir_.c_str(), 0750);
    }
}

sandbox::UniqueFd PatternLogs::open_for(const std::string& process_id) {
    if (journald_) {
        int fd = sd_journal_stream_fd(process_id.c_str(), LOG_INFO, 0);
        if (fd >= 0) return sandbox::UniqueFd(fd);
        // journald went away: fall back to files for this process.
        std::fprintf(stderr,
                     "pattern-launcher: journald stream for %s failed (errno %d); using %s\n",
                     process_id.c_str(), -fd, dir_.c_str());
        std::filesystem::create_directories(dir_);
    }
    std::filesystem::path file = dir_ / (process_id + ".log");
    sandbox::UniqueFd fd(::open(file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640));
    if (!fd) sandbox::throw_sys_error(errno, "open pattern log", file.string());
    files_[process_id] = file;
    return fd;
}

void PatternLogs::enforce_caps() {
    // A bounded slice per call, resuming where the last one stopped: with
    // thousands of keys, stat()ing every file on every tick was most of the
    // idle daemon's CPU.
    constexpr int kFilesPerCall = 256;
    auto it = files_.lower_bound(next_check_);
    for (int checked = 0; checked < kFilesPerCall && !files_.empty(); ++checked) {
        if (it == files_.end()) it = files_.begin();
        struct stat st {};
        if (::stat(it->second.c_str(), &st) != 0) {
            it = files_.erase(it);  // removed by an operator: forget it
            continue;
        }
        if (static_cast<std::uint64_t>(st.st_size) > max_bytes_) {
            std::error_code ec;
            std::filesystem::copy_file(it->second, it->second.string() + ".1",
                                       std::filesystem::copy_options::overwrite_existing, ec);
            if (::truncate(it->second.c_str(), 0) != 0) {
                std::fprintf(stderr, "pattern-launcher: cannot truncate %s: %s\n",
                             it->second.c_str(), std::strerror(errno));
            }
        }
        ++it;
        if (checked + 1 >= static_cast<int>(files_.size())) break;  // every file seen once
    }
    next_check_ = it == files_.end() ? std::string() : it->first;
}

}  // namespace launcher
