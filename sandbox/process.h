// A child process held through its pidfd: signal it, see it exit, reap it,
// and tell how it ended. No pid is ever used after the child is reaped, so
// a recycled pid can never be signalled by mistake.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "sandbox/unique_fd.h"

namespace sandbox {

struct ExitStatus {
    enum class Kind { kExited, kKilled, kDumped };
    Kind kind = Kind::kExited;
    int code = 0;             // exit code, for kExited
    int signal = 0;           // terminating signal, for kKilled and kDumped
    bool oom_killed = false;  // SIGKILL sent by the kernel's OOM killer

    bool success() const { return kind == Kind::kExited && code == 0; }
    // "exited with code 3", "killed by signal 9 (Killed)", "killed by the OOM killer",
    // "dumped core on signal 6 (Aborted)".
    std::string describe() const;
};

// Decodes waitid()'s siginfo. `oom_kills` is how many oom_kill events the
// child's cgroup gained while it ran (memory.events): a SIGKILL death with
// oom_kills > 0 is reported as an OOM kill.
ExitStatus decode_exit(const siginfo_t& info, std::uint64_t oom_kills = 0);

// Who a process runs as: its real and effective uid and gid.
struct ProcessIds {
    std::uint32_t uid = 0;
    std::uint32_t euid = 0;
    std::uint32_t gid = 0;
    std::uint32_t egid = 0;
};

// From the Uid: and Gid: lines of /proc/<pid>/status (host ids, as the
// launcher's user namespace sees them). nullopt, with `problem` saying why,
// when the file cannot be read (the process is gone) or has no such lines.
// The pid may be recycled: read it while holding a pidfd and check that the
// process is still alive afterwards.
std::optional<ProcessIds> read_process_ids(pid_t pid, std::string& problem);

// The PPid: of /proc/<pid>/status; 0 if it cannot be read (the process is gone).
pid_t read_parent_pid(pid_t pid);

class Process {
public:
    Process() = default;
    Process(pid_t pid, UniqueFd pidfd) noexcept : pid_(pid), pidfd_(std::move(pidfd)) {}
    Process(Process&&) noexcept = default;
    Process& operator=(Process&& other) noexcept;
    Process(const Process&) = delete;
    Process& operator=(const Process&) = delete;
    // A child that was never reaped is killed and reaped: no zombie, no orphan.
    ~Process();

    pid_t pid() const noexcept { return pid_; }
    // Readable (POLLIN) once the process has exited; for the caller's poll loop.
    int pidfd() const noexcept { return pidfd_.get(); }
    bool valid() const noexcept { return static_cast<bool>(pidfd_); }
    bool reaped() const noexcept { return reaped_; }

    // pidfd_send_signal. Returns false if the process has already exited
    // (ESRCH); throws SysError on any other failure.
    bool send_signal(int sig) const;

    // True once the process has exited (pidfd readable); does not reap.
    bool has_exited() const;
    // Waits up to `timeout` for the exit; does not reap.
    bool wait_exit(std::chrono::milliseconds timeout) const;

    // Reaps with waitid(P_PIDFD, WNOHANG): nullopt while still running.
    std::optional<siginfo_t> try_reap();
    // Blocks until exit and reaps.
    siginfo_t reap();

    // Adopts an existing process that is not our child (e.g. found again
    // after a restart): it can be signalled and watched, but not reaped.
    static Process open(pid_t pid);

    // Forgets the process without signalling it (closes the pidfd): for a
    // handle that turned out to point at someone else's process.
    void detach() noexcept {
        pidfd_.reset();
        reaped_ = true;
    }

private:
    void kill_and_reap() noexcept;

    pid_t pid_ = -1;
    UniqueFd pidfd_;
    bool reaped_ = false;
};

}  // namespace sandbox
