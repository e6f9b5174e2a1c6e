// The metrics and health endpoints of the real daemon: values checked
// against what the test did, the exposition against promtool and a real
// Prometheus server, the health JSON against a JSON parser, and the HTTP
// server against garbage, oversized and slow clients.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "http_client.h"
#include "process_usage.h"
#include "test_daemon.h"

extern char** environ;

namespace {

using namespace pltest;
using namespace std::chrono_literals;
using namespace std::string_literals;
namespace fs = std::filesystem;

constexpr const char* kPrometheus = "/usr/bin/prometheus";
constexpr const char* kPromtool = "/usr/bin/promtool";
constexpr const char* kPython = "/usr/bin/python3";

// ---- the Prometheus text format ----

struct Sample {
    std::string name;
    std::map<std::string, std::string> labels;
    double value = 0;
};

std::vector<Sample> parse_exposition(const std::string& text) {
    std::vector<Sample> out;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#') continue;
        Sample s;
        std::size_t i = line.find_first_of("{ ");
        s.name = line.substr(0, i);
        if (i < line.size() && line[i] == '{') {
            ++i;
            while (i < line.size() && line[i] != '}') {
                std::size_t eq = line.find('=', i);
                std::string name = line.substr(i, eq - i);
                i = eq + 2;  // past ="
                std::string value;
                while (i < line.size() && line[i] != '"') {
                    if (line[i] == '\\' && i + 1 < line.size()) {
                        ++i;
                        value += line[i] == 'n' ? '\n' : line[i];
                    } else {
                        value += line[i];
                    }
                    ++i;
                }
                s.labels[name] = value;
                ++i;                                         // past the closing quote
                if (i < line.size() && line[i] == ',') ++i;  // next label
            }
            ++i;  // past }
        }
        s.value = std::stod(line.substr(line.find_first_not_of(' ', i)));
        out.push_back(std::move(s));
    }
    return out;
}

using Labels = std::map<std::string, std::string>;

bool matches(const Sample& s, const std::string& name, const Labels& want) {
    if (s.name != name) return false;
    for (const auto& [k, v] : want) {
        auto it = s.labels.find(k);
        if (it == s.labels.end() || it->second != v) return false;
    }
    return true;
}

double sum(const std::vector<Sample>& samples, const std::string& name, const Labels& want = {}) {
    double total = 0;
    for (const Sample& s : samples) {
        if (matches(s, name, want)) total += s.value;
    }
    return total;
}

std::size_t series_count(const std::vector<Sample>& samples, const std::string& name,
                         const Labels& want = {}) {
    std::size_t n = 0;
    for (const Sample& s : samples)
        n += matches(s, name, want) ? 1 : 0;
    return n;
}

std::uint64_t cpu_usage_usec(const std::string& cgroup) {
    std::ifstream in(cgroup + "/cpu.stat");
    std::string key;
    std::uint64_t value = 0;
    while (in >> key >> value) {
        if (key == "usage_usec") return value;
    }
    return 0;
}

// ---- a real Prometheus server ----

