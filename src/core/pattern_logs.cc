#include "core/pattern_logs.h"

#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <syslog.h>
#include <systemd/sd-journal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string_view>
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
    // Where inotify is refused (out of instances), every pass is a full one.
    inotify_ = sandbox::UniqueFd(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
    if (!inotify_) {
        log::warning(std::string("inotify for ") + dir_.string() + ": " + std::strerror(errno) +
                     "; pattern log caps are checked by stat-ing every file");
    }
    watch_dir();
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
    // It may exist from before, over the cap, and never be written again.
    dirty_.insert(process_id);
    return fd;
}

void PatternLogs::rename(const std::string& from, const std::string& to) {
    std::lock_guard lock(mutex_);
    auto found = files_.find(from);
    if (found == files_.end()) return;  // journald's, or never opened
    File file = std::move(found->second);
    files_.erase(found);
    dirty_.erase(from);
    const std::filesystem::path renamed = dir_ / (to + ".log");
    // One rename(2) of a small directory entry: cheap enough for the loop.
    if (::rename(file.path.c_str(), renamed.c_str()) != 0) {
        log::warning("renaming pattern log " + file.path.string() + " to " + renamed.string() +
                         ": " + std::strerror(errno),
                     log::Key{to, {}, {}});
        return;
    }
    file.path = renamed;
    file.generation = next_generation_++;
    files_[to] = std::move(file);
    dirty_.insert(to);
}

void PatternLogs::enforce_caps() {
    {
        std::lock_guard lock(mutex_);
        pass_requested_ = Pass::kAll;
    }
    wake_.notify_one();
}

void PatternLogs::wait_for_pass() {
    std::unique_lock lock(mutex_);
    // A pass running now may have snapshotted the files before this call.
    const std::uint64_t target = passes_started_ + 1;
    pass_requested_ = Pass::kAll;
    wake_.notify_one();
    pass_done_.wait(lock, [&] { return passes_finished_ >= target || stopping_; });
}

void PatternLogs::wait_for_check() {
    std::unique_lock lock(mutex_);
    const std::uint64_t target = passes_started_ + 1;
    pass_requested_ = std::max(pass_requested_, Pass::kWritten);
    wake_.notify_one();
    pass_done_.wait(lock, [&] { return passes_finished_ >= target || stopping_; });
}

std::uint64_t PatternLogs::files_examined() const {
    std::lock_guard lock(mutex_);
    return files_examined_;
}

void PatternLogs::run() {
    auto next_full = std::chrono::steady_clock::now() + kFullPassPeriod;
    std::unique_lock lock(mutex_);
    while (!stopping_) {
        wake_.wait_for(lock, kCheckPeriod,
                       [this] { return stopping_ || pass_requested_ != Pass::kNone; });
        if (stopping_) break;
        bool all = pass_requested_ == Pass::kAll;
        pass_requested_ = Pass::kNone;
        ++passes_started_;
        lock.unlock();
        if (!collect_events()) all = true;
        const auto now = std::chrono::steady_clock::now();
        if (now >= next_full) all = true;
        if (all) next_full = now + kFullPassPeriod;
        check_files(all);
        lock.lock();
        ++passes_finished_;
        pass_done_.notify_all();
    }
}

void PatternLogs::watch_dir() {
    if (!inotify_ || watch_ >= 0) return;
    // Writes, and removals (a removed file is forgotten). The worker's own
    // copies to "<name>.1" are events too, ignored by their name.
    watch_ = ::inotify_add_watch(inotify_.get(), dir_.c_str(),
                                 IN_MODIFY | IN_DELETE | IN_MOVED_FROM | IN_ONLYDIR);
}

bool PatternLogs::collect_events() {
    if (!inotify_) return false;
    bool complete = true;
    if (watch_ < 0) {
        // No directory yet (journald ran), or it went: events were missed.
        watch_dir();
        complete = false;
    }
    alignas(inotify_event) char buffer[64 * 1024];
    std::vector<std::string> written;
    for (;;) {
        const ssize_t n = ::read(inotify_.get(), buffer, sizeof buffer);
        if (n <= 0) break;  // EAGAIN: drained
        for (ssize_t at = 0; at < n;) {
            const auto* event = reinterpret_cast<const inotify_event*>(buffer + at);
            at += static_cast<ssize_t>(sizeof(inotify_event) + event->len);
            if (event->mask & IN_Q_OVERFLOW) complete = false;
            if (event->mask & IN_IGNORED) {
                watch_ = -1;  // the directory was removed: watched again next pass
                complete = false;
            }
            if (event->len == 0) continue;
            const std::string_view name(event->name);
            if (!name.ends_with(".log")) continue;
            written.emplace_back(name.substr(0, name.size() - 4));
        }
    }
    std::lock_guard lock(mutex_);
    dirty_.insert(written.begin(), written.end());
    return complete;
}

void PatternLogs::check_files(bool all) {
    // The files written since the last pass, each once however often it was
    // written; every file on a full pass. A stat() each is cheap off the loop.
    std::vector<std::pair<std::string, File>> snapshot;
    {
        std::lock_guard lock(mutex_);
        if (all) {
            snapshot.assign(files_.begin(), files_.end());
        } else {
            for (const std::string& process_id : dirty_) {
                auto it = files_.find(process_id);
                if (it != files_.end()) snapshot.emplace_back(*it);
            }
        }
        dirty_.clear();
    }
    for (const auto& [process_id, file] : snapshot) {
        {
            std::lock_guard lock(mutex_);
            if (stopping_) return;
            ++files_examined_;
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
