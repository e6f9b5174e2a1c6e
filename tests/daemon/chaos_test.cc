// Chaos through the real API: many keys, random SIGKILLs of their processes
// and of the daemon itself (while keys start, while they wait out a restart
// back-off, while they stop, and with processes killed while no daemon
// runs), the daemon restarted on the same runtime directory every time.
// Afterwards no key the launcher accepted is lost, no key it was told to
// terminate comes back, and nothing is left that no key accounts for.
//
// Knobs (environment); the values used are printed, so a failure can be
// replayed with the same random choices (the timing is the machine's):
//   PL_CHAOS_KEYS    keys to launch (default 200)
//   PL_CHAOS_ROUNDS  daemon SIGKILLs, each followed by a restart (default 6:
//                    twice each of during-start, during-back-off, during-stop)
//   PL_CHAOS_SEED    seed of every random choice (default 42)
// A long run by hand: docs/testing.md.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "sandbox/cgroup_mount.h"
#include "test_daemon.h"

namespace {

using namespace pltest;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

int env_int(const char* name, int fallback) {
    const char* value = std::getenv(name);
    return value && *value ? std::atoi(value) : fallback;
}

bool below(const std::string& path, const std::string& root) {
    return !root.empty() && (path == root || path.starts_with(root + "/"));
}

// ---- the keys ---------------------------------------------------------------------

// Cheap patterns, each with a job: sleepers and echoes are the bulk (echo
// also serves on its socket), stubborn ones ignore SIGTERM so that a stop
// lasts their 3 s grace period, crashers crash-loop until their circuit
// breaker opens.
enum class Kind { kSleeper, kEcho, kStubborn, kCrasher };

const char* pattern_of(Kind kind) {
    switch (kind) {
        case Kind::kSleeper:
            return "sleeper";
        case Kind::kEcho:
            return "echo";
        case Kind::kStubborn:
            return "stubborn";
        case Kind::kCrasher:
            return "crasher";
    }
    return "";
}

// Long start timeouts: on two loaded cores a start may take seconds, and a
// cold start that times out is refused, which this test counts as a failure.
std::string notify_manifest(const std::string& mode, const std::string& args,
                            const std::string& extra = "") {
    return "version: 1.0.0\n"
           "isolation_level: namespace\n"
           "healthcheck: {type: notify, start_timeout: 30s}\n"
           "environment:\n"
           "  MISBEHAVE_MODE: " +
           mode + "\n  MISBEHAVE_ARGS: \"" + args + "\"\n" + extra;
}

std::string echo_notify_manifest() {
    return "version: 1.0.0\n"
           "isolation_level: namespace\n"
           "healthcheck: {type: notify, start_timeout: 30s}\n"
           "sandbox:\n"
           "  network: isolated\n"
           "  namespaces: [mount, pid, ipc, uts]\n";
}

struct Key {
    int index = 0;
    Kind kind = Kind::kSleeper;
    pb::IsolationLevel level = pb::ISOLATION_NAMESPACE;
    std::string ns, session, id;
};

// What the test, as the launcher's client, knows of a key.
enum class Fate {
    kUnlaunched,
    kUnknown,     // a launch was sent but not answered (the daemon died), nor was it listed
    kAccepted,    // the launch answered RUNNING, or the daemon listed the key
    kTerminated,  // a terminate succeeded, or the daemon listed the key TERMINATING
    kRefused,     // the launcher answered the launch with an error (a test failure)
};

// Runs jobs on a few threads (gRPC calls block until the key is RUNNING).
class Workers {
public:
    Workers(std::vector<std::function<void()>> jobs, int threads) : jobs_(std::move(jobs)) {
        for (int i = 0; i < threads; ++i) {
            threads_.emplace_back([this] {
                for (std::size_t job = next_++; job < jobs_.size(); job = next_++)
                    jobs_[job]();
            });
        }
    }
    ~Workers() { join(); }
    void join() {
        for (auto& t : threads_)
            if (t.joinable()) t.join();
    }

private:
    std::vector<std::function<void()>> jobs_;
    std::atomic<std::size_t> next_{0};
    std::vector<std::thread> threads_;
};

constexpr int kThreads = 8;

class Chaos {
public:
    Chaos(TestDaemon& d, int key_count, int rounds, unsigned seed)
        : d_(d), rounds_(rounds), rng_(seed) {
        for (int i = 0; i < key_count; ++i) {
            Key k;
            k.index = i;
            // 1 in 20 crashes, 3 in 20 are stubborn, a fifth echo, the rest sleep.
            const int slot = i % 20;
            k.kind = slot == 7       ? Kind::kCrasher
                     : slot % 7 == 3 ? Kind::kStubborn
                     : slot % 5 == 1 ? Kind::kEcho
                                     : Kind::kSleeper;
            k.ns = "n" + std::to_string(i);
            if (i % 10 == 9) {
                k.level = pb::ISOLATION_SESSION;
                k.session = "s" + std::to_string(i);
                k.id = "session:" + k.session + ":" + pattern_of(k.kind);
            } else {
                k.id = "ns:" + k.ns + ":" + pattern_of(k.kind);
            }
            index_[k.id] = i;
            keys_.push_back(k);
        }
        fate_.assign(keys_.size(), Fate::kUnlaunched);
        history_.assign(keys_.size(), "");
        refusal_.assign(keys_.size(), "");
    }

