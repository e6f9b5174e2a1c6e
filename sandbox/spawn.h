// Starting a confined child: clone3(CLONE_PIDFD | CLONE_INTO_CGROUP), then
// in the child only raw syscalls until execve. Everything the child needs is
// prepared here in the parent; a failing step comes back over a pipe as the
// step's name and errno, and the child is reaped before spawn() throws.
#pragma once

#include <sys/resource.h>
#include <sys/types.h>

#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "sandbox/capabilities.h"
#include "sandbox/file_view.h"
#include "sandbox/init_protocol.h"
#include "sandbox/process.h"
#include "sandbox/seccomp.h"

namespace sandbox {

// New namespaces for the child. `net` gives it a network namespace whose
// only interface is `lo`, brought up. `pid` needs an init (SpawnSpec::init):
// PID 1 of a namespace ignores every signal it has no handler for, so the
// executable runs as the init's child. `cgroup` roots the child's cgroup
// namespace at the cgroup it is born into.
struct Namespaces {
    bool mount = false;
    bool pid = false;
    bool ipc = false;
    bool uts = false;
    bool user = false;
    bool net = false;
    bool cgroup = false;
    bool any() const { return mount || pid || ipc || uts || user || net || cgroup; }
};

// pattern-launcher-init (sandbox/init/, protocol in sandbox/init_protocol.h),
// exec'd from an fd so that it need not be visible in the child's view.
struct InitProcess {
    int executable_fd = -1;  // O_PATH or O_RDONLY fd of the init binary; the caller keeps it
    int status_fd = -1;      // InitReports::sender_fd(), or -1: exit reports are not wanted
};

// With Namespaces::user: uid and gid `inside` map to `outside` (one id each).
struct UserNamespaceMap {
    uid_t inside_uid = 0;
    uid_t outside_uid = 65534;  // nobody
    gid_t inside_gid = 0;
    gid_t outside_gid = 65534;  // nogroup
};

struct Credentials {
    uid_t uid = 0;
    gid_t gid = 0;
    std::vector<gid_t> supplementary_groups;
};

struct ResourceLimit {
    int resource = 0;  // RLIMIT_NOFILE, RLIMIT_CORE, ...
    rlim_t soft = 0;
    rlim_t hard = 0;
};

// A socket (or any fd) handed to the child as fd 3, 4, ... in order, with
// LISTEN_FDS, LISTEN_FDNAMES and LISTEN_PID set as sd_listen_fds(3) expects.
struct PassedFd {
    int fd = -1;       // the parent's fd; the parent keeps ownership
    std::string name;  // the LISTEN_FDNAMES entry; [A-Za-z0-9_.-]{1,255}
};

// How spawn() clones the child.
//  - kSharedMemory: clone3(CLONE_VM) onto a stack of the child's own; the
//    child runs in our memory until it execs, so nothing of the address space
//    is copied: no page tables (the daemon's grow with its keys) and no
//    copy-on-write faults in the parent afterwards. Only on x86-64 (the
//    child's syscalls and the clone are inline assembly, since glibc's would
//    write our thread's errno) and not under ASan/TSan, whose runtimes cannot
//    follow a second task through one thread's state; fork elsewhere.
//  - kFork: clone3 in fork mode, the address space copied.
enum class CloneMode { kSharedMemory, kFork };

// Whether kSharedMemory is what spawn() does on this build.
bool shared_memory_clone_supported() noexcept;

struct SpawnSpec {
    std::string executable;                // absolute path, exec'd as is
    std::vector<std::string> argv;         // argv[0] included; empty: {executable}
    std::vector<std::string> environment;  // "NAME=value"; LISTEN_* are added by spawn
    std::string working_directory;         // empty: inherit

    int stdout_fd = -1;  // -1: /dev/null. stdin is always /dev/null.
    int stderr_fd = -1;  // -1: /dev/null
    std::vector<PassedFd> passed_fds;

    int cgroup_fd = -1;  // Cgroup::dir_fd(); -1: stay in the caller's cgroup
    Namespaces namespaces;
    UserNamespaceMap user_map;  // used with namespaces.user; must map `credentials`
    InitProcess init;           // required with namespaces.pid
    // A prepared network namespace (create_network_namespace(), its veth
    // made by create_veth()) for the child to join first thing; the caller
    // keeps the fd. Not with namespaces.net; -1: the network namespace of
    // namespaces.net, or the caller's.
    int netns_fd = -1;
    FileView view;  // with namespaces.mount

