// One health probe of a pattern, driven by the event loop: an HTTP GET
// (status 200 is healthy) or a bare TCP connect, with a timeout. It never
// blocks the loop.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "common/event_loop.h"

namespace launcher {

class HealthProbe : public std::enable_shared_from_this<HealthProbe> {
public:
    // ok: healthy; detail: why not ("HTTP 503", "connection refused", "timed out after 5000 ms").
    using Done = std::function<void(bool ok, const std::string& detail)>;

    // `http_path` empty: a TCP connect probe. `done` runs exactly once, on
    // the loop, unless the probe is cancelled first.
    static std::shared_ptr<HealthProbe> start(EventLoop& loop, int port, std::string http_path,
                                              std::chrono::milliseconds timeout, Done done);
    void cancel();

private:
    HealthProbe(EventLoop& loop, Done done) : loop_(loop), done_(std::move(done)) {}
    void on_event(std::uint32_t events);
    void finish(bool ok, const std::string& detail);

    EventLoop& loop_;
    Done done_;
    sandbox::UniqueFd fd_;
    std::string request_;
    std::size_t sent_ = 0;
    std::string response_;
    EventLoop::TimerId timer_ = 0;
    bool finished_ = false;
};

}  // namespace launcher
