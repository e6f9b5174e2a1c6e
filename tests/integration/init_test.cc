// pattern-launcher-init as PID 1 of a fresh pid namespace, on the real
// kernel. The init is started here with clone(CLONE_NEWPID) rather than with
// spawn(), so these tests exercise the init and its contract
// (sandbox/init_protocol.h) alone: the init is this process's direct child,
// its host pid is what clone returns, and the pattern runs as pid 2.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include "sandbox/init_protocol.h"
#include "sandbox/unique_fd.h"

namespace {

namespace proto = sandbox::init_protocol;
using sandbox::UniqueFd;
using namespace std::chrono_literals;

// Where the init finds its protocol fds (argv names them).
constexpr int kErrorFd = 20;
constexpr int kStatusFd = 21;
// Exit code of the clone child when the init itself could not be exec'd.
constexpr int kInitExecFailed = 126;

// sandbox::detail::ChildFailure's layout, as the init writes it.
struct Failure {
    int step;
    int err;
};

struct Options {
    std::vector<std::string> environment = {"PATH=/usr/bin:/bin"};
    // Non-zero: the init runs with this uid and gid, as it does under spawn().
    uid_t uid = 0;
    // Signals the init inherits as ignored (a launcher's dispositions leak
    // across exec unless something resets them).
    std::vector<int> ignored_signals;
};

// argv[1..] of the init for a pattern.
std::vector<std::string> pattern(const std::string& executable, const std::string& argv0,
                                 const std::vector<std::string>& args = {}) {
    std::vector<std::string> out = {std::to_string(kErrorFd), std::to_string(kStatusFd), executable,
                                    argv0};
    out.insert(out.end(), args.begin(), args.end());
    return out;
}

std::vector<std::string> shell(const std::string& script) {
    return pattern("/bin/sh", "sh", {"-c", script});
}

UniqueFd high_copy(int fd) {
    // Above every target fd, so placing them in the child cannot collide.
    return UniqueFd(::fcntl(fd, F_DUPFD_CLOEXEC, 100));
}

// One init in its own pid namespace, killed (namespace and all) if a test
// leaves it running.
class InitRun {
public:
    InitRun(const std::vector<std::string>& args, const Options& options = {}) {
        int error_pipe[2], out_pipe[2], sockets[2];
        if (::pipe2(error_pipe, O_CLOEXEC) != 0 || ::pipe2(out_pipe, O_CLOEXEC) != 0 ||
            ::socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sockets) != 0) {
            ADD_FAILURE() << "pipes: " << std::strerror(errno);
            return;
        }
        error_read_.reset(error_pipe[0]);
        stdout_read_.reset(out_pipe[0]);
        status_socket_.reset(sockets[0]);
        UniqueFd error_write = high_copy(error_pipe[1]);
        UniqueFd stdout_write = high_copy(out_pipe[1]);
        UniqueFd status_child = high_copy(sockets[1]);
        UniqueFd dev_null = high_copy(UniqueFd(::open("/dev/null", O_RDONLY | O_CLOEXEC)).get());
        ::close(error_pipe[1]);
        ::close(out_pipe[1]);
        ::close(sockets[1]);

        // Everything the child needs is built before clone: it only places
        // fds, changes ids and execs.
        std::vector<std::string> argv_strings = {"pattern-launcher-init"};
        argv_strings.insert(argv_strings.end(), args.begin(), args.end());
        std::vector<char*> argv, envp;
        for (std::string& s : argv_strings)
            argv.push_back(s.data());
        argv.push_back(nullptr);
        std::vector<std::string> env_strings = options.environment;
        for (std::string& s : env_strings)
            envp.push_back(s.data());
        envp.push_back(nullptr);
        const uid_t uid = options.uid;

