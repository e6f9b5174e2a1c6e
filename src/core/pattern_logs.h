// Where patterns' stdout and stderr go: to journald, one stream per process
// tagged with its process id (SYSLOG_IDENTIFIER=ns:tenant-a:echo), where
// journald runs; elsewhere to one size-capped file per process id.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>

#include "sandbox/unique_fd.h"

namespace launcher {

class PatternLogs {
public:
    // journald is used when its stdout socket exists; otherwise files in
    // `dir` (created 0750), each kept under about `max_bytes`.
    PatternLogs(std::filesystem::path dir, std::uint64_t max_bytes);

    bool uses_journald() const { return journald_; }
    const std::filesystem::path& dir() const { return dir_; }

    // The fd a new process of `process_id` writes its output to. The caller
    // hands it to spawn and closes it; the process keeps its own copy.
    sandbox::UniqueFd open_for(const std::string& process_id);

    // Files over the cap are copied to "<name>.1" and truncated (the
    // pattern's fd is O_APPEND, so it goes on writing at the new end).
    // Checks at most 256 files per call, round-robin; the daemon calls it
    // from a timer.
    void enforce_caps();

private:
    std::filesystem::path dir_;
    std::uint64_t max_bytes_;
    bool journald_ = false;
    std::map<std::string, std::filesystem::path> files_;  // process id -> file
    std::string next_check_;                              // where the next enforce_caps() resumes
};

}  // namespace launcher
