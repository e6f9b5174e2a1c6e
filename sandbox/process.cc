#include "sandbox/process.h"

#include <poll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "sandbox/error.h"

namespace sandbox {

std::string ExitStatus::describe() const {
    auto sig = [](int s) { return std::to_string(s) + " (" + ::strsignal(s) + ")"; };
    if (oom_killed) return "killed by the OOM killer";
    switch (kind) {
        case Kind::kExited:
            return "exited with code " + std::to_string(code);
        case Kind::kKilled:
            return "killed by signal " + sig(signal);
        case Kind::kDumped:
            return "dumped core on signal " + sig(signal);
    }
    return "ended";
}

ExitStatus decode_exit(const siginfo_t& info, std::uint64_t oom_kills) {
    ExitStatus status;
    switch (info.si_code) {
        case CLD_EXITED:
            status.kind = ExitStatus::Kind::kExited;
            status.code = info.si_status;
            break;
        case CLD_DUMPED:
            status.kind = ExitStatus::Kind::kDumped;
            status.signal = info.si_status;
            break;
        default:  // CLD_KILLED
            status.kind = ExitStatus::Kind::kKilled;
            status.signal = info.si_status;
            break;
    }
    // The OOM killer only ever sends SIGKILL; memory.events tells it apart
    // from a SIGKILL sent by someone else.
    status.oom_killed =
        status.kind == ExitStatus::Kind::kKilled && status.signal == SIGKILL && oom_kills > 0;
    return status;
}

Process& Process::operator=(Process&& other) noexcept {
    if (this != &other) {
        kill_and_reap();
        pid_ = other.pid_;
        pidfd_ = std::move(other.pidfd_);
        reaped_ = other.reaped_;
    }
    return *this;
}

Process::~Process() {
    kill_and_reap();
}

void Process::kill_and_reap() noexcept {
    if (!pidfd_ || reaped_) return;
    ::syscall(SYS_pidfd_send_signal, pidfd_.get(), SIGKILL, nullptr, 0);
    siginfo_t info{};
    // ECHILD: not our child (opened with Process::open); nothing to reap.
    while (::waitid(P_PIDFD, static_cast<id_t>(pidfd_.get()), &info, WEXITED) != 0 &&
           errno == EINTR) {
    }
    reaped_ = true;
}

bool Process::send_signal(int sig) const {
    if (reaped_) return false;
    if (::syscall(SYS_pidfd_send_signal, pidfd_.get(), sig, nullptr, 0) == 0) return true;
    if (errno == ESRCH) return false;
    throw_sys_error(errno, "pidfd_send_signal to pid " + std::to_string(pid_) + " with signal " +
                               std::to_string(sig));
}

bool Process::has_exited() const {
    return wait_exit(std::chrono::milliseconds(0));
}

bool Process::wait_exit(std::chrono::milliseconds timeout) const {
    if (reaped_) return true;
    pollfd p{pidfd_.get(), POLLIN, 0};
    for (;;) {
        int r = ::poll(&p, 1, static_cast<int>(timeout.count()));
        if (r >= 0) return r > 0;
        if (errno != EINTR) throw_sys_error(errno, "poll pidfd of pid " + std::to_string(pid_));
    }
}

std::optional<siginfo_t> Process::try_reap() {
    siginfo_t info{};
    if (::waitid(P_PIDFD, static_cast<id_t>(pidfd_.get()), &info, WEXITED | WNOHANG) != 0) {
        throw_sys_error(errno, "waitid on pidfd of pid " + std::to_string(pid_));
    }
    if (info.si_pid == 0) return std::nullopt;  // still running
    reaped_ = true;
    return info;
}

siginfo_t Process::reap() {
    siginfo_t info{};
    while (::waitid(P_PIDFD, static_cast<id_t>(pidfd_.get()), &info, WEXITED) != 0) {
        if (errno != EINTR)
            throw_sys_error(errno, "waitid on pidfd of pid " + std::to_string(pid_));
    }
    reaped_ = true;
    return info;
}

Process Process::open(pid_t pid) {
    int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    if (fd < 0) throw_sys_error(errno, "pidfd_open of pid " + std::to_string(pid));
    return Process(pid, UniqueFd(fd));
}

}  // namespace sandbox
