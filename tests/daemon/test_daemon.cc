#include "test_daemon.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
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

void TestDaemon::spawn() {
    std::ofstream config(config_path_);
    const bool has_port =
        std::any_of(config_lines_.begin(), config_lines_.end(),
                    [](const std::string& l) { return l.starts_with("grpc_port"); });
    config << "launcher:\n"
           << (has_port ? "" : "  grpc_port: 0\n") << "  patterns_dir: " << patterns_dir_ << "\n"
           << "  runtime_dir: " << dir_ << "/run\n"
           << "  grpc_socket: " << socket_ << "\n"
           << "  cgroup_root: " << cgroup_root_ << "\n"
           << "  pattern_ports: {first: " << port_first() << ", last: " << port_last() << "}\n";
    bool has_enforcement = false;
    for (const auto& line : config_lines_) {
        config << "  " << line << "\n";
        has_enforcement |= line.starts_with("limits_enforcement");
    }
    // The development host cannot enforce limits; tests of strict mode set it.
    if (!has_enforcement) config << "  limits_enforcement: warn\n";
    config << "  api:\n    audit_log: " << audit_log_path() << "\n";
    for (const auto& line : api_lines_)
        config << "    " << line << "\n";
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
}

void TestDaemon::start() {
    spawn();
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
    // every test wait for a socket that appears within milliseconds. (100 ms
    // is gRPC's floor.) Not GRPC_ARG_MIN_RECONNECT_BACKOFF_MS: gRPC core
    // takes it as the minimum connect timeout, which must leave a daemon
    // slowed by sanitizers time for its HTTP/2 handshake.
    grpc::ChannelArguments args_;
    args_.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
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
        // Any answer but UNAVAILABLE is the daemon's: a policy without a
        // grant for root answers PERMISSION_DENIED, and that is up.
        const grpc::Status answer = stub_->Health(&ctx, req, &resp);
        if (answer.ok() || answer.error_code() == grpc::StatusCode::PERMISSION_DENIED) return;
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

std::shared_ptr<pb::PatternLauncher::Stub> TestDaemon::connect() const {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);  // as in start()
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 100);
    // A channel of its own, not one shared from gRPC's pool with api().
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    return pb::PatternLauncher::NewStub(
        grpc::CreateCustomChannel("unix:" + socket_, grpc::InsecureChannelCredentials(), args));
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

bool kill_key_process(pid_t init_pid) {
    const pid_t pattern = pattern_pid(init_pid);
    // A pidfd turns readable once the process has exited, after its files
    // were closed (do_exit: exit_files before exit_notify).
    sandbox::UniqueFd fd(static_cast<int>(::syscall(SYS_pidfd_open, pattern, 0)));
    if (pattern == 0 || !fd || ::kill(init_pid, SIGKILL) != 0) return false;
    pollfd p{fd.get(), POLLIN, 0};
    return ::poll(&p, 1, 10000) == 1;
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

// ---- the process tree of a daemon's cgroup subtree ------------------------------

std::vector<pid_t> cgroup_procs(const std::string& dir) {
    std::vector<pid_t> pids;
    std::ifstream in(dir + "/cgroup.procs");
    for (pid_t pid; in >> pid;)
        pids.push_back(pid);
    return pids;
}

std::vector<std::string> cgroups_below(const std::string& root) {
    std::vector<std::string> out;
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(root, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (it->is_directory(ec)) out.push_back(it->path().string());
    }
    return out;
}

std::string cgroup_of(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/cgroup");
    for (std::string line; std::getline(in, line);) {
        if (line.starts_with("0::")) return sandbox::find_cgroup2_mount().path + line.substr(3);
    }
    return {};
}

namespace {

// State and parent from /proc/<pid>/stat (the comm may hold spaces and parentheses).
bool read_stat(pid_t pid, char& state, pid_t& ppid, std::string& comm) {
    std::string text = slurp("/proc/" + std::to_string(pid) + "/stat");
    std::size_t open = text.find('('), close = text.rfind(')');
    if (open == std::string::npos || close == std::string::npos || close + 4 > text.size())
        return false;
    comm = text.substr(open + 1, close - open - 1);
    std::istringstream rest(text.substr(close + 2));
    return static_cast<bool>(rest >> state >> ppid);
}

bool below(const std::string& path, const std::string& root) {
    return path == root || path.starts_with(root + "/");
}

}  // namespace

std::vector<std::string> zombies_of(const std::string& cgroup_root, pid_t daemon) {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator("/proc", ec)) {
        const std::string name = entry.path().filename().string();
        if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
        const pid_t pid = std::stoi(name);
        char state = 0;
        pid_t ppid = 0;
        std::string comm;
        if (!read_stat(pid, state, ppid, comm) || state != 'Z') continue;
        const std::string group = cgroup_of(pid);
        if (below(group, cgroup_root) || (daemon > 0 && ppid == daemon)) {
            out.push_back("pid " + name + " ppid " + std::to_string(ppid) + " comm " + comm +
                          " cgroup " + group);
        }
    }
    return out;
}