class PrometheusServer {
public:
    PrometheusServer(const std::string& dir, int port, int target_port) : dir_(dir), port_(port) {
        fs::create_directories(dir_ + "/data");
        std::ofstream config(dir_ + "/prometheus.yml");
        config << "global: {scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}\n"
               << "scrape_configs:\n"
               << "  - job_name: pattern-launcher\n"
               << "    static_configs: [{targets: ['127.0.0.1:" << target_port << "']}]\n";
        config.close();
        std::vector<std::string> args = {kPrometheus, "--config.file=" + dir_ + "/prometheus.yml",
                                         "--storage.tsdb.path=" + dir_ + "/data",
                                         "--web.listen-address=127.0.0.1:" + std::to_string(port),
                                         "--log.level=warn"};
        std::vector<char*> argv;
        for (auto& a : args)
            argv.push_back(a.data());
        argv.push_back(nullptr);
        const std::string log = dir_ + "/prometheus.log";
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                         0644);
        posix_spawn_file_actions_adddup2(&actions, 1, 2);
        if (::posix_spawn(&pid_, kPrometheus, &actions, nullptr, argv.data(), environ) != 0) {
            pid_ = -1;
        }
        posix_spawn_file_actions_destroy(&actions);
    }
    ~PrometheusServer() {
        if (pid_ > 0) {
            ::kill(pid_, SIGTERM);
            int status = 0;
            const auto deadline = std::chrono::steady_clock::now() + 10s;
            while (::waitpid(pid_, &status, WNOHANG) == 0) {
                if (std::chrono::steady_clock::now() > deadline) {
                    ::kill(pid_, SIGKILL);
                    ::waitpid(pid_, &status, 0);
                    break;
                }
                std::this_thread::sleep_for(20ms);
            }
        }
        std::error_code ec;
        fs::remove_all(dir_, ec);
    }
    bool started() const { return pid_ > 0; }
    bool alive() { return pid_ > 0 && ::waitpid(pid_, nullptr, WNOHANG) == 0; }

    // The value of the first sample of an instant query, if any.
    std::optional<std::string> query(const std::string& promql) {
        Reply r = http_get(port_, "/api/v1/query?query=" + url_encode(promql));
        if (r.status != 200 || r.body.find("\"status\":\"success\"") == std::string::npos) {
            return std::nullopt;
        }
        std::size_t v = r.body.find("\"value\":[");
        if (v == std::string::npos) return std::nullopt;
        std::size_t open = r.body.find(",\"", v);
        std::size_t close = r.body.find('"', open + 2);
        if (open == std::string::npos || close == std::string::npos) return std::nullopt;
        return r.body.substr(open + 2, close - open - 2);
    }
    std::string targets() { return http_get(port_, "/api/v1/targets").body; }
    std::string log() const {
        std::ifstream in(dir_ + "/prometheus.log");
        std::stringstream ss;
        ss << in.rdbuf();
        return ss.str();
    }

private:
    static std::string url_encode(const std::string& s) {
        static constexpr char kHex[] = "0123456789ABCDEF";
        std::string out;
        for (unsigned char c : s) {
            if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
                out += static_cast<char>(c);
            } else {
                out += '%';
                out += kHex[c >> 4];
                out += kHex[c & 0xF];
            }
        }
        return out;
    }

    std::string dir_;
    int port_;
    pid_t pid_ = -1;
};

// ---- the fixture ----

class ObservabilityTest : public ::testing::Test {
protected:
    void SetUp() override {
        metrics_port = test_port(0);
        health_port = test_port(1);
        prometheus_port = test_port(2);
        d.add_pattern("echo", echo_manifest("http"), PL_ECHO);
        d.add_pattern("crasher", misbehave_manifest("crash-after-ms", "100", "restart: never\n"));
        d.add_pattern("sleeper", misbehave_manifest("sleep"));
        d.add_config("metrics: {port: " + std::to_string(metrics_port) + ", path: /metrics}");
        d.add_config("health: {port: " + std::to_string(health_port) + ", path: /health}");
        d.add_config("namespace_quotas: {limited: {max_processes: 1}}");
        d.start();
    }

