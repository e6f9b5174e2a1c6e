// Landlock scoping: a ruleset the child applies to itself between clone and
// exec, so that the pattern cannot signal processes outside its domain nor
// connect to abstract unix sockets created outside it.
//
// Built in the parent (make_landlock_ruleset); the child only calls
//   syscall(kSysLandlockRestrictSelf, plan.ruleset.get(), 0)
// after PR_SET_NO_NEW_PRIVS and before seccomp (the filter need not allow it).
//
// Not covered (kernel 6.18, ABI 7): connecting to a *pathname* unix socket;
// mask such sockets in the mount view and check peer credentials.
//
// Debian 12's linux-libc-dev stops at ABI 2 and glibc 2.36 has no wrappers,
// so the syscall numbers and the ABI 4/6 parts of the UAPI are defined here,
// under names that cannot clash with a newer <linux/landlock.h>.
#pragma once

#include <cstdint>
#include <string>

#include "sandbox/unique_fd.h"

namespace sandbox {

// Syscall numbers from the unified table (Linux 5.13+): the same on x86_64,
// aarch64, arm, riscv, s390x, ppc64 and i386 (alpha alone offsets them).
constexpr long kSysLandlockCreateRuleset = 444;
constexpr long kSysLandlockAddRule = 445;
constexpr long kSysLandlockRestrictSelf = 446;

// struct landlock_ruleset_attr as of ABI 6 (Linux 6.12). The kernel copies
// min(size, its own size) and requires any extra tail to be zero, so passing
// this size to an older kernel is fine as long as the newer fields are 0.
struct LandlockRulesetAttr {
    std::uint64_t handled_access_fs = 0;
    std::uint64_t handled_access_net = 0;  // ABI 4 (Linux 6.7)
    std::uint64_t scoped = 0;              // ABI 6 (Linux 6.12)
};

// landlock_create_ruleset(NULL, 0, this) returns the ABI version.
constexpr std::uint32_t kLandlockCreateRulesetVersion = 1U << 0;
// Values of LandlockRulesetAttr::scoped (ABI 6).
constexpr std::uint64_t kLandlockScopeAbstractUnixSocket = 1ULL << 0;
constexpr std::uint64_t kLandlockScopeSignal = 1ULL << 1;
// The first ABI with `scoped`.
constexpr int kLandlockScopedAbi = 6;

// The Landlock ABI version of the running kernel (0: none/disabled), probed once and cached.
int landlock_abi() noexcept;

struct LandlockScopes {
    bool signal = false;
    bool abstract_unix_socket = false;
};

// What a ruleset made by make_landlock_ruleset() enforces, for reports
// ("landlock ABI 7: signal, abstract-unix-socket scoped" /
// "landlock: not available (ABI 0)").
struct LandlockPlan {
    int abi = 0;
    LandlockScopes scopes;
    UniqueFd ruleset;
    std::string describe() const;
    bool active() const { return static_cast<bool>(ruleset); }
};

// A ruleset fd (O_CLOEXEC) that scopes signals and abstract unix sockets where
// the kernel supports it (ABI >= 6). Best effort: on older kernels returns a
// plan with no ruleset and abi set. Throws SysError only on an unexpected
// failure of a supported kernel.
LandlockPlan make_landlock_ruleset();

}  // namespace sandbox
