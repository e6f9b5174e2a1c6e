#include "sandbox/spawn.h"

#include <fcntl.h>
#include <linux/sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstring>

#include "sandbox/child_exec.h"
#include "sandbox/error.h"
#include "sandbox/file_io.h"

namespace sandbox {
namespace {

std::atomic<bool> g_clone_into_cgroup{true};

constexpr std::string_view kListenPidPrefix = "LISTEN_PID=";
constexpr std::size_t kPidDigitsRoom = 24;

bool valid_fd_name(std::string_view name) {
    return !name.empty() && name.size() <= 255 && std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '_' || c == '.' || c == '-';
    });
}

void validate(const SpawnSpec& spec) {
    if (spec.executable.empty() || spec.executable.front() != '/') {
        throw ConfigError("executable must be an absolute path, got '" + spec.executable + "'");
    }
    if (spec.seccomp && !spec.no_new_privs) {
        throw ConfigError(
            "a seccomp filter requires no_new_privs (installing one without it "
            "needs CAP_SYS_ADMIN, which the child drops)");
    }
    if ((spec.ambient_capabilities & ~spec.capabilities) != 0) {
        throw ConfigError("ambient capabilities " + capability_names(spec.ambient_capabilities) +
                          " must also be in the kept capabilities (" +
                          capability_names(spec.capabilities) + ")");
    }
    const int last = last_capability();
    if (last < 63 && (spec.capabilities >> (last + 1)) != 0) {
        throw ConfigError("capability mask names capabilities above this kernel's last (" +
                          std::to_string(last) + ")");
    }
    for (const std::string& entry : spec.environment) {
        std::size_t eq = entry.find('=');
        if (eq == 0 || eq == std::string::npos || entry.find('\0') != std::string::npos) {
            throw ConfigError("environment entry '" + entry + "' is not NAME=value");
        }
        if (entry.starts_with("LISTEN_")) {
            throw ConfigError("environment must not set " + entry.substr(0, eq) +
                              ": spawn sets LISTEN_* for the passed fds");
        }
    }
    if (spec.namespaces.pid && spec.init.executable_fd < 0) {
        throw ConfigError(
            "a pid namespace needs an init (PID 1 ignores signals it has no handler for)");
    }
    if (spec.netns_fd >= 0 && spec.namespaces.net) {
        throw ConfigError(
            "a prepared network namespace (netns_fd) and a new one (namespaces.net) exclude "
            "each other");
    }
    if (spec.view.enabled && !spec.namespaces.mount) {
        throw ConfigError("a private file view needs a mount namespace");
    }
    if (spec.view.enabled && spec.view.proc && !spec.namespaces.pid) {
        throw ConfigError("a file view with its own /proc needs a pid namespace");
    }
    if (spec.view.enabled && spec.view.cgroup && !spec.namespaces.cgroup) {
        throw ConfigError("a file view with its own /sys/fs/cgroup needs a cgroup namespace");
    }
    if (spec.landlock_ruleset_fd >= 0 && !spec.no_new_privs) {
        throw ConfigError("a Landlock ruleset requires no_new_privs");
    }
    if (spec.namespaces.user && spec.credentials &&
        (spec.credentials->uid != spec.user_map.inside_uid ||
         spec.credentials->gid != spec.user_map.inside_gid)) {
        throw ConfigError("uid " + std::to_string(spec.credentials->uid) + " and gid " +
                          std::to_string(spec.credentials->gid) +
                          " are not the ids the user namespace maps (" +
                          std::to_string(spec.user_map.inside_uid) + ", " +
                          std::to_string(spec.user_map.inside_gid) + ")");
    }
    for (const PassedFd& passed : spec.passed_fds) {
        if (passed.fd < 0) throw ConfigError("passed fd '" + passed.name + "' is not open");
        if (!valid_fd_name(passed.name)) {
            throw ConfigError("passed fd name '" + passed.name +
                              "' must be 1-255 characters from [A-Za-z0-9_.-]");
        }
    }
}

// Owns everything the ChildPlan points into, so that the pointers stay valid
// until the child has exec'd.
struct PlanStorage {
    std::vector<std::string> argv_strings;
    std::vector<std::string> env_strings;
    std::vector<char*> argv;
    std::vector<char*> envp;
    std::vector<int> fd_sources;
    std::vector<int> fd_scratch;
    std::vector<int> keep_fds;
    UniqueFd dev_null;
    UniqueFd cgroup_procs;
    sock_fprog seccomp{};
    detail::CompiledView view;
};

