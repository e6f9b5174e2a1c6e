#include "core/pattern_logs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <syslog.h>
#include <systemd/sd-journal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

#include "common/log.h"
#include "sandbox/error.h"

namespace launcher {

PatternLogs::PatternLogs(std::filesystem::path dir, std::uint64_t max_bytes)
    : dir_(std::move(dir)), max_bytes_(max_bytes) {
    journald_ = ::access("/run/systemd/journal/stdout", W_OK) == 0;
    if (!journald_) {
        std::filesystem::create_directories(dir_);
        ::chmod(dir_.c_str(), 0750);
    }
    // Also under journald: open_for() falls back to files when a stream fails.
    worker_ = std::thread([this] { run(); });
}

PatternLogs::~PatternLogs() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    pass_done_.notify_all();
    worker_.join();
}

sandbox::UniqueFd PatternLogs::open_for(const std::string& process_id) {
    if (journald_) {
        int fd = sd_journal_stream_fd(process_id.c_str(), LOG_INFO, 0);
        if (fd >= 0) return sandbox::UniqueFd(fd);
        // journald went away: fall back to files for this process.
        log::warning("journald stream for " + process_id + " failed (" + std::strerror(-fd) +
                         "); its output goes to " + dir_.string(),
                     log::Key{process_id, {}, {}});
        std::filesystem::create_directories(dir_);
    }
    std::filesystem::path file = dir_ / (process_id + ".log");
    sandbox::UniqueFd fd(::open(file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640));
    if (!fd) sandbox::throw_sys_error(errno, "open pattern log", file.string());
    std::lock_guard lock(mutex_);
    files_[process_id] = File{std::move(file), next_generation_++};
    return fd;
}

void PatternLogs::enforce_caps() {
    {
        std::lock_guard lock(mutex_);
        pass_requested_ = true;
    }
    wake_.notify_one();
}

void PatternLogs::wait_for_pass() {
    std::unique_lock lock(mutex_);
    // A pass running now may have snapshotted the files before this call.
    const std::uint64_t target = passes_started_ + 1;
    pass_requested_ = true;
    wake_.notify_one();
    pass_done_.wait(lock, [&] { return passes_finished_ >= target || stopping_; });
}

void PatternLogs::run() {
    std::unique_lock lock(mutex_);
    while (!stopping_) {
        wake_.wait_for(lock, kCheckPeriod, [this] { return stopping_ || pass_requested_; });
        if (stopping_) break;
        pass_requested_ = false;
        ++passes_started_;
        lock.unlock();
        check_files();
        lock.lock();
        ++passes_finished_;
        pass_done_.notify_all();
    }
}

void PatternLogs::check_files() {
    // Every file on every pass: a stat() each is cheap off the loop, and a
    // chatty pattern must not wait for its turn in a slice while it writes.
    std::vector<std::pair<std::string, File>> snapshot;
    {
        std::lock_guard lock(mutex_);
        snapshot.assign(files_.begin(), files_.end());
    }
    for (const auto& [process_id, file] : snapshot) {
        {
            std::lock_guard lock(mutex_);
            if (stopping_) return;
        }
        struct stat st {};
        if (::stat(file.path.c_str(), &st) != 0) {
            if (errno != ENOENT) continue;
            // Removed by an operator: forget it, unless the key opened it again since.
            std::lock_guard lock(mutex_);
            auto it = files_.find(process_id);
            if (it != files_.end() && it->second.generation == file.generation) files_.erase(it);
            continue;
        }
        if (static_cast<std::uint64_t>(st.st_size) <= max_bytes_) continue;
        std::error_code ec;
        std::filesystem::copy_file(file.path, file.path.string() + ".1",
                                   std::filesystem::copy_options::overwrite_existing, ec);
        if (ec) {
            log::warning("cannot keep " + file.path.string() + ".1: " + ec.message(),
                         log::Key{process_id, {}, {}});
        }
        if (::truncate(file.path.c_str(), 0) != 0) {
            log::warning("cannot truncate " + file.path.string() + ": " + std::strerror(errno),
                         log::Key{process_id, {}, {}});
        }
    }
}

}  // namespace launcher
