// The daemon's single event loop: fds (pidfds, sockets, cgroup.events),
// one-shot timers and tasks posted from other threads (gRPC handlers).
// Everything that changes launcher state runs on the loop's thread, so
// that state needs no locks.
#pragma once

#include <sys/epoll.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "sandbox/unique_fd.h"

namespace launcher {

class EventLoop {
public:
    using Clock = std::chrono::steady_clock;
    using FdCallback = std::function<void(std::uint32_t events)>;
    using Task = std::function<void()>;
    using TimerId = std::uint64_t;

    EventLoop();
    EventLoop(const EventLoop&) = delete;
    EventLoop& operator=(const EventLoop&) = delete;

    // Watches `fd` (not owned) for `events` (EPOLLIN, EPOLLPRI, ...) until
    // remove_fd. Loop thread only.
    void add_fd(int fd, std::uint32_t events, FdCallback callback);
    void modify_fd(int fd, std::uint32_t events);
    void remove_fd(int fd);

    // Runs `task` once after `delay`. Loop thread only.
    TimerId add_timer(std::chrono::milliseconds delay, Task task);
    void cancel_timer(TimerId id);

    // Runs `task` on the loop thread soon. Any thread.
    void post(Task task);

    // Runs until stop(). Returns on the loop thread.
    void run();
    // Any thread.
    void stop();
    bool in_loop_thread() const { return std::this_thread::get_id() == loop_thread_; }

    std::size_t watched_fds() const { return fds_.size(); }

private:
    struct Watch {
        std::uint32_t generation;
        std::shared_ptr<FdCallback> callback;
    };
    void run_timers();
    void run_posted();
    int next_timeout_ms() const;

    sandbox::UniqueFd epoll_;
    sandbox::UniqueFd wakeup_;  // eventfd: post() and stop() wake epoll_wait
    std::unordered_map<int, Watch> fds_;
    std::uint32_t next_generation_ = 1;

    std::multimap<Clock::time_point, std::pair<TimerId, Task>> timers_;
    std::unordered_map<TimerId,
                       std::multimap<Clock::time_point, std::pair<TimerId, Task>>::iterator>
        timer_index_;
    TimerId next_timer_ = 1;

    std::mutex posted_mutex_;
    std::vector<Task> posted_;
    std::atomic<bool> stopping_{false};
    std::thread::id loop_thread_;
};

}  // namespace launcher