// With an init, the child execs the init, which runs the executable: the
// init's arguments come first (init_protocol.h), then the pattern's argv.
std::vector<std::string> child_argv(const SpawnSpec& spec, int error_fd, int status_fd) {
    std::vector<std::string> argv =
        spec.argv.empty() ? std::vector<std::string>{spec.executable} : spec.argv;
    if (!spec.namespaces.pid) return argv;
    std::vector<std::string> with_init = {"pattern-launcher-init", std::to_string(error_fd),
                                          std::to_string(status_fd), spec.executable};
    with_init.insert(with_init.end(), argv.begin(), argv.end());
    return with_init;
}

detail::ChildPlan build_plan(const SpawnSpec& spec, PlanStorage& st, int error_pipe) {
    detail::ChildPlan plan;
    st.env_strings = spec.environment;
    std::size_t listen_pid_index = 0;
    if (!spec.passed_fds.empty()) {
        std::string names;
        for (const PassedFd& passed : spec.passed_fds) {
            names += (names.empty() ? "" : ":") + passed.name;
        }
        st.env_strings.push_back("LISTEN_FDS=" + std::to_string(spec.passed_fds.size()));
        st.env_strings.push_back("LISTEN_FDNAMES=" + names);
        listen_pid_index = st.env_strings.size();
        st.env_strings.push_back(std::string(kListenPidPrefix) + std::string(kPidDigitsRoom, '0'));
    }
    st.dev_null = UniqueFd(::open("/dev/null", O_RDWR | O_CLOEXEC));
    if (!st.dev_null) throw_sys_error(errno, "open", "/dev/null");
    st.fd_sources = {st.dev_null.get(), spec.stdout_fd >= 0 ? spec.stdout_fd : st.dev_null.get(),
                     spec.stderr_fd >= 0 ? spec.stderr_fd : st.dev_null.get()};
    for (const PassedFd& passed : spec.passed_fds)
        st.fd_sources.push_back(passed.fd);
    int status_index = -1;
    if (spec.namespaces.pid) {
        // The init's own fds follow the passed ones; LISTEN_FDS does not count them.
        if (spec.init.status_fd >= 0) {
            status_index = static_cast<int>(st.fd_sources.size());
            st.fd_sources.push_back(spec.init.status_fd);
        }
        plan.error_pipe_index = static_cast<int>(st.fd_sources.size());
        st.fd_sources.push_back(error_pipe);
        plan.exec_fd = spec.init.executable_fd;
    }
    st.argv_strings = child_argv(spec, plan.error_pipe_index, status_index);
    for (std::string& s : st.argv_strings)
        st.argv.push_back(s.data());
    st.argv.push_back(nullptr);
    for (std::string& s : st.env_strings)
        st.envp.push_back(s.data());
    st.envp.push_back(nullptr);
    plan.executable = spec.executable.c_str();
    plan.argv = st.argv.data();
    plan.envp = st.envp.data();
    if (!spec.passed_fds.empty()) {
        plan.listen_pid_digits = st.env_strings[listen_pid_index].data() + kListenPidPrefix.size();
    }

    st.fd_scratch.assign(st.fd_sources.size(), -1);
    // keep_fds is completed (error pipe) once the pipe exists.
    plan.fd_sources = st.fd_sources.data();
    plan.fd_scratch = st.fd_scratch.data();
    plan.fd_count = static_cast<int>(st.fd_sources.size());

    plan.new_session = spec.new_session;
    plan.unshare_cgroup = spec.namespaces.cgroup;
    // A joined namespace was prepared (lo up included) by its maker.
    plan.loopback_up = spec.namespaces.net;
    plan.netns_fd = spec.netns_fd;
    if (spec.view.enabled) {
        st.view = detail::compile_view(spec.view);
        plan.mount_ops = st.view.ops.data();
        plan.mount_op_count = static_cast<int>(st.view.ops.size());
        plan.tree_fds = st.view.tree_fds.data();
    }
    plan.landlock_fd = spec.landlock_ruleset_fd;
    if (!spec.working_directory.empty()) plan.working_directory = spec.working_directory.c_str();
    plan.resource_limits = spec.resource_limits.data();
    plan.resource_limit_count = spec.resource_limits.size();
    plan.parent_death_signal = spec.parent_death_signal;
    if (spec.credentials) {
        plan.set_credentials = true;
        // write_id_maps() denies setgroups in a user namespace when no groups are asked for.
        plan.set_groups = !spec.namespaces.user || !spec.credentials->supplementary_groups.empty();
        plan.uid = spec.credentials->uid;
        plan.gid = spec.credentials->gid;
        plan.groups = spec.credentials->supplementary_groups.data();
        plan.group_count = spec.credentials->supplementary_groups.size();
    } else if (spec.namespaces.user) {
        // The child starts with the parent's ids, which the namespace does not
        // map; switching to the mapped ids is what makes it "inside_uid" there
        // (and outside_uid on the host). setgroups is denied in that case.
        plan.set_credentials = true;
        plan.uid = spec.user_map.inside_uid;
        plan.gid = spec.user_map.inside_gid;
    }
    plan.capabilities = spec.capabilities;
    plan.ambient_capabilities = spec.ambient_capabilities;
    plan.last_capability = last_capability();
    plan.no_new_privs = spec.no_new_privs;
    if (spec.seccomp) {
        st.seccomp = spec.seccomp->fprog();
        plan.seccomp = &st.seccomp;
    }
    return plan;
}

