// Issue 12's soak: one daemon under a steady churn, watched for growth.
//
// For PL_SOAK_SECONDS (default 60; the documented long run is 1800) the
// test sends about PL_SOAK_RATE operations per second (default 10): it
// launches and terminates keys (namespace and session isolation), SIGKILLs
// a key's process (the launcher restarts it), launches crash-looping keys
// (their circuit breaker opens) and terminates them, and asks for status,
// List, Health, Reload and a metrics scrape in between.
//
// Every PL_SOAK_CHECKPOINT seconds (default 10) the churn pauses: crashers
// are terminated, the population is brought back to PL_SOAK_KEYS keys
// (default 20, a quarter each of sleeper and echo, per namespace and per
// session, so that every checkpoint has the same mix), and the test waits
// until each of them is RUNNING. Then the
// same state of the launcher is measured again: its resident memory,
// descriptors and threads, and the cgroups, state records and processes of
// its subtree. The first checkpoint is the baseline (gRPC's threads, the
// allocator's arenas and the metrics families exist by then). Bounds, all
// against the baseline:
//   - descriptors: at most +4 (a health probe's or a scrape's socket);
//   - threads: at most +2 (gRPC's thread pool may grow by one or two);
//   - resident memory: at most +PL_SOAK_RSS_MIB MiB (default 8);
//   - exactly one cgroup, one state record and a live init per key, and
//     nothing else below the daemon's cgroup root.
// A leak of a descriptor per launch, or of a few hundred bytes per
// operation over the long run, breaks them. Every checkpoint is printed
// ("[soak] ...") and, with PL_SOAK_CSV=<file>, written there as CSV.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "http_client.h"
#include "process_usage.h"
#include "test_daemon.h"

namespace {

using namespace pltest;
using namespace std::chrono_literals;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

int env_int(const char* name, int fallback) {
    const char* text = std::getenv(name);
    return text && *text ? std::atoi(text) : fallback;
}

constexpr int kFdSlack = 4;
constexpr int kTenants = 64;
constexpr int kThreadSlack = 2;

struct Checkpoint {
    int seconds = 0;
    long operations = 0;
    long rss_kib = 0;
    int fds = 0;
    int threads = 0;
    std::size_t keys = 0, cgroups = 0, records = 0;
};

class Soak {
public:
    Soak()
        : seconds_(env_int("PL_SOAK_SECONDS", 60)),
          rate_(std::max(1, env_int("PL_SOAK_RATE", 10))),
          checkpoint_every_(std::max(2, env_int("PL_SOAK_CHECKPOINT", 10))),
          population_(std::max(2, env_int("PL_SOAK_KEYS", 20))),
          rss_bound_kib_(env_int("PL_SOAK_RSS_MIB", 8) * 1024L),
          seed_(static_cast<unsigned>(env_int("PL_SOAK_SEED", 12))),
          rng_(seed_),
          metrics_port_(test_port(0)) {
        d_.add_config("metrics: {port: " + std::to_string(metrics_port_) + ", path: /metrics}");
        d_.add_config("process_manager: {circuit_breaker_threshold: 3, backoff_period: 1s}");
        // Population churn needs more ports than keys: a terminated key's
        // port is free again at once, but restarts and crashers hold one.
        d_.set_port_count(population_ * 3 + 50);
        d_.add_pattern("sleeper",
                       "version: 1.0.0\n"
                       "isolation_level: namespace\n"
                       "healthcheck: {type: notify, start_timeout: 30s}\n"
                       "environment: {MISBEHAVE_MODE: sleep}\n");
        d_.add_pattern("echo", echo_manifest("http"), PL_ECHO);
        d_.add_pattern("crasher", misbehave_manifest("crash-after-ms", "200"));
        std::cout << "[soak] PL_SOAK_SECONDS=" << seconds_ << " PL_SOAK_RATE=" << rate_
                  << " PL_SOAK_CHECKPOINT=" << checkpoint_every_ << " PL_SOAK_KEYS=" << population_
                  << " PL_SOAK_RSS_MIB=" << rss_bound_kib_ / 1024 << " PL_SOAK_SEED=" << seed_
                  << std::endl;
    }