    std::optional<Credentials> credentials;  // unset: keep the caller's ids
    std::vector<ResourceLimit> resource_limits;

    CapabilityMask capabilities = 0;          // bounding, permitted, effective, inheritable
    CapabilityMask ambient_capabilities = 0;  // must be a subset of `capabilities`
    bool no_new_privs = true;
    const BpfProgram* seccomp = nullptr;  // requires no_new_privs; copied by start_spawn()
    int landlock_ruleset_fd = -1;         // make_landlock_ruleset(); requires no_new_privs

    bool new_session = true;
    int parent_death_signal = 0;  // 0: the child outlives the caller
    CloneMode clone_mode = CloneMode::kSharedMemory;
};

// The steps of the child between clone and exec, in order. The numbers
// only travel from the child to spawn() of the same binary (and the init's
// own, fixed at 100+), so a step may be inserted where it runs.
enum class ChildStep : int {
    kJoinCgroup = 1,
    kNewSession,
    kJoinNetwork,
    kCgroupNamespace,
    kLoopbackUp,
    kFdPlan,
    kCloseFds,
    kFileView,
    kWorkingDirectory,
    kResourceLimits,
    kParentDeathSignal,
    kUserNamespace,
    kDropBoundingSet,
    kKeepCapabilities,
    kSetGroups,
    kSetGid,
    kSetUid,
    kSetCapabilities,
    kAmbientCapabilities,
    kResetSignals,
    kNoNewPrivs,
    kLandlock,
    kSeccomp,
    kExec,
    // Reported by pattern-launcher-init (init_protocol.h).
    kInitSetup = init_protocol::kStepInitSetup,
    kInitFork = init_protocol::kStepInitFork,
    kInitExec = init_protocol::kStepInitExec,
};

const char* child_step_name(ChildStep step) noexcept;

class SpawnError : public std::runtime_error {
public:
    // `what` says more about the step (which mount of the file view), or is empty.
    SpawnError(std::string executable, ChildStep step, int err, const std::string& what = {});
    ChildStep step() const noexcept { return step_; }
    int error_code() const noexcept { return err_; }

private:
    ChildStep step_;
    int err_;
};

struct SpawnResult {
    Process process;
    // False when the kernel refused CLONE_INTO_CGROUP and the child joined
    // its cgroup by writing cgroup.procs instead.
    bool joined_cgroup_at_clone = false;
    CloneMode clone_mode = CloneMode::kFork;  // what was used
};

// A child cloned but maybe not yet exec'd: what lets an event loop start
// children without waiting for their exec. ready_fd() (the read end of the
// spawn's error pipe) becomes readable when the child has exec'd (EOF: with
// an init, once the pattern under it has) or reports a failed step; then
// finish() gives the result without blocking. Destroying an unfinished
// PendingSpawn kills and reaps the child: with CloneMode::kSharedMemory it
// may still be running in our memory, on a stack this object owns.
class PendingSpawn {
public:
    struct State;
    explicit PendingSpawn(std::unique_ptr<State> state) noexcept;
    PendingSpawn(PendingSpawn&&) noexcept;
    PendingSpawn& operator=(PendingSpawn&&) noexcept;
    ~PendingSpawn();

    int ready_fd() const noexcept;
    pid_t pid() const noexcept;
    // Blocks until ready_fd() is readable (not at all once it is). Throws as
    // spawn() does; in every case the object is spent.
    SpawnResult finish();

private:
    std::unique_ptr<State> state_;
};

// Clones the child and returns at once; the spec is copied, and every fd it
// names may be closed by the caller as soon as this returns (the child has
// its own copy of the table). Throws ConfigError for a spec that cannot be
// right and SysError when the parent's own preparation or clone3 fails.
PendingSpawn start_spawn(const SpawnSpec& spec);

// start_spawn() and finish(): returns once the child has exec'd. Throws
// SpawnError when a step in the child fails (the child has then been reaped).
SpawnResult spawn(const SpawnSpec& spec);

// False once the kernel has refused CLONE_INTO_CGROUP (E2BIG on 5.3-5.6,
// EOPNOTSUPP for threaded groups, EPERM); spawn() then remembers to use the
// cgroup.procs fallback.
bool clone_into_cgroup_available() noexcept;

}  // namespace sandbox