        long pid = ::syscall(SYS_clone, CLONE_NEWPID | SIGCHLD, nullptr, nullptr, nullptr, nullptr);
        if (pid == 0) {
            if (::dup2(dev_null.get(), 0) < 0 || ::dup2(stdout_write.get(), 1) < 0 ||
                ::dup2(error_write.get(), kErrorFd) < 0 ||
                ::dup2(status_child.get(), kStatusFd) < 0) {
                ::_exit(kInitExecFailed);
            }
            for (int sig : options.ignored_signals)
                ::signal(sig, SIG_IGN);
            // Raw syscalls: glibc's set*id wrappers signal every thread the
            // parent had, and this child has only one.
            if (uid != 0 && (::syscall(SYS_setgroups, 0, nullptr) != 0 ||
                             ::syscall(SYS_setresgid, uid, uid, uid) != 0 ||
                             ::syscall(SYS_setresuid, uid, uid, uid) != 0)) {
                ::_exit(kInitExecFailed);
            }
            ::execve(PL_INIT, argv.data(), envp.data());
            ::_exit(kInitExecFailed);
        }
        if (pid < 0) {
            ADD_FAILURE() << "clone(CLONE_NEWPID): " << std::strerror(errno);
            return;
        }
        pid_ = static_cast<pid_t>(pid);
    }

    ~InitRun() {
        if (pid_ > 0 && !status_) {
            ::kill(pid_, SIGKILL);
            int ignored;
            ::waitpid(pid_, &ignored, 0);
        }
    }

    pid_t pid() const { return pid_; }

    bool signal(int sig) { return pid_ > 0 && ::kill(pid_, sig) == 0; }

    // The init's wait status, or nullopt if it still runs after `timeout`.
    std::optional<int> wait_exit(std::chrono::milliseconds timeout = 1500ms) {
        auto deadline = std::chrono::steady_clock::now() + timeout;
        while (!status_ && pid_ > 0) {
            int status = 0;
            pid_t r = ::waitpid(pid_, &status, WNOHANG);
            if (r == pid_) {
                status_ = status;
            } else if (std::chrono::steady_clock::now() >= deadline) {
                break;
            } else {
                std::this_thread::sleep_for(2ms);
            }
        }
        return status_;
    }

    // Everything on ERROR_FD until EOF; nullopt if no EOF within `timeout`.
    std::optional<std::string> read_error_pipe(std::chrono::milliseconds timeout = 1500ms) {
        return read_fd(error_read_.get(), "", timeout, /*until_eof=*/true);
    }

    // stdout until `marker` has been seen, EOF or the timeout: all that was read.
    std::string read_stdout_until(const std::string& marker,
                                  std::chrono::milliseconds timeout = 1500ms) {
        stdout_ += read_fd(stdout_read_.get(), marker, timeout, false).value_or("");
        return stdout_;
    }
    std::string read_stdout() { return read_stdout_until("\x01never\x01"); }

    // The datagram on STATUS_FD, if one was sent (call after the init exited).
    std::optional<proto::ExitReport> report() {
        char buffer[64];
        ssize_t n = ::recv(status_socket_.get(), buffer, sizeof buffer, MSG_DONTWAIT);
        if (n < 0) return std::nullopt;
        EXPECT_EQ(static_cast<std::size_t>(n), sizeof(proto::ExitReport));
        proto::ExitReport report;
        std::memcpy(&report, buffer, std::min(sizeof report, static_cast<std::size_t>(n)));
        return report;
    }

private:
    static std::optional<std::string> read_fd(int fd, const std::string& marker,
                                              std::chrono::milliseconds timeout, bool until_eof) {
        std::string out;
        auto deadline = std::chrono::steady_clock::now() + timeout;
        for (;;) {
            if (!until_eof && out.find(marker) != std::string::npos) return out;
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                            deadline - std::chrono::steady_clock::now())
                            .count();
            if (left <= 0) return until_eof ? std::nullopt : std::optional(out);
            pollfd p{fd, POLLIN, 0};
            if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
            char buf[4096];
            ssize_t n = ::read(fd, buf, sizeof buf);
            if (n <= 0) return out;  // EOF
            out.append(buf, static_cast<std::size_t>(n));
        }
    }

    pid_t pid_ = -1;
    std::optional<int> status_;
    UniqueFd error_read_, stdout_read_, status_socket_;
    std::string stdout_;
};

