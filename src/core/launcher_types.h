// Plain data the launcher core exchanges with its front ends (the gRPC
// service, tests). No protobuf here: the service maps these to the wire.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/isolation_key.h"

namespace launcher {

// Numbered as prism.launcher.ProcessState on the wire.
enum class ProcessState {
    kStarting = 1,
    kRunning = 2,
    kTerminating = 3,
    kTerminated = 4,
    kFailed = 5,
    kFinished = 6,
};
const char* state_name(ProcessState state);

// The gRPC status a result maps to.
enum class ErrorCode {
    kOk,
    kInvalidArgument,
    kNotFound,
    kPermissionDenied,
    kFailedPrecondition,
    kResourceExhausted,
    kUnavailable,
    kInternal,
};

struct ProcessInfo {
    std::string pattern;
    std::string process_id;
    Isolation isolation = Isolation::kNamespace;
    std::string namespace_id;
    std::string session_id;
    ProcessState state = ProcessState::kStarting;
    bool healthy = false;
    std::string address;
    pid_t pid = 0;
    std::int64_t uptime_seconds = 0;
    std::string last_error;
    int error_count = 0;
    int restart_count = 0;
    bool limits_enforced = true;
    std::uint64_t memory_bytes = 0;
    bool memory_known = false;  // memory.current exists (the memory controller is on)
    std::uint64_t cpu_usage_usec = 0;
    std::uint64_t pids_current = 0;
    std::string cgroup;
    std::string exit_cause;
    std::int64_t started_at_unix_ms = 0;
    int consecutive_failures = 0;
    std::uint32_t uid = 0;
    std::uint32_t gid = 0;
    std::string confinement;
    std::vector<std::string> weakened;
    std::string recovery;  // how the last launcher restart settled the key; empty: not recovered
    // Egress: packets its rules refused (sampled with the usage), and its
    // address on its veth; 0 / empty: no egress list.
    std::uint64_t egress_denied = 0;
    std::string egress_address;
    bool warm_pool = false;  // the warm pool keeps this key running
};

struct LaunchParams {
    std::string pattern;
    std::optional<Isolation> isolation;  // nullopt: the manifest's, else default_isolation
    std::string namespace_id;
    std::string session_id;
    std::map<std::string, std::string> config;
    std::chrono::milliseconds grace_period{0};  // 0: unset
};

// One key the warm pool keeps (Launcher::warm_pool()).
struct WarmKeyInfo {
    std::string pattern;
    std::string namespace_id;
    std::string process_id;
    std::optional<ProcessState> state;  // nullopt: not there now (refilled at the next tick)
};

// One session pool (Launcher::session_pools()): the processes of `pattern`
// kept ready for SESSION keys of `namespace_id`.
struct SessionPoolInfo {
    std::string pattern;
    std::string namespace_id;
    int wanted = 0;    // warm_pool.sessions
    int ready = 0;     // started and healthy, waiting for a claim
    int starting = 0;  // being started
};

struct LaunchResult {
    ErrorCode code = ErrorCode::kOk;
    std::string message;  // for code != kOk
    ProcessInfo info;
    bool reused = false;
};

struct TerminateResult {
    ErrorCode code = ErrorCode::kOk;
    std::string message;
    bool success = false;
    std::string exit_cause;
};

struct ListFilter {
    std::string pattern;
    std::string namespace_id;
    std::optional<ProcessState> state;
};

struct HealthSummary {
    bool healthy = true;
    int total = 0;
    int starting = 0;
    int running = 0;
    int terminating = 0;
    int failed = 0;
    std::map<std::string, int> isolation_distribution;  // none, namespace, session
    std::vector<ProcessInfo> processes;                 // when asked for
    std::int64_t uptime_seconds = 0;
    int patterns_loaded = 0;
};

}  // namespace launcher
