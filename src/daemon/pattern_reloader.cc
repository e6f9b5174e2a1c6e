#include "daemon/pattern_reloader.h"

#include <exception>
#include <utility>

namespace launcher {

PatternReloader::PatternReloader(EventLoop& loop, Steps steps)
    : loop_(loop), steps_(std::move(steps)) {}

PatternReloader::~PatternReloader() {
    *alive_ = false;
    if (worker_.joinable()) worker_.join();
}

void PatternReloader::request(Done done) {
    loop_.assert_in_loop("PatternReloader::request");
    if (running_) {
        // The running discovery may have read the manifests before they
        // changed: this request gets a run of its own after it.
        if (done) next_waiters_.push_back(std::move(done));
        again_ = true;
        return;
    }
    if (done) waiters_.push_back(std::move(done));
    start_run();
}

void PatternReloader::start_run() {
    running_ = true;
    if (steps_.begin) steps_.begin();
    // The previous worker posted its result and is gone or about to be.
    if (worker_.joinable()) worker_.join();
    std::weak_ptr<bool> alive = alive_;
    worker_ = std::thread([this, alive] {
        auto found = std::make_shared<Discovery>();
        std::optional<std::string> failure;
        try {
            *found = steps_.discover();
        } catch (const std::exception& e) {
            failure = e.what();
        }
        // The result travels in a shared_ptr: a posted task is a
        // std::function, which must be copyable.
        loop_.post([this, alive, found, failure] {
            const std::shared_ptr<bool> still = alive.lock();
            if (!still || !*still) return;
            finish_run(found, failure);
        });
    });
}

void PatternReloader::finish_run(std::shared_ptr<Discovery> found,
                                 std::optional<std::string> failure) {
    Outcome outcome;
    outcome.failure = std::move(failure);
    if (!outcome.failure) {
        for (const FileError& e : found->errors)
            outcome.invalid_manifests.push_back(e.what());
        if (steps_.apply) steps_.apply(std::move(*found));
    }
    running_ = false;
    if (steps_.end) steps_.end(outcome);
    std::vector<Done> answered = std::exchange(waiters_, {});
    if (again_) {
        again_ = false;
        waiters_ = std::exchange(next_waiters_, {});
        start_run();
    }
    for (Done& done : answered)
        done(outcome);
}

}  // namespace launcher
