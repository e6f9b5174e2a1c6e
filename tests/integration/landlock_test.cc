// Landlock scoping as the child applies it (no_new_privs, then
// landlock_restrict_self with the ruleset the parent built): signals and
// abstract unix sockets stop at the domain's edge; pathname sockets do not.
#include <errno.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstddef>
#include <cstring>
#include <string>

#include "sandbox/landlock.h"
#include "sandbox/unique_fd.h"

namespace {

using sandbox::UniqueFd;

constexpr int kSetupFailed = -1;
constexpr int kLost = -2;  // the child died before reporting
constexpr std::size_t kMaxResults = 8;
using Results = std::array<int, kMaxResults>;

// 0 for a successful raw call, its errno otherwise.
int code(long rc) {
    return rc < 0 ? errno : 0;
}

// The ruleset, or a skip with the reason when this kernel has none.
#define REQUIRE_SCOPED_RULESET(plan)                                                          \
    sandbox::LandlockPlan plan = sandbox::make_landlock_ruleset();                            \
    if (!(plan).active()) {                                                                   \
        GTEST_SKIP() << (plan).describe() << ": scoping needs Landlock ABI "                  \
                     << sandbox::kLandlockScopedAbi << " (Linux 6.12; runs in the VM suite)"; \
    }

// Forks a child that, if `plan` is given, enters the Landlock domain the way
// child_exec does (no_new_privs, then restrict_self), runs body(results) and
// sends the results back through a pipe. Only raw calls and _exit in the child.
template <class Body>
Results in_child(const sandbox::LandlockPlan* plan, Body body) {
    Results results;
    results.fill(kLost);
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return results;
    UniqueFd read_end(fds[0]), write_end(fds[1]);
    const pid_t pid = fork();
    if (pid < 0) return results;
    if (pid == 0) {
        Results out;
        out.fill(0);
        if (plan != nullptr) {
            if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
                syscall(sandbox::kSysLandlockRestrictSelf, plan->ruleset.get(), 0U) != 0) {
                out.fill(kSetupFailed);
                (void)!write(write_end.get(), &out, sizeof out);
                _exit(1);
            }
        }
        body(out);
        (void)!write(write_end.get(), &out, sizeof out);
        _exit(0);
    }
    write_end.reset();
    Results got;
    if (read(read_end.get(), &got, sizeof got) == static_cast<ssize_t>(sizeof got)) results = got;
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return results;
}

// A process outside any domain that waits to be killed.
class Sleeper {
public:
    Sleeper() : pid_(fork()) {
        if (pid_ == 0) {
            pause();
            _exit(0);
        }
    }
    ~Sleeper() {
        if (pid_ <= 0) return;
        kill(pid_, SIGKILL);
        waitpid(pid_, nullptr, 0);
    }
    pid_t pid() const { return pid_; }

private:
    pid_t pid_;
};

// An abstract (leading NUL) or pathname unix stream socket address.
struct UnixAddress {
    sockaddr_un addr{};
    socklen_t len = 0;
};

UnixAddress abstract_address(const std::string& name) {
    UnixAddress a;
    a.addr.sun_family = AF_UNIX;
    std::memcpy(a.addr.sun_path + 1, name.data(), name.size());
    a.len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
    return a;
}

UnixAddress pathname_address(const std::string& path) {
    UnixAddress a;
    a.addr.sun_family = AF_UNIX;
    std::memcpy(a.addr.sun_path, path.c_str(), path.size() + 1);
    a.len = static_cast<socklen_t>(sizeof a.addr);
    return a;
}

UniqueFd listen_unix(const UnixAddress& a) {
    UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) return fd;
    if (bind(fd.get(), reinterpret_cast<const sockaddr*>(&a.addr), a.len) != 0 ||
        listen(fd.get(), 8) != 0) {
        fd.reset();
    }
    return fd;
}

// connect() from a fresh socket: 0 or errno. Raw calls only.
int connect_unix(const UnixAddress& a) {
    const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return 1000 + errno;
    const int rc = code(connect(fd, reinterpret_cast<const sockaddr*>(&a.addr), a.len));
    close(fd);
    return rc;
}

std::string unique_name(const char* what) {
    return std::string("pl-landlock-test.") + what + "." + std::to_string(getpid());
}

TEST(Landlock, KernelReportsAnAbi) {
    const int abi = sandbox::landlock_abi();
    if (abi == 0) GTEST_SKIP() << "Landlock is not enabled on this kernel (runs in the VM suite)";
    EXPECT_GT(abi, 0);
    EXPECT_EQ(sandbox::landlock_abi(), abi) << "cached value must not change";
}

TEST(Landlock, RulesetScopesBothAndIsCloseOnExec) {
    REQUIRE_SCOPED_RULESET(plan);
    EXPECT_EQ(plan.abi, sandbox::landlock_abi());
    EXPECT_TRUE(plan.scopes.signal);
    EXPECT_TRUE(plan.scopes.abstract_unix_socket);
    EXPECT_EQ(plan.describe(),
              "landlock ABI " + std::to_string(plan.abi) + ": signal, abstract-unix-socket scoped");
    const int fd_flags = fcntl(plan.ruleset.get(), F_GETFD);
    ASSERT_GE(fd_flags, 0) << std::strerror(errno);
    EXPECT_TRUE(fd_flags & FD_CLOEXEC);
}

TEST(Landlock, DescribesAMissingLandlock) {
    sandbox::LandlockPlan none;
    EXPECT_FALSE(none.active());
    EXPECT_EQ(none.describe(), "landlock: not available (ABI 0)");
    sandbox::LandlockPlan old;
    old.abi = 5;
    EXPECT_EQ(
        old.describe(),
        "landlock ABI 5: nothing scoped (signal and abstract-unix-socket scoping need ABI 6)");
}

