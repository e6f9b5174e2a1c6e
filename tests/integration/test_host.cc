#include "test_host.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace pltest {

TestHost::TestHost() {
    std::string failure;
    std::thread thread([&] {
        if (::unshare(CLONE_NEWNET) != 0) {
            failure = std::string("unshare(CLONE_NEWNET): ") + std::strerror(errno);
            return;
        }
        netns_ = sandbox::UniqueFd(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
        if (!netns_)
            failure = std::string("open /proc/thread-self/ns/net: ") + std::strerror(errno);
    });
    thread.join();
    if (!failure.empty()) throw std::runtime_error("test host namespace: " + failure);
}

void TestHost::run(const std::function<void()>& work) const {
    std::exception_ptr error;
    std::thread thread([&] {
        try {
            if (::setns(netns_.get(), CLONE_NEWNET) != 0) {
                throw std::runtime_error(std::string("setns into the test host: ") +
                                         std::strerror(errno));
            }
            work();
        } catch (...) {
            error = std::current_exception();
        }
    });
    thread.join();
    if (error) std::rethrow_exception(error);
}

CommandResult ip_in(int netns_fd, const std::string& args) {
    const std::string command = "nsenter --net=/proc/" + std::to_string(::getpid()) + "/fd/" +
                                std::to_string(netns_fd) + " ip " + args + " 2>&1";
    CommandResult result;
    FILE* pipe = ::popen(command.c_str(), "r");
    if (!pipe) throw std::runtime_error("popen " + command + ": " + std::strerror(errno));
    std::array<char, 4096> buffer{};
    std::size_t n;
    while ((n = std::fread(buffer.data(), 1, buffer.size(), pipe)) > 0)
        result.output.append(buffer.data(), n);
    int status = ::pclose(pipe);
    result.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return result;
}

int count_lines_with(const std::string& text, const std::string& needle) {
    std::istringstream in(text);
    int count = 0;
    for (std::string line; std::getline(in, line);)
        if (line.find(needle) != std::string::npos) ++count;
    return count;
}

int count_lines(const std::string& text) {
    return count_lines_with(text, "");
}

}  // namespace pltest
