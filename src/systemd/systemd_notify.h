// The daemon's side of the systemd service protocol: readiness, status,
// watchdog, reload and stop notifications (sd_notify(3)), and the sockets
// systemd passes at activation (sd_listen_fds(3)). Without systemd
// (no NOTIFY_SOCKET, no LISTEN_FDS) everything here is a no-op.
#pragma once

#include <chrono>
#include <map>
#include <string>

#include "common/event_loop.h"

namespace launcher {

// Sockets passed by systemd, by FileDescriptorName= ("grpc", "metrics",
// "health", ...). Call once, early, before any thread or child exists:
// LISTEN_PID must still be ours. The fds are CLOEXEC and owned by the caller.
std::multimap<std::string, int> take_listen_fds();

class SystemdNotifier {
public:
    SystemdNotifier();
    bool enabled() const { return enabled_; }

    void ready(const std::string& status);
    void status(const std::string& status);
    void reloading();
    void stopping(const std::string& status);
    // Asks for more time to stop; systemd expects it before TimeoutStopSec runs out.
    void extend_timeout(std::chrono::microseconds more);

    // Sends WATCHDOG=1 from `loop` at half of WATCHDOG_USEC, so a stuck
    // loop stops the pings and systemd's watchdog fires.
    void start_watchdog(EventLoop& loop);
    std::chrono::microseconds watchdog_interval() const { return watchdog_; }

private:
    void send(const std::string& message);
    void ping(EventLoop& loop);

    bool enabled_ = false;
    std::chrono::microseconds watchdog_{0};
};

}  // namespace launcher