    void run();

private:
    // ---- API calls (a stub of our own, valid across daemon restarts)
    std::map<std::string, pb::PatternInfo> list();
    std::optional<pb::PatternInfo> status(const std::string& id);
    void launch(const Key& k, bool wait_for_ready);
    bool terminate(const Key& k, std::int64_t grace_secs);
    void launch_all(const std::vector<int>& which, bool wait_for_ready);

    // ---- chaos
    void churn(int round);
    void terminate_some(int round);
    void kill_during_start(int round);
    void kill_during_backoff(int round);
    void kill_during_stop(int round);
    std::map<std::string, pb::PatternInfo> kill_daemon(int round, const char* moment);
    void kill_while_down(int round, const std::map<std::string, pb::PatternInfo>& snapshot);
    void restart_daemon();
    void retry_unknown();
    bool kill_process_of(int round, const pb::PatternInfo& info, bool the_pattern_itself);
    void kill_during_own_startup(int round);

    // ---- checks
    void settle();
    void check_keys();
    void check_tree(const std::map<std::string, pb::PatternInfo>& listed);
    void check_no_zombies(const char* when);
    void terminate_all_and_check_nothing_is_left();

    std::vector<int> with_fate(Fate fate, std::optional<Kind> kind = std::nullopt);
    template <typename T>
    std::vector<T> pick(std::vector<T> from, std::size_t n) {
        std::shuffle(from.begin(), from.end(), rng_);
        if (from.size() > n) from.resize(n);
        return from;
    }
    int uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
    void note(int index, const std::string& what) {
        history_[index] += (history_[index].empty() ? "" : "; ") + what;
    }
    void say(const std::string& line) {
        std::printf("[chaos] %s\n", line.c_str());
        std::fflush(stdout);
    }

    TestDaemon& d_;
    std::shared_ptr<pb::PatternLauncher::Stub> api_ = d_.connect();
    const int rounds_;
    std::mt19937 rng_;
    std::vector<Key> keys_;
    std::map<std::string, int> index_;
    std::atomic<int> epoch_{0};  // daemon kills so far: tells a dead daemon from a refusal
    std::mutex mutex_;           // fate_, history_, refusal_ (workers write them)
    std::vector<Fate> fate_;
    std::vector<std::string> history_;
    std::vector<std::string> refusal_;
    int pattern_kills_ = 0, kills_while_down_ = 0, daemon_kills_ = 0;
};

// ---- API calls ------------------------------------------------------------------------

std::map<std::string, pb::PatternInfo> Chaos::list() {
    for (int attempt = 0;; ++attempt) {
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + 30s);
        ctx.set_wait_for_ready(true);  // the channel may still be reconnecting
        pb::ListPatternsRequest req;
        pb::ListPatternsResponse resp;
        grpc::Status s = api_->ListPatterns(&ctx, req, &resp);
        if (s.ok()) {
            std::map<std::string, pb::PatternInfo> out;
            for (const auto& p : resp.patterns())
                out[p.process_id()] = p;
            return out;
        }
        if (attempt == 2) {
            ADD_FAILURE() << "ListPatterns: " << s.error_message();
            return {};
        }
    }
}

std::optional<pb::PatternInfo> Chaos::status(const std::string& id) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 30s);
    ctx.set_wait_for_ready(true);
    pb::GetProcessStatusRequest req;
    req.set_process_id(id);
    pb::GetProcessStatusResponse resp;
    grpc::Status s = api_->GetProcessStatus(&ctx, req, &resp);
    if (!s.ok()) {
        ADD_FAILURE() << "GetProcessStatus " << id << ": " << s.error_message();
        return std::nullopt;
    }
    if (resp.not_found()) return std::nullopt;
    return resp.process();
}

