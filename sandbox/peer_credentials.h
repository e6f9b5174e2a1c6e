// Who is at the other end of a connected unix socket, as the kernel saw it
// at connect(2): ids, supplementary groups and cgroup. What the API's
// authorization rests on for local callers, so it is read from the socket,
// never from anything the peer sends.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

namespace sandbox {

struct PeerCredentials {
    pid_t pid = 0;
    uid_t uid = 0;
    gid_t gid = 0;
    std::vector<gid_t> groups;  // supplementary groups (SO_PEERGROUPS)
    // The peer's cgroup v2 path relative to the cgroup2 mount ("/a/b"), read
    // from /proc/<pid>/cgroup while a pidfd pins the process; nullopt when
    // it could not be established (the peer exited, no procfs).
    std::optional<std::string> cgroup;
};

// SO_PEERCRED and SO_PEERGROUPS (Linux 4.13) of `socket_fd`, and the peer's
// cgroup. The cgroup read is race-free against pid reuse: SO_PEERPIDFD
// (Linux 6.5) names the very process that connected; on older kernels
// pidfd_open(pid) (5.3) after SO_PEERCRED can name a recycled pid, so the
// result is only trusted if the process is still alive afterwards. Throws
// SysError when the socket has no peer credentials (not a unix socket).
PeerCredentials read_peer_credentials(int socket_fd);

}  // namespace sandbox
