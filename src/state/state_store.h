// What the launcher persists so that, after it is killed and started
// again, it can find its pattern processes and take them back.
//
// One small file per pattern process under <runtime_dir>/state/, written
// atomically (write to a temporary file, fsync, rename, fsync the
// directory), so a crash leaves either the old or the new record, never a
// torn one. A record that does not parse is reported, not guessed at.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace launcher {

struct ProcessRecord {
    std::string process_id;  // "ns:tenant-a:echo"
    std::string pattern;
    std::string isolation;  // "none" | "namespace" | "session"
    std::string namespace_id;
    std::string session_id;
    pid_t pid = 0;
    std::string cgroup;   // absolute cgroup directory of the process
    std::string address;  // "127.0.0.1:20000"
    int grpc_port = 0;
    int health_port = 0;        // 0: none
    std::string notify_socket;  // empty: none
    std::int64_t started_at_unix_ms = 0;
    int restart_count = 0;
    bool limits_enforced = true;
    std::int64_t grace_period_ms = 0;
    std::uint32_t identity = 0;  // 0: none (fixed sandbox.user, or the launcher's own)
    std::map<std::string, std::string> config;  // the launch request's config (env)
};

struct LoadedRecords {
    std::vector<ProcessRecord> records;
    // "<file>: <what is wrong>" for each file that could not be trusted.
    std::vector<std::string> problems;
};

class StateStore {
public:
    explicit StateStore(std::filesystem::path dir);  // creates dir (0700) if needed

    // Atomically replaces the record of record.process_id. Throws SysError.
    void save(const ProcessRecord& record);
    // Removes the record; a missing one is fine.
    void remove(const std::string& process_id);
    // Reads every record. Unparsable, truncated or inconsistent files (e.g.
    // a process_id that does not match the file name) are listed in
    // `problems` and deleted; temporary files left by a crash are deleted.
    LoadedRecords load_all();

    const std::filesystem::path& dir() const { return dir_; }

private:
    std::filesystem::path file_for(const std::string& process_id) const;
    std::filesystem::path dir_;
};

// The text form of a record (versioned, line-oriented "key=value" with
// escaping), exposed for tests.
std::string serialize(const ProcessRecord& record);
// Throws std::invalid_argument naming the line and the problem.
ProcessRecord deserialize(const std::string& text);

}  // namespace launcher
