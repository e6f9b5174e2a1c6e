#include "sandbox/socket_recovery.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace sandbox {
namespace {

int int_option(int fd, int level, int name) {
    int value = 0;
    socklen_t len = sizeof value;
    if (::getsockopt(fd, level, name, &value, &len) != 0) return -1;
    return value;
}

}  // namespace

UniqueFd take_listening_socket(int pidfd, int target_fd, int port) {
    return take_loopback_listener(pidfd, target_fd, &port);
}

int listening_port_of(int pidfd, int target_fd) {
    int port = 0;
    return take_loopback_listener(pidfd, target_fd, &port) ? port : 0;
}

// `*port` 0: any port, which is then stored there.
UniqueFd take_loopback_listener(int pidfd, int target_fd, int* port) {
    // The copy is O_CLOEXEC (pidfd_getfd always sets it).
    UniqueFd fd(static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd, target_fd, 0)));
    if (!fd) return {};
    sockaddr_in addr{};
    socklen_t len = sizeof addr;
    // getsockname fails with ENOTSOCK for anything that is not a socket.
    if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0 ||
        len != sizeof addr || addr.sin_family != AF_INET) {
        return {};
    }
    // The launcher binds loopback only: a socket the pattern bound to another
    // address in its place must not be handed to the next incarnation.
    if ((*port != 0 && ntohs(addr.sin_port) != *port) ||
        ntohl(addr.sin_addr.s_addr) != INADDR_LOOPBACK) {
        return {};
    }
    if (int_option(fd.get(), SOL_SOCKET, SO_PROTOCOL) != IPPROTO_TCP) return {};
    if (int_option(fd.get(), SOL_SOCKET, SO_ACCEPTCONN) != 1) return {};
    *port = ntohs(addr.sin_port);
    return fd;
}

}  // namespace sandbox
