#include "common/event_loop.h"

#include <cstdio>
#include <cstdlib>
#include <utility>

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>

#include "sandbox/error.h"

namespace launcher {

namespace {
constexpr int kMaxEvents = 64;
}

EventLoop::EventLoop(Now now)
    : epoll_(::epoll_create1(EPOLL_CLOEXEC)),
      wakeup_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)),
      loop_thread_(std::this_thread::get_id()),
      now_(std::move(now)) {
    if (!epoll_) sandbox::throw_sys_error(errno, "epoll_create1");
    if (!wakeup_) sandbox::throw_sys_error(errno, "eventfd");
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = 0;  // generation 0 marks the wakeup fd
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, wakeup_.get(), &ev) != 0) {
        sandbox::throw_sys_error(errno, "epoll_ctl add wakeup eventfd");
    }
}

void EventLoop::add_fd(int fd, std::uint32_t events, FdCallback callback) {
    // The generation in the event data tells a stale event for a closed and
    // reused fd number from a live one.
    std::uint32_t generation = next_generation_++;
    if (next_generation_ == 0) next_generation_ = 1;
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = (std::uint64_t{generation} << 32) | static_cast<std::uint32_t>(fd);
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
        sandbox::throw_sys_error(errno, "epoll_ctl add fd " + std::to_string(fd));
    }
    fds_[fd] = FdEntry{generation, std::make_shared<FdCallback>(std::move(callback))};
}

void EventLoop::modify_fd(int fd, std::uint32_t events) {
    auto it = fds_.find(fd);
    if (it == fds_.end()) return;
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = (std::uint64_t{it->second.generation} << 32) | static_cast<std::uint32_t>(fd);
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, fd, &ev) != 0) {
        sandbox::throw_sys_error(errno, "epoll_ctl modify fd " + std::to_string(fd));
    }
}

void EventLoop::remove_fd(int fd) {
    if (fds_.erase(fd) == 0) return;
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
}

EventLoop::TimerId EventLoop::add_timer(std::chrono::milliseconds delay, Task task) {
    TimerId id = next_timer_++;
    auto it = timers_.emplace(now() + delay, std::make_pair(id, std::move(task)));
    timer_index_[id] = it;
    return id;
}

void EventLoop::cancel_timer(TimerId id) {
    auto found = timer_index_.find(id);
    if (found == timer_index_.end()) return;
    timers_.erase(found->second);
    timer_index_.erase(found);
}

void EventLoop::post(Task task) {
    {
        std::lock_guard lock(posted_mutex_);
        posted_.push_back(std::move(task));
    }
    std::uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(wakeup_.get(), &one, sizeof one);
}

void EventLoop::stop() {
    stopping_ = true;
    std::uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(wakeup_.get(), &one, sizeof one);
}

int EventLoop::next_timeout_ms() const {
    if (timers_.empty()) return -1;
    auto left = std::chrono::ceil<std::chrono::milliseconds>(timers_.begin()->first - now());
    return static_cast<int>(std::max<std::int64_t>(0, left.count()));
}

void EventLoop::run_timers() {
    const auto due = now();
    while (!timers_.empty() && timers_.begin()->first <= due) {
        auto node = timers_.extract(timers_.begin());
        timer_index_.erase(node.mapped().first);
        node.mapped().second();
    }
}

void EventLoop::run_posted() {
    std::vector<Task> tasks;
    {
        std::lock_guard lock(posted_mutex_);
        tasks.swap(posted_);
    }
    for (Task& task : tasks)
        task();
}

void EventLoop::run() {
    loop_thread_ = std::this_thread::get_id();
    while (!stopping_)
        run_once(next_timeout_ms());
    run_posted();
}

void EventLoop::run_once(int timeout_ms) {
    epoll_event events[kMaxEvents];
    int n = ::epoll_wait(epoll_.get(), events, kMaxEvents, timeout_ms);
    if (n < 0) {
        if (errno == EINTR) return;
        sandbox::throw_sys_error(errno, "epoll_wait");
    }
    for (int i = 0; i < n; ++i) {
        const std::uint64_t data = events[i].data.u64;
        if (data == 0) {
            std::uint64_t count;
            [[maybe_unused]] ssize_t r = ::read(wakeup_.get(), &count, sizeof count);
            continue;
        }
        const int fd = static_cast<int>(data & 0xffffffffu);
        auto it = fds_.find(fd);
        if (it == fds_.end() || it->second.generation != (data >> 32)) continue;
        // Hold the callback: it may remove its own watch while running.
        std::shared_ptr<FdCallback> callback = it->second.callback;
        (*callback)(events[i].events);
    }
    run_posted();
    run_timers();
}

EventLoop::Timer& EventLoop::Timer::operator=(Timer&& other) noexcept {
    if (this != &other) {
        cancel();
        loop_ = other.loop_;
        id_ = std::exchange(other.id_, 0);
    }
    return *this;
}

void EventLoop::Timer::cancel() {
    if (id_ != 0 && loop_) loop_->cancel_timer(id_);
    id_ = 0;
}

EventLoop::Watch& EventLoop::Watch::operator=(Watch&& other) noexcept {
    if (this != &other) {
        reset();
        loop_ = other.loop_;
        fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
}

void EventLoop::Watch::reset() {
    if (fd_ >= 0 && loop_) loop_->remove_fd(fd_);
    fd_ = -1;
}

void EventLoop::assert_in_loop(const char* what) const {
    if (in_loop_thread()) return;
    std::fprintf(stderr, "pattern-launcher: BUG: %s called off the event loop thread\n", what);
    std::abort();
}

}  // namespace launcher