// Checks the init exited with `exit_code` and reported {code, status}.
void expect_ended(InitRun& init, int exit_code, int code, int status) {
    std::optional<int> wait_status = init.wait_exit();
    ASSERT_TRUE(wait_status.has_value()) << "the init is still running";
    ASSERT_TRUE(WIFEXITED(*wait_status))
        << "the init itself died of signal " << WTERMSIG(*wait_status);
    EXPECT_EQ(WEXITSTATUS(*wait_status), exit_code);
    std::optional<proto::ExitReport> report = init.report();
    ASSERT_TRUE(report.has_value()) << "no ExitReport on STATUS_FD";
    EXPECT_EQ(report->magic, proto::kReportMagic);
    EXPECT_EQ(report->code, code);
    EXPECT_EQ(report->status, status);
}

std::optional<Failure> parse_failure(const std::string& bytes) {
    if (bytes.size() != sizeof(Failure)) return std::nullopt;
    Failure failure;
    std::memcpy(&failure, bytes.data(), sizeof failure);
    return failure;
}

// Host pids of the processes whose parent is `parent`.
std::vector<pid_t> children_of(pid_t parent) {
    std::vector<pid_t> out;
    DIR* dir = ::opendir("/proc");
    if (!dir) return out;
    while (dirent* e = ::readdir(dir)) {
        char* end = nullptr;
        long pid = std::strtol(e->d_name, &end, 10);
        if (*end != '\0' || pid <= 0) continue;
        std::ifstream status("/proc/" + std::string(e->d_name) + "/status");
        std::string line;
        while (std::getline(status, line)) {
            if (line.starts_with("PPid:")) {
                if (std::atol(line.c_str() + 5) == parent) out.push_back(static_cast<pid_t>(pid));
                break;
            }
        }
    }
    ::closedir(dir);
    return out;
}

// ---------------------------------------------------------------------------
// Signals

class InitForwards : public ::testing::TestWithParam<int> {};

TEST_P(InitForwards, SignalReachesThePatternAndItsExitCodeIsTheInits) {
    const int sig = GetParam();
    const int code = 40 + sig;
    const std::string n = std::to_string(sig);
    // `wait` returns at once when a trapped signal arrives (POSIX), so the
    // trap runs without waiting for the background sleep.
    InitRun init(shell("trap 'echo got " + n + "; exit " + std::to_string(code) + "' " + n +
                       "; sleep 10 & echo ready; wait"));
    ASSERT_NE(init.read_stdout_until("ready").find("ready"), std::string::npos);
    ASSERT_TRUE(init.signal(sig));
    EXPECT_NE(init.read_stdout_until("got").find("got " + n), std::string::npos)
        << "signal " << sig << " did not reach the pattern";
    expect_ended(init, code, CLD_EXITED, code);
}

INSTANTIATE_TEST_SUITE_P(Init, InitForwards,
                         ::testing::Values(SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2,
                                           SIGWINCH, SIGCONT),
                         [](const ::testing::TestParamInfo<int>& param_info) {
                             return std::string(sigabbrev_np(param_info.param));
                         });

TEST(Init, UnhandledSigtermStopsThePattern) {
    // As PID 1 itself, sleep would never see the SIGTERM: it has no handler.
    InitRun init(pattern("/bin/sleep", "sleep", {"1000"}));
    ASSERT_EQ(init.read_error_pipe(), std::string()) << "exec did not happen";
    ASSERT_TRUE(init.signal(SIGTERM));
    expect_ended(init, proto::kSignalExitBase + SIGTERM, CLD_KILLED, SIGTERM);
}