std::uint64_t namespace_flags(const Namespaces& ns) {
    std::uint64_t flags = 0;
    if (ns.mount) flags |= CLONE_NEWNS;
    if (ns.pid) flags |= CLONE_NEWPID;
    if (ns.ipc) flags |= CLONE_NEWIPC;
    if (ns.uts) flags |= CLONE_NEWUTS;
    if (ns.net) flags |= CLONE_NEWNET;
    return flags;
}

struct Pipe {
    UniqueFd read;
    UniqueFd write;
};

Pipe make_pipe() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw_sys_error(errno, "create spawn pipe");
    return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

// Blocks every signal in the calling thread for its lifetime, so that no
// handler of ours runs in the child between clone3 and its signal reset.
class BlockAllSignals {
public:
    BlockAllSignals() {
        sigset_t all;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &saved_);
    }
    ~BlockAllSignals() { pthread_sigmask(SIG_SETMASK, &saved_, nullptr); }

private:
    sigset_t saved_{};
};

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
    __has_feature(memory_sanitizer)
#define PL_SPAWN_SANITIZED 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define PL_SPAWN_SANITIZED 1
#endif
#if defined(__x86_64__) && !defined(PL_SPAWN_SANITIZED)
constexpr bool kSharedMemoryClone = true;
#else
constexpr bool kSharedMemoryClone = false;
#endif

// The stack a kSharedMemory child runs on until exec, with a guard page
// below it. 256 KiB is far more than run_child() needs (its frames hold
// the plan's copy and a few small structs).
class ChildStack {
public:
    static constexpr std::size_t kSize = 256 * 1024;
    ChildStack() {
        void* base = ::mmap(nullptr, kSize, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK | MAP_NORESERVE, -1, 0);
        if (base == MAP_FAILED) throw_sys_error(errno, "mmap a stack for the child");
        base_ = base;
        if (::mprotect(base_, static_cast<std::size_t>(::getpagesize()), PROT_NONE) != 0) {
            int err = errno;
            ::munmap(base_, kSize);
            throw_sys_error(err, "mprotect the child's stack guard");
        }
    }
    ~ChildStack() { ::munmap(base_, kSize); }
    ChildStack(const ChildStack&) = delete;
    ChildStack& operator=(const ChildStack&) = delete;
    std::uint64_t base() const { return reinterpret_cast<std::uint64_t>(base_); }

private:
    void* base_ = nullptr;
};

[[noreturn]] void child_entry(const detail::ChildPlan* plan) noexcept {
    detail::run_child(*plan);
}

