#include "test_daemon.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "sandbox/cgroup.h"
#include "sandbox/cgroup_mount.h"

extern char** environ;

namespace pltest {
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

std::atomic<int> g_counter{0};

std::string slurp(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

}  // namespace

std::string echo_manifest(const std::string& health) {
    return "version: 1.0.0\n"
           "isolation_level: namespace\n"
           "healthcheck:\n"
           "  type: " +
           health +
           "\n"
           "  start_timeout: 10s\n"
           "sandbox:\n"
           "  network: isolated\n"
           "  namespaces: [mount, pid, ipc, uts]\n";
}

std::string misbehave_manifest(const std::string& mode, const std::string& args,
                               const std::string& extra) {
    return "version: 1.0.0\n"
           "isolation_level: namespace\n"
           "healthcheck:\n"
           "  type: notify\n"
           "  start_timeout: 2s\n"
           "environment:\n"
           "  MISBEHAVE_MODE: " +
           mode +
           "\n"
           "  MISBEHAVE_ARGS: \"" +
           args + "\"\n" + extra;
}

TestDaemon::TestDaemon() {
    int n = g_counter++;
    dir_ = "/tmp/pl-daemon-test." + std::to_string(::getpid()) + "." + std::to_string(n);
    fs::remove_all(dir_);
    fs::create_directories(dir_ + "/patterns");
    patterns_dir_ = dir_ + "/patterns";
    socket_ = dir_ + "/run/api.sock";
    config_path_ = dir_ + "/config.yaml";
    log_path_ = dir_ + "/launcher.log";
    cgroup_root_ = sandbox::find_cgroup2_mount().path + "/pl-dtest." + std::to_string(::getpid()) +
                   "." + std::to_string(n);
    // A port range of our own, so tests running in parallel never collide.
    port_base_ = 30000 + static_cast<int>((::getpid() * 7919 + n * 211) % 25000);
}

TestDaemon::~TestDaemon() {
    if (pid_ > 0) stop();
    // A test that killed the daemon and did not restart it leaves patterns
    // running: clean the subtree so that no test leaks into the next.
    if (fs::exists(cgroup_root_)) {
        try {
            sandbox::Cgroup leftover = sandbox::Cgroup::adopt(cgroup_root_);
            leftover.kill();
            leftover.remove(std::chrono::seconds(10));
        } catch (const std::exception& e) {
            ADD_FAILURE() << "cleaning " << cgroup_root_ << ": " << e.what();
        }
    }
    std::error_code ec;
    fs::remove_all(dir_, ec);
}

void TestDaemon::add_pattern(const std::string& name, const std::string& body,
                             const std::string& executable) {
    fs::create_directories(patterns_dir_ + "/" + name);
    std::ofstream out(patterns_dir_ + "/" + name + "/manifest.yaml");
    out << "name: " << name << "\nexecutable: " << executable << "\n" << body;
}

void TestDaemon::start() {
    std::ofstream config(config_path_);
    config << "launcher:\n"
           << "  grpc_port: 0\n"
           << "  patterns_dir: " << patterns_dir_ << "\n"
           << "  runtime_dir: " << dir_ << "/run\n"
           << "  grpc_socket: " << socket_ << "\n"
           << "  cgroup_root: " << cgroup_root_ << "\n"
           << "  pattern_ports: {first: " << port_base_ << ", last: " << port_base_ + 199 << "}\n";
    bool has_enforcement = false;
    for (const auto& line : config_lines_) {
        config << "  " << line << "\n";
        has_enforcement |= line.starts_with("limits_enforcement");
    }
    // The development host cannot enforce limits; tests of strict mode set it.
    if (!has_enforcement) config << "  limits_enforcement: warn\n";
    config.close();

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 2, log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND,
                                     0644);
    posix_spawn_file_actions_addopen(&actions, 1, log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND,
                                     0644);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    std::vector<std::string> args = wrapper_;
    args.insert(args.end(), {PL_LAUNCHER, "--config", config_path_});
    std::vector<char*> argv;
    for (auto& a : args)
        argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<std::string> env_strings;
    for (char** e = environ; *e; ++e)
        env_strings.emplace_back(*e);
    env_strings.insert(env_strings.end(), env_.begin(), env_.end());
    std::vector<char*> envp;
    for (auto& e : env_strings)
        envp.push_back(e.data());
    envp.push_back(nullptr);
    int rc = ::posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) throw std::runtime_error("posix_spawn pattern-launcher failed");
    const auto startup_deadline = std::chrono::steady_clock::now() + 30s;

    while (!std::filesystem::exists(socket_) &&
           std::chrono::steady_clock::now() < startup_deadline) {
        int status = 0;
        if (::waitpid(pid_, &status, WNOHANG) == pid_) {
            pid_ = -1;
            throw std::runtime_error("pattern-launcher exited during startup:\n" + log());
        }
        std::this_thread::sleep_for(2ms);
    }
    // Reconnect quickly: gRPC's default backoff (1 s, growing) would make
    // every test wait for a socket that appears within milliseconds.
    grpc::ChannelArguments args_;
    args_.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 20);
    args_.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 20);
    args_.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 100);
    auto channel =
        grpc::CreateCustomChannel("unix:" + socket_, grpc::InsecureChannelCredentials(), args_);
    stub_ = pb::PatternLauncher::NewStub(channel);
    auto deadline = std::chrono::steady_clock::now() + 30s;
    while (std::chrono::steady_clock::now() < deadline) {
        int status = 0;
        if (::waitpid(pid_, &status, WNOHANG) == pid_) {
            pid_ = -1;
            throw std::runtime_error("pattern-launcher exited during startup:\n" + log());
        }
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + 500ms);
        pb::HealthRequest req;
        pb::HealthResponse resp;
        if (stub_->Health(&ctx, req, &resp).ok()) return;
        std::this_thread::sleep_for(10ms);
    }
    throw std::runtime_error("pattern-launcher did not answer within 30 s:\n" + log());
}

