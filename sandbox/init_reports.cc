#include "sandbox/init_reports.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "sandbox/error.h"
#include "sandbox/init_protocol.h"

namespace sandbox {
namespace {

// Reports of inits that were never asked about (their launch failed after
// the spawn, say) are dropped past this many.
constexpr std::size_t kMaxUnclaimed = 4096;

}  // namespace

InitReports::InitReports() {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds) != 0) {
        throw_sys_error(errno, "create the init report socket pair");
    }
    receiver_.reset(fds[0]);
    sender_.reset(fds[1]);
    int one = 1;
    if (::setsockopt(receiver_.get(), SOL_SOCKET, SO_PASSCRED, &one, sizeof one) != 0) {
        throw_sys_error(errno, "SO_PASSCRED on the init report socket");
    }
    // The receiver never sends; the inits never receive.
    ::shutdown(receiver_.get(), SHUT_WR);
}

void InitReports::drain() {
    for (;;) {
        init_protocol::ExitReport report;
        alignas(cmsghdr) char control[CMSG_SPACE(sizeof(ucred))];
        iovec iov{&report, sizeof report};
        msghdr msg{};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control;
        msg.msg_controllen = sizeof control;
        ssize_t n = ::recvmsg(receiver_.get(), &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n < 0) return;  // EAGAIN: nothing more queued
        pid_t sender = 0;
        for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
                ucred cred{};
                std::memcpy(&cred, CMSG_DATA(c), sizeof cred);
                sender = cred.pid;
            }
        }
        if (n != static_cast<ssize_t>(sizeof report) ||
            report.magic != init_protocol::kReportMagic || sender <= 0) {
            continue;
        }
        if (reports_.size() >= kMaxUnclaimed) reports_.erase(reports_.begin());
        siginfo_t info{};
        info.si_signo = SIGCHLD;
        info.si_code = report.code;
        info.si_status = report.status;
        info.si_pid = sender;
        reports_[sender] = info;
    }
}

std::optional<siginfo_t> InitReports::take(pid_t pid) {
    drain();
    auto it = reports_.find(pid);
    if (it == reports_.end()) return std::nullopt;
    siginfo_t info = it->second;
    reports_.erase(it);
    return info;
}

}  // namespace sandbox
