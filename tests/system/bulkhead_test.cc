// Bulkheads: one tenant exhausting memory, pids or CPU stays in its own
// cgroup; its neighbour keeps its process, its health and its answers.
// Judged by the kernel's counters (memory.events, pids.events, cpu.stat),
// not by wall-clock ratios: the guest is emulated.
#include <gtest/gtest.h>

#include <filesystem>

#include "system_support.h"

namespace plsys {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// Tenant A runs the test pattern "tenant" (pl-misbehave; cpu 0.5, memory
// 64Mi, pids 32, restart on-failure); tenant B the packaged echo pattern,
// in another namespace.
class Bulkhead : public ::testing::Test {
protected:
    void TearDown() override { EXPECT_EQ(stop_service_and_clean_up(), ""); }
    void SetUp() override {
        reset_service();
        b_ = api_.launch_running("echo", "tenant-b");
        ASSERT_EQ(echo_roundtrip(b_.address(), "before").reply, "before");
        b_errors_ = api_.status(b_.process_id()).error_count();
    }

    prism::launcher::LaunchResponse launch_a(const std::string& ns, const std::string& mode,
                                             const std::string& args) {
        // The delay lets the launcher see READY=1 before A misbehaves.
        return api_.launch_running(
            "tenant", ns,
            {{"MISBEHAVE_MODE", mode}, {"MISBEHAVE_ARGS", args}, {"MISBEHAVE_DELAY_MS", "1000"}});
    }

    // B's process, health and answers are those it had before A misbehaved.
    void expect_b_unharmed() {
        prism::launcher::PatternInfo info = api_.status(b_.process_id());
        EXPECT_EQ(info.pid(), b_.pid());
        EXPECT_EQ(info.state(), prism::launcher::STATE_RUNNING);
        EXPECT_TRUE(info.healthy());
        EXPECT_EQ(info.restart_count(), 0);
        EXPECT_EQ(info.error_count(), b_errors_);
        EXPECT_EQ(echo_roundtrip(b_.address(), "still here").reply, "still here");
    }

    Api api_;
    prism::launcher::LaunchResponse b_;
    int b_errors_ = 0;
};

TEST_F(Bulkhead, MemoryHogIsOomKilledInItsOwnCgroupAndRestarted) {
    auto a = launch_a("mem-a", "alloc-mib", "512");  // memory_limit: 64Mi
    const std::string a_dir = api_.status(a.process_id()).cgroup();
    prism::launcher::PatternInfo info;
    ASSERT_TRUE(wait_until(
        [&] {
            info = api_.status(a.process_id());
            return info.restart_count() >= 1;
        },
        120s))
        << "A was not restarted; last state " << prism::launcher::ProcessState_Name(info.state())
        << ", exit cause '" << info.exit_cause() << "'";
    EXPECT_GE(read_keyed(a_dir + "/memory.events")["oom_kill"], 1u);
    EXPECT_NE(info.last_error().find("OOM"), std::string::npos) << info.last_error();
    expect_b_unharmed();
    // B's cgroup saw no memory pressure event at all.
    const std::string b_dir = api_.status(b_.process_id()).cgroup();
    EXPECT_EQ(read_keyed(b_dir + "/memory.events")["oom_kill"], 0u);
    api_.terminate(a.process_id());
    EXPECT_FALSE(fs::exists(a_dir));
}

TEST_F(Bulkhead, ForkBombStopsAtThePidsLimit) {
    auto a = launch_a("pids-a", "fork", "1000");  // pids_limit: 32
    const std::string a_dir = api_.status(a.process_id()).cgroup();
    ASSERT_TRUE(wait_until([&] { return read_keyed(a_dir + "/pids.events")["max"] >= 1; }, 120s))
        << "pids.events never counted a refused fork";
    EXPECT_LE(std::stoul(read_line(a_dir + "/pids.current")), 32u);
    ASSERT_TRUE(wait_until(
        [&] {
            return pattern_journal(a.process_id()).find("fork failed errno=EAGAIN") !=
                   std::string::npos;
        },
        60s))
        << pattern_journal(a.process_id());
    expect_b_unharmed();
    api_.terminate(a.process_id());
    EXPECT_FALSE(fs::exists(a_dir));
}

TEST_F(Bulkhead, CpuSpinnerIsThrottledWhileItsNeighbourAnswers) {
    const std::string b_dir = api_.status(b_.process_id()).cgroup();
    const auto b_before = read_keyed(b_dir + "/cpu.stat");
    auto a = launch_a("cpu-a", "spin", "");  // cpu_limit: 0.5
    const std::string a_dir = api_.status(a.process_id()).cgroup();
    // Let A spin through some hundred 100 ms periods.
    ASSERT_TRUE(
        wait_until([&] { return read_keyed(a_dir + "/cpu.stat")["nr_periods"] >= 100; }, 120s));
    // B answers throughout.
    for (int i = 0; i < 5; ++i) {
        EchoResult r = echo_roundtrip(b_.address(), "ping " + std::to_string(i));
        EXPECT_EQ(r.reply, "ping " + std::to_string(i));
        EXPECT_LT(r.round_trip, 5s);
    }
    auto a_stat = read_keyed(a_dir + "/cpu.stat");
    auto b_stat = read_keyed(b_dir + "/cpu.stat");
    // A wants a whole CPU and gets half: most of its periods end throttled.
    EXPECT_GT(a_stat["nr_throttled"], a_stat["nr_periods"] / 2) << read_file(a_dir + "/cpu.stat");
    EXPECT_GT(a_stat["throttled_usec"], 0u);
    // ...and never more than its quota: 50 ms per 100 ms period (+10 %).
    EXPECT_LE(a_stat["usage_usec"], a_stat["nr_periods"] * 55000) << read_file(a_dir + "/cpu.stat");
    // B, idle but for the echoes, never hit its own quota while A spun (its
    // start, under emulation, may have).
    EXPECT_EQ(b_stat["nr_throttled"], b_before.at("nr_throttled"))
        << read_file(b_dir + "/cpu.stat");
    expect_b_unharmed();
    api_.terminate(a.process_id());
}

}  // namespace
}  // namespace plsys