void Chaos::launch(const Key& k, bool wait_for_ready) {
    const int epoch = epoch_;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 90s);
    ctx.set_wait_for_ready(wait_for_ready);
    pb::LaunchRequest req;
    req.set_pattern_name(pattern_of(k.kind));
    req.set_isolation(k.level);
    req.set_namespace_(k.ns);
    req.set_session_id(k.session);
    pb::LaunchResponse resp;
    grpc::Status s = api_->LaunchPattern(&ctx, req, &resp);
    std::lock_guard lock(mutex_);
    Fate& fate = fate_[k.index];
    if (fate == Fate::kAccepted || fate == Fate::kTerminated) return;  // a retry
    if (s.ok() && resp.state() == pb::STATE_RUNNING && resp.process_id() == k.id) {
        fate = Fate::kAccepted;
        return;
    }
    // The daemon died under the call (or was not back yet): the client does
    // not know whether the launcher took it, and retries it.
    if (epoch != epoch_ || s.error_code() == grpc::StatusCode::UNAVAILABLE) {
        fate = Fate::kUnknown;
        return;
    }
    fate = Fate::kRefused;
    refusal_[k.index] = s.ok()
                            ? "answered " + pb::ProcessState_Name(resp.state()) + " " +
                                  resp.process_id() + ": " + resp.error()
                            : "gRPC " + std::to_string(s.error_code()) + ": " + s.error_message();
}

bool Chaos::terminate(const Key& k, std::int64_t grace_secs) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 60s);
    pb::TerminateRequest req;
    req.set_process_id(k.id);
    req.set_grace_period_secs(grace_secs);
    pb::TerminateResponse resp;
    grpc::Status s = api_->TerminatePattern(&ctx, req, &resp);
    std::lock_guard lock(mutex_);
    if (s.ok() && resp.success()) {
        fate_[k.index] = Fate::kTerminated;
        return true;
    }
    if (s.error_code() == grpc::StatusCode::NOT_FOUND) note(k.index, "terminate: NOT_FOUND");
    return false;
}

void Chaos::launch_all(const std::vector<int>& which, bool wait_for_ready) {
    std::vector<std::function<void()>> jobs;
    for (int i : which)
        jobs.push_back([this, i, wait_for_ready] { launch(keys_[i], wait_for_ready); });
    Workers(std::move(jobs), kThreads).join();
}

std::vector<int> Chaos::with_fate(Fate fate, std::optional<Kind> kind) {
    std::lock_guard lock(mutex_);
    std::vector<int> out;
    for (const Key& k : keys_) {
        if (fate_[k.index] == fate && (!kind || k.kind == *kind)) out.push_back(k.index);
    }
    return out;
}

// ---- chaos ----------------------------------------------------------------------------

// SIGKILL of a key's init (the pid the API reports) or of the pattern (its
// child), only while the process still runs in the key's cgroup: a pid
// from a snapshot may have been recycled by an unrelated process.
bool Chaos::kill_process_of(int round, const pb::PatternInfo& info, bool the_pattern_itself) {
    if (info.pid() <= 0 || info.cgroup().empty()) return false;
    pid_t target = the_pattern_itself ? pattern_pid(info.pid()) : info.pid();
    if (target <= 0) target = info.pid();
    if (!below(cgroup_of(target), info.cgroup())) return false;
    if (::kill(target, SIGKILL) != 0) return false;
    ++pattern_kills_;
    auto it = index_.find(info.process_id());
    if (it != index_.end()) {
        std::lock_guard lock(mutex_);
        note(it->second, "r" + std::to_string(round) + " " +
                             (the_pattern_itself ? "pattern" : "init") + " killed");
    }
    return true;
}

// A few random processes of accepted keys, spread over a moment.
void Chaos::churn(int round) {
    const auto listed = list();
    std::vector<pb::PatternInfo> alive;
    for (int i : with_fate(Fate::kAccepted)) {
        auto it = listed.find(keys_[i].id);
        if (it != listed.end() && it->second.pid() > 0) alive.push_back(it->second);
    }
    int killed = 0;
    for (const auto& info : pick(alive, std::max<std::size_t>(2, alive.size() / 20))) {
        killed += kill_process_of(round, info, uniform(0, 1) == 1);
        std::this_thread::sleep_for(std::chrono::milliseconds(uniform(0, 30)));
    }
    say("round " + std::to_string(round) + ": churn killed " + std::to_string(killed) +
        " pattern processes");
}

// Terminates one or two keys to the end: they must stay gone.
void Chaos::terminate_some(int round) {
    for (int i : pick(with_fate(Fate::kAccepted, Kind::kSleeper), 2)) {
        if (terminate(keys_[i], 1)) {
            std::lock_guard lock(mutex_);
            note(i, "r" + std::to_string(round) + " terminated");
        }
    }
}

