// Helpers of the system suite, which runs inside the test VM as root against
// the installed package: pattern-launcher.service under systemd (PID 1),
// with the delegated cgroup v2 subtree and the test patterns that
// tests/system/guest/run.sh installs. Helpers throw std::runtime_error with
// what they were doing; GoogleTest reports that as the test's failure.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "prism/launcher/launcher.grpc.pb.h"

namespace plsys {

inline constexpr const char* kService = "pattern-launcher.service";
inline constexpr const char* kSocketUnit = "pattern-launcher.socket";
// The transient scope the daemon keeps its tenants in (src/tenant_scope.h).
inline constexpr const char* kScopeUnit = "pattern-launcher-tenants.scope";
inline constexpr const char* kScopeDir =
    "/sys/fs/cgroup/system.slice/pattern-launcher-tenants.scope";
inline constexpr const char* kConfig = "/etc/pattern-launcher/pattern-launcher.yaml";
inline constexpr const char* kApiSocket = "/run/pattern-launcher/api.sock";
inline constexpr const char* kCgroupMount = "/sys/fs/cgroup";

struct CommandResult {
    int exit_code = -1;  // -1: killed by a signal
    std::string output;  // stdout and stderr
};
// Runs `command` with /bin/sh -c.
CommandResult sh(const std::string& command);
// Like sh, but throws unless the exit code is 0.
std::string sh_ok(const std::string& command);

// `systemctl show -p PROPERTY --value UNIT`.
std::string unit_property(const std::string& unit, const std::string& property);
// The service's main PID; 0 when it is not running.
pid_t main_pid();
// The service's cgroup directory (absolute, below kCgroupMount).
std::string service_cgroup_dir();

std::string read_file(const std::string& path);
// The file's content without the trailing newline.
std::string read_line(const std::string& path);
// "key value" lines (memory.events, cpu.stat, pids.events).
std::map<std::string, std::uint64_t> read_keyed(const std::string& path);
// The cgroup v2 path of `pid` as an absolute directory.
std::string cgroup_dir_of(pid_t pid);
bool process_exists(pid_t pid);
// Every cgroup directory below `dir` (not `dir` itself), depth first.
std::vector<std::string> cgroups_below(const std::string& dir);

// Polls `done` every `interval` until it returns true or `timeout` passes.
bool wait_until(const std::function<bool()>& done, std::chrono::milliseconds timeout,
                std::chrono::milliseconds interval = std::chrono::milliseconds(200));

// What the pattern wrote to its journal stream (the launcher names the
// stream after the process id), one line per message.
std::string pattern_journal(const std::string& process_id);

// Sends `message` to 127.0.0.1:port and returns the echo and the round trip.
struct EchoResult {
    std::string reply;
    std::chrono::microseconds round_trip{0};
};
EchoResult echo_roundtrip(const std::string& address, const std::string& message);

// The launcher's gRPC API on its unix socket, with deadlines generous enough
// for an emulated guest (the first call socket-activates the service).
class Api {
public:
    Api();
    // Returns the status; the response (with its error text) in *response.
    grpc::Status launch(const std::string& pattern, const std::string& ns,
                        const std::map<std::string, std::string>& config,
                        prism::launcher::LaunchResponse* response);
    // A SESSION launch (session_id set, isolation SESSION).
    grpc::Status launch_session(const std::string& pattern, const std::string& ns,
                                const std::string& session,
                                prism::launcher::LaunchResponse* response);
    // Throws unless the launch succeeded and the process is RUNNING.
    prism::launcher::LaunchResponse launch_running(
        const std::string& pattern, const std::string& ns,
        const std::map<std::string, std::string>& config = {});
    prism::launcher::PatternInfo status(const std::string& process_id);
    bool known(const std::string& process_id);
    prism::launcher::HealthResponse health();
    prism::launcher::TerminateResponse terminate(const std::string& process_id);

private:
    grpc::Status get_status(const std::string& process_id,
                            prism::launcher::GetProcessStatusResponse* response);

    std::unique_ptr<prism::launcher::PatternLauncher::Stub> stub_;
};

// Stops the service, removes the drop-ins of add_service_dropin and puts
// back the packaged config (set_config_value). Returns what the stop left
// behind (tenant cgroups, the tenants' scope, state records), one per line,
// after killing and removing it: empty for a clean stop.
std::string stop_service_and_clean_up();
// Brings the service to a known state: stopped and cleaned up as above (what
// was left is printed), the socket listening.
void reset_service();
// Adds /run/systemd/system/pattern-launcher.service.d/<name>.conf and reloads
// systemd; reset_service() removes it again.
void add_service_dropin(const std::string& name, const std::string& content);
// Replaces "  key: ..." in the config file (the original is kept and put
// back by stop_service_and_clean_up); takes effect at the next start.
void set_config_value(const std::string& key, const std::string& value);
// NRestarts of the service.
int restarts();

}  // namespace plsys
