#include "system_support.h"

#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace plsys {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

// Emulated guests are slow; the first call also starts the service.
constexpr auto kCallDeadline = 180s;

std::runtime_error failure(const std::string& what) {
    return std::runtime_error(what);
}

std::string rpc_failure(const char* rpc, const grpc::Status& status) {
    return std::string(rpc) + " failed: gRPC " + std::to_string(status.error_code()) + ": " +
           status.error_message();
}

void set_deadline(grpc::ClientContext& context) {
    context.set_deadline(std::chrono::system_clock::now() + kCallDeadline);
    context.set_wait_for_ready(true);
}

}  // namespace

CommandResult sh(const std::string& command) {
    CommandResult result;
    FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
    if (!pipe) throw failure("popen(" + command + "): " + std::strerror(errno));
    char buffer[4096];
    std::size_t n = 0;
    while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0)
        result.output.append(buffer, n);
    int status = ::pclose(pipe);
    if (status != -1 && WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
    return result;
}

std::string sh_ok(const std::string& command) {
    CommandResult r = sh(command);
    if (r.exit_code != 0) {
        throw failure("'" + command + "' exited with " + std::to_string(r.exit_code) + ": " +
                      r.output);
    }
    return r.output;
}

std::string unit_property(const std::string& unit, const std::string& property) {
    std::string value = sh_ok("systemctl show -p " + property + " --value " + unit);
    while (!value.empty() && value.back() == '\n')
        value.pop_back();
    return value;
}

pid_t main_pid() {
    return static_cast<pid_t>(std::stol(unit_property(kService, "MainPID")));
}

std::string service_cgroup_dir() {
    return std::string(kCgroupMount) + unit_property(kService, "ControlGroup");
}

std::string read_file(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw failure("cannot read " + path + ": " + std::strerror(errno));
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

std::string read_line(const std::string& path) {
    std::string text = read_file(path);
    while (!text.empty() && text.back() == '\n')
        text.pop_back();
    return text;
}

std::map<std::string, std::uint64_t> read_keyed(const std::string& path) {
    std::map<std::string, std::uint64_t> values;
    std::istringstream in(read_file(path));
    std::string key;
    std::uint64_t value = 0;
    while (in >> key >> value)
        values[key] = value;
    return values;
}

std::string cgroup_dir_of(pid_t pid) {
    std::istringstream in(read_file("/proc/" + std::to_string(pid) + "/cgroup"));
    std::string line;
    while (std::getline(in, line)) {
        if (line.starts_with("0::")) return std::string(kCgroupMount) + line.substr(3);
    }
    throw failure("no cgroup v2 line in /proc/" + std::to_string(pid) + "/cgroup");
}

bool process_exists(pid_t pid) {
    return pid > 0 && (::kill(pid, 0) == 0 || errno == EPERM);
}

std::vector<std::string> cgroups_below(const std::string& dir) {
    std::vector<std::string> found;
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(dir, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (it->is_directory()) found.push_back(it->path().string());
    }
    return found;
}

bool wait_until(const std::function<bool()>& done, std::chrono::milliseconds timeout,
                std::chrono::milliseconds interval) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (true) {
        if (done()) return true;
        if (std::chrono::steady_clock::now() >= end) return false;
        std::this_thread::sleep_for(interval);
    }
}

std::string pattern_journal(const std::string& process_id) {
    return sh("journalctl --no-pager -o cat -t '" + process_id + "'").output;
}

EchoResult echo_roundtrip(const std::string& address, const std::string& message) {
    const auto colon = address.rfind(':');
    if (colon == std::string::npos) throw failure("not host:port: " + address);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(std::stoi(address.substr(colon + 1))));
    if (::inet_pton(AF_INET, address.substr(0, colon).c_str(), &addr.sin_addr) != 1)
        throw failure("not an IPv4 address: " + address);
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw failure(std::string("socket: ") + std::strerror(errno));
    timeval timeout{30, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    EchoResult result;
    const auto start = std::chrono::steady_clock::now();
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        int e = errno;
        ::close(fd);
        throw failure("connect to " + address + ": " + std::strerror(e));
    }
    if (::write(fd, message.data(), message.size()) != static_cast<ssize_t>(message.size())) {
        ::close(fd);
        throw failure("write to " + address + " failed");
    }
    char buffer[512];
    while (result.reply.size() < message.size()) {
        ssize_t n = ::read(fd, buffer, sizeof buffer);
        if (n <= 0) break;
        result.reply.append(buffer, static_cast<std::size_t>(n));
    }
    result.round_trip = std::chrono::duration_cast<std::chrono::microseconds>(
        std::chrono::steady_clock::now() - start);
    ::close(fd);
    return result;
}

Api::Api()
    : stub_(prism::launcher::PatternLauncher::NewStub(grpc::CreateChannel(
          std::string("unix:") + kApiSocket, grpc::InsecureChannelCredentials()))) {}

grpc::Status Api::launch(const std::string& pattern, const std::string& ns,
                         const std::map<std::string, std::string>& config,
                         prism::launcher::LaunchResponse* response) {
    grpc::ClientContext context;
    set_deadline(context);
    prism::launcher::LaunchRequest request;
    request.set_pattern_name(pattern);
    request.set_namespace_(ns);
    for (const auto& [key, value] : config)
        (*request.mutable_config())[key] = value;
    return stub_->LaunchPattern(&context, request, response);
}

grpc::Status Api::launch_session(const std::string& pattern, const std::string& ns,
                                 const std::string& session,
                                 prism::launcher::LaunchResponse* response) {
    grpc::ClientContext context;
    set_deadline(context);
    prism::launcher::LaunchRequest request;
    request.set_pattern_name(pattern);
    request.set_isolation(prism::launcher::ISOLATION_SESSION);
    request.set_namespace_(ns);
    request.set_session_id(session);
    return stub_->LaunchPattern(&context, request, response);
}

