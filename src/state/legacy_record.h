// The state records of launchers before issue 11: one "key=value" text file
// per key, beginning "pattern-launcher-state 1\n". Read once, when a
// launcher is upgraded in place, and converted to a KeyRecord so that the
// upgrade does not cost a tenant its process; never written any more.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "pattern_launcher/state.pb.h"

namespace launcher::legacy {

using KeyRecord = pattern_launcher::state::KeyRecord;

// What such a file held (its field names).
struct ProcessRecord {
    std::string process_id;
    std::string pattern;
    std::string isolation;
    std::string namespace_id;
    std::string session_id;
    pid_t pid = 0;
    std::string cgroup;  // the key's group; the process runs in a leaf "run.N" of it
    std::string address;
    int grpc_port = 0;
    int health_port = 0;
    std::string notify_socket;
    std::int64_t started_at_unix_ms = 0;
    int restart_count = 0;
    bool limits_enforced = true;
    std::int64_t grace_period_ms = 0;
    std::uint32_t identity = 0;
    std::map<std::string, std::string> config;
};

// Whether `bytes` start like such a file (or are a prefix of its header).
bool looks_like(std::string_view bytes);

// Parses one file with that launcher's own rules. Throws
// std::invalid_argument naming the line and the problem, e.g.
// "line 7: pid: 0 is out of range (1..2147483647)".
ProcessRecord parse(const std::string& text);

// The record of the same key in today's terms: owed a running process,
// which was running.
KeyRecord to_key_record(const ProcessRecord& old);

}  // namespace launcher::legacy
