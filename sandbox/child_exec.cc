#include "sandbox/child_exec.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <linux/close_range.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

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

[[noreturn]] void fail(const ChildPlan& plan, ChildStep step) noexcept {
    ChildFailure failure{static_cast<int>(step), errno};
    // Nothing more can be done if this write fails: the parent then sees
    // an exit code of 127 without a step.
    ::syscall(SYS_write, plan.error_pipe, &failure, sizeof failure);
    ::syscall(SYS_exit_group, 127);
    __builtin_unreachable();
}

long sys(long number, long a = 0, long b = 0, long c = 0, long d = 0, long e = 0) noexcept {
    return ::syscall(number, a, b, c, d, e);
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
    if (sys(SYS_write, plan.cgroup_procs_fd, ptr("0"), 1) != 1) fail(plan, ChildStep::kJoinCgroup);
}

void wait_for_id_maps(const ChildPlan& plan) noexcept {
    if (plan.userns_sync_fd < 0) return;
    char byte = 0;
    long n;
    do {
        n = sys(SYS_read, plan.userns_sync_fd, ptr(&byte), 1);
    } while (n < 0 && errno == EINTR);
    if (n != 1) {
        if (n == 0) errno = EPIPE;  // the parent gave up on us
        fail(plan, ChildStep::kUserNamespaceSync);
    }
    sys(SYS_close, plan.userns_sync_fd);
}

void bring_loopback_up(const ChildPlan& plan) noexcept {
    if (!plan.loopback_up) return;
    long fd = sys(SYS_socket, AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) fail(plan, ChildStep::kLoopbackUp);
    ifreq request{};
    const char name[] = "lo";
    for (std::size_t i = 0; i < sizeof name; ++i)
        request.ifr_name[i] = name[i];
    if (sys(SYS_ioctl, fd, SIOCGIFFLAGS, ptr(&request)) != 0) fail(plan, ChildStep::kLoopbackUp);
    request.ifr_flags = static_cast<short>(request.ifr_flags | IFF_UP | IFF_RUNNING);
    if (sys(SYS_ioctl, fd, SIOCSIFFLAGS, ptr(&request)) != 0) fail(plan, ChildStep::kLoopbackUp);
    sys(SYS_close, fd);
}