    void run();

private:
    // One random operation of the churn.
    void operate();
    // A key of class 0-3: sleeper or echo, per namespace or per session.
    void launch(int kind);
    void launch_crasher();
    void terminate(const std::string& id);
    void kill_one();
    std::string any_key();
    // Terminates crashers, refills the population and waits until it runs.
    void restore();
    Checkpoint measure(int seconds);
    void check(const Checkpoint& baseline, const Checkpoint& now);
    std::size_t state_records() const;

    int below(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }
    // A tenant of its own set for each pattern: a sleeper and an echo of one
    // namespace would share its cgroup and move the counts between checkpoints.
    std::string tenant(const std::string& pattern) {
        return pattern + "-t" + std::to_string(below(kTenants));
    }

    TestDaemon d_;
    const int seconds_, rate_, checkpoint_every_, population_;
    const long rss_bound_kib_;
    const unsigned seed_;
    std::mt19937 rng_;
    const int metrics_port_;
    long operations_ = 0;
    int next_session_ = 0;
    std::map<std::string, int> keys_;  // launched and not terminated, by class; no crashers
    std::set<std::string> crashers_;   // crash-looping keys, terminated at each checkpoint
};

constexpr int kKinds = 4;

void Soak::launch(int kind) {
    const std::string pattern = kind % 2 == 0 ? "sleeper" : "echo";
    pb::LaunchResponse r;
    // Namespaces come from a fixed set of tenants, as on a real host (the
    // metrics keep a series per namespace); a tenant's key that runs
    // already is simply returned again. Every session is new.
    const grpc::Status s =
        kind < 2 ? d_.launch(pattern, pb::ISOLATION_NAMESPACE, tenant(pattern), "", &r)
                 : d_.launch(pattern, pb::ISOLATION_SESSION, "",
                             "s" + std::to_string(next_session_++), &r);
    ASSERT_TRUE(s.ok()) << pattern << " (class " << kind << "): " << s.error_message() << "\n"
                        << d_.log();
    keys_[r.process_id()] = kind;
}

void Soak::launch_crasher() {
    pb::LaunchResponse r;
    const grpc::Status s = d_.launch("crasher", pb::ISOLATION_NAMESPACE, tenant("crasher"), "", &r);
    // A crasher may be refused when its first incarnation crashes before
    // it is ready; either way nothing of it may be left.
    if (!r.process_id().empty()) crashers_.insert(r.process_id());
    (void)s;
}

void Soak::terminate(const std::string& id) {
    pb::TerminateResponse r;
    const grpc::Status s = d_.terminate(id, &r, 2);
    EXPECT_TRUE(s.ok() || s.error_code() == grpc::StatusCode::NOT_FOUND)
        << id << ": " << s.error_message();
    keys_.erase(id);
    crashers_.erase(id);
}

std::string Soak::any_key() {
    if (keys_.empty()) return {};
    auto it = keys_.begin();
    std::advance(it, below(static_cast<int>(keys_.size())));
    return it->first;
}

void Soak::kill_one() {
    const std::string id = any_key();
    if (id.empty()) return;
    const pb::PatternInfo info = d_.status(id);
    if (info.state() != pb::STATE_RUNNING || info.pid() <= 0) return;
    // The init (the whole key goes) or the pattern (the init follows).
    const pid_t target = below(2) == 0 ? info.pid() : pattern_pid(info.pid());
    if (target > 0) ::kill(target, SIGKILL);
}

void Soak::operate() {
    ++operations_;
    const int roll = below(100);
    if (roll < 25) {
        if (static_cast<int>(keys_.size()) < population_ * 2) launch(below(kKinds));
    } else if (roll < 45) {
        if (!keys_.empty()) terminate(any_key());
    } else if (roll < 55) {
        kill_one();
    } else if (roll < 58) {
        if (crashers_.size() < 3) launch_crasher();
    } else if (roll < 78) {
        const std::string id = any_key();
        if (!id.empty()) d_.status(id);
    } else if (roll < 86) {
        d_.list();
    } else if (roll < 92) {
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + 10s);
        pb::HealthRequest req;
        req.set_include_processes(below(2) == 0);
        pb::HealthResponse resp;
        EXPECT_TRUE(d_.api().Health(&ctx, req, &resp).ok());
    } else if (roll < 95) {
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + 10s);
        pb::ReloadResponse resp;
        const grpc::Status s = d_.api().Reload(&ctx, pb::ReloadRequest(), &resp);
        EXPECT_TRUE(s.ok()) << s.error_message();
        EXPECT_EQ(resp.patterns_loaded(), 3);
    } else {
        EXPECT_EQ(http_get(metrics_port_, "/metrics").status, 200);
    }
}

