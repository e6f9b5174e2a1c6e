// Chaos under a real systemd: keys churned by SIGKILLs of their processes
// while `systemctl kill -s KILL pattern-launcher.service` kills the daemon
// (systemd restarts it) during starts, back-offs and stops. Afterwards no
// accepted key is lost, no terminated key is back, nothing in the tenants'
// scope is unaccounted for, and terminating everything leaves nothing.
// The daemon suite's Chaos test is the same on the host, with more keys.
//
// Knobs (environment of system_tests): PL_CHAOS_KEYS (default 24: the guest
// is emulated, a spawn costs ~35 times what it does on the host),
// PL_CHAOS_SEED (default 42). Both are printed.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "system_support.h"

namespace plsys {
namespace {

namespace fs = std::filesystem;
namespace pb = prism::launcher;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr const char* kStateDir = "/run/pattern-launcher/state";

int env_int(const char* name, int fallback) {
    const char* value = std::getenv(name);
    return value && *value ? std::atoi(value) : fallback;
}

bool below(const std::string& path, const std::string& root) {
    return !root.empty() && (path == root || path.starts_with(root + "/"));
}

// The cgroup directory of `pid`, empty once it is gone (a zombie keeps its own).
std::string cgroup_or_empty(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/cgroup");
    for (std::string line; std::getline(in, line);) {
        if (line.starts_with("0::")) return std::string(kCgroupMount) + line.substr(3);
    }
    return {};
}

std::vector<pid_t> procs_of(const std::string& dir) {
    std::vector<pid_t> pids;
    std::ifstream in(dir + "/cgroup.procs");
    for (pid_t pid; in >> pid;)
        pids.push_back(pid);
    return pids;
}

// Zombies that died in the tenants' scope or whose parent is the daemon.
std::vector<std::string> zombies(pid_t daemon) {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator("/proc", ec)) {
        const std::string name = entry.path().filename().string();
        if (name.find_first_not_of("0123456789") != std::string::npos) continue;
        std::ifstream in(entry.path() / "stat");
        std::string text((std::istreambuf_iterator<char>(in)), {});
        const std::size_t close = text.rfind(')');
        if (close == std::string::npos) continue;
        std::istringstream rest(text.substr(close + 2));
        char state = 0;
        pid_t ppid = 0;
        if (!(rest >> state >> ppid) || state != 'Z') continue;
        const std::string group = cgroup_or_empty(std::stoi(name));
        if (below(group, kScopeDir) || (daemon > 0 && ppid == daemon))
            out.push_back("pid " + name + " ppid " + std::to_string(ppid) + " in " + group);
    }
    return out;
}

// Ports in `ports` with a TCP socket in LISTEN.
std::set<int> listening(const std::set<int>& ports) {
    std::set<int> out;
    for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
        std::ifstream in(table);
        std::string line;
        std::getline(in, line);
        while (std::getline(in, line)) {
            std::istringstream fields(line);
            std::string slot, local, remote, st;
            if (!(fields >> slot >> local >> remote >> st) || st != "0A") continue;
            const int port = std::stoi(local.substr(local.rfind(':') + 1), nullptr, 16);
            if (ports.count(port)) out.insert(port);
        }
    }
    return out;
}

enum class Kind { kSleeper, kStubborn, kCrasher, kEcho };
enum class Fate { kUnlaunched, kUnknown, kAccepted, kTerminated, kRefused };

struct Key {
    int index = 0;
    Kind kind = Kind::kSleeper;
    std::string ns, pattern, id;
    std::map<std::string, std::string> config;
};

class Chaos : public ::testing::Test {
protected:
    void SetUp() override { reset_service(); }
    void TearDown() override { EXPECT_EQ(stop_service_and_clean_up(), ""); }

    void make_keys(int count) {
        for (int i = 0; i < count; ++i) {
            Key k;
            k.index = i;
            k.kind = i % 8 == 5   ? Kind::kCrasher
                     : i % 4 == 2 ? Kind::kStubborn
                     : i % 4 == 3 ? Kind::kEcho
                                  : Kind::kSleeper;
            k.ns = "chaos" + std::to_string(i);
            k.pattern = k.kind == Kind::kEcho ? "echo" : "tenant";
            k.id = "ns:" + k.ns + ":" + k.pattern;
            if (k.kind == Kind::kSleeper) k.config = {{"MISBEHAVE_MODE", "sleep"}};
            if (k.kind == Kind::kStubborn) k.config = {{"MISBEHAVE_MODE", "ignore-sigterm"}};
            if (k.kind == Kind::kCrasher)
                k.config = {{"MISBEHAVE_MODE", "crash-after-ms"}, {"MISBEHAVE_ARGS", "1500"}};
            index_[k.id] = i;
            keys_.push_back(k);
        }
        fate_.assign(keys_.size(), Fate::kUnlaunched);
        history_.assign(keys_.size(), "");
    }

