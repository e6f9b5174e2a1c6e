// The launcher's end of pattern-launcher-init's exit reports: one datagram
// socket pair serves every init. Each init sends, just before it exits, how
// its pattern ended (init_protocol.h); the kernel stamps the sender's pid
// (SCM_CREDENTIALS, translated into our pid namespace), so a report is
// matched to the init we spawned, never to what a datagram claims.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <map>
#include <optional>

#include "sandbox/unique_fd.h"

namespace sandbox {

class InitReports {
public:
    InitReports();  // throws SysError
    // For SpawnSpec::init.status_fd.
    int sender_fd() const noexcept { return sender_.get(); }

    // The init `pid` reported how its pattern ended: a siginfo as waitid()
    // would have given it for the pattern itself, for decode_exit(). Reads
    // whatever is queued first. nullopt: no report (the init itself was
    // killed, e.g. by cgroup.kill, or was started by another launcher).
    std::optional<siginfo_t> take(pid_t pid);

private:
    void drain();
    UniqueFd sender_;
    UniqueFd receiver_;
    std::map<pid_t, siginfo_t> reports_;
};

}  // namespace sandbox
