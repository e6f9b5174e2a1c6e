// Shared helpers for the sandbox integration tests.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "sandbox/cgroup.h"
#include "sandbox/spawn.h"

namespace pltest {

// A private cgroup subtree for one test: <mount>/pl-test.<pid>.<n>, with the
// test process moved into its supervisor leaf. Closing it (or destroying it)
// kills what is left, moves the test process back and removes the subtree.
class TestTree {
public:
    TestTree();
    sandbox::CgroupTree& tree() { return tree_; }
    const std::string& root() const { return tree_.root_path(); }
    // The cgroup path as /proc/PID/cgroup shows it (relative to the mount).
    std::string relative(const std::string& absolute) const;

private:
    sandbox::CgroupTree tree_;
};

// An O_PATH fd of pattern-launcher-init (PL_INIT), opened on first use and
// kept open for the life of the test binary: what SpawnSpec::init needs,
// since spawn() refuses a pid namespace without an init.
int init_executable_fd();

// Gives `spec` the init for its pid namespace; `status_fd` is
// InitReports::sender_fd() when the test wants the exit report, else -1.
void use_init(sandbox::SpawnSpec& spec, int status_fd = -1);

// Turns on the file view and, when the executable's directory is hidden by
// it (a build tree under /tmp, as CI may have), binds it back read-only, as
// the daemon does for a pattern's directory.
void enable_view(sandbox::SpawnSpec& spec);

// A spec that runs the misbehave fixture in `mode` with extra args.
sandbox::SpawnSpec misbehave(const std::vector<std::string>& args);

struct Captured {
    sandbox::ExitStatus status;
    std::string output;  // the child's stdout
};

// Spawns with stdout to a pipe, reads until EOF, reaps.
Captured run_captured(sandbox::SpawnSpec spec);

// Spawns with stdout to a pipe and returns the process and the pipe's read
// end, for children that keep running.
struct Running {
    sandbox::Process process;
    sandbox::UniqueFd stdout_read;
    // Reads stdout until `marker` has been seen (or EOF/timeout); returns all read.
    std::string read_until(const std::string& marker, int timeout_ms = 5000);
};
Running start_captured(sandbox::SpawnSpec spec);

// "key=value" lines of `pl-misbehave report` as a map.
std::map<std::string, std::string> parse_report(const std::string& output);

int count_open_fds();
std::vector<std::string> list_dir(const std::string& path);
bool cgroup_has_controller(const std::string& cgroup_dir, const std::string& controller);

// A TCP listener on 127.0.0.1 with a kernel-chosen port.
struct Listener {
    sandbox::UniqueFd fd;
    int port = 0;
};
Listener listen_tcp();
// Connects, sends `message`, returns what comes back before `message.size()`
// bytes or the timeout.
std::string echo_roundtrip(int port, const std::string& message);

}  // namespace pltest
