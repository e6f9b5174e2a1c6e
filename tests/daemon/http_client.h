// A raw HTTP/1.1 client for the daemon's metrics and health endpoints, and
// ports for them that no TestDaemon pattern range uses.
#pragma once

#include <chrono>
#include <string>

namespace pltest {

// Ports for our endpoints and a Prometheus server: above the kernel's
// ephemeral range (32768-60999) and above every TestDaemon pattern range
// (30000-55199), derived from the pid so that parallel test processes
// differ; k in 0..4.
int test_port(int k);

struct Reply {
    int status = 0;  // 0: no status line
    std::string head;
    std::string body;
    std::string raw;
    std::chrono::milliseconds elapsed{0};
};

// A connected TCP socket to 127.0.0.1:port, or -1.
int connect_to(int port);
// Reads until EOF or `timeout` after `start`, and splits the reply.
Reply read_reply(int fd, std::chrono::steady_clock::time_point start,
                 std::chrono::milliseconds timeout);
// Sends `request`, half-closes (unless told not to) and reads until EOF.
Reply exchange(int port, const std::string& request, bool half_close = true,
               std::chrono::milliseconds timeout = std::chrono::seconds(15));
Reply http_get(int port, const std::string& target, const std::string& method = "GET");
// The value of header `name` in the reply's head, or "".
std::string header(const Reply& r, const std::string& name);

}  // namespace pltest
