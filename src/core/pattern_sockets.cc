#include "core/pattern_sockets.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "sandbox/error.h"

namespace launcher {

namespace {

// Binds and listens on 127.0.0.1:port; returns an empty fd with errno set
// when the port is taken.
sandbox::UniqueFd try_listen(int port) {
    sandbox::UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) sandbox::throw_sys_error(errno, "socket for a pattern");
    // A key's port bound again (a restart whose socket was lost with a
    // previous launcher) must not fail for connections of its previous
    // listener still in TIME_WAIT. On Linux this never lets two sockets
    // listen on one port (that would take SO_REUSEPORT).
    const int one = 1;
    if (::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) {
        sandbox::throw_sys_error(errno, "SO_REUSEADDR for a pattern's socket");
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        if (errno == EADDRINUSE || errno == EACCES) return {};
        sandbox::throw_sys_error(errno, "bind 127.0.0.1:" + std::to_string(port));
    }
    if (::listen(fd.get(), SOMAXCONN) != 0) {
        sandbox::throw_sys_error(errno, "listen on 127.0.0.1:" + std::to_string(port));
    }
    return fd;
}

}  // namespace

BoundSocket PortAllocator::bind_port(int port) {
    sandbox::UniqueFd fd = try_listen(port);
    if (!fd) sandbox::throw_sys_error(errno, "bind 127.0.0.1:" + std::to_string(port) + " again");
    in_use_.insert(port);
    return BoundSocket{std::move(fd), port};
}

BoundSocket PortAllocator::bind_next() {
    const int span = range_.last - range_.first + 1;
    for (int tried = 0; tried < span; ++tried) {
        int port = next_;
        next_ = next_ == range_.last ? range_.first : next_ + 1;
        if (in_use_.count(port)) continue;
        sandbox::UniqueFd fd = try_listen(port);
        if (!fd) continue;  // someone else's: skip it
        in_use_.insert(port);
        return BoundSocket{std::move(fd), port};
    }
    throw sandbox::SysError(EADDRINUSE, "no free port in pattern_ports " +
                                            std::to_string(range_.first) + "-" +
                                            std::to_string(range_.last));
}

sandbox::UniqueFd bind_notify_socket(const std::filesystem::path& path) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    const std::string p = path.string();
    if (p.size() >= sizeof addr.sun_path) {
        throw sandbox::SysError(ENAMETOOLONG, "notify socket path too long: " + p);
    }
    std::memcpy(addr.sun_path, p.c_str(), p.size() + 1);
    sandbox::UniqueFd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd) sandbox::throw_sys_error(errno, "socket for NOTIFY_SOCKET");
    ::unlink(p.c_str());
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        sandbox::throw_sys_error(errno, "bind NOTIFY_SOCKET", p);
    }
    int one = 1;
    if (::setsockopt(fd.get(), SOL_SOCKET, SO_PASSCRED, &one, sizeof one) != 0) {
        sandbox::throw_sys_error(errno, "SO_PASSCRED on", p);
    }
    return fd;
}

bool receive_notification(int fd, std::string& text, pid_t& sender, uid_t& sender_uid) {
    char buf[4096];
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(ucred))];
    iovec iov{buf, sizeof buf - 1};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n = ::recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0) return false;
    text.assign(buf, static_cast<std::size_t>(n));
    sender = 0;
    sender_uid = static_cast<uid_t>(-1);
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
            ucred cred{};
            std::memcpy(&cred, CMSG_DATA(c), sizeof cred);
            sender = cred.pid;
            sender_uid = cred.uid;
        }
        // Fds sent along (FDSTORE=1) are not accepted: close them.
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (std::size_t i = 0; i < count; ++i) {
                int passed;
                std::memcpy(&passed, CMSG_DATA(c) + i * sizeof(int), sizeof passed);
                ::close(passed);
            }
        }
    }
    return true;
}

}  // namespace launcher