// Signals to the parent and to a sibling, both outside the domain.
void signal_outside(Results& out, pid_t sibling) {
    out[0] = code(kill(getppid(), 0));
    out[1] = code(kill(sibling, 0));
    out[2] = code(kill(sibling, SIGCONT));
}

TEST(Landlock, SignalsStopAtTheDomain) {
    REQUIRE_SCOPED_RULESET(plan);
    Sleeper sibling;
    ASSERT_GT(sibling.pid(), 0);
    const pid_t target = sibling.pid();

    // Without the domain the same calls succeed: what the scope changes.
    const Results outside = in_child(nullptr, [&](Results& out) { signal_outside(out, target); });
    EXPECT_EQ(outside[0], 0);
    EXPECT_EQ(outside[1], 0);
    EXPECT_EQ(outside[2], 0);

    const Results inside = in_child(&plan, [&](Results& out) {
        signal_outside(out, target);
        // A child forked after restrict_self is inside the same domain.
        const pid_t own = fork();
        if (own == 0) {
            pause();
            _exit(0);
        }
        if (own < 0) {
            out[3] = out[4] = 2000 + errno;
            return;
        }
        out[3] = code(kill(own, 0));
        out[4] = code(kill(own, SIGKILL));
        int status = 0;
        waitpid(own, &status, 0);
        out[5] = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL ? 0 : 3000 + status;
    });
    ASSERT_NE(inside[0], kSetupFailed) << "prctl(NO_NEW_PRIVS) or landlock_restrict_self failed";
    EXPECT_EQ(inside[0], EPERM) << "kill(parent, 0) from inside the domain";
    EXPECT_EQ(inside[1], EPERM) << "kill(sibling, 0) from inside the domain";
    EXPECT_EQ(inside[2], EPERM) << "kill(sibling, SIGCONT) from inside the domain";
    EXPECT_EQ(inside[3], 0) << "kill(own child, 0)";
    EXPECT_EQ(inside[4], 0) << "kill(own child, SIGKILL)";
    EXPECT_EQ(inside[5], 0) << "own child must have died of SIGKILL";
}

TEST(Landlock, OutsideCanStillSignalTheDomain) {
    // The launcher stops patterns with signals: scoping is one-way.
    REQUIRE_SCOPED_RULESET(plan);
    int fds[2];
    ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);
    UniqueFd read_end(fds[0]), write_end(fds[1]);
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        read_end.reset();
        const char ok =
            prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 &&
                    syscall(sandbox::kSysLandlockRestrictSelf, plan.ruleset.get(), 0U) == 0
                ? 'y'
                : 'n';
        (void)!write(write_end.get(), &ok, 1);
        pause();
        _exit(0);
    }
    write_end.reset();
    char ok = 0;
    ASSERT_EQ(read(read_end.get(), &ok, 1), 1);
    EXPECT_EQ(ok, 'y');
    EXPECT_EQ(kill(pid, 0), 0) << std::strerror(errno);
    EXPECT_EQ(kill(pid, SIGKILL), 0) << std::strerror(errno);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

TEST(Landlock, AbstractUnixSocketsStopAtTheDomain) {
    REQUIRE_SCOPED_RULESET(plan);
    const UnixAddress outside_addr = abstract_address(unique_name("outside"));
    const UniqueFd listener = listen_unix(outside_addr);
    ASSERT_TRUE(listener) << std::strerror(errno);

    const Results unrestricted =
        in_child(nullptr, [&](Results& out) { out[0] = connect_unix(outside_addr); });
    EXPECT_EQ(unrestricted[0], 0) << "without the domain the socket is reachable";

    const UnixAddress inside_addr = abstract_address(unique_name("inside"));
    const Results restricted = in_child(&plan, [&](Results& out) {
        out[0] = connect_unix(outside_addr);
        // A socket bound inside the domain stays reachable from inside it.
        const UniqueFd own = listen_unix(inside_addr);
        out[1] = own ? connect_unix(inside_addr) : 4000 + errno;
    });
    ASSERT_NE(restricted[0], kSetupFailed)
        << "prctl(NO_NEW_PRIVS) or landlock_restrict_self failed";
    EXPECT_EQ(restricted[0], EPERM) << "connect to an abstract socket bound outside the domain";
    EXPECT_EQ(restricted[1], 0) << "connect to an abstract socket bound inside the domain";
}

TEST(Landlock, PathnameUnixSocketsAreNotScoped) {
    // The gap: ABI 7 (Linux 6.18) has no right for connecting to a pathname
    // socket, so the launcher must mask such sockets in the mount view. This
    // test fails once a kernel closes the gap by default (then revisit).
    REQUIRE_SCOPED_RULESET(plan);
    char dir_template[] = "/tmp/pl-landlock-test.XXXXXX";
    ASSERT_NE(mkdtemp(dir_template), nullptr) << std::strerror(errno);
    const std::string dir = dir_template;
    const std::string path = dir + "/sock";
    const UnixAddress addr = pathname_address(path);
    {
        const UniqueFd listener = listen_unix(addr);
        ASSERT_TRUE(listener) << path << ": " << std::strerror(errno);
        const Results restricted =
            in_child(&plan, [&](Results& out) { out[0] = connect_unix(addr); });
        EXPECT_NE(restricted[0], kSetupFailed);
        EXPECT_EQ(restricted[0], 0)
            << "pathname socket from inside the domain: " << std::strerror(restricted[0]);
    }
    unlink(path.c_str());
    rmdir(dir.c_str());
}

}  // namespace