TEST(Init, OtherSignalsAreNeitherForwardedNorFatal) {
    InitRun init(
        shell("trap 'echo got ALRM' ALRM; trap 'echo got TERM; exit 5' TERM; sleep 10 & "
              "echo ready; wait; wait"));
    ASSERT_NE(init.read_stdout_until("ready").find("ready"), std::string::npos);
    ASSERT_TRUE(init.signal(SIGALRM));
    ASSERT_TRUE(init.signal(SIGPIPE));
    EXPECT_FALSE(init.wait_exit(150ms).has_value()) << "the init ended on SIGALRM or SIGPIPE";
    ASSERT_TRUE(init.signal(SIGTERM));
    std::string out = init.read_stdout_until("got TERM");
    EXPECT_EQ(out.find("got ALRM"), std::string::npos) << out;
    expect_ended(init, 5, CLD_EXITED, 5);
}

TEST(Init, SignalsIgnoredByTheLauncherAreResetForInitAndPattern) {
    // An ignored SIGCHLD would have the kernel reap the pattern behind the
    // init's back; an ignored SIGTERM cannot even be trapped by a shell
    // (POSIX: ignored on entry stays ignored in a non-interactive shell).
    Options options;
    options.ignored_signals = {SIGCHLD, SIGTERM};
    InitRun init(shell("trap 'echo got TERM; exit 9' TERM; sleep 10 & echo ready; wait"), options);
    ASSERT_NE(init.read_stdout_until("ready").find("ready"), std::string::npos);
    ASSERT_TRUE(init.signal(SIGTERM));
    EXPECT_NE(init.read_stdout_until("got TERM").find("got TERM"), std::string::npos);
    expect_ended(init, 9, CLD_EXITED, 9);
}

// ---------------------------------------------------------------------------
// How the pattern ended

class InitExitCode : public ::testing::TestWithParam<int> {};

TEST_P(InitExitCode, ReportedExactly) {
    InitRun init(shell("exit " + std::to_string(GetParam())));
    expect_ended(init, GetParam(), CLD_EXITED, GetParam());
}

INSTANTIATE_TEST_SUITE_P(Init, InitExitCode, ::testing::Values(0, 3, 255));

class InitKilledBy : public ::testing::TestWithParam<int> {};

TEST_P(InitKilledBy, ReportedWithTheSignal) {
    // Core rlimit 0: no dump, so even SIGABRT and SIGSEGV give CLD_KILLED.
    const int sig = GetParam();
    InitRun init(shell("ulimit -c 0; kill -" + std::to_string(sig) + " $$"));
    expect_ended(init, proto::kSignalExitBase + sig, CLD_KILLED, sig);
}

INSTANTIATE_TEST_SUITE_P(Init, InitKilledBy, ::testing::Values(SIGKILL, SIGABRT, SIGSEGV),
                         [](const ::testing::TestParamInfo<int>& param_info) {
                             return std::string(sigabbrev_np(param_info.param));
                         });

TEST(Init, CoreDumpReportedAsDumped) {
    std::ifstream pattern_file("/proc/sys/kernel/core_pattern");
    std::string core_pattern;
    std::getline(pattern_file, core_pattern);
    if (core_pattern.empty() || core_pattern[0] == '|' || core_pattern[0] == '/') {
        GTEST_SKIP() << "core_pattern '" << core_pattern
                     << "' does not dump into the working directory (runs in the VM suite)";
    }
    char dir_template[] = "/tmp/pl-init-core.XXXXXX";
    ASSERT_NE(::mkdtemp(dir_template), nullptr);
    const std::string dir = dir_template;
    {
        InitRun init(shell("cd " + dir + " && ulimit -c unlimited && kill -SEGV $$"));
        expect_ended(init, proto::kSignalExitBase + SIGSEGV, CLD_DUMPED, SIGSEGV);
    }
    std::filesystem::remove_all(dir);
}

// ---------------------------------------------------------------------------
// Reaping

TEST(Init, OrphansAreReaped) {
    // The command substitution's shell forks sleep and exits, so sleep is
    // re-parented to the init. Once sleep has exited, kill -0 fails only if
    // someone reaped it: a zombie still has its pid.
    InitRun init(
        shell("orphan=$(sleep 0.05 >/dev/null 2>&1 & echo $!); i=0; "
              "while kill -0 $orphan 2>/dev/null; do "
              "  i=$((i+1)); if [ $i -gt 100 ]; then echo zombie $orphan; exit 1; fi; sleep 0.01; "
              "done; echo reaped $orphan; exit 4"));
    std::string out = init.read_stdout_until("\n");
    EXPECT_NE(out.find("reaped"), std::string::npos) << out;
    expect_ended(init, 4, CLD_EXITED, 4);
}

