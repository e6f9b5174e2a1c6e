// The launcher core in process: the real Launcher and EventLoop on a manual
// clock, over the in-memory FakeSandbox (fake_sandbox.h). Back-off, circuit
// breaker, the start queue, waiters, shutdown, drains and the durable
// records, each observed where the kernel would see it (spawns, signals,
// groups) and in virtual time, so every test is exact, needs no root and
// takes milliseconds. What the fake cannot show (real cgroups, namespaces,
// the init) is the integration suite's.
#include <gtest/gtest.h>

#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/event_loop.h"
#include "common/log.h"
#include "core/launcher.h"
#include "fake_sandbox.h"
#include "state/state_store.h"

namespace launcher {
namespace {

using fake::Behaviour;
using fake::FakeSandbox;
using fake::SpawnRecord;
using std::chrono::milliseconds;
using Clock = EventLoop::Clock;

constexpr const char* kPattern = "svc";

std::string id_of(const std::string& ns) {
    return "ns:" + ns + ":" + kPattern;
}

// A pattern with a tcp check: the fake's ready processes listen on the
// health port, so the launcher's real probe decides readiness.
Manifest tcp_manifest(RestartPolicy restart) {
    Manifest m;
    m.name = kPattern;
    m.version = "1.0";
    m.directory = "/nonexistent/patterns/svc";
    m.file = m.directory / "manifest.yaml";
    m.executable = "/bin/true";  // never run: the fake spawns nothing
    m.isolation_level = Isolation::kNamespace;
    m.restart = restart;
    m.healthcheck.type = HealthcheckType::kTcp;
    m.healthcheck.interval = milliseconds(200);
    m.healthcheck.timeout = milliseconds(50);
    m.healthcheck.failure_threshold = 3;
    m.healthcheck.start_timeout = milliseconds(10000);  // never-ready keys stay starting
    return m;
}

struct Settings {
    int max_concurrent_starts = 10;
    milliseconds backoff_period{30000};
    int circuit_breaker_threshold = 5;
    milliseconds default_grace{1000};
    RestartPolicy restart = RestartPolicy::kAlways;
    // The warm pool: the manifest's warm_pool.namespaces, the config's tenants.
    std::vector<std::string> warm_namespaces = {};
    std::map<std::string, std::vector<std::string>> warm_tenants = {};
    std::optional<int> max_processes = std::nullopt;
    // A session pool: the manifest's late_binding and warm_pool.sessions.
    std::map<std::string, int> warm_sessions = {};
    // The config's warm_pool.sessions, and whether the manifest says late_binding.
    std::map<std::string, std::map<std::string, int>> config_sessions = {};
    bool late_binding = false;
};

// What the launcher reports of its warm pool.
struct WarmPoolEvents : LauncherObserver {
    int hits = 0;
    int misses = 0;
    std::vector<std::string> refilled;
    void process_started(const ProcessLabels&, std::chrono::nanoseconds) override {}
    void process_stopped(const ProcessLabels&) override {}
    void process_failed(const ProcessLabels&) override {}
    void process_restarted(const ProcessLabels&) override {}
    void process_oom_killed(const ProcessLabels&) override {}
    void health_checked(const ProcessLabels&, bool) override {}
    void quota_rejected(const std::string&, const std::string&) override {}
    void warm_pool_launch(const ProcessLabels&, bool hit) override { ++(hit ? hits : misses); }
    void warm_pool_refilled(const ProcessLabels& labels, std::chrono::nanoseconds) override {
        refilled.push_back(labels.process_id);
    }
    int pool_hits = 0, pool_misses = 0;
    std::vector<std::string> pool_refilled;
    void session_pool_launch(const ProcessLabels&, bool hit) override {
        ++(hit ? pool_hits : pool_misses);
    }
    void session_pool_refilled(const ProcessLabels& labels, std::chrono::nanoseconds) override {
        pool_refilled.push_back(labels.process_id);
    }
};

// What a launch or terminate was answered, and how often.
struct LaunchAnswer {
    int calls = 0;
    LaunchResult result;
    Clock::time_point at{};
};
struct TerminateAnswer {
    int calls = 0;
    TerminateResult result;
    Clock::time_point at{};
};

class CoreMachine : public ::testing::Test {
protected:
    void SetUp() override {
        log::set_level(log::Level::kError);
        char dir[] = "/tmp/pl-core-machine-XXXXXX";
        ASSERT_NE(::mkdtemp(dir), nullptr);
        runtime_dir_ = dir;
    }

    void TearDown() override {
        if (fake_) {
            EXPECT_TRUE(fake_->violations().empty())
                << "the core did what the kernel refuses: " << fake_->violations().front();
        }
        launcher_.reset();
        std::error_code ec;
        std::filesystem::remove_all(runtime_dir_, ec);
    }

    void start(const Settings& s) {
        LauncherConfig config;
        config.runtime_dir = runtime_dir_;
        // Below the ephemeral range (32768-60999), so that no probe's own
        // port takes one; spread by pid for binaries running side by side.
        config.pattern_ports.first = 20000 + static_cast<int>(::getpid() % 120) * 100;
        config.pattern_ports.last = config.pattern_ports.first + 99;
        config.process_manager.max_concurrent_starts = s.max_concurrent_starts;
        config.process_manager.backoff_period = s.backoff_period;
        config.process_manager.circuit_breaker_threshold = s.circuit_breaker_threshold;
        config.default_grace_period = s.default_grace;
        config.limits_enforcement = LimitsEnforcement::kWarn;
        config.warm_pool.tenants = s.warm_tenants;
        config.warm_pool.sessions = s.config_sessions;
        config.quotas.max_processes = s.max_processes;
        Discovery patterns;
        Manifest manifest = tcp_manifest(s.restart);
        manifest.warm_namespaces = s.warm_namespaces;
        manifest.late_binding = s.late_binding || !s.warm_sessions.empty();
        manifest.accept_any_config = manifest.late_binding;  // a claim carries config
        manifest.warm_sessions = s.warm_sessions;
        patterns.patterns.emplace(kPattern, std::move(manifest));
        auto sandbox = std::make_unique<FakeSandbox>([this] { return now_; });
        fake_ = sandbox.get();
        launcher_ = std::make_unique<Launcher>(loop_, config, std::move(sandbox), patterns);
        launcher_->set_random_seed(1);
        launcher_->set_observer(&events_);
    }

