#include "http/http_endpoint.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string_view>

#include "common/log.h"
#include "sandbox/error.h"

namespace launcher {

namespace {

constexpr std::size_t kReadChunk = 4096;
// What a client may still send after its response before it is cut off.
constexpr std::size_t kMaxDiscard = 1 << 20;

}  // namespace

const char* http_reason(int status) {
    switch (status) {
        case 200:
            return "OK";
        case 400:
            return "Bad Request";
        case 404:
            return "Not Found";
        case 405:
            return "Method Not Allowed";
        case 408:
            return "Request Timeout";
        case 431:
            return "Request Header Fields Too Large";
        case 500:
            return "Internal Server Error";
        case 503:
            return "Service Unavailable";
        case 505:
            return "HTTP Version Not Supported";
        default:
            return status < 400 ? "OK" : status < 500 ? "Client Error" : "Server Error";
    }
}

struct HttpEndpoint::Connection {
    enum class Phase { kReading, kWriting, kDraining };

    std::uint64_t id = 0;
    sandbox::UniqueFd fd;
    Phase phase = Phase::kReading;
    std::string in;
    std::string out;
    std::size_t sent = 0;
    std::size_t discarded = 0;
    EventLoop::TimerId timer = 0;
};

HttpEndpoint::HttpEndpoint(EventLoop& loop, sandbox::UniqueFd listener, std::string name)
    : HttpEndpoint(loop, std::move(listener), std::move(name), Options{}) {}

HttpEndpoint::HttpEndpoint(EventLoop& loop, sandbox::UniqueFd listener, std::string name,
                           Options options)
    : loop_(loop), listener_(std::move(listener)), name_(std::move(name)), options_(options) {
    const int fd = listener_.get();
    int accepting = 0, type = 0;
    socklen_t len = sizeof accepting;
    if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) != 0) {
        sandbox::throw_sys_error(errno, name_ + " endpoint: fd " + std::to_string(fd));
    }
    len = sizeof type;
    if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0) {
        sandbox::throw_sys_error(errno, name_ + " endpoint: fd " + std::to_string(fd));
    }
    if (!accepting || type != SOCK_STREAM) {
        sandbox::throw_sys_error(EINVAL, name_ + " endpoint: fd " + std::to_string(fd) +
                                             " is not a listening stream socket");
    }
    // An inherited socket may be blocking and inheritable: accept must never
    // block the loop, and patterns must not get our listener.
    const int flags = ::fcntl(fd, F_GETFL);
    if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0 ||
        ::fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) {
        sandbox::throw_sys_error(errno, name_ + " endpoint: fcntl on fd " + std::to_string(fd));
    }
    acceptor_ = std::make_unique<AcceptBackoff>(
        loop_, fd, name_ + " endpoint",
        [this](sandbox::UniqueFd connection) { on_connection(std::move(connection)); });
    acceptor_->start();
}

HttpEndpoint::~HttpEndpoint() {
    acceptor_.reset();
    for (auto& [id, c] : connections_) {
        loop_.remove_fd(c->fd.get());
        if (c->timer) loop_.cancel_timer(c->timer);
    }
    connections_.clear();
}

void HttpEndpoint::route(const std::string& path, Handler handler) {
    routes_[path] = std::move(handler);
}