// Lists (what it lists, it has accepted), then SIGKILLs the daemon.
std::map<std::string, pb::PatternInfo> Chaos::kill_daemon(int round, const char* moment) {
    auto snapshot = list();
    std::map<std::string, int> states;
    int waiting = 0;  // STARTING without a process: in back-off, or queued
    {
        std::lock_guard lock(mutex_);
        for (const auto& [id, info] : snapshot) {
            ++states[pb::ProcessState_Name(info.state())];
            auto it = index_.find(id);
            if (it == index_.end()) continue;
            const int i = it->second;
            if ((info.state() == pb::STATE_STARTING || info.state() == pb::STATE_RUNNING) &&
                (fate_[i] == Fate::kUnknown || fate_[i] == Fate::kUnlaunched)) {
                fate_[i] = Fate::kAccepted;
                note(i, "accepted: listed STARTING");
            }
            if (info.state() == pb::STATE_TERMINATING) fate_[i] = Fate::kTerminated;
            if (info.state() != pb::STATE_RUNNING) {
                waiting += info.state() == pb::STATE_STARTING && info.pid() == 0;
                note(i, "r" + std::to_string(round) + " daemon killed while " +
                            pb::ProcessState_Name(info.state()) +
                            (info.pid() == 0 ? " (no process)" : ""));
            }
        }
    }
    ++epoch_;
    d_.kill_hard();
    ++daemon_kills_;
    std::string counts;
    for (const auto& [state, n] : states)
        counts += " " + state + "=" + std::to_string(n);
    say("round " + std::to_string(round) + ": daemon SIGKILLed during " + moment + ";" + counts +
        "; " + std::to_string(waiting) + " STARTING without a process");
    return snapshot;
}

// New keys are being launched (and restarts are spawning) when the daemon dies.
void Chaos::kill_during_start(int round) {
    std::vector<int> fresh = with_fate(Fate::kUnlaunched);
    const int start_rounds_left = (rounds_ - 1 - round) / 3 + 1;  // this one included
    std::size_t batch = (fresh.size() + start_rounds_left - 1) / start_rounds_left;
    fresh = pick(fresh, batch);
    std::vector<std::function<void()>> jobs;
    for (int i : fresh)
        jobs.push_back([this, i] { launch(keys_[i], false); });
    Workers launching(std::move(jobs), kThreads);
    std::this_thread::sleep_for(std::chrono::milliseconds(uniform(50, 500)));
    if (fresh.empty()) churn(round);  // nothing new: restarts are what starts
    auto snapshot = kill_daemon(round, "start");
    launching.join();
    kill_while_down(round, snapshot);
    kill_during_own_startup(round);
}

// The next daemon dies too, while it recovers (before its API answers).
void Chaos::kill_during_own_startup(int round) {
    const int after_ms = uniform(0, 400);
    d_.spawn();
    std::this_thread::sleep_for(std::chrono::milliseconds(after_ms));
    ++epoch_;
    d_.kill_hard();
    ++daemon_kills_;
    say("round " + std::to_string(round) + ": daemon SIGKILLed " + std::to_string(after_ms) +
        " ms into its own startup");
}

// Hammered keys are killed again as soon as they are back, so their third
// back-off (about 400 ms) is under way when the daemon dies.
void Chaos::kill_during_backoff(int round) {
    std::vector<int> candidates;
    for (Kind kind : {Kind::kSleeper, Kind::kEcho}) {
        for (int i : with_fate(Fate::kAccepted, kind))
            candidates.push_back(i);
    }
    const std::vector<int> hammered = pick(candidates, std::max<std::size_t>(3, keys_.size() / 40));
    for (int rep = 0; rep < 3; ++rep) {
        std::map<std::string, int> killed_pid;
        for (int i : hammered) {
            auto info = status(keys_[i].id);
            if (info && kill_process_of(round, *info, rep % 2 == 0))
                killed_pid[keys_[i].id] = info->pid();
        }
        if (rep == 2) break;
        // Back with a new process, to be killed again.
        const auto deadline = Clock::now() + 20s;
        for (const auto& [id, old_pid] : killed_pid) {
            while (Clock::now() < deadline) {
                auto info = status(id);
                if (!info || (info->state() == pb::STATE_RUNNING && info->pid() != old_pid)) break;
                std::this_thread::sleep_for(10ms);
            }
        }
    }
    churn(round);
    std::this_thread::sleep_for(std::chrono::milliseconds(uniform(10, 150)));
    auto snapshot = kill_daemon(round, "back-off");
    kill_while_down(round, snapshot);
}

// Stubborn keys wait out their 3 s grace period in TERMINATING when the daemon dies.
void Chaos::kill_during_stop(int round) {
    std::vector<int> stopping = pick(with_fate(Fate::kAccepted, Kind::kStubborn),
                                     std::max<std::size_t>(2, keys_.size() / 40));
    for (int i : pick(with_fate(Fate::kAccepted, Kind::kSleeper), 2))
        stopping.push_back(i);
    std::vector<std::function<void()>> jobs;
    for (int i : stopping)
        jobs.push_back([this, i] { terminate(keys_[i], 0); });  // 0: the manifest's grace
    Workers terminating(std::move(jobs), kThreads);
    // Told and taken: listed TERMINATING (or already gone).
    const auto deadline = Clock::now() + 20s;
    for (int i : stopping) {
        while (Clock::now() < deadline) {
            auto info = status(keys_[i].id);
            if (!info || info->state() == pb::STATE_TERMINATING) {
                std::lock_guard lock(mutex_);
                fate_[i] = Fate::kTerminated;
                note(i, "r" + std::to_string(round) + " terminate sent");
                break;
            }
            std::this_thread::sleep_for(5ms);
        }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(uniform(0, 2500)));
    auto snapshot = kill_daemon(round, "stop");
    terminating.join();
    kill_while_down(round, snapshot);
}