    // One loop turn at the current virtual time. Several epoll rounds: a
    // callback may arm fds (a probe's connect to loopback completes within
    // the connect call, so its socket is ready on the next round).
    void turn() {
        for (int i = 0; i < 4; ++i) {
            fake_->pump();
            loop_.run_once(0);
        }
    }
    // Moves the manual clock `ms` milliseconds, one at a time, turning the
    // loop at each: every timer runs at its exact millisecond.
    void advance(int ms) {
        for (int i = 0; i < ms; ++i) {
            now_ += milliseconds(1);
            turn();
        }
    }
    // Advances until `done` holds; the virtual milliseconds it took, or -1
    // after `limit_ms`.
    int advance_until(const std::function<bool()>& done, int limit_ms) {
        turn();
        for (int ms = 0; ms <= limit_ms; ++ms) {
            if (done()) return ms;
            now_ += milliseconds(1);
            turn();
        }
        return -1;
    }
    int elapsed_ms(Clock::time_point since, Clock::time_point until) const {
        return static_cast<int>(std::chrono::duration_cast<milliseconds>(until - since).count());
    }

    std::shared_ptr<LaunchAnswer> launch(const std::string& ns, milliseconds grace = {}) {
        auto answer = std::make_shared<LaunchAnswer>();
        LaunchParams params;
        params.pattern = kPattern;
        params.namespace_id = ns;
        params.grace_period = grace;
        launcher_->launch(params, [this, answer](const LaunchResult& r) {
            ++answer->calls;
            answer->result = r;
            answer->at = now_;
        });
        return answer;
    }
    std::shared_ptr<LaunchAnswer> launch_session(const std::string& ns, const std::string& session,
                                                 std::map<std::string, std::string> config = {}) {
        auto answer = std::make_shared<LaunchAnswer>();
        LaunchParams params;
        params.pattern = kPattern;
        params.isolation = Isolation::kSession;
        params.namespace_id = ns;
        params.session_id = session;
        params.config = std::move(config);
        launcher_->launch(params, [this, answer](const LaunchResult& r) {
            ++answer->calls;
            answer->result = r;
            answer->at = now_;
        });
        return answer;
    }
    // The spawns of the session pool's processes (their ids begin "pool:").
    std::vector<SpawnRecord> pool_spawns() const {
        std::vector<SpawnRecord> out;
        for (const SpawnRecord& s : fake_->spawns())
            if (s.process_id.starts_with("pool:")) out.push_back(s);
        return out;
    }
    // The claim message a pool process received, or "" (none yet).
    std::string claim_received(pid_t pid) const {
        char buffer[65536];
        const ssize_t n = ::recv(fake_->claim_socket(pid), buffer, sizeof(buffer), MSG_DONTWAIT);
        return n > 0 ? std::string(buffer, static_cast<std::size_t>(n)) : std::string();
    }
    void answer_claim(pid_t pid, const std::string& text) {
        ASSERT_EQ(::send(fake_->claim_socket(pid), text.data(), text.size(), MSG_NOSIGNAL),
                  static_cast<ssize_t>(text.size()));
    }
    std::shared_ptr<TerminateAnswer> terminate(const std::string& id, bool force = false) {
        auto answer = std::make_shared<TerminateAnswer>();
        launcher_->terminate(id, milliseconds(0), force, [this, answer](const TerminateResult& r) {
            ++answer->calls;
            answer->result = r;
            answer->at = now_;
        });
        return answer;
    }
    // Launches a ready key and waits until it runs.
    void launch_running(const std::string& ns, milliseconds grace = {}) {
        auto answer = launch(ns, grace);
        ASSERT_GE(advance_until([&] { return answer->calls > 0; }, 100), 0) << ns;
        ASSERT_EQ(answer->result.code, ErrorCode::kOk) << answer->result.message;
    }
    std::optional<ProcessState> state_of(const std::string& id) const {
        auto info = launcher_->status(id);
        if (!info) return std::nullopt;
        return info->state;
    }
    bool running(const std::string& id) const { return state_of(id) == ProcessState::kRunning; }
    std::filesystem::path record_file(const std::string& id) const {
        return StateStore(runtime_dir_ / "state").file_for(id);
    }

