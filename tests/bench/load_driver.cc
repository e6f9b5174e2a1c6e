// load_driver: measures a running pattern-launcher through its gRPC API.
//
// Talks to the daemon over its unix socket (--socket) or a loopback TCP
// address (--address) and, in this order:
//   1. the floor: Health RPC round trips (what any call costs);
//   2. cold launches, sequential: N distinct keys (ns:<prefix>-s<i>:<pattern>),
//      each LaunchPattern timed until it answers RUNNING; then the same keys
//      terminated one by one (TerminatePattern latency);
//   3. warm reuse: LaunchPattern of one RUNNING key, sequential and with C
//      client threads;
//   4. for each level K of --live (e.g. 1000,10000): cold launches with C
//      client threads until K keys (ns:<prefix>-<i>:<pattern>) are live, then,
//      after a settle time, the daemon's RSS, fds and threads, its idle CPU
//      over --idle-window seconds (utime+stime of /proc/<pid>/stat and the
//      sum of /proc/<pid>/task/*/schedstat), a warm-reuse sample and a
//      sequential cold sample (--level-cold extra keys launched one by one,
//      then terminated one by one: how a cold start scales with K);
//      the same idle measurement is taken once at the start, with no key;
//   5. TerminatePattern of every live key with C threads, then the time until
//      the daemon is idle again (Health reports no process and its CPU stayed
//      below 1 % for three 100 ms samples).
// Prints a table and one JSON line (prefixed by nothing, starting with '{').
//
// Every phase is bounded: counts by flags, the whole run by --time-limit
// (launching stops when it is reached; terminating always runs). The first
// failed launch of a level stops that level and the following ones (the error
// is reported): a daemon that hits a limit is measured where it stopped.
// Everything this program launched is terminated before it exits.
//
// The daemon's pid comes from --daemon-pid, else from SO_PEERCRED on its unix
// socket. Reading /proc/<pid>/fd needs the daemon's uid or root.
#include <dirent.h>
#include <grpcpp/grpcpp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <numeric>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "prism/launcher/launcher.grpc.pb.h"

namespace {

namespace pb = prism::launcher;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr const char* kUsage =
    R"(usage: load_driver (--socket PATH | --address 127.0.0.1:PORT) [options]

  --daemon-pid PID        the daemon (default: SO_PEERCRED of --socket)
  --pattern NAME          pattern to launch (default echo-notify)
  --prefix ID             namespace prefix of the keys (default bench)
  --cold N                sequential cold launches (default 200; 0 skips)
  --concurrency C         client threads for the concurrent phases (default 4)
  --warm M                sequential warm-reuse calls (default 5000; 0 skips)
  --session-pool M        M sequential SESSION launches of namespace <prefix>-pool, each
                          --session-gap-ms after the last (default 0: skipped); with a
                          session pool for that tenant (run_load.sh --session-pool N)
                          each claims a pooled process
  --session-gap-ms G      pause before each of them, for the pool to refill (default 100)
  --live K1,K2,...        live-key levels (default 1000,10000; "" skips)
  --terminate-concurrency T  client threads of the final terminate-all (default: C)
  --leave-keys            do not terminate the live keys at the end (the daemon's own
                          shutdown, run_load.sh's SIGTERM, then stops them all)
  --idle-window S         seconds of idle-CPU measurement per level (default 10)
  --settle S              seconds to wait before measuring a level (default 2)
  --level-cold N          sequential cold launches (then terminates) sampled at each
                          level, on top of its K keys (default 50; 0 skips)
  --time-limit S          stop launching after S seconds in all (default 1200)
  --rpc-timeout S         deadline of each RPC (default 30)
  --health-calls N        Health round trips for the floor (default 1000)
  --label TEXT            free text copied into the output (e.g. "network: isolated")
  --json FILE             also write the JSON line to FILE
)";

struct Options {
    std::string socket;
    std::string address;
    pid_t daemon_pid = 0;
    std::string pattern = "echo-notify";
    std::string prefix = "bench";
    int cold = 200;
    int concurrency = 4;
    int warm = 5000;
    int session_pool = 0;
    int terminate_concurrency = 0;  // 0: concurrency
    bool leave_keys = false;
    int session_gap_ms = 100;
    std::vector<int> live = {1000, 10000};
    double idle_window_s = 10;
    double settle_s = 2;
    int level_cold = 50;
    double time_limit_s = 1200;
    double rpc_timeout_s = 30;
    int health_calls = 1000;
    std::string label;
    std::string json_file;
};

[[noreturn]] void usage_error(const std::string& message) {
    std::fprintf(stderr, "load_driver: %s\n%s", message.c_str(), kUsage);
    std::exit(2);
}

template <typename T>
T parse_number(const std::string& flag, const std::string& text) {
    T value{};
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size()) {
        usage_error(flag + " expects a number, got '" + text + "'");
    }
    return value;
}

bool is_loopback_address(const std::string& address) {
    auto colon = address.rfind(':');
    if (colon == std::string::npos) return false;
    const std::string host = address.substr(0, colon);
    return host == "localhost" || host == "[::1]" || host.starts_with("127.");
}

