// The child's side of spawn(): what runs between clone3 and execve.
// Internal to the sandbox library.
//
// Everything here runs in a copy of a possibly multi-threaded parent in
// which only the cloning thread exists, so locks held by other threads
// (malloc, stdio, glibc's setxid machinery) stay held forever. The child
// therefore uses raw syscalls only: no allocation, no locks, no logging, no
// exceptions. All inputs are prepared by the parent in a ChildPlan.
#pragma once

#include <linux/filter.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>

#include "sandbox/spawn.h"

namespace sandbox::detail {

// What the child writes to the error pipe before _exit(127).
struct ChildFailure {
    int step;  // a ChildStep
    int err;   // errno
};

struct ChildPlan {
    const char* executable = nullptr;
    char* const* argv = nullptr;
    char* const* envp = nullptr;
    // Points into envp's "LISTEN_PID=" entry, which has room for the digits:
    // only the child knows its pid as its own namespace sees it.
    char* listen_pid_digits = nullptr;

    int error_pipe = -1;       // write end, O_CLOEXEC: EOF in the parent means exec worked
    int userns_sync_fd = -1;   // read end: the parent writes one byte once id maps are set
    int cgroup_procs_fd = -1;  // fallback placement when CLONE_INTO_CGROUP was refused

    bool new_session = true;
    bool loopback_up = false;
    bool mount_proc = false;

    // fd_sources[i] becomes fd i in the child (0..2 are stdio, 3.. passed fds).
    const int* fd_sources = nullptr;
    // Sorted, unique: the sources and the error pipe. Every other fd is
    // closed before the plan is applied, since the inherited table may be
    // full (as full as the launcher's) and the plan needs free slots.
    const int* keep_fds = nullptr;
    int keep_count = 0;
    int* fd_scratch = nullptr;  // same length, the child's own copy to write into
    int fd_count = 0;

    const char* working_directory = nullptr;
    const ResourceLimit* resource_limits = nullptr;
    std::size_t resource_limit_count = 0;
    int parent_death_signal = 0;

    bool set_credentials = false;
    bool set_groups = false;  // false inside a user namespace whose setgroups is denied
    uid_t uid = 0;
    gid_t gid = 0;
    const gid_t* groups = nullptr;
    std::size_t group_count = 0;

    std::uint64_t capabilities = 0;
    std::uint64_t ambient_capabilities = 0;
    int last_capability = 0;

    bool no_new_privs = true;
    const sock_fprog* seccomp = nullptr;
};

// Runs the steps and execs; on failure reports the step and errno on the
// error pipe and exits with 127. Never returns. Takes a copy: the child may
// move the error pipe.
[[noreturn]] void run_child(ChildPlan plan) noexcept;

}  // namespace sandbox::detail
