// pattern-launcher-init: the PID 1 of a pattern's own pid namespace.
//
// Why it exists. The first process of a pid namespace is that namespace's
// init, and the kernel treats it specially: it only receives signals it has
// a handler for or has blocked (from an ancestor namespace SIGKILL and
// SIGSTOP too), and every process orphaned inside the namespace is
// re-parented to it. A pattern running as PID 1 itself would therefore
// silently ignore the SIGTERM the launcher stops it with (unless it happens
// to install a handler), and nobody would reap its orphans. This is the small
// init that bubblewrap, tini and catatonit are for their runtimes.
//
// What it guarantees (the wire contract is sandbox/init_protocol.h):
// - ERROR_FD reads EOF exactly when the pattern has exec'd. A failure before
//   that is one ChildFailure {kStepInit*, errno} on it, then exit 127.
// - SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH and SIGCONT
//   sent to the init reach the pattern; every other signal is discarded.
//   All signals are blocked first thing, so one sent before the pattern runs
//   is queued, not lost. (Before that, PID 1 drops them: spawn() closes that
//   window by exec'ing the init with its mask still full; masks survive exec.)
// - Every child is reaped, orphans included: no zombie stays behind.
// - When the pattern ends, one ExitReport goes to STATUS_FD (unless it is -1)
//   and the init exits with the pattern's exit code, or 128 + the signal that
//   killed it. The kernel then kills whatever is left in the namespace.
// - It is not dumpable, so the pattern (same uid) can neither ptrace it nor
//   read its memory through /proc.
//
// Written like small C: it is linked statically (spawn() execs it from an fd,
// with no loader or libraries in the pattern's view) and runs with the
// pattern's uid, no capabilities, no_new_privs and the pattern's seccomp
// filter. So it makes only ordinary syscalls (glibc 2.36's fork() is a plain
// clone, never the clone3 the filter answers with ENOSYS), throws nothing and
// allocates nothing of its own. The strict profile allows all it makes
// (static startup included): arch_prctl brk clone close execve exit_group
// fcntl getrandom kill mprotect prctl prlimit64 readlink rseq rt_sigaction
// rt_sigprocmask rt_sigtimedwait sendto set_robust_list set_tid_address wait4.

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <cstddef>
#include <cstring>

#include "sandbox/init_protocol.h"

extern char** environ;