    std::unique_ptr<pb::PatternLauncher::Stub> stub() {
        return pb::PatternLauncher::NewStub(grpc::CreateChannel(
            std::string("unix:") + kApiSocket, grpc::InsecureChannelCredentials()));
    }

    // The socket unit keeps the API socket: calls made while the daemon is
    // down wait in its backlog for the restarted one.
    std::map<std::string, pb::PatternInfo> list() {
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + 180s);
        ctx.set_wait_for_ready(true);
        pb::ListPatternsRequest req;
        pb::ListPatternsResponse resp;
        grpc::Status s = stub()->ListPatterns(&ctx, req, &resp);
        if (!s.ok()) throw std::runtime_error("ListPatterns: " + s.error_message());
        std::map<std::string, pb::PatternInfo> out;
        for (const auto& p : resp.patterns())
            out[p.process_id()] = p;
        return out;
    }

    void launch(const Key& k) {
        const int epoch = epoch_;
        pb::LaunchResponse resp;
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + 180s);
        ctx.set_wait_for_ready(true);
        pb::LaunchRequest req;
        req.set_pattern_name(k.pattern);
        req.set_namespace_(k.ns);
        for (const auto& [name, value] : k.config)
            (*req.mutable_config())[name] = value;
        grpc::Status s = stub()->LaunchPattern(&ctx, req, &resp);
        std::lock_guard lock(mutex_);
        Fate& fate = fate_[k.index];
        if (fate == Fate::kAccepted || fate == Fate::kTerminated) return;
        if (s.ok() && resp.state() == pb::STATE_RUNNING) {
            fate = Fate::kAccepted;
        } else if (epoch != epoch_ || s.error_code() == grpc::StatusCode::UNAVAILABLE) {
            fate = Fate::kUnknown;
        } else {
            fate = Fate::kRefused;
            note(k.index, "refused: " + s.error_message() + resp.error());
        }
    }

    void terminate(const Key& k, std::int64_t grace_secs) {
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + 180s);
        pb::TerminateRequest req;
        req.set_process_id(k.id);
        req.set_grace_period_secs(grace_secs);
        pb::TerminateResponse resp;
        grpc::Status s = stub()->TerminatePattern(&ctx, req, &resp);
        std::lock_guard lock(mutex_);
        if (s.ok() && resp.success()) fate_[k.index] = Fate::kTerminated;
    }

    std::vector<int> with_fate(Fate fate, std::optional<Kind> kind = std::nullopt) {
        std::lock_guard lock(mutex_);
        std::vector<int> out;
        for (const Key& k : keys_) {
            if (fate_[k.index] == fate && (!kind || k.kind == *kind)) out.push_back(k.index);
        }
        return out;
    }

    // Under mutex_.
    void note(int index, const std::string& what) {
        history_[index] += (history_[index].empty() ? "" : "; ") + what;
    }

    std::vector<int> pick(std::vector<int> from, std::size_t n) {
        std::shuffle(from.begin(), from.end(), rng_);
        if (from.size() > n) from.resize(n);
        return from;
    }

    // In parallel, as clients would; joined by the caller.
    std::vector<std::thread> in_parallel(const std::vector<int>& which,
                                         std::function<void(const Key&)> job) {
        std::vector<std::thread> threads;
        for (int i : which)
            threads.emplace_back([this, i, job] { job(keys_[i]); });
        return threads;
    }
    static void join(std::vector<std::thread>& threads) {
        for (auto& t : threads)
            t.join();
    }

    // SIGKILL of a key's process (or of its child, the pattern under an
    // init), only while it still runs in the key's cgroup.
    void kill_process_of(const pb::PatternInfo& info, const std::string& why) {
        pid_t target = info.pid();
        if (pattern_child_ && target > 0) {
            std::ifstream children("/proc/" + std::to_string(target) + "/task/" +
                                   std::to_string(target) + "/children");
            pid_t child = 0;
            if (children >> child && child > 0) target = child;
        }
        pattern_child_ = !pattern_child_;
        if (target <= 0 || !below(cgroup_or_empty(target), info.cgroup())) return;
        if (::kill(target, SIGKILL) == 0) {
            ++pattern_kills_;
            std::lock_guard lock(mutex_);
            note(index_.at(info.process_id()), why);
        }
    }

    void churn(const std::string& why) {
        const auto listed = list();
        std::vector<int> alive;
        for (int i : with_fate(Fate::kAccepted)) {
            auto it = listed.find(keys_[i].id);
            if (it != listed.end() && it->second.pid() > 0) alive.push_back(i);
        }
        for (int i : pick(alive, std::max<std::size_t>(2, alive.size() / 4)))
            kill_process_of(listed.at(keys_[i].id), why);
    }

    // Lists (what it lists, it accepted), then has systemd SIGKILL the
    // daemon, kills a process while no daemon runs, and waits for the restart.
    void kill_daemon(const std::string& moment) {
        const auto snapshot = list();
        {
            std::lock_guard lock(mutex_);
            for (const auto& [id, info] : snapshot) {
                auto it = index_.find(id);
                if (it == index_.end()) continue;
                Fate& fate = fate_[it->second];
                if ((info.state() == pb::STATE_STARTING || info.state() == pb::STATE_RUNNING) &&
                    (fate == Fate::kUnknown || fate == Fate::kUnlaunched)) {
                    fate = Fate::kAccepted;
                }
                if (info.state() == pb::STATE_TERMINATING) fate = Fate::kTerminated;
                if (info.state() != pb::STATE_RUNNING)
                    note(it->second, "daemon killed while " + pb::ProcessState_Name(info.state()) +
                                         " (pid " + std::to_string(info.pid()) + ")");
            }
        }
        const pid_t old_main = main_pid();
        const int before = restarts();
        ++epoch_;
        sh_ok("systemctl kill -s KILL " + std::string(kService));
        for (int i : pick(with_fate(Fate::kAccepted), keys_.size())) {
            auto it = snapshot.find(keys_[i].id);
            if (it != snapshot.end() && it->second.state() == pb::STATE_RUNNING &&
                it->second.pid() > 0) {
                kill_process_of(it->second, "killed while no daemon ran");
                break;
            }
        }
        ASSERT_TRUE(wait_until([&] { return restarts() > before && main_pid() > 0; }, 180s))
            << "systemd did not restart the launcher";
        EXPECT_NE(main_pid(), old_main);
        std::printf("[chaos] daemon SIGKILLed by systemctl kill during %s (%zu keys listed)\n",
                    moment.c_str(), snapshot.size());
        std::fflush(stdout);
    }

    void retry_unknown() {
        for (int attempt = 0; attempt < 5; ++attempt) {
            auto unknown = with_fate(Fate::kUnknown);
            if (unknown.empty()) return;
            auto threads = in_parallel(unknown, [this](const Key& k) { launch(k); });
            join(threads);
        }
    }

    std::vector<Key> keys_;
    std::map<std::string, int> index_;
    std::vector<Fate> fate_;
    std::vector<std::string> history_;
    std::mutex mutex_;
    std::atomic<int> epoch_{0};
    std::mt19937 rng_;
    bool pattern_child_ = false;
    int pattern_kills_ = 0;
};

