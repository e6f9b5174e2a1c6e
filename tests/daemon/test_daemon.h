// A pattern-launcher daemon for one test: its own directory, patterns,
// config, unix socket, port range and cgroup subtree.
#pragma once

#include <grpcpp/grpcpp.h>
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "prism/launcher/launcher.grpc.pb.h"

namespace pltest {

namespace pb = prism::launcher;

// Manifest bodies for the standard test patterns (name and executable are
// filled in by add_pattern).
std::string echo_manifest(const std::string& health = "http");
// pl-misbehave in `mode` (MISBEHAVE_MODE), notify health check.
std::string misbehave_manifest(const std::string& mode, const std::string& args = "",
                               const std::string& extra = "");

class TestDaemon {
public:
    TestDaemon();
    ~TestDaemon();

    // Writes <patterns>/<name>/manifest.yaml: "name:" and "executable:" are
    // prepended (executable defaults to the misbehave fixture).
    void add_pattern(const std::string& name, const std::string& body,
                     const std::string& executable = PL_MISBEHAVE);
    // Extra lines appended under `launcher:` in the config.
    void add_config(const std::string& line) { config_lines_.push_back(line); }
    // Extra lines under `launcher.api:` (indented by the caller relative to
    // api:, e.g. "allow_insecure_loopback: true"); audit_log is always set
    // to audit_log_path().
    void add_api(const std::string& line) { api_lines_.push_back(line); }
    std::string audit_log_path() const { return dir_ + "/audit.jsonl"; }
    // Extra "NAME=value" entries in the daemon's environment.
    void add_env(const std::string& entry) { env_.push_back(entry); }
    // Runs the daemon through a wrapper, e.g. {"systemd-socket-activate", "-l", path}.
    void set_wrapper(std::vector<std::string> wrapper) { wrapper_ = std::move(wrapper); }
    // How many ports launcher.pattern_ports spans (default 200); takes effect at start().
    void set_port_count(int count) { port_count_ = count; }
    int port_first() const { return port_base_; }
    int port_last() const { return port_base_ + port_count_ - 1; }

    // Starts the daemon and waits until its API answers.
    void start();
    // Starts the daemon and returns at once (e.g. to kill it during its own
    // startup and recovery); kill_hard() or stop() end it.
    void spawn();
    // SIGTERM and wait; returns the exit code (or 128+signal).
    int stop();
    // SIGKILL and reap, as a crash would: the patterns keep running.
    void kill_hard();
    bool running() const { return pid_ > 0; }
    pid_t pid() const { return pid_; }

    pb::PatternLauncher::Stub& api() { return *stub_; }
    // A stub on a channel of its own, which outlives restarts of the daemon
    // (it reconnects to the same socket path within ~100 ms) and may be used
    // from any thread while start() and kill_hard() replace api().
    std::shared_ptr<pb::PatternLauncher::Stub> connect() const;
    grpc::Status launch(const std::string& pattern, pb::IsolationLevel level, const std::string& ns,
                        const std::string& session, pb::LaunchResponse* response,
                        const std::map<std::string, std::string>& config = {});
    grpc::Status terminate(const std::string& id, pb::TerminateResponse* response,
                           std::int64_t grace_secs = 0, bool force = false);
    pb::ListPatternsResponse list();
    pb::PatternInfo status(const std::string& id);

