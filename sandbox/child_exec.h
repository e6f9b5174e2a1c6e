// The child's side of spawn(): what runs between clone3 and execve.
// Internal to the sandbox library.
//
// Everything here runs either in a copy of a possibly multi-threaded parent
// in which only the cloning thread exists (CloneMode::kFork), so locks held
// by other threads (malloc, stdio, glibc's setxid machinery) stay held
// forever, or in the parent's own memory while its threads keep running
// (CloneMode::kSharedMemory), sharing the cloning thread's TLS. The child
// therefore uses raw syscalls only, which do not even set errno: no
// allocation, no locks, no logging, no exceptions, and no writes but to its
// own stack and what its ChildPlan points it at. All inputs are prepared by
// the parent in a ChildPlan.
#pragma once

#include <linux/filter.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>

#include "sandbox/file_view.h"
#include "sandbox/spawn.h"

namespace sandbox::detail {

// What the child writes to the error pipe before _exit(127).
// pattern-launcher-init writes the first two fields only (see init_protocol.h).
struct ChildFailure {
    int step;         // a ChildStep, or one of init_protocol's kStepInit*
    int err;          // errno
    int detail = -1;  // for kFileView: the index of the failed MountOp
};

struct ChildPlan {
    const char* executable = nullptr;
    char* const* argv = nullptr;
    char* const* envp = nullptr;
    // Points into envp's "LISTEN_PID=" entry, which has room for the digits:
    // only the child knows its pid as its own namespace sees it.
    char* listen_pid_digits = nullptr;

    int error_pipe = -1;       // write end, O_CLOEXEC: EOF in the parent means exec worked
    int userns_fd = -1;        // a user namespace (with its id maps) to join before the ids change
    int cgroup_procs_fd = -1;  // fallback placement when CLONE_INTO_CGROUP was refused
    int netns_fd = -1;         // a network namespace to join first; closed with the fd plan

    bool new_session = true;
    bool unshare_cgroup = false;  // a cgroup namespace rooted at the cgroup we were born in
    bool loopback_up = false;
    const MountOp* mount_ops = nullptr;  // the file view; run after the fd plan
    int mount_op_count = 0;
    int* tree_fds = nullptr;  // scratch, one per kOpenTree

    // fd_sources[i] becomes fd i in the child (0..2 are stdio, 3.. passed fds).
    const int* fd_sources = nullptr;
    // Sorted, unique: the sources and the error pipe. Every other fd is
    // closed before the plan is applied, since the inherited table may be
    // full (as full as the launcher's) and the plan needs free slots.
    const int* keep_fds = nullptr;
    int keep_count = 0;
    int* fd_scratch = nullptr;  // same length, the child's own copy to write into
    int fd_count = 0;
    // With an init: the error pipe is also fd_sources[error_pipe_index]
    // (not close-on-exec, so the init inherits it); -1 otherwise.
    int error_pipe_index = -1;

    int exec_fd = -1;      // execveat(exec_fd, "", AT_EMPTY_PATH) instead of execve(executable)
    int landlock_fd = -1;  // a Landlock ruleset to restrict ourselves with; -1: none

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
