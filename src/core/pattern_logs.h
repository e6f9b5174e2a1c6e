// Where patterns' stdout and stderr go: to journald, one stream per process
// tagged with its process id (SYSLOG_IDENTIFIER=ns:tenant-a:echo), where
// journald runs; elsewhere to one size-capped file per process id.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "sandbox/unique_fd.h"

namespace launcher {

class PatternLogs {
public:
    // How often the worker checks the files written since its last pass
    // (inotify tells it which; idle files cost nothing).
    static constexpr std::chrono::seconds kCheckPeriod{5};
    // How often it stats every file anyway: the safety net for what inotify
    // may not have said (a lost watch; an overflow also forces a full pass).
    static constexpr std::chrono::minutes kFullPassPeriod{5};

    // journald is used when its stdout socket exists; otherwise files in
    // `dir` (created 0750), each kept under about `max_bytes`. Starts the
    // worker thread that keeps the caps.
    PatternLogs(std::filesystem::path dir, std::uint64_t max_bytes);
    PatternLogs(const PatternLogs&) = delete;
    PatternLogs& operator=(const PatternLogs&) = delete;
    // Stops the worker (it finishes the file it is at) and joins it.
    ~PatternLogs();

    bool uses_journald() const { return journald_; }
    const std::filesystem::path& dir() const { return dir_; }

    // The fd a new process of `process_id` writes its output to. The caller
    // hands it to spawn and closes it; the process keeps its own copy.
    // Cheap (one open, or one connect to journald): fine on the event loop.
    sandbox::UniqueFd open_for(const std::string& process_id);

    // A session pool's process was claimed: its file becomes the session
    // key's (a rename; the process's O_APPEND fd follows it). Under journald
    // the stream keeps the identifier it was opened with (the pool's id):
    // journald has no way to retag a stream.
    void rename(const std::string& from, const std::string& to);

    // Asks the worker for a pass now instead of at its next kCheckPeriod;
    // returns at once. A pass copies each file over the cap to "<name>.1"
    // and truncates it (the pattern's fd is O_APPEND, so it goes on writing
    // at the new end): up to max_bytes of copying per file, which is why it
    // is the worker's and never the event loop's.
    void enforce_caps();

    // Blocks until a full pass (every file) that started after this call
    // has finished. For tests; never call it on the event loop.
    void wait_for_pass();

    // Blocks until a periodic pass (only the files written or opened since
    // the previous pass, unless it has to be full) that started after this
    // call has finished. For tests, like wait_for_pass().
    void wait_for_check();

    // How many times a pass has stat-ed a file, for tests: what tells an
    // idle file left alone from one looked at.
    std::uint64_t files_examined() const;

private:
    struct File {
        std::filesystem::path path;
        std::uint64_t generation = 0;  // tells a re-opened file from the one a pass saw
    };

    enum class Pass { kNone, kWritten, kAll };

    void run();
    void watch_dir();
    // Drains the inotify queue into dirty_; false when a full pass is due
    // because events may have been lost.
    bool collect_events();
    void check_files(bool all);

    const std::filesystem::path dir_;
    const std::uint64_t max_bytes_;
    bool journald_ = false;

    sandbox::UniqueFd inotify_;  // the worker's; non-blocking
    int watch_ = -1;             // on dir_; -1 until it exists (or after it went)

    mutable std::mutex mutex_;  // guards everything below
    std::condition_variable wake_;
    std::condition_variable pass_done_;
    std::map<std::string, File> files_;  // process id -> its file
    std::set<std::string> dirty_;        // process ids written or opened since the last pass
    std::uint64_t next_generation_ = 1;
    std::uint64_t passes_started_ = 0;
    std::uint64_t passes_finished_ = 0;
    std::uint64_t files_examined_ = 0;
    Pass pass_requested_ = Pass::kNone;
    bool stopping_ = false;
    std::thread worker_;  // last: started once everything above exists
};

}  // namespace launcher
