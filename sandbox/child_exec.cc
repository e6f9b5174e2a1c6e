#include "sandbox/child_exec.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <linux/close_range.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include "sandbox/landlock.h"

namespace sandbox::detail {
namespace {

// The kernel's struct sigaction for rt_sigaction (not glibc's, which differs).
struct KernelSigaction {
    void (*handler)(int);
    unsigned long flags;
    void (*restorer)();
    std::uint64_t mask;
};

constexpr int kKernelSignalCount = 64;

// A raw syscall: its result, or -errno. Not glibc's syscall(), which sets
// errno: a child cloned with CLONE_VM (spawn.cc) shares the memory, and so
// the thread-local errno, of the parent thread that keeps running, and must
// write nothing the parent owns but what its plan gives it.
long sys(long number, long a = 0, long b = 0, long c = 0, long d = 0, long e = 0) noexcept {
#if defined(__x86_64__)
    register long r10 asm("r10") = d;
    register long r8 asm("r8") = e;
    long result;
    asm volatile("syscall"
                 : "=a"(result)
                 : "0"(number), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8)
                 : "rcx", "r11", "memory");
    return result;
#else
    // Only fork mode exists here (spawn.cc), so the child owns its errno.
    long result = ::syscall(number, a, b, c, d, e);
    return result < 0 ? -errno : result;
#endif
}

// `result` is what sys() returned: -errno.
[[noreturn]] void fail(const ChildPlan& plan, ChildStep step, long result,
                       int detail = -1) noexcept {
    ChildFailure failure{static_cast<int>(step), static_cast<int>(-result), detail};
    // Nothing more can be done if this write fails: the parent then sees
    // an exit code of 127 without a step.
    sys(SYS_write, plan.error_pipe, reinterpret_cast<long>(&failure), sizeof failure);
    sys(SYS_exit_group, 127);
    __builtin_unreachable();
}

// Fails `step` unless `result` (of sys()) is a success.
void check(const ChildPlan& plan, ChildStep step, long result) noexcept {
    if (result < 0) fail(plan, step, result);
}

template <typename T>
long ptr(T* p) noexcept {
    return reinterpret_cast<long>(p);
}

// Formats `value` as decimal digits followed by NUL (async-signal-safe).
void write_decimal(char* out, long value) noexcept {
    char digits[24];
    int n = 0;
    do {
        digits[n++] = static_cast<char>('0' + value % 10);
        value /= 10;
    } while (value > 0);
    while (n > 0)
        *out++ = digits[--n];
    *out = '\0';
}

void join_cgroup(const ChildPlan& plan) noexcept {
    if (plan.cgroup_procs_fd < 0) return;
    // "0" means the writing process itself.
    long written = sys(SYS_write, plan.cgroup_procs_fd, ptr("0"), 1);
    if (written != 1) fail(plan, ChildStep::kJoinCgroup, written < 0 ? written : -EIO);
}

// Joined only now, after the file view was built with the host's root: the
// mount namespace and the tmpfs mounts stay owned by the initial user
// namespace, so the pattern's root-in-namespace cannot change them, and
// files created for mount points need no mapped fsuid. setns resets the
// bounding set to full, so this comes before it is cut.
void join_user_namespace(const ChildPlan& plan) noexcept {
    if (plan.userns_fd < 0) return;
    check(plan, ChildStep::kUserNamespace, sys(SYS_setns, plan.userns_fd, CLONE_NEWUSER));
    sys(SYS_close, plan.userns_fd);
}

// Joined before everything that depends on the namespace (lo, sockets the
// pattern opens) and, above all, before the user namespace: setns needs
// CAP_SYS_ADMIN over the user namespace that owns the network namespace
// (the initial one), and after joining the pattern's user namespace the
// child has capabilities in that one only (EPERM). Before the fd plan too,
// which closes this fd: it is deliberately not in keep_fds, the namespace
// needs no fd once joined.
void join_network_namespace(const ChildPlan& plan) noexcept {
    if (plan.netns_fd < 0) return;
    check(plan, ChildStep::kJoinNetwork, sys(SYS_setns, plan.netns_fd, CLONE_NEWNET));
}

void bring_loopback_up(const ChildPlan& plan) noexcept {
    if (!plan.loopback_up) return;
    long fd = sys(SYS_socket, AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    check(plan, ChildStep::kLoopbackUp, fd);
    ifreq request{};
    const char name[] = "lo";
    for (std::size_t i = 0; i < sizeof name; ++i)
        request.ifr_name[i] = name[i];
    check(plan, ChildStep::kLoopbackUp, sys(SYS_ioctl, fd, SIOCGIFFLAGS, ptr(&request)));
    request.ifr_flags = static_cast<short>(request.ifr_flags | IFF_UP | IFF_RUNNING);
    check(plan, ChildStep::kLoopbackUp, sys(SYS_ioctl, fd, SIOCSIFFLAGS, ptr(&request)));
    sys(SYS_close, fd);
}

// The cgroup namespace is made here rather than with CLONE_NEWCGROUP: a
// namespace made by clone3 is rooted at the parent's cgroup even with
// CLONE_INTO_CGROUP (copy_cgroup_ns uses current's css_set), while unshare
// roots it at the cgroup we were born into.
void unshare_cgroup_namespace(const ChildPlan& plan) noexcept {
    if (plan.unshare_cgroup)
        check(plan, ChildStep::kCgroupNamespace, sys(SYS_unshare, CLONE_NEWCGROUP));
}

long run_mount_op(const ChildPlan& plan, const MountOp& op) noexcept {
    switch (op.kind) {
        case MountOpKind::kMakePrivate:
            return sys(SYS_mount, 0, ptr(op.target), 0, MS_REC | MS_PRIVATE, 0);
        case MountOpKind::kOpenTree: {
            long fd = sys(SYS_open_tree, AT_FDCWD, ptr(op.source),
                          OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
            if (fd < 0) return fd;
            plan.tree_fds[op.slot] = static_cast<int>(fd);
            mount_attr attr{};
            attr.attr_set = op.attr;
            return sys(SYS_mount_setattr, fd, ptr(""), AT_EMPTY_PATH | AT_RECURSIVE, ptr(&attr),
                       sizeof attr);
        }
        case MountOpKind::kReadOnlyTree: {
            mount_attr attr{};
            attr.attr_set = op.attr;
            return sys(SYS_mount_setattr, AT_FDCWD, ptr(op.target), AT_RECURSIVE, ptr(&attr),
                       sizeof attr);
        }
        case MountOpKind::kMount:
            return sys(SYS_mount, ptr(op.source), ptr(op.target), ptr(op.fstype),
                       static_cast<long>(op.flags), ptr(op.data));
        case MountOpKind::kRemount:
            return sys(SYS_mount, 0, ptr(op.target), 0,
                       static_cast<long>(MS_REMOUNT | MS_BIND | op.flags), 0);
        case MountOpKind::kMkdir: {
            long rc = sys(SYS_mkdir, ptr(op.target), op.mode);
            return rc == -EEXIST ? 0 : rc;
        }
        case MountOpKind::kMkfile: {
            long fd =
                sys(SYS_open, ptr(op.target), O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, op.mode);
            if (fd < 0) return fd;
            sys(SYS_close, fd);
            return 0;
        }
        case MountOpKind::kSymlink:
            return sys(SYS_symlink, ptr(op.source), ptr(op.target));
        case MountOpKind::kMoveTree: {
            const int fd = plan.tree_fds[op.slot];
            long rc =
                sys(SYS_move_mount, fd, ptr(""), AT_FDCWD, ptr(op.target), MOVE_MOUNT_F_EMPTY_PATH);
            sys(SYS_close, fd);
            return rc;
        }
    }
    return -EINVAL;
}

void build_file_view(const ChildPlan& plan) noexcept {
    for (int i = 0; i < plan.mount_op_count; ++i) {
        const MountOp& op = plan.mount_ops[i];
        long rc = run_mount_op(plan, op);
        if (rc < 0 && !(op.optional && rc == -ENOENT)) fail(plan, ChildStep::kFileView, rc, i);
    }
}

// An fd the child itself needs until exec must survive the fd plan: moved
// above the range the plan fills (close-on-exec, like the original).
void move_above(const ChildPlan& plan, int& fd, int floor) noexcept {
    if (fd < 0 || fd >= floor) return;
    long moved = sys(SYS_fcntl, fd, F_DUPFD_CLOEXEC, floor);
    check(plan, ChildStep::kFdPlan, moved);
    fd = static_cast<int>(moved);
}

// Puts fd_sources[i] at fd i. Every source is first copied above the target
// range, so that no dup3 can overwrite a source that is still needed.
void apply_fd_plan(ChildPlan& plan) noexcept {
    const int floor = plan.fd_count;
    // Free the table of everything the plan does not use.
    int previous = -1;
    for (int i = 0; i < plan.keep_count; ++i) {
        const int fd = plan.keep_fds[i];
        if (fd > previous + 1) sys(SYS_close_range, previous + 1, fd - 1, 0);
        previous = fd;
    }
    sys(SYS_close_range, previous + 1, ~0U, 0);
    // What we need ourselves must survive the dup3s into 0..floor-1.
    move_above(plan, plan.error_pipe, floor);
    move_above(plan, plan.exec_fd, floor);
    move_above(plan, plan.landlock_fd, floor);
    move_above(plan, plan.userns_fd, floor);
    for (int i = 0; i < plan.fd_count; ++i) {
        long high = sys(SYS_fcntl, plan.fd_sources[i], F_DUPFD_CLOEXEC, floor);
        check(plan, ChildStep::kFdPlan, high);
        plan.fd_scratch[i] = static_cast<int>(high);
    }
    for (int i = 0; i < plan.fd_count; ++i) {
        check(plan, ChildStep::kFdPlan, sys(SYS_dup3, plan.fd_scratch[i], i, 0));
    }
    // The init's copy of the error pipe is the one that must stay open.
    if (plan.error_pipe_index >= 0) {
        sys(SYS_close, plan.error_pipe);
        plan.error_pipe = plan.error_pipe_index;
    }
    // Everything above the plan closes at exec, the error pipe included.
    check(plan, ChildStep::kCloseFds, sys(SYS_close_range, floor, ~0U, CLOSE_RANGE_CLOEXEC));
}

void change_directory(const ChildPlan& plan) noexcept {
    if (plan.working_directory) {
        check(plan, ChildStep::kWorkingDirectory, sys(SYS_chdir, ptr(plan.working_directory)));
    }
}

void set_resource_limits(const ChildPlan& plan) noexcept {
    for (std::size_t i = 0; i < plan.resource_limit_count; ++i) {
        const ResourceLimit& limit = plan.resource_limits[i];
        rlimit value{limit.soft, limit.hard};
        check(plan, ChildStep::kResourceLimits,
              sys(SYS_prlimit64, 0, limit.resource, ptr(&value), 0));
    }
}

void set_parent_death_signal(const ChildPlan& plan) noexcept {
    if (plan.parent_death_signal != 0) {
        check(plan, ChildStep::kParentDeathSignal,
              sys(SYS_prctl, PR_SET_PDEATHSIG, plan.parent_death_signal));
    }
}

// The bounding set must be cut while we still hold CAP_SETPCAP, i.e.
// before switching ids. For a uid-0 child this is what keeps exec from
// handing it a full permitted set again.
void drop_bounding_set(const ChildPlan& plan) noexcept {
    for (int cap = 0; cap <= plan.last_capability; ++cap) {
        if (plan.capabilities & (std::uint64_t{1} << cap)) continue;
        check(plan, ChildStep::kDropBoundingSet, sys(SYS_prctl, PR_CAPBSET_DROP, cap));
    }
}

// Raw setgroups/setresgid/setresuid: glibc's wrappers broadcast to all
// threads of the parent (nptl setxid), which do not exist here.
void switch_ids(const ChildPlan& plan) noexcept {
    if (!plan.set_credentials) return;
    if (plan.capabilities != 0) {
        check(plan, ChildStep::kKeepCapabilities, sys(SYS_prctl, PR_SET_KEEPCAPS, 1));
    }
    if (plan.set_groups) {
        check(plan, ChildStep::kSetGroups,
              sys(SYS_setgroups, static_cast<long>(plan.group_count), ptr(plan.groups)));
    }
    check(plan, ChildStep::kSetGid, sys(SYS_setresgid, plan.gid, plan.gid, plan.gid));
    check(plan, ChildStep::kSetUid, sys(SYS_setresuid, plan.uid, plan.uid, plan.uid));
}

void set_capabilities(const ChildPlan& plan) noexcept {
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2]{};
    for (int word = 0; word < 2; ++word) {
        auto bits = static_cast<std::uint32_t>(plan.capabilities >> (32 * word));
        data[word].effective = bits;
        data[word].permitted = bits;
        data[word].inheritable = bits;
    }
    check(plan, ChildStep::kSetCapabilities, sys(SYS_capset, ptr(&header), ptr(data)));

    check(plan, ChildStep::kAmbientCapabilities,
          sys(SYS_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0));
    for (int cap = 0; cap <= plan.last_capability; ++cap) {
        if ((plan.ambient_capabilities & (std::uint64_t{1} << cap)) == 0) continue;
        check(plan, ChildStep::kAmbientCapabilities,
              sys(SYS_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0));
    }
}

// Handlers were cleared by CLONE_CLEAR_SIGHAND, but ignored signals stay
// ignored across exec; the parent's mask (all blocked around clone) too.
void reset_signals(const ChildPlan& plan) noexcept {
    KernelSigaction default_action{SIG_DFL, 0, nullptr, 0};
    for (int sig = 1; sig <= kKernelSignalCount; ++sig) {
        if (sig == SIGKILL || sig == SIGSTOP) continue;
        sys(SYS_rt_sigaction, sig, ptr(&default_action), 0, sizeof(std::uint64_t));
    }
    // An init keeps every signal blocked across exec: as PID 1 it would drop
    // any that came before it blocked them itself. It unblocks them for the
    // pattern it forks.
    std::uint64_t mask = plan.exec_fd >= 0 ? ~std::uint64_t{0} : 0;
    check(plan, ChildStep::kResetSignals,
          sys(SYS_rt_sigprocmask, SIG_SETMASK, ptr(&mask), 0, sizeof mask));
}

void restrict_privileges(const ChildPlan& plan) noexcept {
    if (plan.no_new_privs) {
        check(plan, ChildStep::kNoNewPrivs, sys(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
    }
    // Landlock (5.13) needs no_new_privs and comes before seccomp, whose
    // profiles need not allow landlock_restrict_self.
    if (plan.landlock_fd >= 0) {
        check(plan, ChildStep::kLandlock, sys(kSysLandlockRestrictSelf, plan.landlock_fd, 0));
        sys(SYS_close, plan.landlock_fd);
    }
    // From here on every syscall, execve included, passes the filter.
    if (plan.seccomp) {
        check(plan, ChildStep::kSeccomp,
              sys(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, ptr(plan.seccomp)));
    }
}

}  // namespace

void run_child(ChildPlan plan) noexcept {
    join_cgroup(plan);
    if (plan.listen_pid_digits) write_decimal(plan.listen_pid_digits, sys(SYS_getpid));
    if (plan.new_session) check(plan, ChildStep::kNewSession, sys(SYS_setsid));
    join_network_namespace(plan);
    unshare_cgroup_namespace(plan);
    bring_loopback_up(plan);
    apply_fd_plan(plan);
    build_file_view(plan);
    change_directory(plan);
    set_resource_limits(plan);
    set_parent_death_signal(plan);
    join_user_namespace(plan);
    drop_bounding_set(plan);
    switch_ids(plan);
    set_capabilities(plan);
    reset_signals(plan);
    restrict_privileges(plan);
    long result = plan.exec_fd >= 0
                      ? sys(SYS_execveat, plan.exec_fd, ptr(""), ptr(plan.argv), ptr(plan.envp),
                            AT_EMPTY_PATH)
                      : sys(SYS_execve, ptr(plan.executable), ptr(plan.argv), ptr(plan.envp));
    fail(plan, ChildStep::kExec, result);
}

}  // namespace sandbox::detail
