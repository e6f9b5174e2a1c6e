#include "http_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <sstream>

namespace pltest {

using namespace std::chrono_literals;

int test_port(int k) {
    static std::atomic<int> round{0};
    const int base = static_cast<int>((::getpid() * 37 + round++ * 5) % 790) * 5;
    return 61000 + base + k;
}

int connect_to(int port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

Reply read_reply(int fd, std::chrono::steady_clock::time_point start,
                 std::chrono::milliseconds timeout) {
    Reply r;
    const auto deadline = start + timeout;
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left <= 0ms) break;
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
        char buf[16384];
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        r.raw.append(buf, static_cast<std::size_t>(n));
    }
    r.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - start);
    if (r.raw.starts_with("HTTP/1.1 ") && r.raw.size() >= 12)
        r.status = std::stoi(r.raw.substr(9, 3));
    std::size_t end = r.raw.find("\r\n\r\n");
    r.head = r.raw.substr(0, end);
    if (end != std::string::npos) r.body = r.raw.substr(end + 4);
    return r;
}

Reply exchange(int port, const std::string& request, bool half_close,
               std::chrono::milliseconds timeout) {
    const auto start = std::chrono::steady_clock::now();
    int fd = connect_to(port);
    if (fd < 0) return {};
    std::size_t sent = 0;
    while (sent < request.size()) {
        ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) break;  // the server may stop reading an oversized head
        sent += static_cast<std::size_t>(n);
    }
    if (half_close) ::shutdown(fd, SHUT_WR);
    Reply r = read_reply(fd, start, timeout);
    ::close(fd);
    return r;
}

Reply http_get(int port, const std::string& target, const std::string& method) {
    return exchange(
        port, method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        false);
}

std::string header(const Reply& r, const std::string& name) {
    std::istringstream in(r.head);
    std::string line;
    while (std::getline(in, line)) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.size() > name.size() && line.compare(0, name.size(), name) == 0 &&
            line[name.size()] == ':') {
            std::string value = line.substr(name.size() + 1);
            return value.substr(std::min(value.find_first_not_of(' '), value.size()));
        }
    }
    return {};
}

}  // namespace pltest