Options parse_options(int argc, char** argv) {
    Options o;
    std::vector<std::string> args(argv + 1, argv + argc);
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string& flag = args[i];
        if (flag == "-h" || flag == "--help") {
            std::fputs(kUsage, stdout);
            std::exit(0);
        }
        if (flag == "--leave-keys") {
            o.leave_keys = true;
            continue;
        }
        if (i + 1 >= args.size()) usage_error(flag + " needs a value");
        const std::string& v = args[++i];
        if (flag == "--socket") {
            o.socket = v;
        } else if (flag == "--address") {
            o.address = v;
        } else if (flag == "--daemon-pid") {
            o.daemon_pid = parse_number<pid_t>(flag, v);
        } else if (flag == "--pattern") {
            o.pattern = v;
        } else if (flag == "--prefix") {
            o.prefix = v;
        } else if (flag == "--cold") {
            o.cold = parse_number<int>(flag, v);
        } else if (flag == "--concurrency") {
            o.concurrency = parse_number<int>(flag, v);
        } else if (flag == "--terminate-concurrency") {
            o.terminate_concurrency = parse_number<int>(flag, v);
        } else if (flag == "--warm") {
            o.warm = parse_number<int>(flag, v);
        } else if (flag == "--session-pool") {
            o.session_pool = parse_number<int>(flag, v);
        } else if (flag == "--session-gap-ms") {
            o.session_gap_ms = parse_number<int>(flag, v);
        } else if (flag == "--live") {
            o.live.clear();
            std::stringstream ss(v);
            std::string item;
            while (std::getline(ss, item, ',')) {
                if (!item.empty()) o.live.push_back(parse_number<int>(flag, item));
            }
        } else if (flag == "--idle-window") {
            o.idle_window_s = parse_number<double>(flag, v);
        } else if (flag == "--settle") {
            o.settle_s = parse_number<double>(flag, v);
        } else if (flag == "--level-cold") {
            o.level_cold = parse_number<int>(flag, v);
        } else if (flag == "--time-limit") {
            o.time_limit_s = parse_number<double>(flag, v);
        } else if (flag == "--rpc-timeout") {
            o.rpc_timeout_s = parse_number<double>(flag, v);
        } else if (flag == "--health-calls") {
            o.health_calls = parse_number<int>(flag, v);
        } else if (flag == "--label") {
            o.label = v;
        } else if (flag == "--json") {
            o.json_file = v;
        } else {
            usage_error("unknown argument '" + flag + "'");
        }
    }
    if (o.socket.empty() == o.address.empty())
        usage_error("give exactly one of --socket, --address");
    if (!o.address.empty() && !is_loopback_address(o.address)) {
        usage_error(
            "--address must be a loopback address (127.x.x.x:PORT, localhost:PORT, [::1]:PORT)");
    }
    if (o.concurrency < 1 || o.concurrency > 256) usage_error("--concurrency expects 1..256");
    if (o.cold < 0 || o.warm < 0 || o.health_calls < 0 || o.level_cold < 0) {
        usage_error("counts must not be negative");
    }
    for (int k : o.live) {
        if (k < 1 || k > 100000) usage_error("--live levels expect 1..100000");
    }
    if (!std::is_sorted(o.live.begin(), o.live.end())) usage_error("--live levels must ascend");
    return o;
}

// ---- statistics -------------------------------------------------------------

struct Summary {
    std::size_t n = 0;
    double p50 = 0, p90 = 0, p99 = 0, max = 0, mean = 0;  // microseconds
};

// Nearest-rank percentiles.
Summary summarize(std::vector<double> us) {
    Summary s;
    s.n = us.size();
    if (us.empty()) return s;
    std::sort(us.begin(), us.end());
    auto rank = [&](double q) {
        auto r = static_cast<std::size_t>(std::ceil(q * static_cast<double>(us.size())));
        return us[std::min(us.size() - 1, r == 0 ? 0 : r - 1)];
    };
    s.p50 = rank(0.50);
    s.p90 = rank(0.90);
    s.p99 = rank(0.99);
    s.max = us.back();
    s.mean = std::accumulate(us.begin(), us.end(), 0.0) / static_cast<double>(us.size());
    return s;
}

double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

double micros_since(Clock::time_point start) {
    return std::chrono::duration<double, std::micro>(Clock::now() - start).count();
}

// ---- the daemon's /proc ---------------------------------------------------------