// Processes that die between two launcher instances.
void Chaos::kill_while_down(int round, const std::map<std::string, pb::PatternInfo>& snapshot) {
    std::vector<pb::PatternInfo> alive;
    for (int i : with_fate(Fate::kAccepted)) {
        auto it = snapshot.find(keys_[i].id);
        if (it != snapshot.end() && it->second.pid() > 0) alive.push_back(it->second);
    }
    int killed = 0;
    for (const auto& info : pick(alive, std::max<std::size_t>(1, keys_.size() / 50))) {
        if (kill_process_of(round, info, false)) {
            ++killed;
            std::lock_guard lock(mutex_);
            note(index_[info.process_id()], "while no daemon ran");
        }
    }
    kills_while_down_ += killed;
}

void Chaos::restart_daemon() {
    const auto begin = Clock::now();
    d_.start();
    say("daemon restarted in " +
        std::to_string(
            std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - begin).count()) +
        " ms");
}

// A client whose launch died with the daemon launches again.
void Chaos::retry_unknown() {
    const auto deadline = Clock::now() + 60s;
    for (int attempt = 0; Clock::now() < deadline; ++attempt) {
        const std::vector<int> unknown = with_fate(Fate::kUnknown);
        if (unknown.empty()) return;
        if (attempt > 0) std::this_thread::sleep_for(200ms);  // e.g. "still being cleaned up"
        launch_all(unknown, true);
    }
}

// ---- checks ---------------------------------------------------------------------------

// The most telling thing that happened to a lost key, from its history.
std::string loss_cause(const Key& k, const std::string& history) {
    if (history.find("while no daemon ran") != std::string::npos)
        return "its process died while no daemon ran";
    if (history.find("accepted: listed STARTING") != std::string::npos)
        return "its cold start was under way when the daemon died";
    if (history.find("daemon killed while STATE_STARTING (no process)") != std::string::npos)
        return "it was in its restart back-off (no process) when the daemon died";
    if (history.find("daemon killed while STATE_STARTING") != std::string::npos)
        return "its restart was starting when the daemon died";
    if (history.find("daemon killed while STATE_FAILED") != std::string::npos)
        return "it was FAILED (circuit breaker open) when the daemon died";
    if (k.kind == Kind::kCrasher)
        return "a crasher, in its crash loop (between two listings) when the daemon died";
    return "other";
}

// Until nothing is on its way: no key STARTING or TERMINATING, every
// crasher's breaker open (or the key gone, which check_keys reports).
void Chaos::settle() {
    const auto begin = Clock::now();
    std::string pending;
    while (Clock::now() - begin < 60s) {
        pending.clear();
        for (const auto& [id, info] : list()) {
            const bool crasher = id.ends_with(":crasher");
            if (info.state() == pb::STATE_STARTING || info.state() == pb::STATE_TERMINATING ||
                (crasher && info.state() != pb::STATE_FAILED)) {
                pending += " " + id + "=" + pb::ProcessState_Name(info.state());
            }
        }
        if (pending.empty()) break;
        std::this_thread::sleep_for(100ms);
    }
    EXPECT_EQ(pending, "") << "still on their way after 60 s";
    say("settled in " +
        std::to_string(
            std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - begin).count()) +
        " ms");
}

