#include "systemd/systemd_notify.h"

#include <systemd/sd-daemon.h>
#include <time.h>

#include <cstdlib>

namespace launcher {

std::multimap<std::string, int> take_listen_fds() {
    std::multimap<std::string, int> fds;
    char** names = nullptr;
    // unset_environment=1: the variables describe this process only.
    int n = sd_listen_fds_with_names(1, &names);
    for (int i = 0; i < n; ++i) {
        fds.emplace(names && names[i] ? names[i] : "unknown", SD_LISTEN_FDS_START + i);
    }
    if (names) {
        for (int i = 0; i < n; ++i)
            std::free(names[i]);
        std::free(names);
    }
    return fds;
}

// Patterns never inherit the daemon's environment (spawn builds theirs from
// scratch), so NOTIFY_SOCKET and WATCHDOG_* stay set for sd_notify.
SystemdNotifier::SystemdNotifier() {
    enabled_ = std::getenv("NOTIFY_SOCKET") != nullptr;
    std::uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) > 0) watchdog_ = std::chrono::microseconds(usec);
}

void SystemdNotifier::send(const std::string& message) {
    if (enabled_) sd_notify(0, message.c_str());
}

void SystemdNotifier::ready(const std::string& status) {
    send("READY=1\nSTATUS=" + status);
}

void SystemdNotifier::status(const std::string& status) {
    send("STATUS=" + status);
}

void SystemdNotifier::reloading() {
    // MONOTONIC_USEC is what Type=notify-reload (systemd >= 253) requires;
    // older versions ignore it.
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    const std::uint64_t now = static_cast<std::uint64_t>(ts.tv_sec) * 1000000u +
                              static_cast<std::uint64_t>(ts.tv_nsec) / 1000u;
    send("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(now) + "\nSTATUS=reloading manifests");
}

void SystemdNotifier::stopping(const std::string& status) {
    send("STOPPING=1\nSTATUS=" + status);
}

void SystemdNotifier::extend_timeout(std::chrono::microseconds more) {
    send("EXTEND_TIMEOUT_USEC=" + std::to_string(more.count()));
}

void SystemdNotifier::start_watchdog(EventLoop& loop) {
    if (!enabled_ || watchdog_.count() == 0) return;
    ping(loop);
}

void SystemdNotifier::ping(EventLoop& loop) {
    send("WATCHDOG=1");
    // From a loop timer: if the loop is stuck, the pings stop.
    auto half = std::chrono::duration_cast<std::chrono::milliseconds>(watchdog_ / 2);
    loop.add_timer(std::max(half, std::chrono::milliseconds(1)), [this, &loop] { ping(loop); });
}

}  // namespace launcher
