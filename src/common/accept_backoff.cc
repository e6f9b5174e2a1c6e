#include "common/accept_backoff.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <exception>
#include <utility>

#include "common/log.h"

namespace launcher {
namespace {

// accept(2), Linux: a connection that died in the backlog, a signal, or a
// network error "already pending on the new socket" that "should be treated
// like EAGAIN by retrying" (ENETDOWN ... ENETUNREACH); EPERM is a firewall
// rule refusing that one connection. The next connection may be fine.
bool is_connection_error(int err) {
    switch (err) {
        case EINTR:
        case ECONNABORTED:
        case EPROTO:
        case EPERM:
        case ENETDOWN:
        case ENOPROTOOPT:
        case EHOSTDOWN:
        case ENONET:
        case EHOSTUNREACH:
        case EOPNOTSUPP:
        case ENETUNREACH:
            return true;
        default:
            return false;
    }
}

}  // namespace

AcceptBackoff::AcceptBackoff(EventLoop& loop, int listener, std::string name,
                             OnConnection on_connection, std::chrono::milliseconds delay)
    : loop_(loop),
      listener_(listener),
      name_(std::move(name)),
      on_connection_(std::move(on_connection)),
      delay_(delay) {}

AcceptBackoff::~AcceptBackoff() {
    stop();
}

void AcceptBackoff::start() {
    if (state_ != State::kStopped) return;
    state_ = State::kBackingOff;
    rearm();
}

void AcceptBackoff::stop() {
    unwatch();
    if (timer_) loop_.cancel_timer(std::exchange(timer_, 0));
    state_ = State::kStopped;
}

void AcceptBackoff::watch() {
    if (watched_) return;
    loop_.add_fd(listener_, EPOLLIN, [this](std::uint32_t) { on_readable(); });
    watched_ = true;
}

void AcceptBackoff::unwatch() {
    if (!watched_) return;
    loop_.remove_fd(listener_);
    watched_ = false;
}

void AcceptBackoff::on_readable() {
    // Stops early when on_connection stopped us (a connection limit).
    for (std::size_t taken = 0; taken < kMaxPerWakeup && state_ == State::kWatching; ++taken) {
        const int fd = ::accept4(listener_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            const int err = errno;
            if (err == EAGAIN || err == EWOULDBLOCK) return;  // drained
            if (is_connection_error(err)) continue;
            // EMFILE, ENFILE, ENOBUFS, ENOMEM; or the listener itself is
            // broken (EBADF, EINVAL), where retrying at once helps no more.
            return back_off(std::string("accept: ") + std::strerror(err));
        }
        if (episode_pauses_ > 0) {
            log::notice(name_ + ": accepting connections again after " +
                        std::to_string(episode_pauses_) + " pauses");
            episode_pauses_ = 0;
        }
        try {
            on_connection_(sandbox::UniqueFd(fd));
        } catch (const std::exception& e) {
            // Typically epoll refusing the connection's fd (ENOMEM, ENOSPC):
            // as short of resources as EMFILE.
            return back_off(e.what());
        }
    }
}

void AcceptBackoff::back_off(const std::string& why) {
    unwatch();
    state_ = State::kBackingOff;
    ++pauses_;
    if (episode_pauses_++ == 0) {
        log::warning(name_ + ": " + why + "; pausing accepts for " +
                     std::to_string(delay_.count()) + " ms at a time until one succeeds");
    }
    timer_ = loop_.add_timer(delay_, [this] {
        timer_ = 0;
        rearm();
    });
}

void AcceptBackoff::rearm() {
    if (state_ != State::kBackingOff) return;
    try {
        watch();
        state_ = State::kWatching;
    } catch (const std::exception& e) {
        back_off(e.what());
    }
}

}  // namespace launcher
