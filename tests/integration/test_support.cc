#include "test_support.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "sandbox/cgroup_mount.h"

namespace pltest {
namespace {

std::string test_root_path() {
    static std::atomic<int> counter{0};
    // PL_TEST_CGROUP_PARENT lets a host without a writable top level (for
    // example a delegated systemd unit) point the tests somewhere else.
    const char* parent = std::getenv("PL_TEST_CGROUP_PARENT");
    std::string base = parent ? parent : sandbox::find_cgroup2_mount().path;
    return base + "/pl-test." + std::to_string(::getpid()) + "." + std::to_string(counter++);
}

}  // namespace

TestTree::TestTree() : tree_(sandbox::CgroupTree::open(test_root_path())) {}

std::string TestTree::relative(const std::string& absolute) const {
    return absolute.substr(tree_.mount().path.size());
}

int init_executable_fd() {
    // Never closed: spawn() only borrows it, and every test may use it.
    static const int fd = [] {
        int opened = ::open(PL_INIT, O_PATH | O_CLOEXEC);
        if (opened < 0) {
            throw std::runtime_error(std::string("cannot open the init ") + PL_INIT + ": " +
                                     std::strerror(errno));
        }
        return opened;
    }();
    return fd;
}

void enable_view(sandbox::SpawnSpec& spec) {
    spec.view.enabled = true;
    const std::string dir = std::filesystem::path(spec.executable).parent_path().string();
    if (sandbox::hidden_by_view(dir)) spec.view.binds.push_back({dir, dir, false});
}

void use_init(sandbox::SpawnSpec& spec, int status_fd) {
    spec.init.executable_fd = init_executable_fd();
    spec.init.status_fd = status_fd;
}

sandbox::SpawnSpec misbehave(const std::vector<std::string>& args) {
    sandbox::SpawnSpec spec;
    spec.executable = PL_MISBEHAVE;
    spec.argv = {"pl-misbehave"};
    spec.argv.insert(spec.argv.end(), args.begin(), args.end());
    spec.environment = {"PATH=/usr/bin:/bin", "TEST_MARKER=sandbox"};
    return spec;
}

std::string Running::read_until(const std::string& marker, int timeout_ms) {
    std::string out;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (out.find(marker) == std::string::npos) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                        deadline - std::chrono::steady_clock::now())
                        .count();
        if (left <= 0) break;
        pollfd p{stdout_read.get(), POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(left)) <= 0) break;
        char buf[4096];
        ssize_t n = ::read(stdout_read.get(), buf, sizeof buf);
        if (n <= 0) break;
        out.append(buf, static_cast<std::size_t>(n));
    }
    return out;
}

Running start_captured(sandbox::SpawnSpec spec) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
    sandbox::UniqueFd read_end(fds[0]), write_end(fds[1]);
    spec.stdout_fd = write_end.get();
    sandbox::SpawnResult result = sandbox::spawn(spec);
    return Running{std::move(result.process), std::move(read_end)};
}

Captured run_captured(sandbox::SpawnSpec spec) {
    Running running = start_captured(std::move(spec));
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(running.stdout_read.get(), buf, sizeof buf)) > 0) {
        out.append(buf, static_cast<std::size_t>(n));
    }
    siginfo_t info = running.process.reap();
    return Captured{sandbox::decode_exit(info), out};
}

std::map<std::string, std::string> parse_report(const std::string& output) {
    std::map<std::string, std::string> values;
    std::istringstream in(output);
    std::string line;
    while (std::getline(in, line)) {
        auto eq = line.find('=');
        if (eq != std::string::npos) values[line.substr(0, eq)] = line.substr(eq + 1);
    }
    return values;
}

int count_open_fds() {
    return static_cast<int>(list_dir("/proc/self/fd").size()) - 1;  // minus opendir's own fd
}

std::vector<std::string> list_dir(const std::string& path) {
    std::vector<std::string> names;
    DIR* dir = ::opendir(path.c_str());
    if (!dir) return names;
    while (dirent* e = ::readdir(dir)) {
        std::string name = e->d_name;
        if (name != "." && name != "..") names.push_back(name);
    }
    ::closedir(dir);
    return names;
}

bool cgroup_has_controller(const std::string& cgroup_dir, const std::string& controller) {
    std::ifstream in(cgroup_dir + "/cgroup.controllers");
    std::string word;
    while (in >> word) {
        if (word == controller) return true;
    }
    return false;
}

Listener listen_tcp() {
    Listener l;
    l.fd = sandbox::UniqueFd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (::bind(l.fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(l.fd.get(), 16) != 0 ||
        ::getsockname(l.fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
        throw std::runtime_error("cannot set up a loopback listener");
    }
    l.port = ntohs(addr.sin_port);
    return l;
}

std::string echo_roundtrip(int port, const std::string& message) {
    sandbox::UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return "";
    if (::write(fd.get(), message.data(), message.size()) != static_cast<ssize_t>(message.size())) {
        return "";
    }
    std::string reply;
    while (reply.size() < message.size()) {
        pollfd p{fd.get(), POLLIN, 0};
        if (::poll(&p, 1, 5000) <= 0) break;
        char buf[256];
        ssize_t n = ::read(fd.get(), buf, sizeof buf);
        if (n <= 0) break;
        reply.append(buf, static_cast<std::size_t>(n));
    }
    return reply;
}

}  // namespace pltest
