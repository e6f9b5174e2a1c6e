// Network namespaces for the network integration tests. Every test works in
// namespaces it makes itself and never in the host's: the "host" side of a
// veth pair lives in a TestHost, a fresh namespace entered on a thread, so
// no link, address or route of the real host is ever touched. The
// namespaces are anonymous (fds only), so nothing is left behind when a
// test fails: closing the fds removes them with their links.
#pragma once

#include <functional>
#include <string>

#include "sandbox/unique_fd.h"

namespace pltest {

// A network namespace standing in for the host. Made independently of the
// code under test: a thread unshare()s and opens /proc/thread-self/ns/net.
class TestHost {
public:
    TestHost();
    int fd() const { return netns_.get(); }
    // Runs `work` on a thread inside the namespace; rethrows its exception.
    void run(const std::function<void()>& work) const;

private:
    sandbox::UniqueFd netns_;
};

struct CommandResult {
    int status = -1;     // the exit status; -1 when it did not exit normally
    std::string output;  // stdout and stderr
};

// Runs `ip <args>` inside the namespace `netns_fd` refers to (through
// nsenter --net=/proc/<pid>/fd/<fd>; the fd stays ours).
CommandResult ip_in(int netns_fd, const std::string& args);

// The lines of `text` that contain `needle`.
int count_lines_with(const std::string& text, const std::string& needle);
int count_lines(const std::string& text);

}  // namespace pltest