void Soak::restore() {
    for (const std::string& id : std::set<std::string>(crashers_))
        terminate(id);
    // Keys whose circuit breaker opened (killed too often) are replaced.
    for (const auto& [id, kind] : std::map<std::string, int>(keys_)) {
        if (d_.status(id).state() == pb::STATE_FAILED) terminate(id);
    }
    for (int kind = 0; kind < kKinds; ++kind) {
        const int want = population_ / kKinds + (kind < population_ % kKinds ? 1 : 0);
        std::vector<std::string> of_kind;
        for (const auto& [id, k] : keys_) {
            if (k == kind) of_kind.push_back(id);
        }
        for (int i = want; i < static_cast<int>(of_kind.size()); ++i)
            terminate(of_kind[static_cast<std::size_t>(i)]);
        for (int n = static_cast<int>(of_kind.size()), tries = 0; n < want && tries < 1000;
             ++tries) {
            const std::size_t before = keys_.size();
            launch(kind);
            if (::testing::Test::HasFatalFailure()) return;
            if (keys_.size() > before) ++n;
        }
    }

    const auto deadline = Clock::now() + 60s;
    std::string pending;
    while (Clock::now() < deadline) {
        pending.clear();
        const pb::ListPatternsResponse listed = d_.list();
        std::set<std::string> running;
        for (const auto& p : listed.patterns()) {
            if (p.state() == pb::STATE_RUNNING && p.pid() > 0)
                running.insert(p.process_id());
            else
                pending += " " + p.process_id() + "=" + pb::ProcessState_Name(p.state());
        }
        for (const auto& [id, kind] : keys_) {
            if (!running.contains(id)) pending += " missing:" + id;
        }
        if (pending.empty() && running.size() == keys_.size()) return;
        std::this_thread::sleep_for(50ms);
    }
    ADD_FAILURE() << "the population did not settle within 60 s:" << pending << "\n" << d_.log();
}

std::size_t Soak::state_records() const {
    std::size_t n = 0;
    std::error_code ec;
    for (auto it = fs::directory_iterator(d_.state_dir(), ec);
         !ec && it != fs::directory_iterator(); it.increment(ec)) {
        if (it->is_regular_file()) ++n;
    }
    return n;
}

Checkpoint Soak::measure(int seconds) {
    Checkpoint c;
    c.seconds = seconds;
    c.operations = operations_;
    c.keys = keys_.size();
    const pid_t pid = d_.pid();
    c.fds = settle_fds(pid, 0, 300ms);
    c.rss_kib = rss_kib(pid);
    c.threads = thread_count(pid);
    c.cgroups = d_.tenant_cgroups().size();
    c.records = state_records();
    return c;
}

