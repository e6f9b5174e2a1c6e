// Reloading the manifests (SIGHUP, the Reload RPC) without blocking the loop.
//
// A discovery reads every manifest of the patterns directory and resolves
// the sandbox.user/group names through NSS, which may wait on a directory
// service (LDAP, sssd) for seconds: it runs on a worker thread, and its
// result is posted back to the loop and applied there. Each request is
// answered after a discovery that started after the request was made, so a
// reload never reports manifests older than the request: requests arriving
// while one runs are served together by one more run after it.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/event_loop.h"
#include "config/manifest.h"

namespace launcher {

class PatternReloader {
public:
    struct Outcome {
        std::optional<std::string> failure;  // the discovery threw: nothing was applied
        std::vector<std::string> invalid_manifests;
    };
    using Done = std::function<void(const Outcome&)>;

    struct Steps {
        // Loop thread, when a run begins (notify systemd, log).
        std::function<void()> begin = {};
        // Worker thread: the discovery. May throw; must not touch loop state.
        std::function<Discovery()> discover = {};
        // Loop thread: applies a successful discovery.
        std::function<void(Discovery)> apply = {};
        // Loop thread, after a run (applied or failed), before the waiters.
        std::function<void(const Outcome&)> end = {};
    };

    PatternReloader(EventLoop& loop, Steps steps);
    // Waits for a running discovery; its result is dropped. Loop thread.
    ~PatternReloader();
    PatternReloader(const PatternReloader&) = delete;
    PatternReloader& operator=(const PatternReloader&) = delete;

    // Reloads; `done` (may be empty) runs on the loop once the reload is
    // applied or has failed. Loop thread.
    void request(Done done);
    bool running() const { return running_; }

private:
    void start_run();
    void finish_run(std::shared_ptr<Discovery> found, std::optional<std::string> failure);

    EventLoop& loop_;
    Steps steps_;
    std::thread worker_;
    bool running_ = false;
    std::vector<Done> waiters_;       // answered by the current run
    std::vector<Done> next_waiters_;  // arrived during it: served by the next
    bool again_ = false;
    // Posted results check it: a result that arrives after destruction is dropped.
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace launcher
