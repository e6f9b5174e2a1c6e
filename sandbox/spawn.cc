#include "sandbox/spawn.h"

#include <fcntl.h>
#include <linux/sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
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
};

detail::ChildPlan build_plan(const SpawnSpec& spec, PlanStorage& st) {
    detail::ChildPlan plan;
    st.argv_strings = spec.argv.empty() ? std::vector<std::string>{spec.executable} : spec.argv;
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

    st.dev_null = UniqueFd(::open("/dev/null", O_RDWR | O_CLOEXEC));
    if (!st.dev_null) throw_sys_error(errno, "open", "/dev/null");
    st.fd_sources = {st.dev_null.get(), spec.stdout_fd >= 0 ? spec.stdout_fd : st.dev_null.get(),
                     spec.stderr_fd >= 0 ? spec.stderr_fd : st.dev_null.get()};
    for (const PassedFd& passed : spec.passed_fds)
        st.fd_sources.push_back(passed.fd);
    st.fd_scratch.assign(st.fd_sources.size(), -1);
    // keep_fds is completed (error pipe) once the pipe exists.
    plan.fd_sources = st.fd_sources.data();
    plan.fd_scratch = st.fd_scratch.data();
    plan.fd_count = static_cast<int>(st.fd_sources.size());

    plan.new_session = spec.new_session;
    plan.loopback_up = spec.namespaces.net;
    plan.mount_proc = spec.namespaces.pid && spec.namespaces.mount;
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
    if (ns.user) flags |= CLONE_NEWUSER;
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

// clone3 in fork mode: returns the child's pid in the parent (after which
// `pidfd` is set) and never returns in the child.
pid_t clone_child(std::uint64_t flags, int cgroup_fd, int& pidfd, const detail::ChildPlan& plan) {
    clone_args args{};
    args.flags = flags | CLONE_PIDFD | CLONE_CLEAR_SIGHAND;
    args.pidfd = reinterpret_cast<std::uint64_t>(&pidfd);
    args.exit_signal = SIGCHLD;
    if (flags & CLONE_INTO_CGROUP) args.cgroup = static_cast<std::uint64_t>(cgroup_fd);
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

}  // namespace

const char* child_step_name(ChildStep step) noexcept {
    switch (step) {
        case ChildStep::kJoinCgroup:
            return "join cgroup";
        case ChildStep::kUserNamespaceSync:
            return "wait for user namespace maps";
        case ChildStep::kNewSession:
            return "setsid";
        case ChildStep::kLoopbackUp:
            return "bring up lo";
        case ChildStep::kMountProc:
            return "mount /proc";
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

SpawnError::SpawnError(std::string executable, ChildStep step, int err)
    : std::runtime_error("spawn " + executable + ": " + child_step_name(step) +
                         " failed: " + std::strerror(err) + " (errno " + std::to_string(err) + ")"),
      step_(step),
      err_(err) {}

bool clone_into_cgroup_available() noexcept {
    return g_clone_into_cgroup.load();
}

SpawnResult spawn(const SpawnSpec& spec) {
    validate(spec);
    PlanStorage storage;
    detail::ChildPlan plan = build_plan(spec, storage);

    Pipe error_pipe = make_pipe();
    plan.error_pipe = error_pipe.write.get();
    storage.keep_fds = storage.fd_sources;
    storage.keep_fds.push_back(plan.error_pipe);
    std::sort(storage.keep_fds.begin(), storage.keep_fds.end());
    storage.keep_fds.erase(std::unique(storage.keep_fds.begin(), storage.keep_fds.end()),
                           storage.keep_fds.end());
    plan.keep_fds = storage.keep_fds.data();
    plan.keep_count = static_cast<int>(storage.keep_fds.size());
    Pipe sync_pipe;
    if (spec.namespaces.user) {
        sync_pipe = make_pipe();
        plan.userns_sync_fd = sync_pipe.read.get();
    }

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

    int pidfd = -1;
    pid_t pid;
    {
        BlockAllSignals blocked;
        pid =
            clone_child(flags | (into_cgroup ? CLONE_INTO_CGROUP : 0), spec.cgroup_fd, pidfd, plan);
        if (pid < 0 && into_cgroup && (errno == E2BIG || errno == EOPNOTSUPP || errno == EPERM)) {
            // The kernel refused placement at clone time: remember that, and
            // let the child join by writing cgroup.procs instead.
            g_clone_into_cgroup.store(false);
            into_cgroup = false;
            join_by_procs_write();
            pid = clone_child(flags, -1, pidfd, plan);
        }
    }
    if (pid < 0) throw_sys_error(errno, "clone3 for " + spec.executable);

    Process process(pid, UniqueFd(pidfd));
    error_pipe.write.reset();
    sync_pipe.read.reset();
    if (spec.namespaces.user) {
        write_id_maps(pid, spec);  // on failure ~Process kills and reaps the waiting child
        if (::write(sync_pipe.write.get(), "x", 1) != 1) {
            throw_sys_error(errno, "release child " + std::to_string(pid) + " after id maps");
        }
        sync_pipe.write.reset();
    }

    detail::ChildFailure failure{};
    ssize_t n;
    do {
        n = ::read(error_pipe.read.get(), &failure, sizeof failure);
    } while (n < 0 && errno == EINTR);
    if (n == 0) return SpawnResult{std::move(process), into_cgroup};

    process.reap();
    if (n != static_cast<ssize_t>(sizeof failure)) {
        throw SysError(EIO, "spawn " + spec.executable + ": short report from the child");
    }
    throw SpawnError(spec.executable, static_cast<ChildStep>(failure.step), failure.err);
}

}  // namespace sandbox