int HttpEndpoint::port() const {
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    if (::getsockname(listener_.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) return 0;
    if (addr.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
    if (addr.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
    return 0;
}

std::string HttpEndpoint::address() const {
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    if (::getsockname(listener_.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) return "?";
    char text[INET6_ADDRSTRLEN] = {};
    if (addr.ss_family == AF_INET) {
        auto* in = reinterpret_cast<sockaddr_in*>(&addr);
        ::inet_ntop(AF_INET, &in->sin_addr, text, sizeof text);
        return std::string(text) + ":" + std::to_string(ntohs(in->sin_port));
    }
    if (addr.ss_family == AF_INET6) {
        auto* in6 = reinterpret_cast<sockaddr_in6*>(&addr);
        ::inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
        return "[" + std::string(text) + "]:" + std::to_string(ntohs(in6->sin6_port));
    }
    if (addr.ss_family == AF_UNIX) {
        auto* un = reinterpret_cast<sockaddr_un*>(&addr);
        return "unix:" + std::string(un->sun_path, ::strnlen(un->sun_path, sizeof un->sun_path));
    }
    return "?";
}

// After a connection closed: below the limit again. While the acceptor backs
// off (out of fds), its timer re-arms it instead.
void HttpEndpoint::resume_accepting() {
    if (connections_.size() < options_.max_connections) acceptor_->start();
}

// Changes what a connection waits for; closes it if epoll refuses.
bool HttpEndpoint::watch(Connection& c, std::uint32_t events) {
    try {
        loop_.modify_fd(c.fd.get(), events);
        return true;
    } catch (const std::exception& e) {
        log::warning(name_ + " endpoint: " + e.what());
        close(c.id);
        return false;
    }
}

// Throws (epoll refusing the fd) to make the acceptor back off.
void HttpEndpoint::on_connection(sandbox::UniqueFd fd) {
    auto c = std::make_unique<Connection>();
    c->id = next_id_++;
    const int raw = fd.get();
    c->fd = std::move(fd);
    const std::uint64_t id = c->id;
    Connection& ref = *c;
    loop_.add_fd(raw, EPOLLIN | EPOLLRDHUP,
                 [this, id](std::uint32_t events) { on_event(id, events); });
    connections_.emplace(id, std::move(c));
    arm_timer(ref, options_.head_timeout);
    // Full: leave the rest in the backlog until a connection closes.
    if (connections_.size() >= options_.max_connections) acceptor_->stop();
}

void HttpEndpoint::arm_timer(Connection& c, std::chrono::milliseconds delay) {
    if (c.timer) loop_.cancel_timer(c.timer);
    const std::uint64_t id = c.id;
    c.timer = loop_.add_timer(delay, [this, id] { on_timeout(id); });
}

void HttpEndpoint::on_timeout(std::uint64_t id) {
    auto it = connections_.find(id);
    if (it == connections_.end()) return;
    Connection& c = *it->second;
    c.timer = 0;
    if (c.phase == Connection::Phase::kReading) {
        return respond(c, 408, "text/plain; charset=utf-8", "request head not received in time\n",
                       false);
    }
    close(id);  // a stalled reader, or a client that never closes
}

void HttpEndpoint::on_event(std::uint64_t id, std::uint32_t events) {
    auto it = connections_.find(id);
    if (it == connections_.end()) return;
    Connection& c = *it->second;
    switch (c.phase) {
        case Connection::Phase::kReading:
            return read_head(c);
        case Connection::Phase::kWriting:
            // Errors and hang-ups surface as send() failures.
            if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) write_some(c);
            return;
        case Connection::Phase::kDraining:
            return drain(c);
    }
}

void HttpEndpoint::read_head(Connection& c) {
    char buf[kReadChunk];
    for (;;) {
        ssize_t n = ::recv(c.fd.get(), buf, sizeof buf, 0);
        if (n > 0) {
            c.in.append(buf, static_cast<std::size_t>(n));
            HttpParseResult parsed = parse_http_request(c.in, options_.max_head_bytes);
            if (parsed.outcome == HttpParseResult::Outcome::kNeedMore) continue;
            return respond_to(c, parsed);
        }
        if (n == 0) {
            // The client stopped sending before a complete head; it may
            // still read (half-close), so tell it why.
            if (c.in.empty()) return close(c.id);
            return respond(c, 400, "text/plain; charset=utf-8", "incomplete request head\n", false);
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        return close(c.id);  // reset by the peer
    }
}

// One request per connection (`Connection: close`): bytes after the head
// (a body, a pipelined request) are discarded by the drain.
void HttpEndpoint::respond_to(Connection& c, const HttpParseResult& parsed) {
    if (parsed.outcome == HttpParseResult::Outcome::kError) {
        return respond(c, parsed.status, "text/plain; charset=utf-8", parsed.detail + "\n", false,
                       parsed.status == 405 ? "Allow: GET, HEAD\r\n" : "");
    }
    const HttpRequest& request = parsed.request;
    const bool head_only = request.method == HttpMethod::kHead;
    auto route = routes_.find(request.path);
    if (route == routes_.end()) {
        return respond(c, 404, "text/plain; charset=utf-8", "no such path\n", head_only);
    }
    HttpResponse response;
    try {
        response = route->second(request);
    } catch (const std::exception& e) {
        log::error(name_ + " endpoint: " + request.path + ": " + e.what());
        return respond(c, 500, "text/plain; charset=utf-8", "internal error\n", head_only);
    }
    respond(c, response.status, response.content_type, std::move(response.body), head_only);
}

void HttpEndpoint::respond(Connection& c, int status, const std::string& content_type,
                           std::string body, bool head_only, const std::string& extra_headers) {
    c.phase = Connection::Phase::kWriting;
    c.in.clear();
    c.in.shrink_to_fit();
    c.out = "HTTP/1.1 " + std::to_string(status) + " " + http_reason(status) +
            "\r\nContent-Type: " + content_type +
            "\r\nContent-Length: " + std::to_string(body.size()) +
            "\r\nCache-Control: no-store\r\nConnection: close\r\n" + extra_headers + "\r\n";
    if (!head_only) c.out += body;
    c.sent = 0;
    arm_timer(c, options_.write_timeout);
    // Only writability matters now; unread input waits for the drain.
    if (!watch(c, EPOLLOUT)) return;
    write_some(c);
}

void HttpEndpoint::write_some(Connection& c) {
    bool progress = false;
    while (c.sent < c.out.size()) {
        ssize_t n = ::send(c.fd.get(), c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL);
        if (n > 0) {
            c.sent += static_cast<std::size_t>(n);
            progress = true;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (progress) arm_timer(c, options_.write_timeout);
            return;  // EPOLLOUT brings us back
        }
        return close(c.id);  // EPIPE, ECONNRESET
    }
    // All sent: half-close, then read until the client closes, so that
    // unread input (a body, an oversized head) does not turn our close into
    // a reset that could destroy the response before the client reads it.
    ::shutdown(c.fd.get(), SHUT_WR);
    c.phase = Connection::Phase::kDraining;
    c.out.clear();
    c.out.shrink_to_fit();
    arm_timer(c, options_.linger_timeout);
    if (!watch(c, EPOLLIN | EPOLLRDHUP)) return;
    drain(c);
}

void HttpEndpoint::drain(Connection& c) {
    char buf[kReadChunk];
    for (;;) {
        ssize_t n = ::recv(c.fd.get(), buf, sizeof buf, 0);
        if (n > 0) {
            c.discarded += static_cast<std::size_t>(n);
            if (c.discarded > kMaxDiscard) return close(c.id);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        return close(c.id);  // EOF or error
    }
}

void HttpEndpoint::close(std::uint64_t id) {
    auto it = connections_.find(id);
    if (it == connections_.end()) return;
    Connection& c = *it->second;
    loop_.remove_fd(c.fd.get());
    if (c.timer) loop_.cancel_timer(c.timer);
    connections_.erase(it);  // closes the fd
    resume_accepting();
}

sandbox::UniqueFd bind_http_listener(const std::string& address, int port) {
    std::string host = address;
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
        host = host.substr(1, host.size() - 2);
    }
    const std::string what = "bind " +
                             (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" +
                             std::to_string(port);
    if (port < 0 || port > 65535) sandbox::throw_sys_error(EINVAL, what);
    sockaddr_storage addr{};
    socklen_t len = 0;
    auto* in = reinterpret_cast<sockaddr_in*>(&addr);
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&addr);
    if (::inet_pton(AF_INET, host.c_str(), &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons(static_cast<std::uint16_t>(port));
        len = sizeof *in;
    } else if (::inet_pton(AF_INET6, host.c_str(), &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(static_cast<std::uint16_t>(port));
        len = sizeof *in6;
    } else {
        sandbox::throw_sys_error(EINVAL, what + " (not an IP address)");
    }
    sandbox::UniqueFd fd(::socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd) sandbox::throw_sys_error(errno, "socket for " + what);
    const int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (addr.ss_family == AF_INET6)
        ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0) {
        sandbox::throw_sys_error(errno, what);
    }
    if (::listen(fd.get(), SOMAXCONN) != 0) sandbox::throw_sys_error(errno, "listen on " + what);
    return fd;
}

}  // namespace launcher
