#include "sandbox/process.h"

#include <cstdlib>

#include <poll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <string_view>

#include "sandbox/error.h"
#include "sandbox/file_io.h"

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

namespace {

// "Uid:\t0\t0\t0\t0": the first two numbers (real, effective) after the colon.
bool parse_id_pair(std::string_view line, std::uint32_t& real, std::uint32_t& effective) {
    std::uint32_t* out[2] = {&real, &effective};
    std::size_t pos = line.find(':') + 1;
    for (std::uint32_t* value : out) {
        pos = line.find_first_not_of(" \t", pos);
        if (pos == std::string_view::npos) return false;
        auto [end, ec] = std::from_chars(line.data() + pos, line.data() + line.size(), *value);
        if (ec != std::errc()) return false;
        pos = static_cast<std::size_t>(end - line.data());
    }
    return true;
}

}  // namespace

std::optional<ProcessIds> read_process_ids(pid_t pid, std::string& problem) {
    const std::string path = "/proc/" + std::to_string(pid) + "/status";
    std::string text;
    try {
        text = detail::read_file(path);
    } catch (const SysError& e) {
        problem = "cannot read " + path + ": " + std::strerror(e.code());
        return std::nullopt;
    }
    ProcessIds ids;
    bool have_uid = false;
    bool have_gid = false;
    std::size_t pos = 0;
    while (pos < text.size() && !(have_uid && have_gid)) {
        std::size_t eol = text.find('\n', pos);
        if (eol == std::string::npos) eol = text.size();
        const std::string_view line(text.data() + pos, eol - pos);
        pos = eol + 1;
        const bool uid = line.starts_with("Uid:");
        if (!uid && !line.starts_with("Gid:")) continue;
        const bool parsed =
            uid ? parse_id_pair(line, ids.uid, ids.euid) : parse_id_pair(line, ids.gid, ids.egid);
        if (!parsed) {
            problem = "unreadable line '" + std::string(line) + "' in " + path;
            return std::nullopt;
        }
        (uid ? have_uid : have_gid) = true;
    }
    if (!have_uid || !have_gid) {
        problem = "no Uid: and Gid: lines in " + path;
        return std::nullopt;
    }
    return ids;
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

pid_t read_parent_pid(pid_t pid) {
    std::string text;
    try {
        text = detail::read_file("/proc/" + std::to_string(pid) + "/status");
    } catch (const SysError&) {
        return 0;
    }
    const std::size_t at = text.find("\nPPid:");
    if (at == std::string::npos) return 0;
    return static_cast<pid_t>(std::strtol(text.c_str() + at + 6, nullptr, 10));
}

}  // namespace sandbox
