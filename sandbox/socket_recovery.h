// Getting back a listening socket that only a running process still holds
// (after the launcher restarted, its own copy is gone).
#pragma once

#include "sandbox/unique_fd.h"

namespace sandbox {

// A copy of the target's fd `target_fd` through its pidfd (pidfd_getfd,
// Linux 5.6; the caller needs ptrace access to the target, which root has),
// kept only if it is still what the launcher handed over: a listening
// (SO_ACCEPTCONN) TCP socket bound to 127.0.0.1:`port`. Anything else (the
// fd closed or reused for something else, the socket bound elsewhere, the
// process gone, a kernel without pidfd_getfd) gives an empty UniqueFd: the
// caller binds the port again. Never throws.
UniqueFd take_listening_socket(int pidfd, int target_fd, int port);

// The port of the loopback TCP listener at the target's `target_fd`, or 0:
// how a key whose record was lost is found again on its old address.
int listening_port_of(int pidfd, int target_fd);

// Both of the above: `*port` 0 takes a listener on any port and stores it.
UniqueFd take_loopback_listener(int pidfd, int target_fd, int* port);

}  // namespace sandbox
