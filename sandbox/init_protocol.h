// The contract between spawn() and pattern-launcher-init, the small PID 1
// that runs a pattern in its own pid namespace (sandbox/init/).
//
// spawn() execs the init (from an fd, so it need not be visible in the
// pattern's file view) with
//   argv = { "pattern-launcher-init", ERROR_FD, STATUS_FD, EXECUTABLE, ARGV0, ARGS... }
// where ERROR_FD is the write end of spawn()'s error pipe (the init marks it
// close-on-exec and closes its own copy once it has forked, so the parent
// reads EOF exactly when the pattern itself has exec'd) and STATUS_FD is a
// connected SOCK_DGRAM socket (or -1) on which the init reports how the
// pattern ended just before it exits itself. Both are decimal fd numbers.
//
// Header-only and dependency-free: the init is linked statically and
// includes nothing else of the sandbox library.
#pragma once

#include <cstdint>

namespace sandbox::init_protocol {

// Written to ERROR_FD as a ChildFailure {step, errno}: the values continue
// spawn()'s ChildStep numbering (sandbox/spawn.h).
constexpr int kStepInitSetup = 100;  // bad argv, fcntl on the fds
constexpr int kStepInitFork = 101;   // fork of the pattern failed
constexpr int kStepInitExec = 102;   // execve of the pattern failed (in the forked child)

constexpr std::uint32_t kReportMagic = 0x31494c50;  // "PLI1" little-endian

// One datagram on STATUS_FD: how the init's main child (the pattern) ended,
// as waitid() reports it.
struct ExitReport {
    std::uint32_t magic = kReportMagic;
    std::int32_t code = 0;    // CLD_EXITED, CLD_KILLED or CLD_DUMPED
    std::int32_t status = 0;  // the exit code, or the signal number
};

// The init exits with the pattern's exit code, or with 128 + the signal
// that killed it: PID 1 of a pid namespace cannot be killed by a signal it
// sends itself. The report above is what keeps the cause exact.
constexpr int kSignalExitBase = 128;

}  // namespace sandbox::init_protocol
