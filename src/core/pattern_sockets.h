// Sockets the launcher binds on behalf of a pattern: its listening TCP
// sockets (handed over as LISTEN_FDS) and its per-process NOTIFY_SOCKET.
#pragma once

#include <filesystem>
#include <set>
#include <string>

#include "config/config.h"
#include "sandbox/unique_fd.h"

namespace launcher {

struct BoundSocket {
    sandbox::UniqueFd fd;
    int port = 0;
};

// Hands out ports from `pattern_ports`, skipping ports in use by anyone.
class PortAllocator {
public:
    explicit PortAllocator(PortRange range) : range_(range), next_(range.first) {}
    // Binds and listens on 127.0.0.1 at the next free port. Throws
    // SysError(EADDRINUSE) naming the range when every port is taken.
    BoundSocket bind_next();
    // Binds one given port again (a restart whose socket was lost with a
    // previous launcher instance); throws SysError naming the port.
    BoundSocket bind_port(int port);
    // Marks a port as ours without binding it (held by an adopted pattern).
    void reserve(int port) { in_use_.insert(port); }
    void release(int port) { in_use_.erase(port); }
    std::size_t in_use() const { return in_use_.size(); }

private:
    PortRange range_;
    int next_;
    std::set<int> in_use_;
};

// A datagram socket for sd_notify(3) messages from one pattern: bound at
// `path` (an existing file there is replaced), non-blocking, SO_PASSCRED on
// so that each message carries the sender's pid.
sandbox::UniqueFd bind_notify_socket(const std::filesystem::path& path);

// Reads one datagram; returns its text and the sender's pid and uid as the
// kernel stamped them (SCM_CREDENTIALS; 0 and -1 if unknown). Returns false
// when nothing is pending.
bool receive_notification(int fd, std::string& text, pid_t& sender, uid_t& sender_uid);

}  // namespace launcher