TEST(Init, ExitsWithThePatternEvenIfOthersStillRun) {
    auto start = std::chrono::steady_clock::now();
    InitRun init(shell("sleep 30 >/dev/null 2>&1 & exit 6"));
    expect_ended(init, 6, CLD_EXITED, 6);
    EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
}

// ---------------------------------------------------------------------------
// ERROR_FD and STATUS_FD

TEST(Init, ErrorPipeReachesEofOnceThePatternHasExeced) {
    InitRun init(pattern("/bin/sleep", "sleep", {"10"}));
    EXPECT_EQ(init.read_error_pipe(), std::string())
        << "no EOF while the pattern runs: the init or the pattern holds ERROR_FD";
    EXPECT_FALSE(init.wait_exit(0ms).has_value()) << "the pattern is expected to still run";
    ASSERT_TRUE(init.signal(SIGTERM));
    expect_ended(init, proto::kSignalExitBase + SIGTERM, CLD_KILLED, SIGTERM);
}

TEST(Init, PatternInheritsNeitherProtocolFd) {
    InitRun init(
        shell("for fd in 20 21; do if [ -e /proc/self/fd/$fd ]; then echo open $fd; "
              "fi; done; echo done"));
    std::string out = init.read_stdout_until("done");
    EXPECT_EQ(out, "done\n");
    expect_ended(init, 0, CLD_EXITED, 0);
}

TEST(Init, ExecFailureIsReportedOnTheErrorPipe) {
    InitRun init(pattern("/nonexistent/pattern", "pattern"));
    std::optional<std::string> bytes = init.read_error_pipe();
    ASSERT_TRUE(bytes.has_value());
    std::optional<Failure> failure = parse_failure(*bytes);
    ASSERT_TRUE(failure.has_value()) << "got " << bytes->size() << " bytes";
    EXPECT_EQ(failure->step, proto::kStepInitExec);
    EXPECT_EQ(failure->err, ENOENT);
    expect_ended(init, 127, CLD_EXITED, 127);
}

TEST(Init, NoStatusFdMeansNoReport) {
    std::vector<std::string> args = pattern("/bin/sh", "sh", {"-c", "exit 3"});
    args[1] = "-1";
    InitRun init(args);
    std::optional<int> status = init.wait_exit();
    ASSERT_TRUE(status.has_value());
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 3);
    EXPECT_FALSE(init.report().has_value());
}

struct BadArgv {
    const char* name;
    std::vector<std::string> args;
    int err;  // 0: nothing may be written (ERROR_FD itself did not parse)
};

void PrintTo(const BadArgv& bad, std::ostream* os) {
    *os << bad.name;
}

class InitRejects : public ::testing::TestWithParam<BadArgv> {};

TEST_P(InitRejects, BadArgvBeforeRunningAnything) {
    InitRun init(GetParam().args);
    std::optional<std::string> bytes = init.read_error_pipe();
    ASSERT_TRUE(bytes.has_value());
    if (GetParam().err == 0) {
        EXPECT_EQ(*bytes, std::string());
    } else {
        std::optional<Failure> failure = parse_failure(*bytes);
        ASSERT_TRUE(failure.has_value()) << "got " << bytes->size() << " bytes";
        EXPECT_EQ(failure->step, proto::kStepInitSetup);
        EXPECT_EQ(failure->err, GetParam().err);
    }
    std::optional<int> status = init.wait_exit();
    ASSERT_TRUE(status.has_value());
    ASSERT_TRUE(WIFEXITED(*status));
    EXPECT_EQ(WEXITSTATUS(*status), 127);
    EXPECT_EQ(init.read_stdout(), "") << "the pattern ran";
    EXPECT_FALSE(init.report().has_value());
}