int TestDaemon::stop() {
    if (pid_ <= 0) return -1;
    ::kill(pid_, SIGTERM);
    int status = 0;
    auto deadline = std::chrono::steady_clock::now() + 30s;
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
        if (std::chrono::steady_clock::now() > deadline) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, &status, 0);
            ADD_FAILURE() << "pattern-launcher ignored SIGTERM for 30 s";
            break;
        }
        std::this_thread::sleep_for(5ms);
    }
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void TestDaemon::kill_hard() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
}

pb::PatternInfo TestDaemon::status(const std::string& id) {
    grpc::ClientContext ctx;
    pb::GetProcessStatusRequest req;
    req.set_process_id(id);
    pb::GetProcessStatusResponse resp;
    EXPECT_TRUE(api().GetProcessStatus(&ctx, req, &resp).ok());
    return resp.process();
}

grpc::Status TestDaemon::launch(const std::string& pattern, pb::IsolationLevel level,
                                const std::string& ns, const std::string& session,
                                pb::LaunchResponse* response,
                                const std::map<std::string, std::string>& config) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 30s);
    pb::LaunchRequest req;
    req.set_pattern_name(pattern);
    req.set_isolation(level);
    req.set_namespace_(ns);
    req.set_session_id(session);
    for (const auto& [k, v] : config)
        (*req.mutable_config())[k] = v;
    return api().LaunchPattern(&ctx, req, response);
}

grpc::Status TestDaemon::terminate(const std::string& id, pb::TerminateResponse* response,
                                   std::int64_t grace_secs, bool force) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 60s);
    pb::TerminateRequest req;
    req.set_process_id(id);
    req.set_grace_period_secs(grace_secs);
    req.set_force(force);
    return api().TerminatePattern(&ctx, req, response);
}

pb::ListPatternsResponse TestDaemon::list() {
    grpc::ClientContext ctx;
    pb::ListPatternsRequest req;
    pb::ListPatternsResponse resp;
    EXPECT_TRUE(api().ListPatterns(&ctx, req, &resp).ok());
    return resp;
}

std::string TestDaemon::log() const {
    return slurp(log_path_);
}

std::vector<std::string> TestDaemon::tenant_cgroups() const {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& entry : fs::recursive_directory_iterator(cgroup_root_, ec)) {
        if (!entry.is_directory()) continue;
        std::string rel = entry.path().string().substr(cgroup_root_.size() + 1);
        if (rel != "supervisor") out.push_back(rel);
    }
    return out;
}

CommandResult run_command(const std::vector<std::string>& args) {
    CommandResult result;
    char out_path[] = "/tmp/pl-cmd-out.XXXXXX";
    char err_path[] = "/tmp/pl-cmd-err.XXXXXX";
    int out_fd = ::mkstemp(out_path), err_fd = ::mkstemp(err_path);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out_fd, 1);
    posix_spawn_file_actions_adddup2(&actions, err_fd, 2);
    std::vector<std::string> copy = args;
    std::vector<char*> argv;
    for (auto& a : copy)
        argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid;
    if (::posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ) == 0) {
        int status = 0;
        ::waitpid(pid, &status, 0);
        result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    posix_spawn_file_actions_destroy(&actions);
    ::close(out_fd);
    ::close(err_fd);
    result.out = slurp(out_path);
    result.err = slurp(err_path);
    ::unlink(out_path);
    ::unlink(err_path);
    return result;
}

std::string roundtrip(const std::string& address, const std::string& message) {
    int port = std::stoi(address.substr(address.rfind(':') + 1));
    sandbox::UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    std::string reply;
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::write(fd.get(), message.data(), message.size()) != static_cast<ssize_t>(message.size())) {
        return reply;
    }
    while (reply.size() < message.size()) {
        pollfd p{fd.get(), POLLIN, 0};
        if (::poll(&p, 1, 10000) <= 0) break;
        char buf[256];
        ssize_t n = ::read(fd.get(), buf, sizeof buf);
        if (n <= 0) break;
        reply.append(buf, static_cast<std::size_t>(n));
    }
    return reply;
}

pid_t pattern_pid(pid_t init_pid) {
    std::ifstream children("/proc/" + std::to_string(init_pid) + "/task/" +
                           std::to_string(init_pid) + "/children");
    pid_t child = 0;
    children >> child;
    return child;
}

bool process_alive(pid_t pid) {
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(status, line)) {
        if (line.starts_with("State:")) return line.find('Z') == std::string::npos;
    }
    return false;
}

std::string read_environ(pid_t pid, const std::string& name) {
    std::string env = slurp("/proc/" + std::to_string(pid) + "/environ");
    std::size_t pos = 0;
    while (pos < env.size()) {
        std::size_t end = env.find('\0', pos);
        if (end == std::string::npos) end = env.size();
        std::string entry = env.substr(pos, end - pos);
        if (entry.starts_with(name + "=")) return entry.substr(name.size() + 1);
        pos = end + 1;
    }
    return "<unset>";
}

}  // namespace pltest