    std::vector<Sample> scrape() {
        Reply r = http_get(metrics_port, "/metrics");
        EXPECT_EQ(r.status, 200) << r.raw << d.log();
        EXPECT_EQ(header(r, "Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
        last_scrape = r.body;
        return parse_exposition(r.body);
    }

    pb::LaunchResponse launch(const std::string& pattern, pb::IsolationLevel level,
                              const std::string& ns, bool expect_reused) {
        pb::LaunchResponse r;
        grpc::Status s = d.launch(pattern, level, ns, "", &r);
        EXPECT_TRUE(s.ok()) << s.error_message() << "\n" << d.log();
        EXPECT_EQ(r.reused(), expect_reused) << r.process_id();
        return r;
    }

    // Three cold starts of echo (two namespaces, one shared), five reuses.
    void three_cold_five_reused() {
        ids.push_back(launch("echo", pb::ISOLATION_NAMESPACE, "tenant-a", false).process_id());
        ids.push_back(launch("echo", pb::ISOLATION_NAMESPACE, "tenant-b", false).process_id());
        ids.push_back(launch("echo", pb::ISOLATION_NONE, "", false).process_id());
        launch("echo", pb::ISOLATION_NAMESPACE, "tenant-a", true);
        launch("echo", pb::ISOLATION_NAMESPACE, "tenant-a", true);
        launch("echo", pb::ISOLATION_NAMESPACE, "tenant-b", true);
        launch("echo", pb::ISOLATION_NONE, "", true);
        launch("echo", pb::ISOLATION_NONE, "", true);
        ASSERT_EQ(
            ids, (std::vector<std::string>{"ns:tenant-a:echo", "ns:tenant-b:echo", "shared:echo"}));
    }

    pb::PatternInfo wait_for_state(const std::string& id, pb::ProcessState state) {
        const auto deadline = std::chrono::steady_clock::now() + 20s;
        pb::PatternInfo info;
        while (std::chrono::steady_clock::now() < deadline) {
            info = d.status(id);
            if (info.state() == state) return info;
            std::this_thread::sleep_for(20ms);
        }
        ADD_FAILURE() << id << " never reached state " << state << "; last " << info.DebugString();
        return info;
    }

    std::size_t daemon_fds() const { return static_cast<std::size_t>(fd_count(d.pid())); }

    TestDaemon d;
    int metrics_port = 0, health_port = 0, prometheus_port = 0;
    std::vector<std::string> ids;
    std::string last_scrape;
};

TEST_F(ObservabilityTest, CountsColdStartsNotReusesAndDropsTheSeriesOfStoppedProcesses) {
    ASSERT_NE(
        d.log().find("metrics on http://127.0.0.1:" + std::to_string(metrics_port) + "/metrics"),
        std::string::npos)
        << d.log();
    three_cold_five_reused();
    std::vector<Sample> m = scrape();

    // Exactly one series per cold-started key, each 1.
    const std::string starts = "pattern_launcher_process_starts_total";
    EXPECT_EQ(sum(m, starts), 3) << last_scrape;
    std::set<Labels> label_sets;
    for (const Sample& s : m) {
        if (s.name != starts) continue;
        label_sets.insert(s.labels);
        EXPECT_EQ(s.value, 1);
    }
    EXPECT_EQ(label_sets,
              (std::set<Labels>{
                  {{"pattern", "echo"}, {"namespace", "tenant-a"}, {"isolation", "namespace"}},
                  {{"pattern", "echo"}, {"namespace", "tenant-b"}, {"isolation", "namespace"}},
                  {{"pattern", "echo"}, {"namespace", ""}, {"isolation", "none"}}}))
        << last_scrape;
    EXPECT_EQ(sum(m, "pattern_launcher_process_stops_total"), 0);
    EXPECT_EQ(sum(m, "pattern_launcher_process_failures_total"), 0);

    EXPECT_EQ(sum(m, "pattern_launcher_processes_running"), 3);
    EXPECT_EQ(sum(m, "pattern_launcher_processes_running",
                  {{"pattern", "echo"}, {"isolation", "namespace"}}),
              2);
    EXPECT_EQ(
        sum(m, "pattern_launcher_processes_running", {{"pattern", "echo"}, {"isolation", "none"}}),
        1);
    EXPECT_EQ(sum(m, "pattern_launcher_processes_terminating"), 0);
    EXPECT_EQ(sum(m, "pattern_launcher_isolation_level", {{"level", "none"}}), 1);
    EXPECT_EQ(sum(m, "pattern_launcher_isolation_level", {{"level", "namespace"}}), 2);
    EXPECT_EQ(sum(m, "pattern_launcher_isolation_level", {{"level", "session"}}), 0);
    EXPECT_EQ(sum(m, "pattern_launcher_launch_duration_seconds_count"), 3);
    EXPECT_GT(sum(m, "pattern_launcher_launch_duration_seconds_sum"), 0);
    EXPECT_LT(sum(m, "pattern_launcher_launch_duration_seconds_sum"), 30);
    EXPECT_EQ(sum(m, "pattern_launcher_launch_duration_seconds_bucket", {{"le", "+Inf"}}), 3);
    // Readiness probes of the http health check, at least one per cold start.
    EXPECT_GE(sum(m, "pattern_launcher_health_checks_total",
                  {{"pattern", "echo"}, {"result", "success"}}),
              3);
    EXPECT_EQ(sum(m, "pattern_launcher_healthy"), 1);

    // Per-process CPU: present for each process, and the cgroup's own number.
    for (const std::string& id : ids) {
        const std::string cgroup = d.status(id).cgroup();
        ASSERT_FALSE(cgroup.empty()) << id;
        // The scrape shows the launcher's usage cache, which re-reads every
        // key's cgroup about once a second (Launcher::refresh_usage), not the
        // cgroup at the scrape's instant. So: read the cgroup, then scrape
        // until the cache has caught up with that reading; the number shown
        // must then lie between that reading and one taken after the scrape.
        const double before = static_cast<double>(cpu_usage_usec(cgroup)) / 1e6;
        std::vector<Sample> now;
        double cpu = 0;
        double after = 0;
        const auto deadline = std::chrono::steady_clock::now() + 10s;
        do {
            now = scrape();
            after = static_cast<double>(cpu_usage_usec(cgroup)) / 1e6;
            cpu = sum(now, "pattern_launcher_process_cpu_usage", {{"process_id", id}});
            if (cpu >= before) break;
            std::this_thread::sleep_for(100ms);
        } while (std::chrono::steady_clock::now() < deadline);
        ASSERT_EQ(series_count(now, "pattern_launcher_process_cpu_usage", {{"process_id", id}}), 1u)
            << last_scrape;
        EXPECT_GT(cpu, 0) << id;
        EXPECT_GE(cpu, before) << id << ": the cache never caught up with the cgroup in 10 s";
        EXPECT_LE(cpu, after) << id;
        EXPECT_EQ(sum(now, "pattern_launcher_process_cpu_seconds_total", {{"process_id", id}}),
                  cpu);
        // Memory only where the cgroup has a memory controller (this may be a
        // host without one: then no series rather than a false 0).
        const bool has_memory = fs::exists(cgroup + "/memory.current");
        EXPECT_EQ(series_count(now, "pattern_launcher_process_memory_bytes", {{"process_id", id}}),
                  has_memory ? 1u : 0u);
        if (has_memory) {
            EXPECT_GT(sum(now, "pattern_launcher_process_memory_bytes", {{"process_id", id}}), 0);
        }
    }

    pb::TerminateResponse t;
    ASSERT_TRUE(d.terminate("ns:tenant-a:echo", &t).ok()) << d.log();
    m = scrape();
    EXPECT_EQ(sum(m, "pattern_launcher_process_stops_total"), 1) << last_scrape;
    EXPECT_EQ(sum(m, "pattern_launcher_process_stops_total",
                  {{"pattern", "echo"}, {"namespace", "tenant-a"}, {"isolation", "namespace"}}),
              1);
    EXPECT_EQ(sum(m, starts), 3);
    EXPECT_EQ(sum(m, "pattern_launcher_processes_running"), 2);
    EXPECT_EQ(sum(m, "pattern_launcher_isolation_level", {{"level", "namespace"}}), 1);
    EXPECT_EQ(
        series_count(m, "pattern_launcher_process_cpu_usage", {{"process_id", "ns:tenant-a:echo"}}),
        0u);
    EXPECT_EQ(series_count(m, "pattern_launcher_process_cpu_seconds_total",
                           {{"process_id", "ns:tenant-a:echo"}}),
              0u);
    EXPECT_EQ(series_count(m, "pattern_launcher_process_memory_bytes",
                           {{"process_id", "ns:tenant-a:echo"}}),
              0u);
    EXPECT_EQ(series_count(m, "pattern_launcher_process_cpu_usage"), 2u);
}

TEST_F(ObservabilityTest, TheExpositionPassesPromtool) {
    ASSERT_TRUE(fs::exists(kPromtool)) << kPromtool
                                       << " is missing: install the test dependencies "
                                          "(prometheus in packaging/debian/control)";
    // Before anything happened: families without samples must pass too.
    auto check = [&](const std::string& label) {
        Reply r = http_get(metrics_port, "/metrics");
        ASSERT_EQ(r.status, 200);
        const std::string file = d.dir() + "/scrape-" + label + ".txt";
        std::ofstream(file) << r.body;
        CommandResult c =
            run_command({"/bin/sh", "-c", std::string(kPromtool) + " check metrics < " + file});
        EXPECT_EQ(c.exit_code, 0) << label << ":\n" << c.out << c.err << "\n" << r.body;
    };
    check("empty");

    // Every family with samples: starts, reuses, a failure, a quota refusal.
    three_cold_five_reused();
    pb::LaunchResponse r = launch("crasher", pb::ISOLATION_NONE, "", false);
    wait_for_state(r.process_id(), pb::STATE_FAILED);
    launch("sleeper", pb::ISOLATION_NAMESPACE, "limited", false);
    pb::LaunchResponse refused;
    grpc::Status s = d.launch("echo", pb::ISOLATION_NAMESPACE, "limited", "", &refused);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
    check("busy");

    std::vector<Sample> m = scrape();
    EXPECT_EQ(sum(m, "pattern_launcher_process_failures_total",
                  {{"pattern", "crasher"}, {"namespace", ""}, {"isolation", "none"}}),
              1)
        << last_scrape;
    EXPECT_EQ(sum(m, "pattern_launcher_processes_failed", {{"pattern", "crasher"}}), 1);
    EXPECT_EQ(sum(m, "pattern_launcher_quota_rejections_total",
                  {{"namespace", "limited"}, {"limit", "namespace_quotas.max_processes"}}),
              1)
        << last_scrape;
    EXPECT_EQ(sum(m, "pattern_launcher_healthy"), 0);
    EXPECT_EQ(sum(m, "pattern_launcher_process_starts_total"), 5);  // echo x3, crasher, sleeper
}

TEST_F(ObservabilityTest, APrometheusServerScrapesTheEndpoint) {
    ASSERT_TRUE(fs::exists(kPrometheus)) << kPrometheus
                                         << " is missing: install the test dependencies "
                                            "(prometheus in packaging/debian/control)";
    three_cold_five_reused();

    PrometheusServer prometheus(d.dir() + "/prometheus", prometheus_port, metrics_port);
    ASSERT_TRUE(prometheus.started());
    // Until the first scrape lands (Prometheus starts, then scrapes every 1 s).
    std::optional<std::string> starts;
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (std::chrono::steady_clock::now() < deadline) {
        starts = prometheus.query("sum(pattern_launcher_process_starts_total)");
        if (starts) break;
        ASSERT_TRUE(prometheus.alive()) << prometheus.log();
        std::this_thread::sleep_for(250ms);
    }
    ASSERT_TRUE(starts) << "no scrape within 30 s\ntargets: " << prometheus.targets() << "\nlog:\n"
                        << prometheus.log();
    EXPECT_EQ(*starts, "3");
    EXPECT_EQ(prometheus.query("up{job=\"pattern-launcher\"}"), "1") << prometheus.targets();
    EXPECT_EQ(prometheus.query("pattern_launcher_process_starts_total{pattern=\"echo\","
                               "namespace=\"tenant-a\",isolation=\"namespace\"}"),
              "1");
    EXPECT_EQ(prometheus.query("sum(pattern_launcher_processes_running)"), "3");
    EXPECT_EQ(prometheus.query("pattern_launcher_isolation_level{level=\"namespace\"}"), "2");
    EXPECT_EQ(prometheus.query("count(pattern_launcher_process_cpu_usage)"), "3");
    EXPECT_EQ(prometheus.query("sum(pattern_launcher_launch_duration_seconds_count)"), "3");
    // The scrape itself was clean: Prometheus keeps no error for the target.
    const std::string targets = prometheus.targets();
    EXPECT_NE(targets.find("\"health\":\"up\""), std::string::npos) << targets;
    EXPECT_NE(targets.find("\"lastError\":\"\""), std::string::npos) << targets;
}

TEST_F(ObservabilityTest, HealthIsRfcJsonWith200AndTurns503WhenAKeyFailed) {
    ASSERT_TRUE(fs::exists(kPython)) << kPython << " is missing (python3 is a test dependency)";
    three_cold_five_reused();
    const std::string script =
        "import json, sys\n"
        "d = json.load(open(sys.argv[1]))\n"
        "i = d['isolation_distribution']\n"
        "print(d['status'], d['total_processes'], d['running_processes'], "
        "d['terminating_processes'], d['failed_processes'], d['starting_processes'], "
        "i['none'], i['namespace'], i['session'], len(d['processes']))\n"
        "for p in sorted(d['processes'], key=lambda p: p['process_id']):\n"
        "    print(p['process_id'], p['pattern_name'], p['state'], p['healthy'], p['namespace'], "
        "repr(p['session_id']), p['pid'] > 0, p['restart_count'], p['uptime_seconds'] >= 0, "
        "':' in p['address'] if p['state'] == 'RUNNING' else '-', len(p['last_error']) > 0)\n";
    auto parse = [&](const std::string& body) {
        const std::string file = d.dir() + "/health.json";
        std::ofstream(file) << body;
        CommandResult c = run_command({kPython, "-c", script, file});
        EXPECT_EQ(c.exit_code, 0) << c.err << "\n" << body;
        return c.out;
    };

    Reply r = http_get(health_port, "/health");
    ASSERT_EQ(r.status, 200) << r.raw;
    EXPECT_EQ(header(r, "Content-Type"), "application/json");
    EXPECT_EQ(header(r, "Content-Length"), std::to_string(r.body.size()));
    EXPECT_EQ(header(r, "Connection"), "close");
    EXPECT_EQ(parse(r.body),
              "healthy 3 3 0 0 0 1 2 0 3\n"
              "ns:tenant-a:echo echo RUNNING True tenant-a '' True 0 True True False\n"
              "ns:tenant-b:echo echo RUNNING True tenant-b '' True 0 True True False\n"
              "shared:echo echo RUNNING True  '' True 0 True True False\n");

    // The pid is the one the launch reported.
    pb::PatternInfo a = d.status("ns:tenant-a:echo");
    EXPECT_NE(r.body.find("\"pid\": " + std::to_string(a.pid())), std::string::npos) << r.body;

    // HEAD: the same head, no body.
    Reply head = http_get(health_port, "/health", "HEAD");
    EXPECT_EQ(head.status, 200);
    EXPECT_TRUE(head.body.empty());
    EXPECT_EQ(header(head, "Content-Length"), header(r, "Content-Length"));

    // A key that crashes with restart: never stays FAILED: unhealthy.
    pb::LaunchResponse crash = launch("crasher", pb::ISOLATION_NONE, "", false);
    wait_for_state(crash.process_id(), pb::STATE_FAILED);
    r = http_get(health_port, "/health");
    ASSERT_EQ(r.status, 503) << r.raw;
    EXPECT_EQ(parse(r.body),
              "unhealthy 4 3 0 1 0 2 2 0 4\n"
              "ns:tenant-a:echo echo RUNNING True tenant-a '' True 0 True True False\n"
              "ns:tenant-b:echo echo RUNNING True tenant-b '' True 0 True True False\n"
              "shared:crasher crasher FAILED False  '' False 0 True - True\n"
              "shared:echo echo RUNNING True  '' True 0 True True False\n");
}

TEST_F(ObservabilityTest, BadRequestsGetErrorStatusesAndLeakNothing) {
    const std::size_t fds_before = daemon_fds();
    struct Case {
        const char* what;
        std::string request;
        int status;
    };
    const std::vector<Case> cases = {
        {"garbage", "\x16\x03\x01\x02\x00\x01\x00\xff garbage\r\n\r\n"s, 400},
        {"no version", "GET /metrics\r\n\r\n", 400},
        {"bad header", "GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n", 400},
        {"cut short", "GET /metrics HTTP/1.1\r\nHost: x\r\n", 400},
        {"POST", "POST /metrics HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi", 405},
        {"DELETE", "DELETE /health HTTP/1.1\r\n\r\n", 405},
        {"HTTP/2", "GET /metrics HTTP/2.0\r\n\r\n", 505},
        {"unknown path", "GET /nope HTTP/1.1\r\n\r\n", 404},
        {"oversized head",
         "GET /metrics HTTP/1.1\r\nX-Big: " + std::string(20000, 'a') + "\r\n\r\n", 431},
        {"endless line", std::string(100000, 'G'), 431},
        {"with query", "GET /metrics?x=1 HTTP/1.1\r\n\r\n", 200},
        {"absolute form", "GET http://127.0.0.1/metrics HTTP/1.0\r\n\r\n", 200},
        {"bare LF", "GET /metrics HTTP/1.1\nHost: x\n\n", 200},
    };
    for (const Case& c : cases) {
        Reply r = exchange(metrics_port, c.request);
        EXPECT_EQ(r.status, c.status) << c.what << ": " << r.raw.substr(0, 200);
        if (c.status == 405) {
            EXPECT_EQ(header(r, "Allow"), "GET, HEAD") << c.what;
        }
    }
    // A connection that sends nothing and closes.
    ::close(connect_to(metrics_port));

    // Slow clients: one sends half a head and waits, one dribbles a byte every
    // 200 ms; both are cut off with 408 after 5 s, while others are served.
    std::thread idle([&] {
        Reply r = exchange(health_port, "GET /health HTTP/1.1\r\n", false, 15s);
        EXPECT_EQ(r.status, 408) << r.raw;
        EXPECT_GE(r.elapsed, 4500ms);
        EXPECT_LE(r.elapsed, 9000ms);
    });
    std::thread dribble([&] {
        const auto start = std::chrono::steady_clock::now();
        int fd = connect_to(health_port);
        ASSERT_GE(fd, 0);
        const std::string request = "GET /health HTTP/1.1\r\nX-Slow: ";
        for (std::size_t i = 0; std::chrono::steady_clock::now() - start < 12s; ++i) {
            char c = i < request.size() ? request[i] : 'z';
            if (::send(fd, &c, 1, MSG_NOSIGNAL) != 1) break;
            pollfd p{fd, POLLIN, 0};
            if (::poll(&p, 1, 200) > 0) break;  // an answer
        }
        Reply r = read_reply(fd, start, 15s);
        ::close(fd);
        EXPECT_EQ(r.status, 408) << r.raw;
        EXPECT_LE(r.elapsed, 9000ms);
    });
    std::this_thread::sleep_for(500ms);
    for (int i = 0; i < 5; ++i) {
        Reply r = http_get(health_port, "/health");
        EXPECT_EQ(r.status, 200);
        EXPECT_LT(r.elapsed, 2000ms) << "a slow client blocked the loop";
    }
    idle.join();
    dribble.join();

    // Many connections at once, beyond the endpoint's 64: all answered.
    std::vector<std::thread> clients;
    std::atomic<int> ok{0};
    for (int i = 0; i < 100; ++i) {
        clients.emplace_back([&] {
            if (http_get(metrics_port, "/metrics").status == 200) ++ok;
        });
    }
    for (auto& t : clients)
        t.join();
    EXPECT_EQ(ok.load(), 100);

    // Still serving, still the same daemon, no descriptor left behind.
    ASSERT_TRUE(d.running());
    EXPECT_TRUE(process_alive(d.pid()));
    EXPECT_EQ(http_get(metrics_port, "/metrics").status, 200);
    EXPECT_EQ(http_get(health_port, "/health").status, 200);
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (daemon_fds() > fds_before && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(50ms);
    }
    // Fewer is fine: a connection of the daemon's own start may still have
    // been open when the count was taken (seen under TSan).
    EXPECT_LE(daemon_fds(), fds_before);
    EXPECT_EQ(d.stop(), 0);
}

}  // namespace
