// The built-in profiles refuse namespace creation through clone's flags while
// fork and threads keep working. A forked child of the (root, fully
// privileged) test installs the filter itself, the way child_exec does, so
// that without the filter every one of these clone calls would succeed:
// spawn()'s children have no CAP_SYS_ADMIN, which would hide what the filter
// does for all flags but CLONE_NEWUSER.
#include <errno.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstddef>
#include <cstring>

#include "sandbox/seccomp.h"
#include "sandbox/unique_fd.h"

namespace {

using sandbox::BpfProgram;
using sandbox::UniqueFd;

struct NamespaceFlag {
    const char* name;
    unsigned long bit;
};
constexpr NamespaceFlag kNamespaceFlags[] = {
    {"CLONE_NEWUSER", CLONE_NEWUSER},     {"CLONE_NEWNS", CLONE_NEWNS},
    {"CLONE_NEWPID", CLONE_NEWPID},       {"CLONE_NEWNET", CLONE_NEWNET},
    {"CLONE_NEWUTS", CLONE_NEWUTS},       {"CLONE_NEWIPC", CLONE_NEWIPC},
    {"CLONE_NEWCGROUP", CLONE_NEWCGROUP},
};
constexpr std::size_t kFlagCount = std::size(kNamespaceFlags);

// Slots of the child's report after the per-flag ones.
enum Slot : std::size_t {
    kPlainClone = kFlagCount,
    kFork,
    kThread,
    kUnshareUser,
    kClone3,
    kSlotCount,
};
using Results = std::array<int, kSlotCount>;
constexpr int kSetupFailed = -1;
constexpr int kLost = -2;
constexpr int kChildFailed = 5000;  // the call worked but its child did not exit 0

int reap(pid_t pid) {
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) return kChildFailed + errno;
    }
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : kChildFailed;
}

// clone(2) as glibc's fork fallback calls it (flags in a register, no new
// stack): 0 when the call worked and its child exited, errno otherwise.
int raw_clone(unsigned long flags) {
    const long pid = syscall(SYS_clone, flags | SIGCHLD, 0L, 0L, 0L, 0L);
    if (pid < 0) return errno;
    if (pid == 0) _exit(0);
    return reap(static_cast<pid_t>(pid));
}

int glibc_fork() {
    const pid_t pid = fork();
    if (pid < 0) return errno;
    if (pid == 0) _exit(0);
    return reap(pid);
}

void* thread_body(void*) {
    return nullptr;
}

// pthread_create tries clone3 first (glibc 2.34+) and falls back to clone.
int glibc_thread() {
    pthread_t thread;
    const int rc = pthread_create(&thread, nullptr, thread_body, nullptr);
    if (rc != 0) return rc;
    return pthread_join(thread, nullptr);
}

int code(long rc) {
    return rc < 0 ? errno : 0;
}

// Forks a child that installs `program` (none: no filter) after
// no_new_privs, tries each call and reports through a pipe.
Results probe_under(const BpfProgram* program) {
    Results results;
    results.fill(kLost);
    const sock_fprog fprog = program != nullptr ? program->fprog() : sock_fprog{0, nullptr};
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return results;
    UniqueFd read_end(fds[0]), write_end(fds[1]);
    const pid_t pid = fork();
    if (pid < 0) return results;
    if (pid == 0) {
        Results out;
        out.fill(kSetupFailed);
        const rlimit no_core{0, 0};
        setrlimit(RLIMIT_CORE, &no_core);
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
            (program != nullptr && syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fprog) != 0)) {
            (void)!write(write_end.get(), &out, sizeof out);
            _exit(1);
        }
        for (std::size_t i = 0; i < kFlagCount; ++i)
            out[i] = raw_clone(kNamespaceFlags[i].bit);
        out[kPlainClone] = raw_clone(0);
        out[kFork] = glibc_fork();
        out[kThread] = glibc_thread();
        // A refused unshare changes nothing; a permitted one only this child.
        out[kUnshareUser] = code(syscall(SYS_unshare, CLONE_NEWUSER));
        out[kClone3] = code(syscall(SYS_clone3, nullptr, std::size_t{0}));
        (void)!write(write_end.get(), &out, sizeof out);
        _exit(0);
    }
    write_end.reset();
    Results got;
    if (read(read_end.get(), &got, sizeof got) == static_cast<ssize_t>(sizeof got)) results = got;
    reap(pid);
    return results;
}

void expect_namespace_clones_refused(const Results& r) {
    ASSERT_NE(r[0], kSetupFailed) << "no_new_privs or seccomp(2) failed";
    ASSERT_NE(r[0], kLost) << "the child died before reporting";
    for (std::size_t i = 0; i < kFlagCount; ++i) {
        EXPECT_EQ(r[i], EPERM) << "clone(" << kNamespaceFlags[i].name
                               << " | SIGCHLD): " << std::strerror(r[i] < kChildFailed ? r[i] : 0);
    }
    EXPECT_EQ(r[kPlainClone], 0) << "clone(SIGCHLD) without a namespace flag";
    EXPECT_EQ(r[kFork], 0) << "glibc fork()";
    EXPECT_EQ(r[kThread], 0) << "pthread_create (clone3, then the clone fallback)";
    EXPECT_EQ(r[kClone3], ENOSYS) << "clone3 must be ENOSYS so that libc falls back to clone";
}

TEST(SeccompClone, WithoutAFilterEveryCallWorks) {
    // What the filters change: as root with every capability, each
    // namespace clone succeeds, and so do unshare and (with bad args) clone3
    // reaches the kernel.
    const Results r = probe_under(nullptr);
    ASSERT_NE(r[0], kSetupFailed);
    ASSERT_NE(r[0], kLost);
    for (std::size_t i = 0; i < kFlagCount; ++i) {
        EXPECT_EQ(r[i], 0) << "clone(" << kNamespaceFlags[i].name << ")";
    }
    EXPECT_EQ(r[kPlainClone], 0);
    EXPECT_EQ(r[kFork], 0);
    EXPECT_EQ(r[kThread], 0);
    EXPECT_EQ(r[kUnshareUser], 0);
    EXPECT_NE(r[kClone3], ENOSYS);
}

TEST(SeccompClone, DefaultProfileRefusesNamespaceFlags) {
    const BpfProgram program = sandbox::compile_builtin_profile("default");
    const Results r = probe_under(&program);
    expect_namespace_clones_refused(r);
    EXPECT_EQ(r[kUnshareUser], EPERM) << "unshare stays denied";
}

TEST(SeccompClone, StrictProfileRefusesNamespaceFlags) {
    const BpfProgram program = sandbox::compile_builtin_profile("strict");
    const Results r = probe_under(&program);
    expect_namespace_clones_refused(r);
    EXPECT_EQ(r[kUnshareUser], ENOSYS) << "unshare is not on strict's allow-list";
}

}  // namespace