void Chaos::check_keys() {
    const auto listed = list();
    std::vector<std::string> lost, revived, wrong, refused, unsettled;
    std::map<std::string, int> lost_by;
    int running = 0, failed = 0, terminated = 0;
    for (const Key& k : keys_) {
        const auto it = listed.find(k.id);
        const std::string who = k.id + " [" + history_[k.index] + "]";
        switch (fate_[k.index]) {
            case Fate::kAccepted:
                if (it == listed.end()) {
                    lost.push_back(who);
                    ++lost_by[loss_cause(k, history_[k.index])];
                } else if (it->second.state() == pb::STATE_RUNNING && k.kind != Kind::kCrasher) {
                    ++running;
                } else if (it->second.state() == pb::STATE_FAILED &&
                           !it->second.last_error().empty()) {
                    ++failed;
                } else {
                    wrong.push_back(who + " is " + pb::ProcessState_Name(it->second.state()) +
                                    " last_error '" + it->second.last_error() + "'");
                }
                break;
            case Fate::kTerminated:
                ++terminated;
                if (it != listed.end()) {
                    revived.push_back(who + " is " + pb::ProcessState_Name(it->second.state()));
                    break;
                }
                // Gone, and no cgroup of its own left anywhere below the root.
                for (const std::string& group : cgroups_below(d_.cgroup_root())) {
                    if (fs::path(group).filename() == k.id)
                        revived.push_back(who + " left its cgroup " + group);
                }
                break;
            case Fate::kRefused:
                refused.push_back(who + ": " + refusal_[k.index]);
                break;
            default:
                unsettled.push_back(who);
        }
    }
    for (const auto& [id, info] : listed) {
        if (!index_.count(id)) wrong.push_back(id + ": listed, but never launched");
    }
    auto join = [](const std::vector<std::string>& items) {
        std::string s;
        for (const auto& item : items)
            s += "\n  " + item;
        return s;
    };
    say("after the chaos: " + std::to_string(running) + " RUNNING, " + std::to_string(failed) +
        " FAILED, " + std::to_string(terminated) + " terminated; lost " +
        std::to_string(lost.size()) + ", terminated but back " + std::to_string(revived.size()) +
        ", wrong state " + std::to_string(wrong.size()));
    for (const auto& [cause, n] : lost_by)
        say("  lost " + std::to_string(n) + ": " + cause);
    EXPECT_TRUE(lost.empty()) << lost.size()
                              << " accepted keys are gone (NOT_FOUND):" << join(lost);
    EXPECT_TRUE(revived.empty()) << revived.size()
                                 << " terminated keys came back or left something:"
                                 << join(revived);
    EXPECT_TRUE(wrong.empty()) << "neither RUNNING nor FAILED with a reason (crashers must end "
                                  "FAILED):"
                               << join(wrong);
    EXPECT_TRUE(refused.empty()) << "launches refused:" << join(refused);
    EXPECT_TRUE(unsettled.empty()) << "never accepted nor refused:" << join(unsettled);

    // Echo keys still serve on their address.
    int echoed = 0, echoes = 0;
    for (const auto& [id, info] : listed) {
        if (!id.ends_with(":echo") || info.state() != pb::STATE_RUNNING) continue;
        ++echoes;
        echoed += roundtrip(info.address(), "chaos") == "chaos";
    }
    EXPECT_EQ(echoed, echoes) << "RUNNING echo keys that do not answer on their address";
    check_tree(listed);
}

// Every process below the root belongs to a listed RUNNING key, inside its
// cgroup; the supervisor leaf holds the daemon alone.
void Chaos::check_tree(const std::map<std::string, pb::PatternInfo>& listed) {
    const std::string root = d_.cgroup_root();
    std::vector<std::string> untracked;
    std::map<std::string, std::vector<pid_t>> by_key;
    for (pid_t pid : cgroup_procs(root))
        untracked.push_back(std::to_string(pid) + " in the root itself");
    for (const std::string& group : cgroups_below(root)) {
        for (pid_t pid : cgroup_procs(group)) {
            if (group == root + "/supervisor") {
                if (pid != d_.pid()) untracked.push_back(std::to_string(pid) + " in supervisor");
                continue;
            }
            const pb::PatternInfo* owner = nullptr;
            for (const auto& [id, info] : listed) {
                if (below(group, info.cgroup())) owner = &info;
            }
            if (!owner || owner->state() != pb::STATE_RUNNING) {
                untracked.push_back(std::to_string(pid) + " in " + group +
                                    (owner ? " of " + owner->process_id() + " (" +
                                                 pb::ProcessState_Name(owner->state()) + ")"
                                           : ""));
            } else {
                by_key[owner->process_id()].push_back(pid);
            }
        }
    }
    EXPECT_TRUE(untracked.empty())
        << untracked.size() << " processes no key accounts for:\n  " << [&] {
               std::string s;
               for (const auto& u : untracked)
                   s += u + "\n  ";
               return s;
           }();
    for (const auto& [id, info] : listed) {
        if (info.state() != pb::STATE_RUNNING) continue;
        const auto& pids = by_key[id];
        EXPECT_NE(std::find(pids.begin(), pids.end(), info.pid()), pids.end())
            << id << ": its pid " << info.pid() << " is not in its cgroup " << info.cgroup();
    }
}

// Zombies exist for a moment at every exit; one that stays is a bug.
void Chaos::check_no_zombies(const char* when) {
    std::vector<std::string> zombies;
    const auto deadline = Clock::now() + 5s;
    do {
        zombies = zombies_of(d_.cgroup_root(), d_.pid());
        if (zombies.empty()) return;
        std::this_thread::sleep_for(50ms);
    } while (Clock::now() < deadline);
    std::string text;
    for (const auto& z : zombies)
        text += "\n  " + z;
    ADD_FAILURE() << zombies.size() << " zombies " << when << ":" << text;
}