// clone3 with args->stack set: in the child, calls child_entry(plan) on
// that stack (it never returns); in the parent, returns the child's pid or
// -errno. Assembly because the child must not return through any frame of
// ours: it resumes on its own, empty stack (sp = stack + stack_size). r12
// and r13 survive the syscall in both tasks.
long clone3_on_stack(clone_args* args, const detail::ChildPlan* plan) noexcept {
#if defined(__x86_64__)
    register long entry asm("r12") = reinterpret_cast<long>(&child_entry);
    register long argument asm("r13") = reinterpret_cast<long>(plan);
    long result;
    asm volatile(
        "syscall\n\t"
        "testq %%rax, %%rax\n\t"
        "jnz 1f\n\t"
        "xorl %%ebp, %%ebp\n\t"
        "movq %%r13, %%rdi\n\t"
        "callq *%%r12\n\t"
        "ud2\n"
        "1:"
        : "=a"(result)
        : "0"(static_cast<long>(SYS_clone3)), "D"(args), "S"(sizeof *args), "r"(entry),
          "r"(argument)
        : "rcx", "r11", "memory", "cc");
    return result;
#else
    (void)args;
    (void)plan;
    return -ENOSYS;
#endif
}

// clone3: returns the child's pid in the parent (after which `pidfd` is
// set), or -1 with errno. In fork mode it never returns in the child; with
// `stack` the child shares our memory and runs on it (kSharedMemory).
pid_t clone_child(std::uint64_t flags, int cgroup_fd, int& pidfd, const detail::ChildPlan& plan,
                  const ChildStack* stack) {
    clone_args args{};
    args.flags = flags | CLONE_PIDFD | CLONE_CLEAR_SIGHAND;
    args.pidfd = reinterpret_cast<std::uint64_t>(&pidfd);
    args.exit_signal = SIGCHLD;
    if (flags & CLONE_INTO_CGROUP) args.cgroup = static_cast<std::uint64_t>(cgroup_fd);
    if (stack) {
        args.flags |= CLONE_VM;
        args.stack = stack->base();
        args.stack_size = ChildStack::kSize;
        long result = clone3_on_stack(&args, &plan);
        if (result < 0) {
            errno = static_cast<int>(-result);
            return -1;
        }
        return static_cast<pid_t>(result);
    }
    long pid = ::syscall(SYS_clone3, &args, sizeof args);
    if (pid == 0) detail::run_child(plan);
    return static_cast<pid_t>(pid);
}

void write_id_maps(pid_t pid, const SpawnSpec& spec) {
    const std::string proc = "/proc/" + std::to_string(pid);
    const UserNamespaceMap& map = spec.user_map;
    detail::write_file(proc + "/uid_map", std::to_string(map.inside_uid) + " " +
                                              std::to_string(map.outside_uid) + " 1\n");
    // Without supplementary groups to set, deny setgroups() inside for good.
    bool wants_groups = spec.credentials && !spec.credentials->supplementary_groups.empty();
    if (!wants_groups) detail::write_file(proc + "/setgroups", "deny");
    detail::write_file(proc + "/gid_map", std::to_string(map.inside_gid) + " " +
                                              std::to_string(map.outside_gid) + " 1\n");
}

// A user namespace with the spec's id maps, for the child to join with
// setns once it has built its file view (child_exec.cc). It is made by a
// short-lived helper born in it: the helper only blocks on a pipe (raw
// syscalls: it is a fork of a possibly multi-threaded process) until its
// namespace is pinned by an fd.
UniqueFd make_user_namespace(const SpawnSpec& spec) {
    Pipe hold = make_pipe();
    long pid = ::syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
    if (pid == 0) {
        char byte;
        ::syscall(SYS_close, hold.write.get());  // else our own copy keeps the pipe open
        ::syscall(SYS_read, hold.read.get(), &byte, 1);
        ::syscall(SYS_exit_group, 0);
    }
    if (pid < 0) throw_sys_error(errno, "clone a user namespace for " + spec.executable);
    hold.read.reset();
    struct Reap {
        pid_t pid;
        Pipe& hold;
        ~Reap() {
            hold.write.reset();  // the helper's read returns: it exits
            int status;
            while (::waitpid(pid, &status, __WALL) < 0 && errno == EINTR) {
            }
        }
    } reap{static_cast<pid_t>(pid), hold};
    write_id_maps(static_cast<pid_t>(pid), spec);
    const std::string path = "/proc/" + std::to_string(pid) + "/ns/user";
    UniqueFd ns(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!ns) throw_sys_error(errno, "open", path);
    return ns;
}

}  // namespace