const std::string kE = std::to_string(kErrorFd);
const std::string kS = std::to_string(kStatusFd);
INSTANTIATE_TEST_SUITE_P(
    Init, InitRejects,
    ::testing::Values(
        BadArgv{"TooFew", {kE, kS, "/bin/echo"}, EINVAL}, BadArgv{"OnlyErrorFd", {kE}, EINVAL},
        BadArgv{"StatusFdNotDecimal", {kE, "21x", "/bin/echo", "echo", "ran"}, EINVAL},
        BadArgv{"StatusFdSigned", {kE, "+21", "/bin/echo", "echo", "ran"}, EINVAL},
        BadArgv{"StatusFdIsStdout", {kE, "1", "/bin/echo", "echo", "ran"}, EINVAL},
        BadArgv{"SameFdTwice", {kE, kE, "/bin/echo", "echo", "ran"}, EINVAL},
        BadArgv{"StatusFdNotOpen", {kE, "55", "/bin/echo", "echo", "ran"}, EBADF},
        BadArgv{"ErrorFdNotDecimal", {"fd", kS, "/bin/echo", "echo", "ran"}, 0},
        BadArgv{"ErrorFdTooLarge", {"99999999999", kS, "/bin/echo", "echo", "ran"}, 0}),
    [](const ::testing::TestParamInfo<BadArgv>& param_info) {
        return std::string(param_info.param.name);
    });

// ---------------------------------------------------------------------------
// LISTEN_PID and dumpability

TEST(Init, ListenPidIsRewrittenToThePatternsPid) {
    Options options;
    options.environment = {"PATH=/usr/bin:/bin", "LISTEN_FDS=0",
                           "LISTEN_PID=" + std::string(24, '0'), "AFTER=intact"};
    InitRun init(shell("echo pid=$$ listen=$LISTEN_PID after=$AFTER"), options);
    EXPECT_EQ(init.read_stdout_until("\n"), "pid=2 listen=2 after=intact\n");
    expect_ended(init, 0, CLD_EXITED, 0);
}

TEST(Init, ListenPidWithoutRoomIsStillRewritten) {
    Options options;
    options.environment = {"PATH=/usr/bin:/bin", "LISTEN_PID=", "AFTER=intact"};
    InitRun init(shell("echo listen=$LISTEN_PID after=$AFTER"), options);
    EXPECT_EQ(init.read_stdout_until("\n"), "listen=2 after=intact\n");
    expect_ended(init, 0, CLD_EXITED, 0);
}

TEST(Init, NoListenPidIsAdded) {
    InitRun init(shell("echo listen=${LISTEN_PID-unset}"));
    EXPECT_EQ(init.read_stdout_until("\n"), "listen=unset\n");
    expect_ended(init, 0, CLD_EXITED, 0);
}

uid_t proc_owner(pid_t pid) {
    struct stat st {};
    if (::stat(("/proc/" + std::to_string(pid) + "/stat").c_str(), &st) != 0) {
        return static_cast<uid_t>(-1);
    }
    return st.st_uid;
}

TEST(Init, InitIsNotDumpableButThePatternIs) {
    // A process's /proc/PID files (not the directory itself) belong to root
    // while it is not dumpable, to its euid otherwise (task_dump_owner()); so
    // run as a non-root uid, as under spawn().
    constexpr uid_t kNobody = 65534;
    Options options;
    options.uid = kNobody;
    InitRun init(pattern("/bin/sleep", "sleep", {"10"}), options);
    ASSERT_EQ(init.read_error_pipe(), std::string()) << "exec did not happen";
    std::vector<pid_t> children = children_of(init.pid());
    ASSERT_EQ(children.size(), 1u);
    EXPECT_EQ(proc_owner(children[0]), kNobody) << "the pattern, same uid, dumpable";
    EXPECT_EQ(proc_owner(init.pid()), 0u) << "the init is dumpable";
    ASSERT_TRUE(init.signal(SIGTERM));
    expect_ended(init, proto::kSignalExitBase + SIGTERM, CLD_KILLED, SIGTERM);
}

}  // namespace