void Chaos::terminate_all_and_check_nothing_is_left() {
    const auto listed = list();
    std::atomic<int> failures{0};
    std::vector<std::function<void()>> jobs;
    for (const auto& [id, info] : listed) {
        jobs.push_back([this, id = id, &failures] {
            grpc::ClientContext ctx;
            // 1 s of grace, 8 at a time: 30 s is ample, and bounds the test.
            ctx.set_deadline(std::chrono::system_clock::now() + 30s);
            pb::TerminateRequest req;
            req.set_process_id(id);
            req.set_grace_period_secs(1);
            pb::TerminateResponse resp;
            grpc::Status s = api_->TerminatePattern(&ctx, req, &resp);
            if (!s.ok() || !resp.success()) {
                ++failures;
                ADD_FAILURE() << "terminate " << id << ": " << s.error_message() << resp.error();
            }
        });
    }
    Workers(std::move(jobs), kThreads).join();
    EXPECT_EQ(failures.load(), 0);
    EXPECT_TRUE(list().empty()) << "keys listed after terminating all";
    const std::string root = d_.cgroup_root();
    std::vector<std::string> left;
    for (pid_t pid : cgroup_procs(root))
        left.push_back("process " + std::to_string(pid) + " in " + root);
    for (const std::string& group : cgroups_below(root)) {
        if (group == root + "/supervisor") continue;
        left.push_back("cgroup " + group);
        for (pid_t pid : cgroup_procs(group))
            left.push_back("process " + std::to_string(pid) + " in " + group);
    }
    // Sockets in the keys' port range held by the daemon (or by anything in
    // its subtree): the range is shared with nobody we know of, but other
    // daemons on this host may use those ports, so only ours count.
    std::set<pid_t> ours{d_.pid()};
    for (const std::string& group : cgroups_below(root)) {
        for (pid_t pid : cgroup_procs(group))
            ours.insert(pid);
    }
    for (const auto& [port, holders] : listening_ports(d_.port_first(), d_.port_last(), ours))
        left.push_back("a socket listening on port " + std::to_string(port) + " held by pid " +
                       std::to_string(*holders.begin()));
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(d_.state_dir(), ec))
        left.push_back("state record " + entry.path().string());
    std::string text;
    for (const auto& l : left)
        text += "\n  " + l;
    EXPECT_TRUE(left.empty()) << "terminating every key left:" << text;
    check_no_zombies("after terminating every key");
}

void Chaos::run() {
    const auto begin = Clock::now();
    // Three fifths of the keys first, crashers included; the rest start
    // while the daemon is killed.
    std::vector<int> first;
    for (const Key& k : keys_) {
        if (k.kind == Kind::kCrasher || k.index % 5 < 3) first.push_back(k.index);
    }
    launch_all(first, true);
    retry_unknown();
    say("launched " + std::to_string(with_fate(Fate::kAccepted).size()) + " keys in " +
        std::to_string(
            std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - begin).count()) +
        " ms");

    for (int round = 0; round < rounds_; ++round) {
        churn(round);
        terminate_some(round);
        switch (round % 3) {
            case 0:
                kill_during_start(round);
                break;
            case 1:
                kill_during_backoff(round);
                break;
            default:
                kill_during_stop(round);
        }
        restart_daemon();
        retry_unknown();
    }
    // Whatever was never launched (few rounds), a client launches now.
    launch_all(with_fate(Fate::kUnlaunched), true);
    retry_unknown();
    say(std::to_string(pattern_kills_) + " pattern processes SIGKILLed (" +
        std::to_string(kills_while_down_) + " while no daemon ran), daemon SIGKILLed " +
        std::to_string(daemon_kills_) + " times");

    settle();
    check_keys();
    check_no_zombies("after the chaos");
    terminate_all_and_check_nothing_is_left();
    EXPECT_EQ(d_.stop(), 0) << d_.log().substr(0, 4000);
    say("took " +
        std::to_string(
            std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - begin).count()) +
        " ms");
}

TEST(Chaos, NoAcceptedKeyIsLostAndNothingLeaksThroughSigkillsOfPatternsAndTheDaemon) {
    const int keys = env_int("PL_CHAOS_KEYS", 200);
    const int rounds = env_int("PL_CHAOS_ROUNDS", 6);
    const unsigned seed = static_cast<unsigned>(env_int("PL_CHAOS_SEED", 42));
    std::printf("[chaos] PL_CHAOS_KEYS=%d PL_CHAOS_ROUNDS=%d PL_CHAOS_SEED=%u\n", keys, rounds,
                seed);
    RecordProperty("seed", static_cast<int>(seed));
    ASSERT_GT(keys, 0);

    TestDaemon d;
    d.set_port_count(keys + 50);  // one port per key (notify checks), some to spare
    d.add_config("process_manager: {backoff_period: 2s, circuit_breaker_threshold: 5}");
    d.add_pattern("sleeper", notify_manifest("sleep", ""));
    d.add_pattern("stubborn", notify_manifest("ignore-sigterm", "", "grace_period: 3s\n"));
    d.add_pattern("crasher", notify_manifest("crash-after-ms", "300"));
    d.add_pattern("echo", echo_notify_manifest(), PL_ECHO);
    // Before the daemon starts: its children come to us when it is killed.
    OrphanReaper reaper(d.cgroup_root());
    d.start();
    Chaos chaos(d, keys, rounds, seed);
    chaos.run();
    std::printf("[chaos] orphans reaped by the test (the subreaper): %d\n", reaper.reaped());
}

