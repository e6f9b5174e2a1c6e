// The narrow port through which the core asks the kernel for a key's
// cgroups and processes. KernelSandbox (kernel_sandbox.{h,cc}) is the real
// one, built on sandbox/; the core's in-process tests put an in-memory fake
// here (tests/unit/fake_sandbox.h) and drive the same Launcher on a manual
// clock, without root and in milliseconds. Recovery after a launcher
// restart reads the kernel's view of a previous instance and stays on the
// real port.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/isolation_key.h"
#include "config/manifest.h"
#include "sandbox/cgroup.h"
#include "sandbox/unique_fd.h"

namespace launcher {

// Usage of a key's cgroup (what List, Health and metrics show).
struct UsageSample {
    std::uint64_t memory_bytes = 0;
    std::uint64_t cpu_usage_usec = 0;
    std::uint64_t pids_current = 0;
    bool memory_known = false;  // memory.current exists (the memory controller is on)
};

// A key's cgroup, or the leaf of one of its incarnations. Owned groups are
// never removed by destruction: the core removes them with try_remove()
// through the loop, or disown()s them.
class KeyGroup {
public:
    virtual ~KeyGroup() = default;
    virtual const std::string& path() const = 0;
    // Kills everything in it, descendants included (cgroup.kill, Linux 5.14).
    virtual void kill() = 0;
    // Whether anything still runs in it or below it.
    virtual bool populated() const = 0;
    // A descriptor that becomes ready for `events` when populated() may
    // have changed (cgroup.events: POLLPRI).
    struct Events {
        sandbox::UniqueFd fd;
        std::uint32_t events = 0;
    };
    virtual Events watch_events() = 0;
    // rmdir of it and its empty descendants; never waits. false: still busy.
    virtual bool try_remove() = 0;
    // Leaves the directory as it is; the object no longer owns it.
    virtual void disown() = 0;
    // The fresh leaf "run.<n>" an incarnation is born into.
    virtual std::unique_ptr<KeyGroup> create_incarnation(std::uint32_t n) = 0;
    // OOM kills so far in it and below (memory.events; 0 without the controller).
    virtual std::uint64_t oom_kills() const = 0;
    virtual UsageSample usage() const = 0;
    // Its direct member processes (cgroup.procs).
    virtual std::vector<pid_t> processes() const = 0;
};

// A key's process: the init of its pid namespace, or the pattern itself.
class KeyProcess {
public:
    virtual ~KeyProcess() = default;
    virtual pid_t pid() const = 0;
    // Readable (EPOLLIN) once the process has exited (a pidfd, Linux 5.3).
    virtual int exit_fd() const = 0;
    // Our child: its status once it has exited, else nullopt (WNOHANG).
    virtual std::optional<siginfo_t> try_reap() = 0;
    virtual bool has_exited() const = 0;
    virtual bool send_signal(int signal) = 0;
    // Never signal it again (it was not ours after all).
    virtual void detach() = 0;
};

// Where a key's process listens and reports.
struct PatternEndpoints {
    int grpc_fd = -1;
    int grpc_port = 0;
    int health_fd = -1;  // -1: none (tcp and notify checks)
    int health_port = 0;
    std::filesystem::path notify_socket;  // empty: none
    // A session pool's process: its end of the claim socket (passed as the
    // fd named "claim"; docs/late-binding.md). -1: not a pool's.
    int claim_fd = -1;
};

// Everything a key's spawn needs, prepared by the core.
struct SpawnRequest {
    std::string process_id;
    IsolationKey key;
    const Manifest* manifest = nullptr;
    const std::map<std::string, std::string>* config = nullptr;  // the launch request's
    std::uint32_t identity = 0;  // the key's uid = gid; 0: the manifest's user, or none
    PatternEndpoints endpoints;
    KeyGroup* leaf = nullptr;  // from create_incarnation()
    int output_fd = -1;        // stdout and stderr; -1: the launcher's own stderr
    bool first_spawn = false;  // the key's first: its weakenings are logged
    // Egress: the namespace to join instead of a new one, and the name files
    // shown at /etc/hosts and /etc/resolv.conf. -1 / empty: none.
    int netns_fd = -1;
    std::filesystem::path hosts_file;
    std::filesystem::path resolv_file;
};

struct SpawnOutcome {
    std::unique_ptr<KeyProcess> process;
    std::uint32_t uid = 0, gid = 0;     // what it runs as
    std::string confinement;            // what was applied
    std::vector<std::string> weakened;  // what its manifest gives up
};

// A key's process cloned but not yet exec'd: the loop watches ready_fd()
// instead of waiting for the exec (sandbox::PendingSpawn). Destroying an
// unfinished one kills and reaps the child.
class PendingProcess {
public:
    virtual ~PendingProcess() = default;
    // Readable (EPOLLIN) once finish() will not block; -1: it never blocks.
    virtual int ready_fd() const = 0;
    // The started process; throws with the reason (the child then reaped).
    virtual SpawnOutcome finish() = 0;
};

// A spawn that finished before it was handed over (spawn() of a port
// without a start of its own).
class FinishedProcess : public PendingProcess {
public:
    explicit FinishedProcess(SpawnOutcome outcome) : outcome_(std::move(outcome)) {}
    int ready_fd() const override { return -1; }
    SpawnOutcome finish() override { return std::move(outcome_); }

private:
    SpawnOutcome outcome_;
};

class SandboxPort {
public:
    virtual ~SandboxPort() = default;
    // The launcher's cgroup subtree.
    virtual const std::string& root_path() const = 0;
    // A group named `name` at the top of the subtree, or below `parent`;
    // an existing one of that name is taken over.
    virtual std::unique_ptr<KeyGroup> create_group(const std::string& name, KeyGroup* parent) = 0;
    // Throws sandbox::ConfigError if `enforcement` is strict and a limit
    // cannot be set.
    virtual sandbox::LimitReport apply_limits(KeyGroup& group, const sandbox::CgroupLimits& limits,
                                              sandbox::Enforcement enforcement) = 0;
    // Starts a key's process in request.leaf. Throws with the reason.
    virtual SpawnOutcome spawn(const SpawnRequest& request) = 0;
    // The same without waiting for the exec: the fds in `request` may be
    // closed once it returns. By default spawn(), finished at once.
    virtual std::unique_ptr<PendingProcess> start_spawn(const SpawnRequest& request) {
        return std::make_unique<FinishedProcess>(spawn(request));
    }
    // How the pattern itself ended, if the init `pid` reported it.
    virtual std::optional<siginfo_t> reported_exit(pid_t pid) = 0;
    // What a key of `manifest` gets (for keys adopted after a restart).
    virtual std::string applied_confinement(const Manifest& manifest) const = 0;
    // Recovery: an existing group, and an existing process (pidfd_open).
    virtual std::unique_ptr<KeyGroup> adopt_group(const std::string& path) = 0;
    virtual std::unique_ptr<KeyProcess> open_process(pid_t pid) = 0;
};

}  // namespace launcher