std::map<int, std::set<pid_t>> listening_ports(int first, int last, const std::set<pid_t>& only) {
    std::map<unsigned long, int> port_of;  // socket inode -> port
    for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
        std::ifstream in(table);
        std::string line;
        std::getline(in, line);  // the header
        while (std::getline(in, line)) {
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode;
            // addresses are HEX:PORT, st 0A is LISTEN.
            std::istringstream fields(line);
            std::string slot, local, remote, st, queues, timer, retransmits, uid, timeout;
            unsigned long inode = 0;
            if (!(fields >> slot >> local >> remote >> st >> queues >> timer >> retransmits >>
                  uid >> timeout >> inode) ||
                st != "0A") {
                continue;
            }
            const int port = std::stoi(local.substr(local.rfind(':') + 1), nullptr, 16);
            if (port >= first && port <= last) port_of[inode] = port;
        }
    }
    std::map<int, std::set<pid_t>> out;
    if (port_of.empty()) return out;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator("/proc", ec)) {
        const std::string name = entry.path().filename().string();
        if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
        const pid_t pid = std::stoi(name);
        if (!only.empty() && !only.count(pid)) continue;
        std::error_code fd_ec;
        for (const auto& fd : fs::directory_iterator(entry.path() / "fd", fd_ec)) {
            char target[64];
            const ssize_t n = ::readlink(fd.path().c_str(), target, sizeof target - 1);
            if (n <= 0) continue;
            const std::string link(target, static_cast<std::size_t>(n));
            if (!link.starts_with("socket:[")) continue;
            auto it = port_of.find(std::stoul(link.substr(8)));
            if (it != port_of.end()) out[it->second].insert(pid);
        }
    }
    return out;
}

OrphanReaper::OrphanReaper(std::string cgroup_root) : cgroup_root_(std::move(cgroup_root)) {
    ::prctl(PR_GET_CHILD_SUBREAPER, &was_subreaper_);
    if (::prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
        ADD_FAILURE() << "PR_SET_CHILD_SUBREAPER: " << std::strerror(errno);
    }
    thread_ = std::thread([this] {
        while (!stop_) {
            reap_now();
            std::this_thread::sleep_for(20ms);
        }
    });
}

OrphanReaper::~OrphanReaper() {
    stop_ = true;
    thread_.join();
    reap_now();
    ::prctl(PR_SET_CHILD_SUBREAPER, was_subreaper_);
}

void OrphanReaper::reap_now() {
    static std::mutex mutex;  // the thread and the test may both call this
    std::lock_guard lock(mutex);
    const pid_t self = ::getpid();
    std::error_code ec;
    for (const auto& task : fs::directory_iterator("/proc/self/task", ec)) {
        std::ifstream children(task.path().string() + "/children");
        for (pid_t pid; children >> pid;) {
            char state = 0;
            pid_t ppid = 0;
            std::string comm;
            if (!read_stat(pid, state, ppid, comm) || state != 'Z' || ppid != self) continue;
            const std::string group = cgroup_of(pid);
            if (!below(group, cgroup_root_) || below(group, cgroup_root_ + "/supervisor")) continue;
            if (::waitpid(pid, nullptr, WNOHANG) == pid) ++reaped_;
        }
    }
}

bool eventually(const std::function<bool()>& done, std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
        if (done()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return done();
}

double metric_sample(const std::string& exposition, const std::string& series) {
    const std::size_t at = exposition.find("\n" + series + " ");
    if (at == std::string::npos) return -1;
    return std::stod(exposition.substr(at + series.size() + 2));
}

}  // namespace pltest