namespace {

namespace proto = sandbox::init_protocol;

// Same layout as sandbox::detail::ChildFailure (sandbox/child_exec.h), which
// spawn() reads from its error pipe; the init does not link the library.
struct ChildFailure {
    int step;
    int err;
};

constexpr int kExitFailure = 127;

// argv = { "pattern-launcher-init", ERROR_FD, STATUS_FD, EXECUTABLE, ARGV0, ARGS... }
constexpr int kArgErrorFd = 1;
constexpr int kArgStatusFd = 2;
constexpr int kArgExecutable = 3;
constexpr int kArgArgv0 = 4;

// fds 0..2 are the pattern's stdio: the protocol fds are marked close-on-exec
// and ERROR_FD is closed, so one of them there would be a spawn() bug that
// silently took the pattern's stdio away. Refused instead.
constexpr int kFirstProtocolFd = 3;

constexpr char kListenPidPrefix[] = "LISTEN_PID=";
constexpr std::size_t kListenPidPrefixLength = sizeof kListenPidPrefix - 1;
constexpr std::size_t kMaxDecimalDigits = 24;

// Used (in the forked child only) when an existing LISTEN_PID entry has less
// room than the pid needs; spawn() reserves enough, so normally it is not.
char g_listen_pid_entry[kListenPidPrefixLength + kMaxDecimalDigits + 1];

[[noreturn]] void fail(int error_fd, int step, int err) {
    if (error_fd >= 0) {
        ChildFailure failure{step, err};
        // 8 bytes to a pipe: one atomic write. Nothing to do if it fails.
        ssize_t written = write(error_fd, &failure, sizeof failure);
        (void)written;
    }
    _exit(kExitFailure);
}

// Decimal digits only (no sign, no spaces), fitting an int and >= 3; "-1"
// as well when `allow_none`.
bool parse_fd(const char* text, bool allow_none, int* fd) {
    if (allow_none && std::strcmp(text, "-1") == 0) {
        *fd = -1;
        return true;
    }
    if (*text == '\0') return false;
    long value = 0;
    for (const char* p = text; *p != '\0'; ++p) {
        if (*p < '0' || *p > '9') return false;
        value = value * 10 + (*p - '0');
        if (value > INT_MAX) return false;
    }
    if (value < kFirstProtocolFd) return false;
    *fd = static_cast<int>(value);
    return true;
}

// 0 or the errno of the failing fcntl.
int mark_close_on_exec(int fd) {
    if (fd < 0) return 0;
    int flags = fcntl(fd, F_GETFD);
    if (flags < 0 || fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0) return errno;
    return 0;
}

// Ignored signals stay ignored across fork and exec, and the init was exec'd
// by a launcher whose dispositions we do not know. SIGCHLD matters most: were
// it ignored, the kernel would reap the pattern itself and the init would
// never learn how it ended. The pattern inherits these defaults through fork.
void reset_signal_dispositions() {
    struct sigaction default_action {};
    default_action.sa_handler = SIG_DFL;
    sigemptyset(&default_action.sa_mask);
    for (int sig = 1; sig < NSIG; ++sig) {
        if (sig == SIGKILL || sig == SIGSTOP) continue;
        // glibc refuses its two internal signals (32, 33) with EINVAL; it
        // never lets them be ignored in the first place.
        sigaction(sig, &default_action, nullptr);
    }
}

// Digits of `value` (> 0) without NUL into `out`; returns how many.
std::size_t format_decimal(long value, char* out) {
    char reversed[kMaxDecimalDigits];
    std::size_t n = 0;
    do {
        reversed[n++] = static_cast<char>('0' + value % 10);
        value /= 10;
    } while (value > 0 && n < kMaxDecimalDigits);
    for (std::size_t i = 0; i < n; ++i)
        out[i] = reversed[n - 1 - i];
    return n;
}

// sd_listen_fds() only accepts fds meant for the process whose pid is in
// LISTEN_PID, and only the forked child knows its pid as its namespace sees
// it (2). Every existing entry is rewritten; none is added.
void set_listen_pid(pid_t pid) {
    char digits[kMaxDecimalDigits];
    std::size_t length = format_decimal(pid, digits);
    for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
        if (std::strncmp(*entry, kListenPidPrefix, kListenPidPrefixLength) != 0) continue;
        char* value = *entry + kListenPidPrefixLength;
        if (std::strlen(value) < length) {
            std::memcpy(g_listen_pid_entry, kListenPidPrefix, kListenPidPrefixLength);
            *entry = g_listen_pid_entry;
            value = g_listen_pid_entry + kListenPidPrefixLength;
        }
        std::memcpy(value, digits, length);
        value[length] = '\0';
    }
}

// The forked child: becomes the pattern. Dispositions are already SIG_DFL;
// the mask (all blocked) is inherited and would survive exec.
[[noreturn]] void exec_pattern(int error_fd, const char* executable, char* const* pattern_argv) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    set_listen_pid(getpid());
    execve(executable, pattern_argv, environ);
    fail(error_fd, proto::kStepInitExec, errno);
}

