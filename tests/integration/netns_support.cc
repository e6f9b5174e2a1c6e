#include "netns_support.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace pltest {

void sh(const std::string& command) {
    const int rc = std::system((command + " >/dev/null 2>&1").c_str());
    if (rc != 0)
        throw std::runtime_error("command failed (" + std::to_string(rc) + "): " + command);
}

std::string sh_output(const std::string& command) {
    FILE* pipe = ::popen(command.c_str(), "r");
    if (pipe == nullptr) throw std::runtime_error("popen: " + command);
    std::string out;
    char buffer[4096];
    std::size_t n = 0;
    while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0)
        out.append(buffer, n);
    const int rc = ::pclose(pipe);
    if (rc != 0)
        throw std::runtime_error("command failed (" + std::to_string(rc) + "): " + command);
    return out;
}

std::string netns_unavailable_reason() {
    if (::geteuid() != 0) return "needs root (network namespaces, nftables)";
    if (std::system("command -v ip >/dev/null 2>&1") != 0) return "needs iproute2 (ip)";
    if (std::system("command -v nft >/dev/null 2>&1") != 0) return "needs nft";
    return {};
}

TestNetns::TestNetns(std::string name) : name_(std::move(name)) {
    sh("ip netns add " + name_);
    try {
        sh("ip -n " + name_ + " link set lo up");
    } catch (...) {
        std::system(("ip netns del " + name_ + " >/dev/null 2>&1").c_str());
        throw;
    }
}

TestNetns::~TestNetns() {
    // Its links (veth ends) and nft tables go with it.
    if (std::system(("ip netns del " + name_ + " >/dev/null 2>&1").c_str()) != 0)
        std::fprintf(stderr, "warning: could not remove netns %s\n", name_.c_str());
}

std::string netns_name(const std::string& role) {
    return "pltest-" + std::to_string(::getpid()) + "-" + role;
}

void enter_netns(const std::string& name) {
    const std::string path = "/run/netns/" + name;
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw std::runtime_error("open " + path + ": " + std::strerror(errno));
    const int rc = ::setns(fd, CLONE_NEWNET);
    const int err = errno;
    ::close(fd);
    if (rc != 0) throw std::runtime_error("setns " + path + ": " + std::strerror(err));
}

}  // namespace pltest