std::string slurp(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

struct ProcSample {
    Clock::time_point at = Clock::now();
    long ticks = 0;              // utime + stime, clock ticks
    long child_ticks = 0;        // cutime + cstime: reaped children (the patterns)
    std::uint64_t sched_ns = 0;  // sum of the threads' time on CPU
    long rss_kib = 0, rss_anon_kib = 0, hwm_kib = 0;
    int fds = 0, threads = 0;
    bool ok = false;
};

long status_field_kib(const std::string& status, const std::string& name) {
    auto pos = status.find("\n" + name + ":");
    if (pos == std::string::npos) return 0;
    return std::strtol(status.c_str() + pos + name.size() + 2, nullptr, 10);
}

int count_entries(const std::string& dir) {
    DIR* d = ::opendir(dir.c_str());
    if (!d) return -1;
    int n = 0;
    while (dirent* e = ::readdir(d)) {
        if (e->d_name[0] != '.') ++n;
    }
    ::closedir(d);
    return n;
}

ProcSample sample_daemon(pid_t pid, bool with_fds = true) {
    ProcSample s;
    const std::string base = "/proc/" + std::to_string(pid);
    std::string stat = slurp(base + "/stat");
    auto paren = stat.rfind(')');
    if (stat.empty() || paren == std::string::npos) return s;
    // Fields after "(comm)": 3 state, ..., 14 utime, 15 stime.
    std::stringstream ss(stat.substr(paren + 2));
    std::vector<std::string> fields;
    std::string field;
    while (ss >> field && fields.size() < 15)
        fields.push_back(field);
    if (fields.size() < 15) return s;
    s.ticks =
        std::strtol(fields[11].c_str(), nullptr, 10) + std::strtol(fields[12].c_str(), nullptr, 10);
    s.child_ticks =
        std::strtol(fields[13].c_str(), nullptr, 10) + std::strtol(fields[14].c_str(), nullptr, 10);
    std::string status = slurp(base + "/status");
    s.rss_kib = status_field_kib(status, "VmRSS");
    s.rss_anon_kib = status_field_kib(status, "RssAnon");
    s.hwm_kib = status_field_kib(status, "VmHWM");
    s.threads = static_cast<int>(status_field_kib(status, "Threads"));
    if (DIR* d = ::opendir((base + "/task").c_str())) {
        while (dirent* e = ::readdir(d)) {
            if (e->d_name[0] == '.') continue;
            std::string sched = slurp(base + "/task/" + e->d_name + "/schedstat");
            s.sched_ns += std::strtoull(sched.c_str(), nullptr, 10);
        }
        ::closedir(d);
    }
    s.fds = with_fds ? count_entries(base + "/fd") : -1;
    s.at = Clock::now();
    s.ok = true;
    return s;
}

// cpu.stat of the daemon's cgroup subtree (the daemon in its supervisor leaf
// and every pattern, exited ones included: cgroup v2 keeps their usage in
// the parent), found from /proc/<daemon>/cgroup. Empty: unknown.
std::string g_subtree_cpu_stat;

void find_subtree_cpu_stat(pid_t daemon) {
    std::string mount;
    std::ifstream mounts("/proc/mounts");
    std::string dev, dir, type, rest;
    while (mounts >> dev >> dir >> type && std::getline(mounts, rest)) {
        if (type == "cgroup2") {
            mount = dir;
            break;
        }
    }
    std::string cgroups = slurp("/proc/" + std::to_string(daemon) + "/cgroup");
    auto pos = cgroups.find("0::");
    if (mount.empty() || pos == std::string::npos) return;
    std::string path = cgroups.substr(pos + 3, cgroups.find('\n', pos) - pos - 3);
    if (path.ends_with("/supervisor")) path.resize(path.size() - std::strlen("/supervisor"));
    if (path.empty() || path == "/") return;  // the daemon did not move into a subtree of its own
    g_subtree_cpu_stat = mount + path + "/cpu.stat";
}

// CPU time of "us": the daemon's subtree and this program, in microseconds.
std::uint64_t our_cpu_usec() {
    std::uint64_t us = 0;
    if (!g_subtree_cpu_stat.empty()) {
        std::string stat = slurp(g_subtree_cpu_stat);
        auto pos = stat.find("usage_usec ");
        if (pos != std::string::npos) us += std::strtoull(stat.c_str() + pos + 11, nullptr, 10);
    }
    std::string self = slurp("/proc/self/stat");
    auto paren = self.rfind(')');
    if (paren != std::string::npos) {
        std::stringstream ss(self.substr(paren + 2));
        std::string field;
        long ticks = 0;
        for (int i = 3; ss >> field && i <= 15; ++i) {
            if (i == 14 || i == 15) ticks += std::strtol(field.c_str(), nullptr, 10);
        }
        us += static_cast<std::uint64_t>(ticks) * 1000000 /
              static_cast<std::uint64_t>(::sysconf(_SC_CLK_TCK));
    }
    return us;
}

// Busy share of all CPUs of the host between two /proc/stat readings, and
// the share of it that was neither the daemon's subtree nor this program.
struct HostCpu {
    std::uint64_t busy = 0, total = 0;  // clock ticks, all CPUs
    std::uint64_t ours_us = 0;
};
HostCpu host_cpu() {
    std::ifstream in("/proc/stat");
    std::string cpu;
    in >> cpu;
    HostCpu h;
    std::uint64_t v[10] = {};
    for (auto& x : v)
        in >> x;
    for (int i = 0; i < 8; ++i)
        h.total += v[i];             // guest time is part of user
    h.busy = h.total - v[3] - v[4];  // minus idle and iowait
    h.ours_us = our_cpu_usec();
    return h;
}
double host_busy_percent(const HostCpu& a, const HostCpu& b) {
    if (b.total <= a.total) return 0;
    return 100.0 * static_cast<double>(b.busy - a.busy) / static_cast<double>(b.total - a.total);
}
// Other processes' share (kernel workers included, e.g. network namespace
// cleanup): what tells a run on a shared host apart from a quiet one.
double other_busy_percent(const HostCpu& a, const HostCpu& b) {
    if (b.total <= a.total || g_subtree_cpu_stat.empty()) return -1;
    const double tick_us = 1e6 / static_cast<double>(::sysconf(_SC_CLK_TCK));
    const double busy_us = static_cast<double>(b.busy - a.busy) * tick_us;
    const double ours_us = static_cast<double>(b.ours_us - a.ours_us);
    return std::max(
        0.0, 100.0 * (busy_us - ours_us) / (static_cast<double>(b.total - a.total) * tick_us));
}

long meminfo_kib(const std::string& name) {
    return status_field_kib("\n" + slurp("/proc/meminfo"), name);
}

std::string loadavg() {
    std::string l = slurp("/proc/loadavg");
    auto parts = l.find(' ', l.find(' ', l.find(' ') + 1) + 1);
    return l.substr(0, parts);
}

// ---- the API ------------------------------------------------------------------

class Api {
public:
    explicit Api(const Options& o) : options_(o) {}

    // Its own connection per stub: client threads never share one HTTP/2 stream pool.
    std::unique_ptr<pb::PatternLauncher::Stub> stub() const {
        grpc::ChannelArguments args;
        args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
        // Retry soon (gRPC raises both to at least 100 ms). Not
        // GRPC_ARG_MIN_RECONNECT_BACKOFF_MS: gRPC core takes it as the
        // minimum connect timeout (default 20 s), the time one attempt has
        // for the connect and the HTTP/2 handshake, and at 100 ms a busy
        // daemon's SETTINGS frame came too late (a TCG guest: "timed out
        // before receiving SETTINGS frame").
        args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
        args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 200);
        const std::string target =
            options_.socket.empty() ? options_.address : "unix:" + options_.socket;
        return pb::PatternLauncher::NewStub(
            grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args));
    }

    void deadline(grpc::ClientContext& ctx) const {
        ctx.set_deadline(
            std::chrono::system_clock::now() +
            std::chrono::microseconds(static_cast<long>(options_.rpc_timeout_s * 1e6)));
    }

    grpc::Status launch(pb::PatternLauncher::Stub& stub, const std::string& ns,
                        pb::LaunchResponse& response) const {
        grpc::ClientContext ctx;
        deadline(ctx);
        pb::LaunchRequest req;
        req.set_pattern_name(options_.pattern);
        req.set_isolation(pb::ISOLATION_NAMESPACE);
        req.set_namespace_(ns);
        return stub.LaunchPattern(&ctx, req, &response);
    }

    grpc::Status launch_session(pb::PatternLauncher::Stub& stub, const std::string& ns,
                                const std::string& session, pb::LaunchResponse& response) const {
        grpc::ClientContext ctx;
        deadline(ctx);
        pb::LaunchRequest req;
        req.set_pattern_name(options_.pattern);
        req.set_isolation(pb::ISOLATION_SESSION);
        req.set_namespace_(ns);
        req.set_session_id(session);
        return stub.LaunchPattern(&ctx, req, &response);
    }

    grpc::Status terminate(pb::PatternLauncher::Stub& stub, const std::string& id,
                           pb::TerminateResponse& response) const {
        grpc::ClientContext ctx;
        deadline(ctx);
        pb::TerminateRequest req;
        req.set_process_id(id);
        return stub.TerminatePattern(&ctx, req, &response);
    }

    grpc::Status health(pb::PatternLauncher::Stub& stub, pb::HealthResponse& response) const {
        grpc::ClientContext ctx;
        deadline(ctx);
        pb::HealthRequest req;
        return stub.Health(&ctx, req, &response);
    }