prism::launcher::LaunchResponse Api::launch_running(
    const std::string& pattern, const std::string& ns,
    const std::map<std::string, std::string>& config) {
    prism::launcher::LaunchResponse response;
    grpc::Status status = launch(pattern, ns, config, &response);
    if (!status.ok()) throw failure(rpc_failure("LaunchPattern", status));
    if (response.state() != prism::launcher::STATE_RUNNING) {
        throw failure("LaunchPattern " + pattern + " in " + ns + ": state " +
                      prism::launcher::ProcessState_Name(response.state()) + ": " +
                      response.error());
    }
    return response;
}

grpc::Status Api::get_status(const std::string& process_id,
                             prism::launcher::GetProcessStatusResponse* response) {
    grpc::ClientContext context;
    set_deadline(context);
    prism::launcher::GetProcessStatusRequest request;
    request.set_process_id(process_id);
    return stub_->GetProcessStatus(&context, request, response);
}

prism::launcher::PatternInfo Api::status(const std::string& process_id) {
    prism::launcher::GetProcessStatusResponse response;
    grpc::Status status = get_status(process_id, &response);
    if (!status.ok()) throw failure(rpc_failure("GetProcessStatus", status));
    if (response.not_found()) throw failure("GetProcessStatus: " + process_id + " not found");
    return response.process();
}

bool Api::known(const std::string& process_id) {
    prism::launcher::GetProcessStatusResponse response;
    grpc::Status status = get_status(process_id, &response);
    if (status.error_code() == grpc::StatusCode::NOT_FOUND) return false;
    if (!status.ok()) throw failure(rpc_failure("GetProcessStatus", status));
    return !response.not_found();
}

prism::launcher::HealthResponse Api::health() {
    grpc::ClientContext context;
    set_deadline(context);
    prism::launcher::HealthRequest request;
    request.set_include_processes(true);
    prism::launcher::HealthResponse response;
    grpc::Status status = stub_->Health(&context, request, &response);
    if (!status.ok()) throw failure(rpc_failure("Health", status));
    return response;
}

prism::launcher::TerminateResponse Api::terminate(const std::string& process_id) {
    grpc::ClientContext context;
    set_deadline(context);
    prism::launcher::TerminateRequest request;
    request.set_process_id(process_id);
    prism::launcher::TerminateResponse response;
    grpc::Status status = stub_->TerminatePattern(&context, request, &response);
    if (!status.ok()) throw failure(rpc_failure("TerminatePattern", status));
    if (!response.success())
        throw failure("TerminatePattern " + process_id + ": " + response.error());
    return response;
}

namespace {
const std::string kDropinDir = "/run/systemd/system/pattern-launcher.service.d";
const std::string kConfigBackup = std::string(kConfig) + ".system-test";
}  // namespace

std::string stop_service_and_clean_up() {
    sh("systemctl stop " + std::string(kService));
    std::error_code ec;
    if (fs::exists(kDropinDir)) {
        fs::remove_all(kDropinDir, ec);
        sh_ok("systemctl daemon-reload");
    }
    if (fs::exists(kConfigBackup)) fs::rename(kConfigBackup, kConfig, ec);
    sh("systemctl reset-failed " + std::string(kService));
    // A stopped launcher leaves nothing: no tenant, no scope, no record.
    // Whatever is left is reported, then killed and removed, so that the
    // next test starts clean.
    std::string leftovers;
    if (unit_property(kScopeUnit, "ActiveState") != "inactive") {
        leftovers += std::string(kScopeUnit) + " is " + unit_property(kScopeUnit, "ActiveState") +
                     ": " + sh("find " + std::string(kScopeDir) + " -type d").output;
        sh("systemctl stop " + std::string(kScopeUnit));
    }
    const std::string unit_dir = std::string(kCgroupMount) + "/system.slice/" + kService;
    const std::vector<std::string> below = cgroups_below(unit_dir);
    for (const auto& group : below)
        leftovers += "cgroup " + group + "\n";
    if (!below.empty()) {
        std::ofstream(unit_dir + "/cgroup.kill") << "1";
        for (auto it = below.rbegin(); it != below.rend(); ++it)
            wait_until([&] { return ::rmdir(it->c_str()) == 0 || errno == ENOENT; }, 10s);
    }
    if (fs::exists("/run/pattern-launcher/state")) {
        for (const auto& entry : fs::directory_iterator("/run/pattern-launcher/state", ec))
            leftovers += "state record " + entry.path().string() + "\n";
        fs::remove_all("/run/pattern-launcher/state", ec);
    }
    return leftovers;
}

void set_config_value(const std::string& key, const std::string& value) {
    if (!fs::exists(kConfigBackup)) fs::copy_file(kConfig, kConfigBackup);
    sh_ok("sed -i 's|^  " + key + ":.*|  " + key + ": " + value + "|' " + kConfig);
    if (read_file(kConfig).find("  " + key + ": " + value + "\n") == std::string::npos)
        throw failure("no '  " + key + ":' line in " + kConfig);
}

void reset_service() {
    const std::string leftovers = stop_service_and_clean_up();
    if (!leftovers.empty())
        std::fprintf(stderr, "reset_service cleaned up:\n%s", leftovers.c_str());
    sh_ok("systemctl start " + std::string(kSocketUnit));
}

void add_service_dropin(const std::string& name, const std::string& content) {
    fs::create_directories(kDropinDir);
    std::ofstream(kDropinDir + "/" + name + ".conf") << content;
    sh_ok("systemctl daemon-reload");
}

int restarts() {
    return std::stoi(unit_property(kService, "NRestarts"));
}

}  // namespace plsys
