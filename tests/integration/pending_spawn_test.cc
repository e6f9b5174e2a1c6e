// start_spawn(): children started without waiting for their exec.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "sandbox/seccomp.h"
#include "sandbox/spawn.h"
#include "test_support.h"

namespace {

bool readable_within(int fd, int timeout_ms) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, timeout_ms) == 1;
}

bool no_children_left() {
    siginfo_t info{};
    return ::waitid(P_ALL, 0, &info, WEXITED | WNOHANG) != 0 && errno == ECHILD;
}

sandbox::SpawnSpec under_init(const std::vector<std::string>& args) {
    auto spec = pltest::misbehave(args);
    spec.namespaces = {.mount = true, .pid = true, .ipc = true, .uts = true, .net = true};
    pltest::use_init(spec);
    return spec;
}

// Several at once, finished in the opposite order: each ready fd fires on
// its own and each child runs.
TEST(PendingSpawn, SeveralStartsOverlapAndFinishInAnyOrder) {
    std::vector<sandbox::PendingSpawn> pending;
    for (int i = 0; i < 4; ++i)
        pending.push_back(sandbox::start_spawn(under_init({"exit", std::to_string(i)})));
    for (int i = 3; i >= 0; --i) {
        sandbox::PendingSpawn& p = pending[static_cast<std::size_t>(i)];
        ASSERT_GE(p.ready_fd(), 0);
        EXPECT_GT(p.pid(), 0);
        ASSERT_TRUE(readable_within(p.ready_fd(), 5000)) << "start " << i << " never finished";
        sandbox::SpawnResult result = p.finish();
        EXPECT_EQ(p.ready_fd(), -1) << "a finished spawn is spent";
        sandbox::ExitStatus status = sandbox::decode_exit(result.process.reap());
        EXPECT_EQ(status.code, i) << status.describe();
    }
    EXPECT_TRUE(no_children_left());
}

// The spec (and the seccomp program it points to) may go away as soon as
// start_spawn() returns: the child, which may still be running in our
// memory, uses copies.
TEST(PendingSpawn, TheCallersSpecMayGoAwayAtOnce) {
    std::optional<sandbox::PendingSpawn> pending;
    sandbox::UniqueFd output;
    {
        auto program =
            std::make_unique<sandbox::BpfProgram>(sandbox::compile_builtin_profile("default"));
        auto spec = std::make_unique<sandbox::SpawnSpec>(pltest::misbehave({"report"}));
        spec->seccomp = program.get();
        int fds[2];
        ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
        output = sandbox::UniqueFd(fds[0]);
        spec->stdout_fd = fds[1];
        pending.emplace(sandbox::start_spawn(*spec));
        ::close(fds[1]);  // the child has its own copy
        spec.reset();
        program.reset();
    }
    sandbox::SpawnResult result = pending->finish();
    std::string text;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(output.get(), buf, sizeof buf)) > 0)
        text.append(buf, static_cast<std::size_t>(n));
    auto report = pltest::parse_report(text);
    EXPECT_EQ(report["Seccomp"], "2") << "the copied filter was installed\n" << text;
    EXPECT_TRUE(sandbox::decode_exit(result.process.reap()).success());
}

// A start given up before it finished (its key terminated meanwhile)
// leaves no child, zombie or descriptor.
TEST(PendingSpawn, AnAbandonedStartLeavesNothing) {
    pltest::init_executable_fd();  // opened on first use and kept: not the spawn's
    const int fds_before = pltest::count_open_fds();
    {
        sandbox::PendingSpawn pending = sandbox::start_spawn(under_init({"sleep", "30"}));
        EXPECT_GT(pending.pid(), 0);
    }
    EXPECT_TRUE(no_children_left());
    EXPECT_EQ(pltest::count_open_fds(), fds_before);
}

}  // namespace