private:
    const Options& options_;
};

std::string describe(const grpc::Status& status) {
    return "gRPC " + std::to_string(static_cast<int>(status.error_code())) + ": " +
           status.error_message();
}

// ---- batches ----------------------------------------------------------------------

struct Batch {
    std::vector<double> latency_us;  // successful calls only
    std::vector<std::string> ids;    // launched process ids (launch batches)
    std::size_t ok = 0, failed = 0,
                unexpected = 0;       // unexpected: OK but not RUNNING/reused as expected
    std::vector<std::string> errors;  // the first few distinct ones
    double wall_s = 0;
    HostCpu host_before, host_after;  // the host's CPUs during the batch
    bool stopped = false;             // by an error or the time limit
    std::string stop_reason;
};

class Runner {
public:
    Runner(const Options& o, const Api& api) : api_(api) {
        for (int i = 0; i < o.concurrency; ++i)
            stubs_.push_back(api.stub());
        end_ = Clock::now() + std::chrono::microseconds(static_cast<long>(o.time_limit_s * 1e6));
    }

    pb::PatternLauncher::Stub& stub(std::size_t i = 0) { return *stubs_[i % stubs_.size()]; }
    bool out_of_time() const { return Clock::now() >= end_; }

    // Launches every namespace in `names` with `threads` client threads.
    // expect_reused: the keys are already RUNNING (warm calls).
    Batch launch(const std::vector<std::string>& names, int threads, bool expect_reused,
                 bool stop_on_error) {
        Batch batch;
        std::mutex mutex;
        std::atomic<std::size_t> next{0};
        std::atomic<bool> stop{false};
        auto worker = [&](int t) {
            std::vector<double> mine;
            std::vector<std::string> ids;
            while (!stop) {
                std::size_t i = next++;
                if (i >= names.size()) break;
                if (!expect_reused && out_of_time()) {
                    std::lock_guard lock(mutex);
                    if (!stop.exchange(true)) batch.stop_reason = "time limit reached";
                    break;
                }
                pb::LaunchResponse response;
                const auto start = Clock::now();
                grpc::Status status =
                    api_.launch(stub(static_cast<std::size_t>(t)), names[i], response);
                const double us = micros_since(start);
                std::lock_guard lock(mutex);
                if (!status.ok()) {
                    ++batch.failed;
                    note_error(batch, names[i] + ": " + describe(status));
                    if (stop_on_error && !stop.exchange(true)) {
                        batch.stop_reason =
                            "launch of " + names[i] + " failed: " + describe(status);
                    }
                    continue;
                }
                ++batch.ok;
                mine.push_back(us);
                if (response.state() != pb::STATE_RUNNING || response.reused() != expect_reused) {
                    ++batch.unexpected;
                    note_error(batch, names[i] + ": state " +
                                          pb::ProcessState_Name(response.state()) +
                                          (response.reused() ? " reused" : " new"));
                }
                if (!expect_reused) ids.push_back(response.process_id());
            }
            std::lock_guard lock(mutex);
            batch.latency_us.insert(batch.latency_us.end(), mine.begin(), mine.end());
            batch.ids.insert(batch.ids.end(), ids.begin(), ids.end());
        };
        run(threads, worker, batch);
        batch.stopped = stop;
        return batch;
    }

    Batch terminate(const std::vector<std::string>& ids, int threads) {
        Batch batch;
        std::mutex mutex;
        std::atomic<std::size_t> next{0};
        auto worker = [&](int t) {
            std::vector<double> mine;
            while (true) {
                std::size_t i = next++;
                if (i >= ids.size()) break;
                pb::TerminateResponse response;
                const auto start = Clock::now();
                grpc::Status status =
                    api_.terminate(stub(static_cast<std::size_t>(t)), ids[i], response);
                const double us = micros_since(start);
                std::lock_guard lock(mutex);
                if (!status.ok() || !response.success()) {
                    ++batch.failed;
                    note_error(batch,
                               ids[i] + ": " + (status.ok() ? response.error() : describe(status)));
                    continue;
                }
                ++batch.ok;
                mine.push_back(us);
            }
            std::lock_guard lock(mutex);
            batch.latency_us.insert(batch.latency_us.end(), mine.begin(), mine.end());
        };
        run(threads, worker, batch);
        return batch;
    }

private:
    static void note_error(Batch& batch, const std::string& error) {
        if (batch.errors.size() < 3) batch.errors.push_back(error);
    }

    template <typename Worker>
    void run(int threads, Worker& worker, Batch& batch) {
        const auto start = Clock::now();
        batch.host_before = host_cpu();
        std::vector<std::thread> pool;
        for (int t = 0; t < threads; ++t)
            pool.emplace_back(worker, t);
        for (auto& th : pool)
            th.join();
        batch.wall_s = seconds_since(start);
        batch.host_after = host_cpu();
    }

    const Api& api_;
    std::vector<std::unique_ptr<pb::PatternLauncher::Stub>> stubs_;
    Clock::time_point end_;
};

// ---- report -------------------------------------------------------------------------

struct LatencyRow {
    std::string name;
    Summary s;
    std::string note;
    double host_busy = -1;   // % of all the host's CPUs busy during the phase
    double other_busy = -1;  // the part of it that was not the daemon, its patterns, or us
};

struct LevelResult {
    int target = 0;
    int reached = 0;
    Batch launches;            // the launches that grew to this level
    ProcSample before, after;  // the idle window
    HostCpu host_before, host_after;
    long mem_available_kib = 0;
    Summary warm;
    Summary cold, terminate;  // the sequential sample on top of the level
    std::string load;
};

