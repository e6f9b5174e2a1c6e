// Accepting connections on the event loop without spinning when the process
// is out of fds or memory. Every accept loop of the daemon (the API, the
// metrics and health endpoints) goes through this one helper.
//
// The loop's epoll is level-triggered. A connection that accept4 cannot take
// (EMFILE, ENFILE, ENOBUFS, ENOMEM) stays in the backlog, the listener stays
// readable, and an accept loop that merely returns is called again at once:
// 100 % of a core until an fd frees up, with the loop starving everything
// else. AcceptBackoff owns the listener's watch instead: on such an error it
// stops watching, re-arms the watch from a loop timer after a short delay
// (the clients wait in the backlog meanwhile), and logs once per episode:
// when it starts, and when a connection is accepted again.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>

#include "common/event_loop.h"
#include "sandbox/unique_fd.h"

namespace launcher {

class AcceptBackoff {
public:
    // Takes one accepted connection (non-blocking, close-on-exec). It may
    // call stop() (e.g. at a connection limit); it must not destroy this
    // object. An exception it throws is logged and treated like EMFILE.
    using OnConnection = std::function<void(sandbox::UniqueFd connection)>;

    static constexpr std::chrono::milliseconds kDefaultDelay{100};
    // Connections taken per wakeup, so that a flood cannot starve the loop.
    static constexpr std::size_t kMaxPerWakeup = 64;

    enum class State {
        kStopped,     // neither watching nor waiting
        kWatching,    // the listener is in the loop's epoll set
        kBackingOff,  // not watched; a timer re-arms the watch
    };

    // `listener` is a listening, non-blocking socket; not owned, it must
    // outlive this object. `name` is for log lines ("API", "metrics
    // endpoint"). Nothing is watched before start().
    AcceptBackoff(EventLoop& loop, int listener, std::string name, OnConnection on_connection,
                  std::chrono::milliseconds delay = kDefaultDelay);
    // Unwatches the listener and cancels the timer. Loop thread.
    ~AcceptBackoff();
    AcceptBackoff(const AcceptBackoff&) = delete;
    AcceptBackoff& operator=(const AcceptBackoff&) = delete;

    // Starts watching. While backing off it changes nothing: the timer
    // re-arms the watch when the delay is over. If epoll refuses the fd
    // (ENOMEM, ENOSPC: max_user_watches) it backs off too. Loop thread.
    void start();
    // Stops watching and cancels a pending re-arm. Loop thread.
    void stop();

    State state() const { return state_; }
    // How often accepting was paused since construction (tests, metrics).
    std::size_t pauses() const { return pauses_; }

private:
    void on_readable();
    void back_off(const std::string& why);
    void rearm();
    void watch();
    void unwatch();

    EventLoop& loop_;
    const int listener_;
    const std::string name_;
    OnConnection on_connection_;
    const std::chrono::milliseconds delay_;
    State state_ = State::kStopped;
    bool watched_ = false;
    EventLoop::TimerId timer_ = 0;
    std::size_t pauses_ = 0;
    std::size_t episode_pauses_ = 0;  // pauses since the last accepted connection
};

}  // namespace launcher
