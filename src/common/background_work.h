// One worker thread for the slow chores the event loop must never do itself
// (removing a key's state directory, however large). Jobs run in order;
// each must not touch loop-owned state (post back to the loop for that).
// The destructor finishes the queued jobs, then joins.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

namespace launcher {

class BackgroundWork {
public:
    BackgroundWork();
    ~BackgroundWork();
    BackgroundWork(const BackgroundWork&) = delete;
    BackgroundWork& operator=(const BackgroundWork&) = delete;

    void submit(std::function<void()> job);  // any thread
    // Blocks until every job submitted so far has run (tests, shutdown).
    void drain();

private:
    void run();

    std::mutex mutex_;
    std::condition_variable wake_;
    std::condition_variable idle_;
    std::deque<std::function<void()>> jobs_;
    bool busy_ = false;
    bool stopping_ = false;
    std::thread thread_;
};

}  // namespace launcher