const char* child_step_name(ChildStep step) noexcept {
    switch (step) {
        case ChildStep::kJoinCgroup:
            return "join cgroup";
        case ChildStep::kUserNamespace:
            return "join the user namespace";
        case ChildStep::kNewSession:
            return "setsid";
        case ChildStep::kJoinNetwork:
            return "join the network namespace";
        case ChildStep::kLoopbackUp:
            return "bring up lo";
        case ChildStep::kCgroupNamespace:
            return "unshare the cgroup namespace";
        case ChildStep::kFileView:
            return "build the file view";
        case ChildStep::kLandlock:
            return "apply the Landlock ruleset";
        case ChildStep::kInitSetup:
            return "start the init";
        case ChildStep::kInitFork:
            return "fork the pattern from the init";
        case ChildStep::kInitExec:
            return "execve from the init";
        case ChildStep::kFdPlan:
            return "set up fds";
        case ChildStep::kCloseFds:
            return "close inherited fds";
        case ChildStep::kWorkingDirectory:
            return "chdir";
        case ChildStep::kResourceLimits:
            return "set rlimits";
        case ChildStep::kParentDeathSignal:
            return "set parent death signal";
        case ChildStep::kDropBoundingSet:
            return "drop capability bounding set";
        case ChildStep::kKeepCapabilities:
            return "keep capabilities";
        case ChildStep::kSetGroups:
            return "setgroups";
        case ChildStep::kSetGid:
            return "setresgid";
        case ChildStep::kSetUid:
            return "setresuid";
        case ChildStep::kSetCapabilities:
            return "capset";
        case ChildStep::kAmbientCapabilities:
            return "set ambient capabilities";
        case ChildStep::kResetSignals:
            return "reset signals";
        case ChildStep::kNoNewPrivs:
            return "set no_new_privs";
        case ChildStep::kSeccomp:
            return "install seccomp filter";
        case ChildStep::kExec:
            return "execve";
    }
    return "unknown step";
}

SpawnError::SpawnError(std::string executable, ChildStep step, int err, const std::string& what)
    : std::runtime_error("spawn " + executable + ": " + child_step_name(step) +
                         (what.empty() ? "" : " (" + what + ")") +
                         " failed: " + std::strerror(err) + " (errno " + std::to_string(err) + ")"),
      step_(step),
      err_(err) {}

bool shared_memory_clone_supported() noexcept {
    return kSharedMemoryClone;
}

bool clone_into_cgroup_available() noexcept {
    return g_clone_into_cgroup.load();
}

// Everything a started child may still use until it has exec'd: with
// kSharedMemory it runs in our memory, on `stack`, reading the plan, the
// spec's copy and `storage`. `process` is declared last, so that an
// unfinished spawn's child is killed and reaped (Process's destructor)
// before any of it is freed.
struct PendingSpawn::State {
    SpawnSpec spec;  // the caller's may go away once start_spawn() returns
    PlanStorage storage;
    std::vector<sock_filter> seccomp_filter;
    UniqueFd user_namespace;
    UniqueFd error_read;
    detail::ChildPlan plan;
    std::optional<ChildStack> stack;
    bool into_cgroup = false;
    Process process;
};

PendingSpawn::PendingSpawn(std::unique_ptr<State> state) noexcept : state_(std::move(state)) {}
PendingSpawn::PendingSpawn(PendingSpawn&&) noexcept = default;
PendingSpawn& PendingSpawn::operator=(PendingSpawn&&) noexcept = default;
PendingSpawn::~PendingSpawn() = default;

int PendingSpawn::ready_fd() const noexcept {
    return state_ ? state_->error_read.get() : -1;
}

pid_t PendingSpawn::pid() const noexcept {
    return state_ ? state_->process.pid() : 0;
}

SpawnResult PendingSpawn::finish() {
    if (!state_) throw std::logic_error("PendingSpawn::finish() called twice");
    std::unique_ptr<State> st = std::move(state_);
    detail::ChildFailure failure{};
    ssize_t n;
    do {
        n = ::read(st->error_read.get(), &failure, sizeof failure);
    } while (n < 0 && errno == EINTR);
    if (n < 0) throw_sys_error(errno, "read the spawn pipe of " + st->spec.executable);
    if (n == 0) {
        // EOF: every copy of the write end is closed, i.e. the child (and,
        // with an init, the pattern) has exec'd, or died. Our memory is no
        // longer the child's.
        return SpawnResult{std::move(st->process), st->into_cgroup,
                           st->stack ? CloneMode::kSharedMemory : CloneMode::kFork};
    }
    // The init (in its own pid namespace) takes the namespace with it.
    if (st->spec.namespaces.pid) st->process.send_signal(SIGKILL);
    st->process.reap();
    // The init reports only {step, errno}.
    if (n != static_cast<ssize_t>(sizeof failure) &&
        n != static_cast<ssize_t>(offsetof(detail::ChildFailure, detail))) {
        throw SysError(EIO, "spawn " + st->spec.executable + ": short report from the child");
    }
    const auto step = static_cast<ChildStep>(failure.step);
    throw SpawnError(st->spec.executable, step, failure.err,
                     step == ChildStep::kFileView
                         ? detail::describe_mount_op(st->storage.view, failure.detail)
                         : std::string());
}