    // Well away from the epoch: the core reads a zero time_point as "never".
    Clock::time_point now_ = Clock::time_point(std::chrono::hours(1000));
    EventLoop loop_{[this] { return now_; }};
    std::filesystem::path runtime_dir_;
    FakeSandbox* fake_ = nullptr;  // owned by launcher_
    WarmPoolEvents events_;
    std::unique_ptr<Launcher> launcher_;
};

// ---- 1. the start queue ---------------------------------------------------------------

TEST_F(CoreMachine, StartsBeyondMaxConcurrentStartsWaitAndGoInOrder) {
    start(Settings{.max_concurrent_starts = 2});
    const std::vector<std::string> ns = {"q1", "q2", "q3", "q4", "q5"};
    std::vector<std::shared_ptr<LaunchAnswer>> answers;
    for (const auto& n : ns) {
        fake_->set_behaviour(id_of(n), Behaviour::never_ready());
        answers.push_back(launch(n));
    }
    advance(100);
    ASSERT_EQ(fake_->spawns().size(), 2u);
    EXPECT_EQ(fake_->spawns()[0].process_id, id_of("q1"));
    EXPECT_EQ(fake_->spawns()[1].process_id, id_of("q2"));
    // Queued keys are accepted and listed as STARTING; nobody was refused.
    for (const auto& n : ns)
        EXPECT_EQ(state_of(id_of(n)), ProcessState::kStarting) << n;
    for (const auto& a : answers)
        EXPECT_EQ(a->calls, 0);

    // A start that ends (healthy) frees its slot for the first in line.
    fake_->make_ready(id_of("q1"));
    ASSERT_GE(advance_until([&] { return answers[0]->calls > 0; }, 100), 0);
    EXPECT_EQ(answers[0]->result.code, ErrorCode::kOk);
    advance(1);
    ASSERT_EQ(fake_->spawns().size(), 3u);
    EXPECT_EQ(fake_->spawns()[2].process_id, id_of("q3"));

    // So does one that is terminated while starting.
    auto stopped = terminate(id_of("q2"));
    ASSERT_GE(advance_until([&] { return stopped->calls > 0; }, 100), 0);
    EXPECT_TRUE(stopped->result.success);
    EXPECT_EQ(answers[1]->result.code, ErrorCode::kUnavailable);
    advance(1);
    ASSERT_EQ(fake_->spawns().size(), 4u);
    EXPECT_EQ(fake_->spawns()[3].process_id, id_of("q4"));

    fake_->make_ready(id_of("q3"));
    ASSERT_GE(advance_until([&] { return fake_->spawns().size() == 5; }, 100), 0);
    EXPECT_EQ(fake_->spawns()[4].process_id, id_of("q5"));
    EXPECT_EQ(fake_->max_live_not_ready(), 2);
}

// The loop does not wait for a spawn's exec: starts overlap up to
// max_concurrent_starts, each going on when its ready fd fires.
TEST_F(CoreMachine, StartsOverlapWhileTheirExecsArePending) {
    start(Settings{.max_concurrent_starts = 2});
    fake_->hold_execs(true);
    std::vector<std::shared_ptr<LaunchAnswer>> answers;
    for (const char* n : {"o1", "o2", "o3"})
        answers.push_back(launch(n));
    advance(50);
    EXPECT_EQ(fake_->held_execs(), 2) << "two starts in flight, neither waited for";
    ASSERT_EQ(fake_->spawns().size(), 2u) << "the third waits for a slot";
    for (const char* n : {"o1", "o2", "o3"})
        EXPECT_EQ(state_of(id_of(n)), ProcessState::kStarting) << n;
    EXPECT_EQ(answers[0]->calls, 0) << "not RUNNING before its exec";

    fake_->hold_execs(false);
    fake_->release_execs();
    ASSERT_GE(
        advance_until(
            [&] { return answers[0]->calls > 0 && answers[1]->calls > 0 && answers[2]->calls > 0; },
            500),
        0);
    for (const auto& a : answers)
        EXPECT_EQ(a->result.code, ErrorCode::kOk) << a->result.message;
    EXPECT_EQ(fake_->abandoned_execs(), 0);
}

// A terminate, or the start_timeout, while the exec is pending gives the
// start up: its child is killed, nothing is left, and the caller is told.
TEST_F(CoreMachine, AStartEndedBeforeItsExecLeavesNothing) {
    start(Settings{});
    fake_->hold_execs(true);
    const std::string id = id_of("p");
    auto launched = launch("p");
    advance(20);
    ASSERT_EQ(fake_->held_execs(), 1);
    auto stopped = terminate(id);
    ASSERT_GE(advance_until([&] { return stopped->calls > 0; }, 1000), 0);
    EXPECT_TRUE(stopped->result.success);
    EXPECT_EQ(launched->result.code, ErrorCode::kUnavailable);
    EXPECT_EQ(fake_->abandoned_execs(), 1);
    EXPECT_FALSE(fake_->alive(id));
    EXPECT_FALSE(launcher_->status(id));
    EXPECT_TRUE(fake_->groups().empty()) << fake_->groups().front();

    const std::string slow = id_of("slow");
    auto timed_out = launch("slow");
    ASSERT_GE(advance_until([&] { return timed_out->calls > 0; }, 10100), 0);
    EXPECT_EQ(timed_out->result.code, ErrorCode::kInternal);
    EXPECT_NE(timed_out->result.message.find("within 10000 ms"), std::string::npos)
        << timed_out->result.message;
    EXPECT_EQ(fake_->abandoned_execs(), 2);
    EXPECT_FALSE(fake_->alive(slow));
    EXPECT_FALSE(launcher_->status(slow));
    EXPECT_TRUE(fake_->groups().empty()) << fake_->groups().front();
}

// ---- 2. back-off ------------------------------------------------------------------------

TEST_F(CoreMachine, CrashesAreRestartedAfterADoublingJitteredCappedDelay) {
    start(Settings{.backoff_period = milliseconds(1000), .circuit_breaker_threshold = 10});
    const std::string id = id_of("b");
    launch_running("b");
    // 100, 200, 400, 800 ms, then 1600 capped at 1000: each x0.8..1.2, capped again.
    const int bases[] = {100, 200, 400, 800, 1600};
    for (int n = 0; n < 5; ++n) {
        const int base = std::min(bases[n], 1000);
        const int lo = base * 8 / 10;
        const int hi = std::min(1000, base * 12 / 10);
        const Clock::time_point crashed = now_;
        fake_->kill_process(id, SIGSEGV);
        turn();
        ASSERT_EQ(fake_->spawns_of(id).size(), static_cast<std::size_t>(n + 1));
        EXPECT_EQ(launcher_->status(id)->consecutive_failures, n + 1);
        ASSERT_GE(advance_until([&] { return fake_->spawns_of(id).size() == std::size_t(n + 2); },
                                hi + 10),
                  0)
            << "restart " << n + 1 << " did not come within " << hi << " ms";
        const int delay = elapsed_ms(crashed, fake_->spawns_of(id).back().at);
        EXPECT_GE(delay, lo) << "restart " << n + 1;
        EXPECT_LE(delay, hi) << "restart " << n + 1;
        ASSERT_GE(advance_until([&] { return running(id); }, 100), 0);
    }
    EXPECT_EQ(launcher_->status(id)->restart_count, 5);
}

// ---- 3. the circuit breaker -------------------------------------------------------------

TEST_F(CoreMachine, TheCircuitBreakerOpensAfterTheThresholdAndOnlyTerminateClearsIt) {
    start(Settings{.backoff_period = milliseconds(200),
                   .circuit_breaker_threshold = 3,
                   .restart = RestartPolicy::kOnFailure});
    const std::string id = id_of("cb");
    launch_running("cb");
    // The crash is failure 1; both restarts exit before they are healthy (2, 3).
    fake_->set_behaviour(id, Behaviour::exits(1));
    fake_->kill_process(id, SIGSEGV);
    ASSERT_GE(advance_until([&] { return state_of(id) == ProcessState::kFailed; }, 2000), 0);
    auto info = launcher_->status(id);
    EXPECT_EQ(fake_->spawns_of(id).size(), 3u);
    EXPECT_EQ(info->consecutive_failures, 3);
    EXPECT_NE(info->last_error.find("circuit breaker"), std::string::npos) << info->last_error;
    advance(3000);
    EXPECT_EQ(fake_->spawns_of(id).size(), 3u) << "restarted with the breaker open";
    EXPECT_TRUE(fake_->groups().empty()) << fake_->groups().front();

    auto again = launch("cb");
    turn();
    ASSERT_EQ(again->calls, 1);
    EXPECT_EQ(again->result.code, ErrorCode::kFailedPrecondition);
    EXPECT_EQ(fake_->spawns_of(id).size(), 3u);

    auto cleared = terminate(id);
    ASSERT_GE(advance_until([&] { return cleared->calls > 0; }, 100), 0);
    EXPECT_TRUE(cleared->result.success);
    EXPECT_FALSE(launcher_->status(id));
    auto gone = terminate(id);
    turn();
    EXPECT_EQ(gone->result.code, ErrorCode::kNotFound);
}

// ---- 4. the stability rule --------------------------------------------------------------

TEST_F(CoreMachine, AProcessHealthyForTheStabilityPeriodStartsItsBackoffOver) {
    // stability period = max(backoff_period, 1 s) = 1 s
    start(Settings{.backoff_period = milliseconds(500), .circuit_breaker_threshold = 10});
    const std::string id = id_of("st");
    launch_running("st");
    for (int n = 1; n <= 2; ++n) {  // two quick crashes: 2 consecutive failures
        fake_->kill_process(id, SIGSEGV);
        ASSERT_GE(advance_until([&] { return running(id); }, 500), 0);
    }
    EXPECT_EQ(launcher_->status(id)->consecutive_failures, 2);

    advance(1100);  // healthy (its liveness checks pass) past the stability period
    ASSERT_TRUE(running(id));
    ASSERT_EQ(fake_->spawns_of(id).size(), 3u);

    const Clock::time_point crashed = now_;
    fake_->kill_process(id, SIGSEGV);
    turn();
    EXPECT_EQ(launcher_->status(id)->consecutive_failures, 1);
    ASSERT_GE(advance_until([&] { return fake_->spawns_of(id).size() == 4; }, 600), 0);
    // The first restart's delay again (100 ms x0.8..1.2), not the third's (400).
    const int delay = elapsed_ms(crashed, fake_->spawns_of(id).back().at);
    EXPECT_GE(delay, 80);
    EXPECT_LE(delay, 120);
}

// ---- 5. waiters -------------------------------------------------------------------------

TEST_F(CoreMachine, LaunchesDuringAStartJoinIt) {
    start(Settings{});
    const std::string id = id_of("w");
    fake_->set_behaviour(id, Behaviour::never_ready());
    auto first = launch("w");
    turn();
    auto second = launch("w");
    advance(50);
    EXPECT_EQ(first->calls, 0);
    EXPECT_EQ(second->calls, 0);
    fake_->make_ready(id);
    ASSERT_GE(advance_until([&] { return second->calls > 0; }, 100), 0);
    EXPECT_EQ(first->calls, 1);
    EXPECT_EQ(first->result.code, ErrorCode::kOk);
    EXPECT_FALSE(first->result.reused);
    EXPECT_EQ(second->result.code, ErrorCode::kOk);
    EXPECT_TRUE(second->result.reused);
    EXPECT_EQ(fake_->spawns_of(id).size(), 1u);

    auto third = launch("w");
    turn();
    EXPECT_EQ(third->result.code, ErrorCode::kOk);
    EXPECT_TRUE(third->result.reused);
    EXPECT_EQ(fake_->spawns_of(id).size(), 1u);
}

TEST_F(CoreMachine, ALaunchDuringABackoffJoinsTheRestart) {
    start(Settings{});
    const std::string id = id_of("j");
    launch_running("j");
    fake_->kill_process(id, SIGSEGV);
    turn();
    ASSERT_EQ(state_of(id), ProcessState::kStarting);  // backing off
    auto joined = launch("j");
    turn();
    EXPECT_EQ(joined->calls, 0) << "answered before the restart was healthy";
    ASSERT_GE(advance_until([&] { return joined->calls > 0; }, 500), 0);
    EXPECT_EQ(joined->result.code, ErrorCode::kOk);
    EXPECT_EQ(fake_->spawns_of(id).size(), 2u);
    // The key existed before this caller came: it did not create the process.
    EXPECT_TRUE(joined->result.reused);
}

TEST_F(CoreMachine, ATerminateDuringABackoffEndsTheKeyWithoutARestart) {
    start(Settings{});
    const std::string id = id_of("tb");
    launch_running("tb");
    fake_->kill_process(id, SIGSEGV);
    turn();
    auto stopped = terminate(id);
    turn();
    ASSERT_EQ(stopped->calls, 1);
    EXPECT_TRUE(stopped->result.success);
    EXPECT_FALSE(launcher_->status(id));
    advance(1000);
    EXPECT_EQ(fake_->spawns_of(id).size(), 1u) << "restarted after its terminate";
    EXPECT_TRUE(fake_->groups().empty()) << fake_->groups().front();
}

TEST_F(CoreMachine, ATerminateDuringAStartAnswersTheLaunchUnavailable) {
    start(Settings{});
    const std::string id = id_of("t");
    fake_->set_behaviour(id, Behaviour::never_ready().sigterm(Behaviour::OnSigterm::kIgnore));
    auto launched = launch("t");
    advance(30);
    auto stopped = terminate(id);
    turn();
    EXPECT_EQ(launched->calls, 1);
    EXPECT_EQ(launched->result.code, ErrorCode::kUnavailable);
    advance(500);
    auto again = terminate(id);  // joins the stop under way
    ASSERT_GE(advance_until([&] { return stopped->calls > 0; }, 1000), 0);
    EXPECT_EQ(elapsed_ms(launched->at, stopped->at), 1000) << "not at the end of the grace";
    EXPECT_TRUE(stopped->result.success);
    EXPECT_EQ(again->calls, 1);
    EXPECT_TRUE(again->result.success);
    EXPECT_EQ(launched->calls, 1);
    EXPECT_EQ(fake_->signals_sent(id), std::vector<int>{SIGTERM});
    EXPECT_FALSE(launcher_->status(id));
    EXPECT_TRUE(fake_->groups().empty()) << fake_->groups().front();
}

TEST_F(CoreMachine, AFailedColdStartAnswersInternalAndLeavesNothing) {
    start(Settings{});
    struct Case {
        std::string ns;
        Behaviour behaviour;
        std::string says;
    };
    const Case cases[] = {{"exits", Behaviour::exits(3), "code 3"},
                          {"throws", Behaviour::throws("no such executable"), "no such executable"},
                          {"slow", Behaviour::never_ready(), "within 10000 ms"}};
    for (const Case& c : cases) {
        const std::string id = id_of(c.ns);
        fake_->set_behaviour(id, c.behaviour);
        auto launched = launch(c.ns);
        ASSERT_GE(advance_until([&] { return launched->calls > 0; }, 10100), 0) << c.ns;
        EXPECT_FALSE(fake_->alive(id)) << c.ns;
        EXPECT_EQ(launched->calls, 1);
        EXPECT_EQ(launched->result.code, ErrorCode::kInternal) << c.ns;
        EXPECT_NE(launched->result.message.find(c.says), std::string::npos)
            << launched->result.message;
        EXPECT_FALSE(launcher_->status(id)) << c.ns;
        auto stopped = terminate(id);
        turn();
        EXPECT_EQ(stopped->result.code, ErrorCode::kNotFound) << c.ns;
        EXPECT_FALSE(std::filesystem::exists(record_file(id))) << record_file(id);
        EXPECT_TRUE(fake_->groups().empty()) << c.ns << ": " << fake_->groups().front();
        advance(1000);
        EXPECT_EQ(fake_->spawns_of(id).size(), 1u) << c.ns << " was started again";
    }
}

// ---- 6. shutdown ------------------------------------------------------------------------

TEST_F(CoreMachine, ShutdownEndsEveryPhaseAndAnswersOnceAfterTheLastGraceEnds) {
    start(Settings{.max_concurrent_starts = 1, .default_grace = milliseconds(1000)});
    launch_running("running");
    fake_->set_behaviour(id_of("stubborn"),
                         Behaviour::ready().sigterm(Behaviour::OnSigterm::kIgnore));
    launch_running("stubborn", milliseconds(3000));
    launch_running("backoff");
    fake_->kill_process(id_of("backoff"), SIGSEGV);
    fake_->set_behaviour(id_of("starting"), Behaviour::never_ready());
    auto starting = launch("starting");
    auto queued = launch("queued");  // the one start slot is taken
    turn();
    ASSERT_EQ(launcher_->status(id_of("backoff"))->state, ProcessState::kStarting);  // backing off
    ASSERT_FALSE(fake_->alive(id_of("backoff")));
    ASSERT_TRUE(fake_->alive(id_of("starting")));
    ASSERT_TRUE(fake_->spawns_of(id_of("queued")).empty());

    int done = 0;
    Clock::time_point done_at{};
    const Clock::time_point began = now_;
    launcher_->shutdown([&] {
        ++done;
        done_at = now_;
    });
    auto refused = launch("late");
    turn();
    EXPECT_EQ(refused->result.code, ErrorCode::kUnavailable);
    EXPECT_EQ(starting->result.code, ErrorCode::kUnavailable);
    EXPECT_EQ(queued->result.code, ErrorCode::kUnavailable);

    advance(2990);
    EXPECT_EQ(done, 0) << "done before the stubborn key's grace period ended";
    EXPECT_TRUE(fake_->alive(id_of("stubborn")));
    EXPECT_FALSE(fake_->alive(id_of("running")));
    EXPECT_FALSE(fake_->alive(id_of("starting")));
    EXPECT_EQ(fake_->spawns_of(id_of("backoff")).size(), 1u) << "restarted during shutdown";

    advance(5000);
    EXPECT_EQ(done, 1);
    EXPECT_EQ(elapsed_ms(began, done_at), 3000);
    EXPECT_EQ(fake_->signals_sent(id_of("stubborn")), std::vector<int>{SIGTERM});
    const auto& last = fake_->exits().back();
    EXPECT_EQ(last.process_id, id_of("stubborn"));
    EXPECT_EQ(last.how, CLD_KILLED);
    EXPECT_EQ(elapsed_ms(began, last.at), 3000);
    EXPECT_EQ(launcher_->process_count(), 0u);
    EXPECT_TRUE(fake_->groups().empty()) << fake_->groups().front();
    EXPECT_EQ(fake_->spawns_of(id_of("backoff")).size(), 1u);
    EXPECT_TRUE(fake_->spawns_of(id_of("queued")).empty());
}

// ---- 7. the durable records -------------------------------------------------------------

TEST_F(CoreMachine, AKeyHasARecordFromAcceptedUntilTerminated) {
    start(Settings{.max_concurrent_starts = 1});
    const std::string starting = id_of("r1"), queued = id_of("r2");
    fake_->set_behaviour(starting, Behaviour::never_ready());
    launch("r1");
    launch("r2");
    turn();
    ASSERT_EQ(fake_->spawns().size(), 1u);  // r2 waits in the queue
    EXPECT_TRUE(std::filesystem::exists(record_file(starting)));
    EXPECT_TRUE(std::filesystem::exists(record_file(queued)));
    LoadedRecords loaded = StateStore(runtime_dir_ / "state").load_all();
    ASSERT_EQ(loaded.records.size(), 2u);
    EXPECT_EQ(loaded.records[0].process_id(), starting);
    EXPECT_EQ(loaded.records[0].desired(), pattern_launcher::state::DESIRED_RUNNING);
    EXPECT_EQ(loaded.records[1].process_id(), queued);

    auto a = terminate(starting);
    auto b = terminate(queued);
    ASSERT_GE(advance_until([&] { return a->calls > 0 && b->calls > 0; }, 100), 0);
    EXPECT_FALSE(std::filesystem::exists(record_file(starting)));
    EXPECT_FALSE(std::filesystem::exists(record_file(queued)));
    EXPECT_EQ(fake_->spawns().size(), 1u) << "the queued key started after its terminate";
}

// ---- 8. a busy cgroup on the way out ----------------------------------------------------

TEST_F(CoreMachine, ABusyCgroupIsRemovedByRetriesAndTheKeyStillForgotten) {
    start(Settings{});
    const std::string id = id_of("busy");
    launch_running("busy");
    fake_->set_busy_removals(2);
    const int removals_before = fake_->try_remove_calls();
    const Clock::time_point asked = now_;
    auto stopped = terminate(id);
    ASSERT_GE(advance_until([&] { return stopped->calls > 0; }, 2000), 0);
    EXPECT_TRUE(stopped->result.success);
    // Two refusals, then the leaf, then the key's group (and its namespace's).
    EXPECT_GE(fake_->try_remove_calls() - removals_before, 4);
    EXPECT_GE(elapsed_ms(asked, stopped->at), 10) << "the retries waited for nothing";
    EXPECT_FALSE(launcher_->status(id));
    EXPECT_FALSE(std::filesystem::exists(record_file(id)));
    EXPECT_TRUE(fake_->groups().empty()) << fake_->groups().front();
}

// ---- 9. the warm pool ------------------------------------------------------------------

// Kept keys start once the records are settled, before any launch, and a
// tenant's first launch is then a reuse: the same process, no spawn.
TEST_F(CoreMachine, WarmPoolKeysRunBeforeAnyLaunchAndTheFirstLaunchIsAReuse) {
    start(Settings{.warm_namespaces = {"w1"}, .warm_tenants = {{"w2", {kPattern}}}});
    advance(2000);
    EXPECT_TRUE(fake_->spawns().empty()) << "the pool started before recover() settled the records";
    launcher_->recover();
    ASSERT_GE(advance_until([&] { return running(id_of("w1")) && running(id_of("w2")); }, 500), 0);
    EXPECT_EQ(fake_->spawns().size(), 2u);
    EXPECT_EQ(events_.refilled.size(), 2u);
    ASSERT_TRUE(launcher_->status(id_of("w1")));
    EXPECT_TRUE(launcher_->status(id_of("w1"))->warm_pool);

    auto first = launch("w2");
    turn();
    ASSERT_EQ(first->calls, 1) << "a kept key answers at once";
    EXPECT_EQ(first->result.code, ErrorCode::kOk);
    EXPECT_TRUE(first->result.reused);
    EXPECT_EQ(fake_->spawns().size(), 2u);
    EXPECT_EQ(events_.hits, 1);
    EXPECT_EQ(events_.misses, 0);

    // A namespace the pool does not keep: an ordinary cold start, not counted.
    launch_running("other");
    EXPECT_FALSE(launcher_->status(id_of("other"))->warm_pool);
    EXPECT_EQ(events_.hits + events_.misses, 1);
    const std::vector<WarmKeyInfo> pool = launcher_->warm_pool();
    ASSERT_EQ(pool.size(), 2u);
    EXPECT_EQ(pool[0].process_id, id_of("w1"));
    EXPECT_EQ(pool[0].state, ProcessState::kRunning);
}

// The pool starts its keys one slot at a time (half of max_concurrent_starts),
// each freed slot going to the next missing key at once: not one per tick.
TEST_F(CoreMachine, WarmPoolFillsAsFastAsItsStartSlotsAllow) {
    start(Settings{.max_concurrent_starts = 2,
                   .warm_namespaces = {"w1", "w2", "w3", "w4", "w5", "w6"}});
    fake_->hold_execs(true);
    launcher_->recover();
    advance(10);
    EXPECT_EQ(fake_->held_execs(), 1) << "the pool took more than its half of the slots";
    fake_->hold_execs(false);
    fake_->release_execs();
    const int took = advance_until(
        [&] { return launcher_->process_count() == 6 && events_.refilled.size() == 6; }, 900);
    EXPECT_GE(took, 0) << "the pool waited for its tick between starts: "
                       << launcher_->process_count() << " keys, " << events_.refilled.size()
                       << " refilled, " << fake_->spawns().size() << " spawns";
}

// A launch that comes while the pool's start is under way is a miss and
// joins that start: one spawn, both answered when it is ready.
TEST_F(CoreMachine, WarmPoolMissJoinsThePoolsStart) {
    start(Settings{.warm_namespaces = {"w1"}});
    fake_->set_behaviour(id_of("w1"), Behaviour::never_ready());
    launcher_->recover();
    advance(10);
    ASSERT_EQ(fake_->spawns().size(), 1u);
    auto joined = launch("w1");
    advance(10);
    EXPECT_EQ(joined->calls, 0);
    EXPECT_EQ(events_.misses, 1);
    fake_->make_ready(id_of("w1"));
    ASSERT_GE(advance_until([&] { return joined->calls > 0; }, 500), 0);
    EXPECT_EQ(joined->result.code, ErrorCode::kOk);
    EXPECT_EQ(fake_->spawns().size(), 1u);
    EXPECT_EQ(events_.refilled.size(), 1u);
}

// A kept key that a client terminates is started again at the next tick; one
// that the circuit breaker failed stays FAILED, as for any key, until it is
// terminated (then the pool starts it again).
TEST_F(CoreMachine, WarmPoolStartsATerminatedKeyAgainButNotAFailedOne) {
    start(Settings{.backoff_period = milliseconds(100),
                   .circuit_breaker_threshold = 2,
                   .warm_namespaces = {"w1"}});
    const std::string id = id_of("w1");
    launcher_->recover();
    ASSERT_GE(advance_until([&] { return running(id); }, 500), 0);
    auto stopped = terminate(id);
    ASSERT_GE(advance_until([&] { return stopped->calls > 0; }, 2000), 0);
    EXPECT_TRUE(stopped->result.success);
    ASSERT_GE(advance_until([&] { return running(id); }, 1500), 0) << "not kept";
    EXPECT_EQ(fake_->spawns().size(), 2u);

    fake_->set_behaviour(id, Behaviour::exits(1));
    fake_->exit_process(id, 1);
    ASSERT_GE(advance_until([&] { return state_of(id) == ProcessState::kFailed; }, 3000), 0);
    const std::size_t spawns = fake_->spawns().size();
    advance(3000);
    EXPECT_EQ(fake_->spawns().size(), spawns) << "the pool went around the circuit breaker";
    EXPECT_EQ(state_of(id), ProcessState::kFailed);

    fake_->set_behaviour(id, Behaviour::ready());
    auto cleared = terminate(id);
    ASSERT_GE(advance_until([&] { return cleared->calls > 0; }, 2000), 0);
    ASSERT_GE(advance_until([&] { return running(id); }, 1500), 0);
}

// A quota the pool's keys exceed refuses them like any launch; the launcher
// goes on, and a shutdown ends the pool with everything else.
TEST_F(CoreMachine, WarmPoolKeysObeyTheQuotasAndStopAtShutdown) {
    start(Settings{.warm_namespaces = {"w1", "w2", "w3"}, .max_processes = 2});
    launcher_->recover();
    advance(3000);
    EXPECT_EQ(launcher_->process_count(), 2u);
    EXPECT_EQ(fake_->spawns().size(), 2u);
    int kept_running = 0;
    for (const WarmKeyInfo& w : launcher_->warm_pool())
        kept_running += w.state == ProcessState::kRunning;
    EXPECT_EQ(kept_running, 2);

    bool done = false;
    launcher_->shutdown([&] { done = true; });
    ASSERT_GE(advance_until([&] { return done; }, 5000), 0);
    advance(3000);
    EXPECT_EQ(launcher_->process_count(), 0u);
    EXPECT_EQ(fake_->spawns().size(), 2u) << "the pool started keys during the shutdown";
}

// ---- the session pool (session_pool.cc) ----------------------------------------------

// A pool fills within half of max_concurrent_starts, and its processes are
// no client's: not listed, not in Status, Health nor the quotas, and a
// Terminate of one is NOT_FOUND.
TEST_F(CoreMachine, SessionPoolFillsWithinItsSlotsAndIsNoClientsKey) {
    start(Settings{.max_concurrent_starts = 2, .max_processes = 1, .warm_sessions = {{"t1", 3}}});
    fake_->hold_execs(true);
    launcher_->recover();
    advance(10);
    EXPECT_EQ(fake_->held_execs(), 1) << "the pool took more than its half of the slots";
    fake_->hold_execs(false);
    fake_->release_execs();
    ASSERT_GE(advance_until([&] { return events_.pool_refilled.size() == 3; }, 900), 0);
    const std::vector<SessionPoolInfo> pools = launcher_->session_pools();
    ASSERT_EQ(pools.size(), 1u);
    EXPECT_EQ(pools[0].namespace_id, "t1");
    EXPECT_EQ(pools[0].wanted, 3);
    EXPECT_EQ(pools[0].ready, 3);
    EXPECT_EQ(pools[0].starting, 0);
    EXPECT_TRUE(launcher_->list({}).empty());
    EXPECT_EQ(launcher_->health(false).total, 0);
    const std::string pool_id = pool_spawns().at(0).process_id;
    EXPECT_FALSE(launcher_->status(pool_id));
    auto refused = terminate(pool_id);
    turn();
    EXPECT_EQ(refused->result.code, ErrorCode::kNotFound);
    // max_processes 1: the pool's three do not count; the one claimed does.
    launch_running("n1");
    auto over = launch_session("t1", "s1");
    turn();
    EXPECT_EQ(over->result.code, ErrorCode::kResourceExhausted) << over->result.message;
    EXPECT_EQ(pool_spawns().size(), 3u);
}

// A claim: no new spawn, the message on the claim socket, the answer there,
// the pool refilled with a fresh process, and the claimed one never offered
// again. A refusal and a silence fail only their launch.
TEST_F(CoreMachine, SessionLaunchClaimsAPooledProcessAndOnlyOnce) {
    start(Settings{.warm_sessions = {{"t1", 1}}});
    launcher_->recover();
    ASSERT_GE(advance_until([&] { return events_.pool_refilled.size() == 1; }, 500), 0);
    const SpawnRecord pooled = pool_spawns().at(0);

    auto first = launch_session("t1", "s1", {{"GREETING", "hi"}});
    turn();
    EXPECT_EQ(first->calls, 0) << "answered before the pattern took its identity: "
                               << first->result.message;
    EXPECT_EQ(claim_received(pooled.pid),
              R"({"config":{"GREETING":"hi"},"namespace":"t1","process_id":"session:s1:svc",)"
              R"("session_id":"s1"})");
    EXPECT_EQ(state_of("session:s1:svc"), ProcessState::kStarting);
    answer_claim(pooled.pid, "READY=1");
    ASSERT_GE(advance_until([&] { return first->calls > 0; }, 100), 0);
    ASSERT_EQ(first->result.code, ErrorCode::kOk) << first->result.message;
    EXPECT_EQ(first->result.info.pid, pooled.pid);
    EXPECT_FALSE(first->result.reused);
    EXPECT_EQ(first->result.info.process_id, "session:s1:svc");
    EXPECT_EQ(first->result.info.uid, pooled.identity);
    EXPECT_EQ(events_.pool_hits, 1);
    EXPECT_TRUE(std::filesystem::exists(record_file("session:s1:svc")));
    EXPECT_FALSE(std::filesystem::exists(record_file(pooled.process_id)));

    // Refilled with a process of its own; the claimed one is the session's.
    ASSERT_GE(advance_until([&] { return events_.pool_refilled.size() == 2; }, 500), 0);
    const SpawnRecord refill = pool_spawns().at(1);
    EXPECT_NE(refill.pid, pooled.pid);
    EXPECT_NE(refill.process_id, pooled.process_id);
    EXPECT_NE(refill.identity, pooled.identity);

    // Refused: the launch fails with the pattern's reason, nothing stays.
    auto refused = launch_session("t1", "s2");
    turn();
    EXPECT_NE(claim_received(refill.pid), "");
    answer_claim(refill.pid, "ERROR=no backend for s2");
    ASSERT_GE(advance_until([&] { return refused->calls > 0; }, 100), 0);
    EXPECT_EQ(refused->result.code, ErrorCode::kInternal);
    EXPECT_NE(refused->result.message.find("refused the claim: no backend for s2"),
              std::string::npos)
        << refused->result.message;
    ASSERT_GE(advance_until([&] { return !fake_->alive(refill.process_id); }, 100), 0);
    EXPECT_FALSE(launcher_->status("session:s2:svc"));

    // Silent: the launch fails at the manifest's start_timeout.
    ASSERT_GE(advance_until([&] { return events_.pool_refilled.size() == 3; }, 500), 0);
    auto silent = launch_session("t1", "s3");
    ASSERT_GE(advance_until([&] { return silent->calls > 0; }, 10100), 9900);
    EXPECT_NE(silent->result.message.find("did not become healthy within 10000 ms"),
              std::string::npos)
        << silent->result.message;
    // A session of another tenant never takes t1's process: a cold start.
    ASSERT_GE(advance_until([&] { return events_.pool_refilled.size() == 4; }, 500), 0);
    const std::size_t spawns = fake_->spawns().size();
    auto other = launch_session("t2", "s4");
    ASSERT_GE(advance_until([&] { return other->calls > 0; }, 100), 0);
    EXPECT_EQ(other->result.code, ErrorCode::kOk);
    EXPECT_EQ(fake_->spawns().size(), spawns + 1);
    EXPECT_EQ(fake_->spawns().back().process_id, "session:s4:svc");
    EXPECT_EQ(launcher_->session_pools().at(0).ready, 1);
}

// The config's pools (per tenant) join the manifest's, the larger count of
// the two; a pattern without late binding, or not discovered, gets none
// (logged).
TEST_F(CoreMachine, TheConfigsSessionPoolsNeedALateBindingPattern) {
    start(Settings{.config_sessions = {{"t1", {{kPattern, 2}}}, {"t2", {{"missing", 1}}}},
                   .late_binding = true});
    launcher_->recover();
    ASSERT_GE(advance_until([&] { return events_.pool_refilled.size() == 2; }, 500), 0);
    const std::vector<SessionPoolInfo> pools = launcher_->session_pools();
    ASSERT_EQ(pools.size(), 1u);
    EXPECT_EQ(pools[0].namespace_id, "t1");
    EXPECT_EQ(pools[0].ready, 2);
}

TEST_F(CoreMachine, TheConfigKeepsNoSessionPoolOfAPatternWithoutLateBinding) {
    start(Settings{.config_sessions = {{"t1", {{kPattern, 2}}}}});
    launcher_->recover();
    advance(2000);
    EXPECT_TRUE(launcher_->session_pools().empty());
    EXPECT_TRUE(pool_spawns().empty());
}

// A pool whose processes cannot start does not retry every tick: it waits
// kPoolRetry (5 s) after each failure.
TEST_F(CoreMachine, ASessionPoolThatCannotStartWaitsBeforeTryingAgain) {
    start(Settings{.warm_sessions = {{"t1", 1}}});
    fake_->set_default_behaviour(Behaviour::throws("no such executable"));
    launcher_->recover();
    advance(100);
    ASSERT_EQ(pool_spawns().size(), 1u);
    advance(4800);
    EXPECT_EQ(pool_spawns().size(), 1u) << "tried again before its 5 s";
    advance(1300);
    EXPECT_EQ(pool_spawns().size(), 2u);
    // Once it can, the pool fills, and a shutdown ends it with everything else.
    fake_->set_default_behaviour(Behaviour::ready());
    ASSERT_GE(advance_until([&] { return events_.pool_refilled.size() == 1; }, 6500), 0);
    bool done = false;
    launcher_->shutdown([&] { done = true; });
    ASSERT_GE(advance_until([&] { return done; }, 5000), 0);
    EXPECT_EQ(launcher_->process_count(), 0u);
    EXPECT_TRUE(fake_->groups().empty()) << fake_->groups().front();
}

}  // namespace
}  // namespace launcher
