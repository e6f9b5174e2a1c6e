// read_process_ids: who another process runs as, from /proc/<pid>/status.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox/process.h"

namespace {

TEST(ReadProcessIds, ReadsRealAndEffectiveIdsOfAnotherProcess) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to change ids (runs in the VM suite)";
    int ready[2];
    ASSERT_EQ(::pipe(ready), 0);
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        // Four different numbers, so a swapped field cannot pass.
        if (::setresgid(70001, 70002, 70003) != 0 || ::setresuid(70011, 70012, 70013) != 0)
            ::_exit(1);
        char c = 'r';
        (void)!::write(ready[1], &c, 1);
        for (;;)
            ::pause();
    }
    ::close(ready[1]);
    char c = 0;
    ASSERT_EQ(::read(ready[0], &c, 1), 1) << "the child could not change its ids";
    ::close(ready[0]);

    std::string problem;
    const std::optional<sandbox::ProcessIds> ids = sandbox::read_process_ids(pid, problem);
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    ASSERT_TRUE(ids.has_value()) << problem;
    EXPECT_EQ(ids->uid, 70011u);
    EXPECT_EQ(ids->euid, 70012u);
    EXPECT_EQ(ids->gid, 70001u);
    EXPECT_EQ(ids->egid, 70002u);
    EXPECT_TRUE(problem.empty()) << problem;
}

TEST(ReadProcessIds, SaysWhyForAProcessThatIsGone) {
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) ::_exit(0);
    ASSERT_EQ(::waitpid(pid, nullptr, 0), pid);  // reaped: /proc/<pid> is gone

    std::string problem;
    EXPECT_FALSE(sandbox::read_process_ids(pid, problem).has_value());
    EXPECT_EQ(problem,
              "cannot read /proc/" + std::to_string(pid) + "/status: No such file or directory");
}

}  // namespace