PendingSpawn start_spawn(const SpawnSpec& caller_spec) {
    validate(caller_spec);
    auto st = std::make_unique<PendingSpawn::State>();
    st->spec = caller_spec;
    const SpawnSpec& spec = st->spec;
    PlanStorage& storage = st->storage;
    detail::ChildPlan& plan = st->plan;
    Pipe error_pipe = make_pipe();
    plan = build_plan(spec, storage, error_pipe.write.get());
    plan.error_pipe = error_pipe.write.get();
    if (spec.seccomp) {
        // The child may read the filter after we have returned.
        st->seccomp_filter.assign(storage.seccomp.filter,
                                  storage.seccomp.filter + storage.seccomp.len);
        storage.seccomp.filter = st->seccomp_filter.data();
    }
    if (spec.namespaces.user) {
        st->user_namespace = make_user_namespace(spec);
        plan.userns_fd = st->user_namespace.get();
    }
    // What the child needs open until exec; it closes everything else first.
    storage.keep_fds = storage.fd_sources;
    for (int fd : {plan.error_pipe, plan.exec_fd, plan.landlock_fd, plan.userns_fd}) {
        if (fd >= 0) storage.keep_fds.push_back(fd);
    }
    std::sort(storage.keep_fds.begin(), storage.keep_fds.end());
    storage.keep_fds.erase(std::unique(storage.keep_fds.begin(), storage.keep_fds.end()),
                           storage.keep_fds.end());
    plan.keep_fds = storage.keep_fds.data();
    plan.keep_count = static_cast<int>(storage.keep_fds.size());

    std::uint64_t flags = namespace_flags(spec.namespaces);
    bool into_cgroup = spec.cgroup_fd >= 0 && g_clone_into_cgroup.load();
    auto join_by_procs_write = [&] {
        storage.cgroup_procs =
            UniqueFd(::openat(spec.cgroup_fd, "cgroup.procs", O_WRONLY | O_CLOEXEC));
        if (!storage.cgroup_procs)
            throw_sys_error(errno, "open cgroup.procs of the child's cgroup");
        plan.cgroup_procs_fd = storage.cgroup_procs.get();
    };
    if (spec.cgroup_fd >= 0 && !into_cgroup) join_by_procs_write();

    if (kSharedMemoryClone && spec.clone_mode == CloneMode::kSharedMemory) st->stack.emplace();
    const ChildStack* child_stack = st->stack ? &*st->stack : nullptr;
    int pidfd = -1;
    pid_t pid;
    {
        BlockAllSignals blocked;
        pid = clone_child(flags | (into_cgroup ? CLONE_INTO_CGROUP : 0), spec.cgroup_fd, pidfd,
                          plan, child_stack);
        if (pid < 0 && into_cgroup && (errno == E2BIG || errno == EOPNOTSUPP || errno == EPERM)) {
            // The kernel refused placement at clone time: remember that, and
            // let the child join by writing cgroup.procs instead.
            g_clone_into_cgroup.store(false);
            into_cgroup = false;
            join_by_procs_write();
            pid = clone_child(flags, -1, pidfd, plan, child_stack);
        }
    }
    if (pid < 0) throw_sys_error(errno, "clone3 for " + spec.executable);
    st->process = Process(pid, UniqueFd(pidfd));
    st->into_cgroup = into_cgroup;
    // The child has its own copy of the fd table: from here on only its
    // copies of the write end (and its init's) keep the pipe open.
    error_pipe.write.reset();
    st->error_read = std::move(error_pipe.read);
    return PendingSpawn(std::move(st));
}

SpawnResult spawn(const SpawnSpec& spec) {
    // finish() reads the pipe blocking: it returns at the exec or the report.
    return start_spawn(spec).finish();
}

}  // namespace sandbox