void mount_proc(const ChildPlan& plan) noexcept {
    if (!plan.mount_proc) return;
    // Stop our mounts from propagating back to the host first: mounting a
    // new /proc on a shared mount would replace the host's /proc.
    if (sys(SYS_mount, 0, ptr("/"), 0, MS_REC | MS_SLAVE, 0) != 0)
        fail(plan, ChildStep::kMountProc);
    if (sys(SYS_mount, ptr("proc"), ptr("/proc"), ptr("proc"), MS_NOSUID | MS_NODEV | MS_NOEXEC,
            0) != 0) {
        fail(plan, ChildStep::kMountProc);
    }
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
    // The error pipe must survive the dup3s into 0..floor-1.
    if (plan.error_pipe < floor) {
        long moved = sys(SYS_fcntl, plan.error_pipe, F_DUPFD_CLOEXEC, floor);
        if (moved < 0) fail(plan, ChildStep::kFdPlan);
        plan.error_pipe = static_cast<int>(moved);
    }
    for (int i = 0; i < plan.fd_count; ++i) {
        long high = sys(SYS_fcntl, plan.fd_sources[i], F_DUPFD_CLOEXEC, floor);
        if (high < 0) fail(plan, ChildStep::kFdPlan);
        plan.fd_scratch[i] = static_cast<int>(high);
    }
    for (int i = 0; i < plan.fd_count; ++i) {
        if (sys(SYS_dup3, plan.fd_scratch[i], i, 0) < 0) fail(plan, ChildStep::kFdPlan);
    }
    // Everything above the plan closes at exec, the error pipe included.
    if (sys(SYS_close_range, floor, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
        fail(plan, ChildStep::kCloseFds);
    }
}

void change_directory(const ChildPlan& plan) noexcept {
    if (plan.working_directory && sys(SYS_chdir, ptr(plan.working_directory)) != 0) {
        fail(plan, ChildStep::kWorkingDirectory);
    }
}

void set_resource_limits(const ChildPlan& plan) noexcept {
    for (std::size_t i = 0; i < plan.resource_limit_count; ++i) {
        const ResourceLimit& limit = plan.resource_limits[i];
        rlimit value{limit.soft, limit.hard};
        if (sys(SYS_prlimit64, 0, limit.resource, ptr(&value), 0) != 0) {
            fail(plan, ChildStep::kResourceLimits);
        }
    }
}

void set_parent_death_signal(const ChildPlan& plan) noexcept {
    if (plan.parent_death_signal != 0 &&
        sys(SYS_prctl, PR_SET_PDEATHSIG, plan.parent_death_signal) != 0) {
        fail(plan, ChildStep::kParentDeathSignal);
    }
}

// The bounding set must be cut while we still hold CAP_SETPCAP, i.e.
// before switching ids. For a uid-0 child this is what keeps exec from
// handing it a full permitted set again.
void drop_bounding_set(const ChildPlan& plan) noexcept {
    for (int cap = 0; cap <= plan.last_capability; ++cap) {
        if (plan.capabilities & (std::uint64_t{1} << cap)) continue;
        if (sys(SYS_prctl, PR_CAPBSET_DROP, cap) != 0) fail(plan, ChildStep::kDropBoundingSet);
    }
}

// Raw setgroups/setresgid/setresuid: glibc's wrappers broadcast to all
// threads of the parent (nptl setxid), which do not exist here.
void switch_ids(const ChildPlan& plan) noexcept {
    if (!plan.set_credentials) return;
    if (plan.capabilities != 0 && sys(SYS_prctl, PR_SET_KEEPCAPS, 1) != 0) {
        fail(plan, ChildStep::kKeepCapabilities);
    }
    if (plan.set_groups &&
        sys(SYS_setgroups, static_cast<long>(plan.group_count), ptr(plan.groups)) != 0) {
        fail(plan, ChildStep::kSetGroups);
    }
    if (sys(SYS_setresgid, plan.gid, plan.gid, plan.gid) != 0) fail(plan, ChildStep::kSetGid);
    if (sys(SYS_setresuid, plan.uid, plan.uid, plan.uid) != 0) fail(plan, ChildStep::kSetUid);
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
    if (sys(SYS_capset, ptr(&header), ptr(data)) != 0) fail(plan, ChildStep::kSetCapabilities);

    if (sys(SYS_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0) {
        fail(plan, ChildStep::kAmbientCapabilities);
    }
    for (int cap = 0; cap <= plan.last_capability; ++cap) {
        if ((plan.ambient_capabilities & (std::uint64_t{1} << cap)) == 0) continue;
        if (sys(SYS_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) != 0) {
            fail(plan, ChildStep::kAmbientCapabilities);
        }
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
    std::uint64_t empty = 0;
    if (sys(SYS_rt_sigprocmask, SIG_SETMASK, ptr(&empty), 0, sizeof empty) != 0) {
        fail(plan, ChildStep::kResetSignals);
    }
}

void restrict_privileges(const ChildPlan& plan) noexcept {
    if (plan.no_new_privs && sys(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        fail(plan, ChildStep::kNoNewPrivs);
    }
    // From here on every syscall, execve included, passes the filter.
    if (plan.seccomp && sys(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, ptr(plan.seccomp)) != 0) {
        fail(plan, ChildStep::kSeccomp);
    }
}

}  // namespace

void run_child(ChildPlan plan) noexcept {
    join_cgroup(plan);
    wait_for_id_maps(plan);
    if (plan.listen_pid_digits) write_decimal(plan.listen_pid_digits, sys(SYS_getpid));
    if (plan.new_session && sys(SYS_setsid) < 0) fail(plan, ChildStep::kNewSession);
    bring_loopback_up(plan);
    mount_proc(plan);
    apply_fd_plan(plan);
    change_directory(plan);
    set_resource_limits(plan);
    set_parent_death_signal(plan);
    drop_bounding_set(plan);
    switch_ids(plan);
    set_capabilities(plan);
    reset_signals(plan);
    restrict_privileges(plan);
    sys(SYS_execve, ptr(plan.executable), ptr(plan.argv), ptr(plan.envp));
    fail(plan, ChildStep::kExec);
}

}  // namespace sandbox::detail