// The detectors the chaos test relies on see what they look for: a process
// in a cgroup, the socket it listens on, its zombie, and an orphan that the
// reaper takes over from its dead parent and reaps.
TEST(Chaos, TheLeakDetectorsSeeAStrayProcessItsListenerItsZombieAndReapAnOrphan) {
    const std::string root =
        sandbox::find_cgroup2_mount().path + "/pl-chaos-probe." + std::to_string(::getpid());
    ASSERT_TRUE(fs::create_directory(root)) << root;
    OrphanReaper reaper(root);
    int pipe_fds[2];
    ASSERT_EQ(::pipe(pipe_fds), 0);
    // The child forks a grandchild and exits: the grandchild, an orphan,
    // joins the cgroup, listens on a port and tells its pid and port. (The
    // child itself stays out of the cgroup: the reaper reaps what dies
    // there, and would race our waitpid for it.)
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        if (::fork() != 0) ::_exit(0);
        const std::string self = std::to_string(::getpid());
        const int procs = ::open((root + "/cgroup.procs").c_str(), O_WRONLY);
        if (procs < 0 || ::write(procs, self.data(), self.size()) < 0) ::_exit(1);
        const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof addr;
        if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0 || ::listen(fd, 1) != 0 ||
            ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
            ::_exit(1);
        const int facts[2] = {::getpid(), ntohs(addr.sin_port)};
        if (::write(pipe_fds[1], facts, sizeof facts) != sizeof facts) ::_exit(1);
        for (;;)
            ::pause();
    }
    ::close(pipe_fds[1]);
    ASSERT_EQ(::waitpid(child, nullptr, 0), child);
    int facts[2] = {0, 0};
    ASSERT_EQ(::read(pipe_fds[0], facts, sizeof facts), static_cast<ssize_t>(sizeof facts));
    ::close(pipe_fds[0]);
    const pid_t orphan = facts[0];
    const int port = facts[1];
    struct Cleanup {
        pid_t pid;
        std::string dir;
        ~Cleanup() {
            if (pid > 0) ::kill(pid, SIGKILL);
            for (int i = 0; i < 100 && fs::exists(dir) && ::rmdir(dir.c_str()) != 0; ++i)
                std::this_thread::sleep_for(20ms);
        }
    } cleanup{orphan, root};

    EXPECT_EQ(cgroup_procs(root), std::vector<pid_t>{orphan});
    EXPECT_EQ(cgroup_of(orphan), root);
    const auto listening = listening_ports(port, port, {orphan});
    ASSERT_EQ(listening.count(port), 1u) << "port " << port;
    EXPECT_EQ(listening.at(port), std::set<pid_t>{orphan});
    EXPECT_TRUE(listening_ports(port, port, {::getpid()}).empty()) << "held by the orphan only";

    // Its zombie is seen until the reaper's thread (every 20 ms) reaps it.
    {
        ASSERT_EQ(::kill(orphan, SIGKILL), 0);
        std::vector<std::string> zombies;
        for (int i = 0; i < 200 && zombies.empty(); ++i) {
            zombies = zombies_of(root, 0);
            if (zombies.empty()) std::this_thread::sleep_for(1ms);
        }
        // The reaper thread may have been quicker: then it counted it.
        if (zombies.empty()) {
            EXPECT_EQ(reaper.reaped(), 1) << "neither seen as a zombie nor reaped";
        } else {
            EXPECT_NE(zombies.front().find("pid " + std::to_string(orphan) + " ppid " +
                                           std::to_string(::getpid())),
                      std::string::npos)
                << zombies.front();
        }
    }
    const auto deadline = Clock::now() + 5s;
    while (reaper.reaped() < 1 && Clock::now() < deadline)
        std::this_thread::sleep_for(10ms);
    EXPECT_EQ(reaper.reaped(), 1);
    EXPECT_TRUE(zombies_of(root, 0).empty());
    EXPECT_FALSE(fs::exists("/proc/" + std::to_string(orphan)));
    EXPECT_EQ(::rmdir(root.c_str()), 0) << root << ": " << std::strerror(errno);
    cleanup.pid = 0;
}

}  // namespace