TEST_F(Chaos, SystemctlKillDuringChurnLosesNoKeyAndLeavesNothing) {
    const int count = env_int("PL_CHAOS_KEYS", 24);
    const unsigned seed = static_cast<unsigned>(env_int("PL_CHAOS_SEED", 42));
    std::printf("[chaos] PL_CHAOS_KEYS=%d PL_CHAOS_SEED=%u\n", count, seed);
    rng_.seed(seed);
    make_keys(count);

    // Half first (the crashers among them), the rest while the daemon dies.
    std::vector<int> first, rest;
    for (const Key& k : keys_)
        (k.kind == Kind::kCrasher || k.index % 2 == 0 ? first : rest).push_back(k.index);
    auto launching = in_parallel(first, [this](const Key& k) { launch(k); });
    join(launching);

    // 1: during starts (cold ones, and restarts of churned keys).
    churn("killed before the daemon died during starts");
    launching = in_parallel(rest, [this](const Key& k) { launch(k); });
    std::this_thread::sleep_for(
        std::chrono::milliseconds(std::uniform_int_distribution<int>(200, 2000)(rng_)));
    kill_daemon("start");
    join(launching);
    retry_unknown();

    // 2: during back-offs: keys killed, back, killed again.
    churn("killed once before the back-off kill");
    // Back (crashers aside, which come and go), to be killed again.
    ASSERT_TRUE(wait_until(
        [&] {
            for (const auto& [id, info] : list()) {
                const auto it = index_.find(id);
                if (info.state() == pb::STATE_STARTING && it != index_.end() &&
                    keys_[it->second].kind != Kind::kCrasher)
                    return false;
            }
            return true;
        },
        120s));
    churn("killed twice before the back-off kill");
    std::this_thread::sleep_for(200ms);
    kill_daemon("back-off");
    retry_unknown();

    // 3: during stops: stubborn keys hold out their 5 s grace period.
    std::vector<int> stopping = pick(with_fate(Fate::kAccepted, Kind::kStubborn), 2);
    for (int i : pick(with_fate(Fate::kAccepted, Kind::kSleeper), 1))
        stopping.push_back(i);
    auto terminating = in_parallel(stopping, [this](const Key& k) { terminate(k, 0); });
    ASSERT_TRUE(wait_until(
        [&] {
            const auto listed = list();
            for (int i : stopping) {
                auto it = listed.find(keys_[i].id);
                if (it != listed.end() && it->second.state() != pb::STATE_TERMINATING) return false;
            }
            return true;
        },
        120s, 50ms));
    {
        std::lock_guard lock(mutex_);
        for (int i : stopping)
            fate_[i] = Fate::kTerminated;
    }
    kill_daemon("stop");
    join(terminating);
    retry_unknown();
    std::printf("[chaos] %d pattern processes SIGKILLed, the daemon 3 times\n", pattern_kills_);

    // Settled: nothing STARTING or TERMINATING, every crasher's breaker open.
    std::string pending;
    const bool settled = wait_until(
        [&] {
            pending.clear();
            for (const auto& [id, info] : list()) {
                const auto it = index_.find(id);
                const bool crasher = it != index_.end() && keys_[it->second].kind == Kind::kCrasher;
                if (info.state() == pb::STATE_STARTING || info.state() == pb::STATE_TERMINATING ||
                    (crasher && info.state() != pb::STATE_FAILED)) {
                    pending += " " + id + "=" + pb::ProcessState_Name(info.state());
                }
            }
            return pending.empty();
        },
        300s, 500ms);
    EXPECT_TRUE(settled) << "still on their way:" << pending;

    const auto listed = list();
    std::set<int> ports;
    int accepted = 0, lost = 0, terminated = 0, revived = 0;
    for (const Key& k : keys_) {
        const auto it = listed.find(k.id);
        const std::string who = k.id + " [" + history_[k.index] + "]";
        if (it != listed.end() && it->second.address().find(':') != std::string::npos) {
            const std::string& a = it->second.address();
            ports.insert(std::stoi(a.substr(a.rfind(':') + 1)));
        }
        switch (fate_[k.index]) {
            case Fate::kAccepted:
                ++accepted;
                if (it == listed.end()) {
                    ++lost;
                    ADD_FAILURE() << "lost (NOT_FOUND): " << who;
                } else if (k.kind == Kind::kCrasher || it->second.state() != pb::STATE_RUNNING) {
                    EXPECT_EQ(it->second.state(), pb::STATE_FAILED) << who;
                    EXPECT_NE(it->second.last_error(), "") << who;
                }
                break;
            case Fate::kTerminated:
                ++terminated;
                if (it != listed.end()) {
                    ++revived;
                    ADD_FAILURE() << "terminated, but back "
                                  << pb::ProcessState_Name(it->second.state()) << ": " << who;
                }
                break;
            default:
                ADD_FAILURE() << "neither accepted nor terminated: " << who;
        }
    }
    std::printf("[chaos] %d accepted keys, %d lost; %d terminated, %d back\n", accepted, lost,
                terminated, revived);
    std::fflush(stdout);
    // Every process in the scope is a RUNNING key's, in its cgroup, or the placeholder.
    for (const std::string& group : cgroups_below(kScopeDir)) {
        for (pid_t pid : procs_of(group)) {
            if (group == std::string(kScopeDir) + "/supervisor") continue;
            bool owned = false;
            for (const auto& [id, info] : listed)
                owned |= info.state() == pb::STATE_RUNNING && below(group, info.cgroup());
            EXPECT_TRUE(owned) << "pid " << pid << " in " << group << " belongs to no RUNNING key";
        }
    }
    EXPECT_TRUE(wait_until([] { return zombies(main_pid()).empty(); }, 30s))
        << ::testing::PrintToString(zombies(main_pid()));

    // Terminating everything leaves nothing: no process, cgroup, socket, record.
    std::vector<int> all;
    for (const Key& k : keys_) {
        if (listed.count(k.id)) all.push_back(k.index);
    }
    auto ending = in_parallel(all, [this](const Key& k) { terminate(k, 1); });
    join(ending);
    EXPECT_TRUE(list().empty());
    EXPECT_EQ(cgroups_below(kScopeDir),
              std::vector<std::string>{std::string(kScopeDir) + "/supervisor"});
    EXPECT_TRUE(listening(ports).empty()) << ::testing::PrintToString(listening(ports));
    std::error_code ec;
    EXPECT_TRUE(!fs::exists(kStateDir) || fs::is_empty(kStateDir, ec))
        << sh(std::string("ls -la ") + kStateDir).output;
    EXPECT_TRUE(wait_until([] { return zombies(main_pid()).empty(); }, 30s))
        << ::testing::PrintToString(zombies(main_pid()));
}

}  // namespace
}  // namespace plsys