    std::string log() const;
    const std::string& dir() const { return dir_; }
    const std::string& patterns_dir() const { return patterns_dir_; }
    const std::string& socket() const { return socket_; }
    const std::string& cgroup_root() const { return cgroup_root_; }
    // <runtime_dir>/state, where the state records live.
    std::string state_dir() const { return dir_ + "/run/state"; }
    // Directories below the cgroup root other than supervisor.
    std::vector<std::string> tenant_cgroups() const;

private:
    std::string dir_, patterns_dir_, socket_, cgroup_root_, config_path_, log_path_;
    std::vector<std::string> config_lines_;
    std::vector<std::string> api_lines_;
    std::vector<std::string> env_;
    std::vector<std::string> wrapper_;
    int port_base_ = 0;
    int port_count_ = 200;
    pid_t pid_ = -1;
    std::unique_ptr<pb::PatternLauncher::Stub> stub_;
};

// Runs a command, returns exit code and stdout/stderr together.
struct CommandResult {
    int exit_code = -1;
    std::string out;
    std::string err;
};
CommandResult run_command(const std::vector<std::string>& argv);

bool process_alive(pid_t pid);
// The pattern a launched pid (its init, PID 1 of the pattern's pid
// namespace) runs: the init's only child; 0 if there is none.
pid_t pattern_pid(pid_t init_pid);
// SIGKILLs a key's init and returns once its pattern has exited as well
// (false after 10 s). kill() returns before the target dies, and the kernel
// kills the rest of a pid namespace only after its init exited: until then
// the pattern still accepts connections and takes them to its grave.
bool kill_key_process(pid_t init_pid);
// Sends `message` to the echo pattern at "127.0.0.1:PORT" and returns what
// comes back (empty on failure; waits up to 10 s).
std::string roundtrip(const std::string& address, const std::string& message);
std::string read_environ(pid_t pid, const std::string& name);

// ---- the process tree of a daemon's cgroup subtree ------------------------------

// The pids in <dir>/cgroup.procs (empty if it cannot be read).
std::vector<pid_t> cgroup_procs(const std::string& dir);
// Every cgroup directory below `root` (not `root` itself), parents first.
std::vector<std::string> cgroups_below(const std::string& root);
// The cgroup v2 directory of `pid` ("<mount>/path"), empty if it is gone. A
// zombie still names the cgroup it died in.
std::string cgroup_of(pid_t pid);
// Zombies a launcher answers for: those that died in a cgroup at or below
// `cgroup_root`, and the children of `daemon` (0: none). One line each
// ("pid P ppid Q comm C cgroup G"); empty when there are none.
std::vector<std::string> zombies_of(const std::string& cgroup_root, pid_t daemon);
// Local ports in [first, last] with a TCP socket in LISTEN (IPv4 and IPv6),
// with the pids that hold it open; `only` (if not empty) keeps the sockets
// that one of those pids holds.
std::map<int, std::set<pid_t>> listening_ports(int first, int last,
                                               const std::set<pid_t>& only = {});

// The test process as the subreaper of what a SIGKILLed daemon leaves: its
// children (the patterns' inits) are re-parented to us instead of PID 1
// (PR_SET_CHILD_SUBREAPER, Linux 3.4). PID 1 of a development host need not
// be a prompt reaper (here `process_api` reaps orphans seconds later), and
// a zombie that lingers there cannot be told from one the launcher failed
// to reap. A thread reaps those that exit at once, as systemd would; it
// only reaps zombies that died below `cgroup_root`
// (outside its `supervisor` leaf), so the daemon itself and other children
// of the test stay with their own waitpid.
class OrphanReaper {
public:
    explicit OrphanReaper(std::string cgroup_root);
    ~OrphanReaper();
    OrphanReaper(const OrphanReaper&) = delete;
    OrphanReaper& operator=(const OrphanReaper&) = delete;
    // Reaps what is waiting now (also done every 20 ms by the thread).
    void reap_now();
    int reaped() const { return reaped_; }

private:
    std::string cgroup_root_;
    int was_subreaper_ = 0;
    std::atomic<bool> stop_{false};
    std::atomic<int> reaped_{0};
    std::thread thread_;
};

// Polls `done` every 20 ms until it holds (true) or `limit` has passed (false).
bool eventually(const std::function<bool()>& done,
                std::chrono::milliseconds limit = std::chrono::seconds(20));

// The value of one sample line of a Prometheus exposition ("name{labels}
// value"), or -1 when there is no such line.
double metric_sample(const std::string& exposition, const std::string& series);

}  // namespace pltest