void Soak::check(const Checkpoint& baseline, const Checkpoint& now) {
    const pid_t pid = d_.pid();
    // A descriptor the daemon has just stopped using may still be open.
    const int fds = settle_fds(pid, baseline.fds + kFdSlack, 5s);
    EXPECT_LE(fds, baseline.fds + kFdSlack)
        << "at " << now.seconds << " s:" << describe_fds(fd_kinds(pid));
    EXPECT_LE(now.threads, baseline.threads + kThreadSlack) << "at " << now.seconds << " s";
    expect_rss_growth_below(baseline.rss_kib, now.rss_kib, rss_bound_kib_ + 1,
                            "at " + std::to_string(now.seconds) + " s");
    EXPECT_EQ(now.records, now.keys) << "state records at " << now.seconds << " s";
    // Every cgroup below the root belongs to a listed key: its own, one
    // below it, or a parent of one (a namespace's group).
    const pb::ListPatternsResponse listed = d_.list();
    const auto related = [](const std::string& a, const std::string& b) {
        const auto nests = [](const std::string& inner, const std::string& outer) {
            return inner == outer || inner.starts_with(outer + "/");
        };
        return nests(a, b) || nests(b, a);
    };
    for (const std::string& group : cgroups_below(d_.cgroup_root())) {
        if (group == d_.cgroup_root() + "/supervisor") continue;
        const bool owned =
            std::any_of(listed.patterns().begin(), listed.patterns().end(),
                        [&](const pb::PatternInfo& p) { return related(group, p.cgroup()); });
        EXPECT_TRUE(owned) << "a cgroup no key accounts for at " << now.seconds << " s: " << group;
    }
    for (const auto& p : listed.patterns()) {
        EXPECT_TRUE(process_alive(p.pid())) << p.process_id() << " pid " << p.pid();
    }
    EXPECT_TRUE(zombies_of(d_.cgroup_root(), pid).empty()) << "at " << now.seconds << " s";
}

void Soak::run() {
    d_.start();
    const char* csv_path = std::getenv("PL_SOAK_CSV");
    std::ofstream csv(csv_path && *csv_path ? csv_path : "/dev/null");
    csv << "seconds,operations,keys,rss_kib,fds,threads,cgroups,records\n";
    const auto begin = Clock::now();
    const auto end = begin + std::chrono::seconds(seconds_);
    const auto gap = std::chrono::microseconds(1'000'000 / rate_);
    std::optional<Checkpoint> baseline;
    auto next_checkpoint = begin;
    auto next_op = begin;
    for (;;) {
        const auto now = Clock::now();
        if (now >= next_checkpoint || now >= end) {
            restore();
            if (::testing::Test::HasFailure()) return;
            const int at = static_cast<int>(
                std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - begin).count());
            const Checkpoint c = measure(at);
            csv << c.seconds << ',' << c.operations << ',' << c.keys << ',' << c.rss_kib << ','
                << c.fds << ',' << c.threads << ',' << c.cgroups << ',' << c.records << std::endl;
            std::cout << "[soak] " << c.seconds << " s: " << c.operations << " ops, " << c.keys
                      << " keys, rss " << c.rss_kib << " KiB"
                      << (baseline ? " (" + std::to_string(c.rss_kib - baseline->rss_kib) + ")"
                                   : "")
                      << ", " << c.fds << " fds, " << c.threads << " threads, " << c.cgroups
                      << " cgroups, " << c.records << " records" << std::endl;
            if (!baseline) baseline = c;
            check(*baseline, c);
            if (::testing::Test::HasFailure() || now >= end) break;
            next_checkpoint = Clock::now() + std::chrono::seconds(checkpoint_every_);
            next_op = Clock::now();
        }
        std::this_thread::sleep_until(next_op);
        next_op += gap;
        operate();
        if (::testing::Test::HasFatalFailure()) return;
    }
    std::cout << "[soak] " << operations_ << " operations in "
              << std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - begin).count()
              << " s" << std::endl;

    // Terminating everything leaves nothing.
    for (const auto& [id, kind] : std::map<std::string, int>(keys_))
        terminate(id);
    EXPECT_EQ(d_.list().patterns_size(), 0);
    EXPECT_EQ(d_.tenant_cgroups().size(), 0u);
    EXPECT_EQ(state_records(), 0u);
    EXPECT_EQ(d_.stop(), 0) << d_.log();
}

TEST(Soak, ChurnAtAFixedRateGrowsNeitherMemoryNorDescriptorsNorThreads) {
    Soak soak;
    soak.run();
}

}  // namespace
