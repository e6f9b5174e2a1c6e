// A pattern-launcher daemon for one test: its own directory, patterns,
// config, unix socket, port range and cgroup subtree.
#pragma once

#include <grpcpp/grpcpp.h>
#include <sys/types.h>

#include <map>
#include <memory>
#include <string>
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
    // Extra "NAME=value" entries in the daemon's environment.
    void add_env(const std::string& entry) { env_.push_back(entry); }
    // Runs the daemon through a wrapper, e.g. {"systemd-socket-activate", "-l", path}.
    void set_wrapper(std::vector<std::string> wrapper) { wrapper_ = std::move(wrapper); }

    // Starts the daemon and waits until its API answers.
    void start();
    // SIGTERM and wait; returns the exit code (or 128+signal).
    int stop();
    // SIGKILL and reap, as a crash would: the patterns keep running.
    void kill_hard();
    bool running() const { return pid_ > 0; }
    pid_t pid() const { return pid_; }

    pb::PatternLauncher::Stub& api() { return *stub_; }
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
    // Directories below the cgroup root other than supervisor.
    std::vector<std::string> tenant_cgroups() const;

private:
    std::string dir_, patterns_dir_, socket_, cgroup_root_, config_path_, log_path_;
    std::vector<std::string> config_lines_;
    std::vector<std::string> env_;
    std::vector<std::string> wrapper_;
    int port_base_ = 0;
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
// Sends `message` to the echo pattern at "127.0.0.1:PORT" and returns what
// comes back (empty on failure; waits up to 10 s).
std::string roundtrip(const std::string& address, const std::string& message);
std::string read_environ(pid_t pid, const std::string& name);

}  // namespace pltest
