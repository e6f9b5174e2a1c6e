#include "core/health_probe.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace launcher {

std::shared_ptr<HealthProbe> HealthProbe::start(EventLoop& loop, int port, std::string http_path,
                                                std::chrono::milliseconds timeout, Done done) {
    std::shared_ptr<HealthProbe> probe(new HealthProbe(loop, std::move(done)));
    if (!http_path.empty()) {
        probe->request_ = "GET " + http_path +
                          " HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: pattern-launcher\r\n"
                          "Connection: close\r\n\r\n";
    }
    probe->fd_ =
        sandbox::UniqueFd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!probe->fd_) {
        std::string why = std::string("socket: ") + std::strerror(errno);
        loop.post([probe, why] { probe->finish(false, why); });
        return probe;
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    if (::connect(probe->fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 &&
        errno != EINPROGRESS) {
        std::string why = std::strerror(errno);
        loop.post([probe, why] { probe->finish(false, why); });
        return probe;
    }
    std::weak_ptr<HealthProbe> weak = probe;
    loop.add_fd(probe->fd_.get(), EPOLLOUT | EPOLLIN | EPOLLRDHUP, [weak](std::uint32_t events) {
        if (auto p = weak.lock()) p->on_event(events);
    });
    probe->timer_ = loop.add_timer(timeout, [weak, timeout] {
        if (auto p = weak.lock()) {
            p->timer_ = 0;
            p->finish(false, "timed out after " + std::to_string(timeout.count()) + " ms");
        }
    });
    return probe;
}

std::shared_ptr<HealthProbe> HealthProbe::start_for(EventLoop& loop, const Healthcheck& check,
                                                    int health_port, int grpc_port, Done done) {
    switch (check.type) {
        case HealthcheckType::kGrpc:
            return start_grpc(loop, grpc_port, check.service, check.timeout, std::move(done));
        case HealthcheckType::kHttp:
            return start(loop, health_port, check.path, check.timeout, std::move(done));
        case HealthcheckType::kTcp:
        case HealthcheckType::kNotify:  // not probed; a connect if asked anyway
            break;
    }
    return start(loop, health_port, "", check.timeout, std::move(done));
}

void HealthProbe::on_event(std::uint32_t events) {
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(fd_.get(), SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) return finish(false, std::strerror(err));
    if (request_.empty()) return finish(true, "connected");  // TCP probe

    if ((events & EPOLLOUT) && sent_ < request_.size()) {
        ssize_t n =
            ::send(fd_.get(), request_.data() + sent_, request_.size() - sent_, MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN)
            return finish(false, std::string("send: ") + std::strerror(errno));
        if (n > 0) sent_ += static_cast<std::size_t>(n);
        // Level-triggered: stop asking for writability once all is sent.
        if (sent_ == request_.size()) loop_.modify_fd(fd_.get(), EPOLLIN | EPOLLRDHUP);
    }
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) {
        char buf[512];
        ssize_t n;
        while ((n = ::recv(fd_.get(), buf, sizeof buf, 0)) > 0) {
            response_.append(buf, static_cast<std::size_t>(n));
            if (response_.size() > 4096) break;
        }
        std::size_t eol = response_.find("\r\n");
        if (eol != std::string::npos) {
            // "HTTP/1.1 200 OK"
            std::string status = response_.substr(0, eol);
            std::size_t sp = status.find(' ');
            std::string code = sp == std::string::npos ? "" : status.substr(sp + 1, 3);
            return code == "200" ? finish(true, "HTTP 200")
                                 : finish(false, "health endpoint answered '" + status + "'");
        }
        if (n == 0) return finish(false, "connection closed before an HTTP status line");
    }
}

void HealthProbe::finish(bool ok, const std::string& detail) {
    if (finished_) return;
    finished_ = true;
    if (fd_) loop_.remove_fd(fd_.get());
    fd_.reset();
    if (timer_) loop_.cancel_timer(timer_);
    timer_ = 0;
    if (grpc_call_) abandon(std::move(grpc_call_));
    grpc_call_.reset();
    Done done = std::move(done_);
    if (done) done(ok, detail);
}

HealthProbe::~HealthProbe() {
    // A gRPC call may still be in flight: it must not post to a loop that
    // is gone by the time it completes.
    if (grpc_call_) abandon(std::move(grpc_call_));
}

void HealthProbe::cancel() {
    done_ = nullptr;
    finish(false, "cancelled");
}

}  // namespace launcher
