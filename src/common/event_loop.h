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

    // What "now" is for timers: the steady clock, or a test's manual clock
    // (then timers fire when run_once() finds the clock past them).
    using Now = std::function<Clock::time_point()>;
    explicit EventLoop(Now now = nullptr);
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

    // RAII forms of the above: the timer is cancelled, the fd unwatched,
    // when the handle goes (a key's phase change drops what the old phase
    // armed). Move-only; an empty handle owns nothing.
    class Timer {
    public:
        Timer() = default;
        Timer(EventLoop& loop, TimerId id) : loop_(&loop), id_(id) {}
        Timer(Timer&& other) noexcept { *this = std::move(other); }
        Timer& operator=(Timer&& other) noexcept;
        ~Timer() { cancel(); }
        void cancel();
        explicit operator bool() const { return id_ != 0; }

    private:
        EventLoop* loop_ = nullptr;
        TimerId id_ = 0;
    };
    class Watch {
    public:
        Watch() = default;
        Watch(EventLoop& loop, int fd) : loop_(&loop), fd_(fd) {}
        Watch(Watch&& other) noexcept { *this = std::move(other); }
        Watch& operator=(Watch&& other) noexcept;
        ~Watch() { reset(); }
        void reset();
        explicit operator bool() const { return fd_ >= 0; }

    private:
        EventLoop* loop_ = nullptr;
        int fd_ = -1;
    };
    [[nodiscard]] Timer timer(std::chrono::milliseconds delay, Task task) {
        return Timer(*this, add_timer(delay, std::move(task)));
    }
    [[nodiscard]] Watch watch(int fd, std::uint32_t events, FdCallback callback) {
        add_fd(fd, events, std::move(callback));
        return Watch(*this, fd);
    }

    // Runs `task` on the loop thread soon. Any thread.
    void post(Task task);

    // Aborts, naming `what`, when called off the loop thread: the state the
    // loop owns has no locks, so a call from a gRPC thread would be a race.
    void assert_in_loop(const char* what) const;

    // Runs until stop(). Returns on the loop thread.
    void run();
    // One turn: waits up to `timeout_ms` (0: not at all) for fds, then runs
    // ready fds, due timers and posted tasks. For tests that drive the loop.
    void run_once(int timeout_ms);
    Clock::time_point now() const { return now_ ? now_() : Clock::now(); }
    // Any thread.
    void stop();
    bool in_loop_thread() const { return std::this_thread::get_id() == loop_thread_; }

    std::size_t watched_fds() const { return fds_.size(); }

private:
    struct FdEntry {
        std::uint32_t generation;
        std::shared_ptr<FdCallback> callback;
    };
    void run_timers();
    void run_posted();
    int next_timeout_ms() const;

    sandbox::UniqueFd epoll_;
    sandbox::UniqueFd wakeup_;  // eventfd: post() and stop() wake epoll_wait
    std::unordered_map<int, FdEntry> fds_;
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
    Now now_;
};

}  // namespace launcher