double cpu_percent_ticks(const ProcSample& a, const ProcSample& b) {
    double wall = std::chrono::duration<double>(b.at - a.at).count();
    if (wall <= 0) return 0;
    return 100.0 * static_cast<double>(b.ticks - a.ticks) /
           static_cast<double>(::sysconf(_SC_CLK_TCK)) / wall;
}

double cpu_percent_sched(const ProcSample& a, const ProcSample& b) {
    double wall = std::chrono::duration<double>(b.at - a.at).count();
    if (wall <= 0 || b.sched_ns < a.sched_ns) return 0;
    return 100.0 * static_cast<double>(b.sched_ns - a.sched_ns) / 1e9 / wall;
}

std::string ms(double us) {
    char buf[32];
    if (us >= 100000) {
        std::snprintf(buf, sizeof buf, "%.0f ms", us / 1000);
    } else if (us >= 1000) {
        std::snprintf(buf, sizeof buf, "%.2f ms", us / 1000);
    } else {
        std::snprintf(buf, sizeof buf, "%.0f us", us);
    }
    return buf;
}

// The JSON report keeps its keys in the order written (ordered_json) and
// its numbers at the precision the table shows.
using Json = nlohmann::ordered_json;

double rounded(double v, int decimals = 1) {
    const double scale = std::pow(10.0, decimals);
    return std::round(v * scale) / scale;
}

Json json_summary(const Summary& s) {
    return {{"n", s.n},
            {"p50_us", rounded(s.p50)},
            {"p90_us", rounded(s.p90)},
            {"p99_us", rounded(s.p99)},
            {"max_us", rounded(s.max)},
            {"mean_us", rounded(s.mean)}};
}

pid_t peer_pid(const std::string& socket_path) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return 0;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (socket_path.size() >= sizeof addr.sun_path) {
        ::close(fd);
        return 0;
    }
    std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
    pid_t pid = 0;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
        ucred cred{};
        socklen_t len = sizeof cred;
        if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) pid = cred.pid;
    }
    ::close(fd);
    return pid;
}

void progress(const std::string& line) {
    std::fprintf(stderr, "[load_driver %s] %s\n", loadavg().c_str(), line.c_str());
}

}  // namespace

