#include "sandbox/peer_credentials.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "sandbox/cgroup_mount.h"
#include "sandbox/error.h"
#include "sandbox/file_io.h"
#include "sandbox/unique_fd.h"

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77  // Linux 6.5, include/uapi/asm-generic/socket.h
#endif

namespace sandbox {
namespace {

std::vector<gid_t> peer_groups(int socket_fd) {
    std::vector<gid_t> groups(16);
    for (;;) {
        socklen_t len = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
        if (::getsockopt(socket_fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &len) == 0) {
            groups.resize(len / sizeof(gid_t));
            return groups;
        }
        // ERANGE: len now says how much is needed.
        if (errno != ERANGE || len <= groups.size() * sizeof(gid_t)) return {};
        groups.resize(len / sizeof(gid_t));
    }
}

UniqueFd peer_pidfd(int socket_fd, pid_t pid) {
    int fd = -1;
    socklen_t len = sizeof fd;
    if (::getsockopt(socket_fd, SOL_SOCKET, SO_PEERPIDFD, &fd, &len) == 0 && fd >= 0) {
        return UniqueFd(fd);
    }
    return UniqueFd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
}

// A pidfd polls readable once its process has exited (Linux 5.3).
bool still_alive(int pidfd) {
    pollfd p{pidfd, POLLIN, 0};
    return ::poll(&p, 1, 0) == 0;
}

}  // namespace

PeerCredentials read_peer_credentials(int socket_fd) {
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(socket_fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
        throw_sys_error(errno, "SO_PEERCRED of socket fd " + std::to_string(socket_fd));
    }
    PeerCredentials peer;
    peer.pid = cred.pid;
    peer.uid = cred.uid;
    peer.gid = cred.gid;
    peer.groups = peer_groups(socket_fd);
    if (cred.pid <= 0) return peer;
    UniqueFd pidfd = peer_pidfd(socket_fd, cred.pid);
    if (!pidfd) return peer;
    try {
        std::string text = detail::read_file("/proc/" + std::to_string(cred.pid) + "/cgroup");
        if (still_alive(pidfd.get())) peer.cgroup = parse_v2_cgroup_entry(text);
    } catch (const std::exception&) {
        // The peer is gone or has no v2 entry: its cgroup stays unknown.
    }
    return peer;
}

}  // namespace sandbox