[[noreturn]] void report_and_exit(int wait_status, int status_fd) {
    proto::ExitReport report;
    int exit_code;
    if (WIFEXITED(wait_status)) {
        report.code = CLD_EXITED;
        report.status = WEXITSTATUS(wait_status);
        exit_code = WEXITSTATUS(wait_status);
    } else {  // waitpid without WUNTRACED/WCONTINUED reports exits and deaths only
        report.code = WCOREDUMP(wait_status) ? CLD_DUMPED : CLD_KILLED;
        report.status = WTERMSIG(wait_status);
        exit_code = proto::kSignalExitBase + WTERMSIG(wait_status);
    }
    if (status_fd >= 0) {
        // Errors are ignored: the launcher may have restarted and the peer be
        // gone. MSG_DONTWAIT: a full receive queue must not keep PID 1 (and
        // with it the whole namespace) alive.
        ssize_t sent = send(status_fd, &report, sizeof report, MSG_DONTWAIT | MSG_NOSIGNAL);
        (void)sent;
    }
    _exit(exit_code);
}

// Standard signals do not queue: one SIGCHLD may stand for many exits, so
// reap until nothing is left to reap.
void reap_children(pid_t pattern, int status_fd) {
    for (;;) {
        int wait_status = 0;
        pid_t pid = waitpid(-1, &wait_status, WNOHANG);
        if (pid == pattern) report_and_exit(wait_status, status_fd);
        if (pid > 0) continue;  // an orphan re-parented to us
        if (pid < 0 && errno == EINTR) continue;
        // ECHILD: the pattern is gone without us having reaped it, which
        // SIG_DFL for SIGCHLD rules out. Waiting on would wait forever.
        if (pid < 0 && errno == ECHILD) _exit(kExitFailure);
        return;  // 0: the rest are still running
    }
}

bool forwarded(int sig) {
    switch (sig) {
        case SIGTERM:
        case SIGINT:
        case SIGHUP:
        case SIGQUIT:
        case SIGUSR1:
        case SIGUSR2:
        case SIGWINCH:
        case SIGCONT:
            return true;
        default:
            return false;
    }
}

[[noreturn]] void supervise(pid_t pattern, int status_fd) {
    sigset_t all;
    sigfillset(&all);
    for (;;) {
        siginfo_t info;
        int sig = sigwaitinfo(&all, &info);
        if (sig < 0) continue;  // EINTR: the init itself was stopped and continued
        if (sig == SIGCHLD) {
            reap_children(pattern, status_fd);
        } else if (forwarded(sig)) {
            kill(pattern, sig);
        }
    }
}

}  // namespace

int main(int argc, char** argv) {
    int error_fd = -1;
    if (argc <= kArgErrorFd || !parse_fd(argv[kArgErrorFd], false, &error_fd)) {
        fail(-1, proto::kStepInitSetup, EINVAL);
    }
    int status_fd = -1;
    if (argc <= kArgArgv0 || !parse_fd(argv[kArgStatusFd], true, &status_fd) ||
        status_fd == error_fd) {
        fail(error_fd, proto::kStepInitSetup, EINVAL);
    }

    // Blocked first: from here on a signal is queued for sigwaitinfo, not
    // dropped (PID 1 drops SIG_DFL signals) and not acted upon.
    sigset_t all;
    sigfillset(&all);
    if (sigprocmask(SIG_SETMASK, &all, nullptr) != 0) fail(error_fd, proto::kStepInitSetup, errno);
    reset_signal_dispositions();
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) fail(error_fd, proto::kStepInitSetup, errno);
    // The pattern inherits neither fd: ERROR_FD so that its exec closes the
    // last copy, STATUS_FD so that it cannot forge the report.
    if (int err = mark_close_on_exec(error_fd)) fail(error_fd, proto::kStepInitSetup, err);
    if (int err = mark_close_on_exec(status_fd)) fail(error_fd, proto::kStepInitSetup, err);

    pid_t pattern = fork();
    if (pattern < 0) fail(error_fd, proto::kStepInitFork, errno);
    if (pattern == 0) exec_pattern(error_fd, argv[kArgExecutable], argv + kArgArgv0);
    close(error_fd);
    supervise(pattern, status_fd);
}