int main(int argc, char** argv) {
    const Options o = parse_options(argc, argv);
    Api api(o);
    Runner runner(o, api);
    const auto run_start = Clock::now();

    // Wait for the API.
    {
        pb::HealthResponse h;
        grpc::Status status;
        for (int i = 0; i < 100; ++i) {
            status = api.health(runner.stub(), h);
            if (status.ok()) break;
            std::this_thread::sleep_for(100ms);
        }
        if (!status.ok()) {
            std::fprintf(stderr, "load_driver: the daemon does not answer: %s\n",
                         describe(status).c_str());
            return 1;
        }
        if (h.total_processes() != 0) {
            progress("note: the daemon already has " + std::to_string(h.total_processes()) +
                     " processes; they count in RSS and CPU");
        }
    }
    pid_t daemon = o.daemon_pid;
    if (!daemon && !o.socket.empty()) daemon = peer_pid(o.socket);
    if (!daemon) {
        std::fprintf(stderr, "load_driver: give --daemon-pid (no unix socket peer to ask)\n");
        return 2;
    }
    find_subtree_cpu_stat(daemon);
    const ProcSample initial = sample_daemon(daemon);
    if (!initial.ok) {
        std::fprintf(stderr, "load_driver: cannot read /proc/%d\n", daemon);
        return 2;
    }
    const std::string load_at_start = loadavg();
    // Settle, then the daemon's CPU over the idle window and its memory.
    auto measure_idle = [&](LevelResult& level) {
        std::this_thread::sleep_for(std::chrono::microseconds(static_cast<long>(o.settle_s * 1e6)));
        level.before = sample_daemon(daemon, false);
        level.host_before = host_cpu();
        std::this_thread::sleep_for(
            std::chrono::microseconds(static_cast<long>(o.idle_window_s * 1e6)));
        level.after = sample_daemon(daemon);
        level.host_after = host_cpu();
        level.mem_available_kib = meminfo_kib("MemAvailable");
        level.load = loadavg();
    };
    LevelResult empty_level;
    if (!o.live.empty()) {
        progress("measuring the idle daemon with no key");
        measure_idle(empty_level);
    }
    std::vector<LatencyRow> rows;
    std::vector<std::string> all_errors;
    std::vector<std::string> live_ids;  // everything launched and not yet terminated
    int exit_code = 0;
    auto keep_errors = [&](const Batch& b) {
        for (const auto& e : b.errors) {
            if (all_errors.size() < 8) all_errors.push_back(e);
        }
        if (b.failed || b.unexpected) exit_code = 1;
    };

    auto busy = [](const Batch& b) { return host_busy_percent(b.host_before, b.host_after); };
    auto other = [](const Batch& b) { return other_busy_percent(b.host_before, b.host_after); };

    // 1. The floor: what any RPC costs.
    if (o.health_calls > 0) {
        std::vector<double> us;
        const HostCpu h0 = host_cpu();
        for (int i = 0; i < o.health_calls; ++i) {
            pb::HealthResponse h;
            const auto start = Clock::now();
            if (api.health(runner.stub(), h).ok()) us.push_back(micros_since(start));
        }
        const HostCpu h1 = host_cpu();
        rows.push_back({"Health RPC (floor)", summarize(us), "", host_busy_percent(h0, h1),
                        other_busy_percent(h0, h1)});
    }

    // 2. Cold, sequential; then terminated one by one.
    double cold_seq_rate = 0;
    // CPU per operation in the sequential phase: the daemon's (all threads,
    // schedstat) per launch and per terminate, and the patterns' own (cutime +
    // cstime of the reaped children: the child's steps before execve, echo's
    // startup and exit) per launch-to-exit lifecycle.
    double daemon_cpu_per_launch_us = 0, daemon_cpu_per_terminate_us = 0,
           child_cpu_per_lifecycle_us = 0;
    if (o.cold > 0) {
        progress("cold sequential: " + std::to_string(o.cold) + " keys");
        std::vector<std::string> names;
        for (int i = 0; i < o.cold; ++i)
            names.push_back(o.prefix + "-s" + std::to_string(i));
        const ProcSample before = sample_daemon(daemon, false);
        Batch b = runner.launch(names, 1, false, true);
        const ProcSample launched = sample_daemon(daemon, false);
        keep_errors(b);
        live_ids.insert(live_ids.end(), b.ids.begin(), b.ids.end());
        cold_seq_rate = b.wall_s > 0 ? static_cast<double>(b.ok) / b.wall_s : 0;
        rows.push_back({"cold launch, sequential", summarize(b.latency_us),
                        b.stopped ? b.stop_reason : "", busy(b), other(b)});
        Batch t = runner.terminate(b.ids, 1);
        keep_errors(t);
        live_ids.clear();
        rows.push_back({"terminate, sequential", summarize(t.latency_us), "", busy(t), other(t)});
        const ProcSample terminated = sample_daemon(daemon, false);
        if (b.ok > 0 && t.ok == b.ok) {
            const auto n = static_cast<double>(b.ok);
            daemon_cpu_per_launch_us =
                static_cast<double>(launched.sched_ns - before.sched_ns) / 1e3 / n;
            daemon_cpu_per_terminate_us =
                static_cast<double>(terminated.sched_ns - launched.sched_ns) / 1e3 / n;
            child_cpu_per_lifecycle_us =
                static_cast<double>(terminated.child_ticks - before.child_ticks) * 1e6 /
                static_cast<double>(::sysconf(_SC_CLK_TCK)) / n;
        }
    }

    // 3. Warm reuse of one RUNNING key.
    double warm_concurrent_rate = 0;
    if (o.warm > 0) {
        progress("warm reuse: " + std::to_string(o.warm) + " calls");
        const std::string name = o.prefix + "-warm";
        Batch first = runner.launch({name}, 1, false, true);
        keep_errors(first);
        if (first.ok == 1) {
            live_ids.push_back(first.ids[0]);
            std::vector<std::string> names(static_cast<std::size_t>(o.warm), name);
            Batch w = runner.launch(names, 1, true, false);
            keep_errors(w);
            rows.push_back(
                {"warm reuse, sequential", summarize(w.latency_us), "", busy(w), other(w)});
            Batch wc = runner.launch(names, o.concurrency, true, false);
            keep_errors(wc);
            warm_concurrent_rate = wc.wall_s > 0 ? static_cast<double>(wc.ok) / wc.wall_s : 0;
            rows.push_back({"warm reuse, C=" + std::to_string(o.concurrency),
                            summarize(wc.latency_us), "", busy(wc), other(wc)});
            Batch t = runner.terminate(live_ids, 1);
            keep_errors(t);
            live_ids.clear();
        }
    }

    // 3b. SESSION launches, one at a time with a pause for the pool to refill
    // in: with a session pool for the tenant each is a claim, whose p50 the
    // issue compares with the warm reuse's above (at most 3 x).
    double session_p50_us = 0, warm_p50_us = 0;
    for (const LatencyRow& r : rows) {
        if (r.name == "warm reuse, sequential") warm_p50_us = r.s.p50;
    }
    double gap_reuse_p50_us = 0;
    if (o.session_pool > 0) {
        // The same pause before each call also slows a warm reuse (the CPUs
        // idle in between): measured alike, as the claim's fair baseline.
        progress("warm reuses " + std::to_string(o.session_gap_ms) +
                 " ms apart: " + std::to_string(o.session_pool));
        const std::string gap_key = o.prefix + "-gap";
        Batch first = runner.launch({gap_key}, 1, false, true);
        keep_errors(first);
        if (first.ok == 1) {
            std::vector<double> reuse_us;
            for (int i = 0; i < o.session_pool; ++i) {
                std::this_thread::sleep_for(std::chrono::milliseconds(o.session_gap_ms));
                Batch one = runner.launch({gap_key}, 1, true, false);
                keep_errors(one);
                reuse_us.insert(reuse_us.end(), one.latency_us.begin(), one.latency_us.end());
            }
            const Summary s = summarize(reuse_us);
            gap_reuse_p50_us = s.p50;
            rows.push_back(
                {"warm reuse, " + std::to_string(o.session_gap_ms) + " ms apart", s, ""});
            Batch t = runner.terminate(first.ids, 1);
            keep_errors(t);
        }
        progress("session launches: " + std::to_string(o.session_pool));
        std::vector<double> us;
        std::vector<std::string> ids;
        int failed = 0;
        for (int i = 0; i < o.session_pool; ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(o.session_gap_ms));
            pb::LaunchResponse response;
            const auto start = Clock::now();
            grpc::Status status = api.launch_session(runner.stub(), o.prefix + "-pool",
                                                     o.prefix + "-s" + std::to_string(i), response);
            const double took = micros_since(start);
            if (!status.ok()) {
                ++failed;
                continue;
            }
            us.push_back(took);
            ids.push_back(response.process_id());
        }
        const Summary s = summarize(us);
        session_p50_us = s.p50;
        rows.push_back(
            {"session launch, sequential", s, failed ? std::to_string(failed) + " failed" : ""});
        Batch t = runner.terminate(ids, 1);
        keep_errors(t);
    }

    // 4. Live-key levels. Level 0 is the daemon before any launch (only its
    // idle measurement); it ran first, see below.
    std::vector<LevelResult> levels;
    std::vector<double> all_concurrent;
    double concurrent_launch_s = 0;
    std::size_t concurrent_launches = 0;
    HostCpu growth_busy;  // summed over the growth batches
    bool blocked = false;
    std::string blocked_reason;
    for (int target : o.live) {
        if (blocked) break;
        LevelResult level;
        level.target = target;
        std::vector<std::string> names;
        for (int i = static_cast<int>(live_ids.size()); i < target; ++i) {
            names.push_back(o.prefix + "-" + std::to_string(i));
        }
        progress("growing to " + std::to_string(target) +
                 " live keys with C=" + std::to_string(o.concurrency));
        level.launches = runner.launch(names, o.concurrency, false, true);
        keep_errors(level.launches);
        live_ids.insert(live_ids.end(), level.launches.ids.begin(), level.launches.ids.end());
        level.reached = static_cast<int>(live_ids.size());
        all_concurrent.insert(all_concurrent.end(), level.launches.latency_us.begin(),
                              level.launches.latency_us.end());
        concurrent_launch_s += level.launches.wall_s;
        concurrent_launches += level.launches.ok;
        growth_busy.busy += level.launches.host_after.busy - level.launches.host_before.busy;
        growth_busy.total += level.launches.host_after.total - level.launches.host_before.total;
        growth_busy.ours_us +=
            level.launches.host_after.ours_us - level.launches.host_before.ours_us;
        if (level.launches.stopped) {
            blocked = true;
            blocked_reason = level.launches.stop_reason;
            progress("stopped at " + std::to_string(level.reached) + " keys: " + blocked_reason);
        }
        progress("measuring at " + std::to_string(level.reached) + " live keys");
        measure_idle(level);
        if (!live_ids.empty()) {
            // The warm path with this many keys: 1,000 reuses of one key.
            std::vector<std::string> warm_names(1000, o.prefix + "-0");
            Batch w = runner.launch(warm_names, 1, true, false);
            keep_errors(w);
            level.warm = summarize(w.latency_us);
        }
        if (o.level_cold > 0 && !blocked) {
            std::vector<std::string> extra;
            for (int i = 0; i < o.level_cold; ++i) {
                extra.push_back(o.prefix + "-k" + std::to_string(target) + "-" + std::to_string(i));
            }
            Batch c = runner.launch(extra, 1, false, true);
            keep_errors(c);
            level.cold = summarize(c.latency_us);
            Batch t = runner.terminate(c.ids, 1);
            keep_errors(t);
            level.terminate = summarize(t.latency_us);
        }
        levels.push_back(std::move(level));
    }

    // 5. Terminate everything, then wait for the daemon to be idle.
    Batch term_all;
    double idle_after_s = -1;
    std::size_t terminated_count = live_ids.size();
    const int term_c = o.terminate_concurrency > 0 ? o.terminate_concurrency : o.concurrency;
    if (o.leave_keys && !live_ids.empty()) {
        progress("leaving " + std::to_string(live_ids.size()) + " keys to the daemon's shutdown");
        terminated_count = 0;
        live_ids.clear();
    }
    if (!live_ids.empty()) {
        progress("terminating " + std::to_string(live_ids.size()) +
                 " keys with C=" + std::to_string(term_c));
        const auto start = Clock::now();
        term_all = runner.terminate(live_ids, term_c);
        keep_errors(term_all);
        live_ids.clear();
        ProcSample prev = sample_daemon(daemon, false);
        int quiet = 0;
        while (seconds_since(start) < term_all.wall_s + 60) {
            std::this_thread::sleep_for(100ms);
            ProcSample now = sample_daemon(daemon, false);
            pb::HealthResponse h;
            bool empty = api.health(runner.stub(), h).ok() && h.total_processes() == 0;
            quiet = empty && cpu_percent_sched(prev, now) < 1.0 ? quiet + 1 : 0;
            prev = now;
            if (quiet >= 3) {
                idle_after_s = seconds_since(start) - 0.3;  // the start of the quiet samples
                break;
            }
        }
    }
    const ProcSample final_sample = sample_daemon(daemon);

    // ---- table ----
    Summary cold_concurrent = summarize(all_concurrent);
    if (!all_concurrent.empty()) {
        rows.push_back({"cold launch, C=" + std::to_string(o.concurrency), cold_concurrent,
                        blocked ? "stopped: " + blocked_reason : "",
                        host_busy_percent(HostCpu{}, growth_busy),
                        other_busy_percent(HostCpu{}, growth_busy)});
    }
    const double launch_rate = concurrent_launch_s > 0
                                   ? static_cast<double>(concurrent_launches) / concurrent_launch_s
                                   : 0;

    std::printf("\npattern-launcher load: pattern %s via %s, daemon pid %d, C=%d%s%s\n",
                o.pattern.c_str(),
                o.socket.empty() ? o.address.c_str() : ("unix:" + o.socket).c_str(), daemon,
                o.concurrency, o.label.empty() ? "" : ", ", o.label.c_str());
    std::printf("load average at start %s, at end %s\n\n", load_at_start.c_str(),
                loadavg().c_str());
    std::printf("%-26s %6s %9s %9s %9s %9s %6s %6s\n", "latency", "n", "p50", "p90", "p99", "max",
                "host", "other");
    for (const auto& r : rows) {
        std::printf("%-26s %6zu %9s %9s %9s %9s %4.0f %% %4.0f %%%s%s\n", r.name.c_str(), r.s.n,
                    ms(r.s.p50).c_str(), ms(r.s.p90).c_str(), ms(r.s.p99).c_str(),
                    ms(r.s.max).c_str(), r.host_busy, r.other_busy, r.note.empty() ? "" : "  ",
                    r.note.c_str());
    }
    std::printf(
        "(host: %% of all the host's CPUs busy during the phase; other: the part of it that was\n"
        " neither the daemon, its patterns nor this program: other users and kernel workers)\n");
    std::printf("\ncold launches/s: sequential %.0f, C=%d %.0f; warm reuses/s with C=%d: %.0f\n",
                cold_seq_rate, o.concurrency, launch_rate, o.concurrency, warm_concurrent_rate);
    if (session_p50_us > 0 && warm_p50_us > 0) {
        std::printf(
            "session launch p50 / warm reuse p50: %.2f back to back, %.2f with the same "
            "pause before each\n",
            session_p50_us / warm_p50_us,
            gap_reuse_p50_us > 0 ? session_p50_us / gap_reuse_p50_us : 0.0);
    }
    if (daemon_cpu_per_launch_us > 0) {
        std::printf(
            "CPU per sequential cold start: daemon %s per launch + %s per terminate; "
            "the pattern process itself %s per lifecycle\n",
            ms(daemon_cpu_per_launch_us).c_str(), ms(daemon_cpu_per_terminate_us).c_str(),
            ms(child_cpu_per_lifecycle_us).c_str());
    }
    std::printf(
        "\nat K live keys (idle CPU over %.0f s: utime+stime / schedstat; host busy: all CPUs)\n",
        o.idle_window_s);
    std::printf("%-7s %10s %10s %6s %4s %9s %10s %6s %6s %9s %9s %9s %10s\n", "K", "RSS", "RssAnon",
                "fds", "thr", "idle stat", "idle sched", "host", "other", "warm p50", "cold p50",
                "term p50", "growth p50");
    std::vector<const LevelResult*> table_levels;
    if (!o.live.empty()) table_levels.push_back(&empty_level);
    for (const auto& l : levels)
        table_levels.push_back(&l);
    for (const LevelResult* l : table_levels) {
        char keys[32];
        std::snprintf(keys, sizeof keys, "%d%s", l->reached, l->reached < l->target ? "*" : "");
        std::printf(
            "%-7s %6.1f MiB %6.1f MiB %6d %4d %7.2f %% %8.3f %% %4.0f %% %4.0f %% %9s %9s %9s "
            "%10s\n",
            keys, static_cast<double>(l->after.rss_kib) / 1024,
            static_cast<double>(l->after.rss_anon_kib) / 1024, l->after.fds, l->after.threads,
            cpu_percent_ticks(l->before, l->after), cpu_percent_sched(l->before, l->after),
            host_busy_percent(l->host_before, l->host_after),
            other_busy_percent(l->host_before, l->host_after),
            l->warm.n ? ms(l->warm.p50).c_str() : "-", l->cold.n ? ms(l->cold.p50).c_str() : "-",
            l->terminate.n ? ms(l->terminate.p50).c_str() : "-",
            l->launches.ok ? ms(summarize(l->launches.latency_us).p50).c_str() : "-");
    }
    if (blocked) std::printf("* stopped before the level: %s\n", blocked_reason.c_str());
    if (terminated_count) {
        std::printf(
            "\nterminate %zu keys with C=%d: %.2f s (%.0f/s, p50 %s, p99 %s); daemon idle %s\n",
            terminated_count, term_c, term_all.wall_s,
            term_all.wall_s > 0 ? static_cast<double>(term_all.ok) / term_all.wall_s : 0,
            ms(summarize(term_all.latency_us).p50).c_str(),
            ms(summarize(term_all.latency_us).p99).c_str(),
            idle_after_s < 0
                ? "not reached within 60 s"
                : (std::to_string(idle_after_s).substr(0, 5) + " s after the first call").c_str());
    }
    std::printf("daemon at end: RSS %.1f MiB (peak %.1f MiB), %d fds, %d threads\n",
                static_cast<double>(final_sample.rss_kib) / 1024,
                static_cast<double>(final_sample.hwm_kib) / 1024, final_sample.fds,
                final_sample.threads);
    for (const auto& e : all_errors)
        std::printf("error: %s\n", e.c_str());
    std::printf("\n");

    // ---- JSON ----
    Json latency_report = Json::object();
    for (const LatencyRow& row : rows) {
        Json summary = json_summary(row.s);
        summary["host_busy_percent"] = rounded(row.host_busy);
        summary["other_busy_percent"] = rounded(row.other_busy);
        latency_report[row.name] = std::move(summary);
    }
    Json level_reports = Json::array();
    for (const LevelResult* level : table_levels) {
        const LevelResult& l = *level;
        level_reports.push_back({
            {"target", l.target},
            {"reached", l.reached},
            {"rss_kib", l.after.rss_kib},
            {"rss_anon_kib", l.after.rss_anon_kib},
            {"fds", l.after.fds},
            {"threads", l.after.threads},
            {"idle_cpu_percent_stat", rounded(cpu_percent_ticks(l.before, l.after), 2)},
            {"idle_cpu_percent_sched", rounded(cpu_percent_sched(l.before, l.after), 3)},
            {"idle_window_s", rounded(o.idle_window_s)},
            {"host_busy_percent", rounded(host_busy_percent(l.host_before, l.host_after))},
            {"other_busy_percent", rounded(other_busy_percent(l.host_before, l.host_after))},
            {"mem_available_kib", l.mem_available_kib},
            {"load", l.load},
            {"launches", json_summary(summarize(l.launches.latency_us))},
            {"launch_wall_s", rounded(l.launches.wall_s)},
            {"warm", json_summary(l.warm)},
            {"cold_sequential", json_summary(l.cold)},
            {"terminate_sequential", json_summary(l.terminate)},
        });
    }
    const Json report = {
        {"pattern", o.pattern},
        {"label", o.label},
        {"concurrency", o.concurrency},
        {"load_start", load_at_start},
        {"load_end", loadavg()},
        {"latency", std::move(latency_report)},
        {"cold_launches_per_s",
         {{"sequential", rounded(cold_seq_rate)}, {"concurrent", rounded(launch_rate)}}},
        {"warm_reuses_per_s_concurrent", rounded(warm_concurrent_rate)},
        {"cpu_us",
         {{"daemon_per_launch", rounded(daemon_cpu_per_launch_us)},
          {"daemon_per_terminate", rounded(daemon_cpu_per_terminate_us)},
          {"pattern_per_lifecycle", rounded(child_cpu_per_lifecycle_us)}}},
        {"start", {{"rss_kib", initial.rss_kib}, {"fds", initial.fds}}},
        {"levels", std::move(level_reports)},
        {"blocked", blocked_reason},
        {"terminate_all",
         {{"keys", terminated_count},
          {"wall_s", rounded(term_all.wall_s, 6)},
          {"latency", json_summary(summarize(term_all.latency_us))},
          {"idle_after_s", rounded(idle_after_s, 6)}}},
        {"end",
         {{"rss_kib", final_sample.rss_kib},
          {"hwm_kib", final_sample.hwm_kib},
          {"fds", final_sample.fds}}},
        {"errors", all_errors},
        {"run_s", rounded(seconds_since(run_start))},
    };
    // One line; bytes that are not UTF-8 (an error message) become U+FFFD.
    const std::string json = report.dump(-1, ' ', false, Json::error_handler_t::replace);
    std::printf("%s\n", json.c_str());
    std::fflush(stdout);
    if (!o.json_file.empty()) {
        std::ofstream out(o.json_file);
        out << json << "\n";
    }
    return exit_code;
}
