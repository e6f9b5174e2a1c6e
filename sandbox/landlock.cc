#include "sandbox/landlock.h"

#include <errno.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstddef>

#include "sandbox/error.h"

namespace sandbox {

// Where the system headers know the numbers, they must agree with ours.
#ifdef __NR_landlock_create_ruleset
static_assert(__NR_landlock_create_ruleset == kSysLandlockCreateRuleset);
#endif
#ifdef __NR_landlock_add_rule
static_assert(__NR_landlock_add_rule == kSysLandlockAddRule);
#endif
#ifdef __NR_landlock_restrict_self
static_assert(__NR_landlock_restrict_self == kSysLandlockRestrictSelf);
#endif
static_assert(sizeof(LandlockRulesetAttr) == 24, "landlock_ruleset_attr of ABI 6 is 3 x u64");

namespace {

int probe_abi() noexcept {
    const long rc =
        syscall(kSysLandlockCreateRuleset, nullptr, std::size_t{0}, kLandlockCreateRulesetVersion);
    // ENOSYS: kernel built without Landlock (or older than 5.13); EOPNOTSUPP:
    // built in but not enabled in the lsm= list. Either way: nothing to use.
    if (rc < 0) return 0;
    return static_cast<int>(rc);
}

}  // namespace

int landlock_abi() noexcept {
    static const int abi = probe_abi();
    return abi;
}

std::string LandlockPlan::describe() const {
    if (abi <= 0) return "landlock: not available (ABI 0)";
    const std::string prefix = "landlock ABI " + std::to_string(abi) + ": ";
    std::string scoped;
    if (active() && scopes.signal) scoped = "signal";
    if (active() && scopes.abstract_unix_socket) {
        if (!scoped.empty()) scoped += ", ";
        scoped += "abstract-unix-socket";
    }
    if (scoped.empty()) {
        return prefix + "nothing scoped (signal and abstract-unix-socket scoping need ABI " +
               std::to_string(kLandlockScopedAbi) + ")";
    }
    return prefix + scoped + " scoped";
}

LandlockPlan make_landlock_ruleset() {
    LandlockPlan plan;
    plan.abi = landlock_abi();
    // Scopes arrived in ABI 6 (Linux 6.12). Earlier ABIs could only restrict
    // the file system and TCP ports, which the launcher does not ask for here.
    if (plan.abi < kLandlockScopedAbi) return plan;

    // No handled_access_fs/net: the ruleset restricts nothing but the scopes
    // (accepted since ABI 6: a ruleset needs at least one of the three).
    // ABI 6's erratum 2 (threads of one process in different domains could
    // not signal each other, fixed in 6.15) does not matter here: the ruleset
    // is applied by a single-threaded child before exec.
    LandlockRulesetAttr attr;
    attr.scoped = kLandlockScopeSignal | kLandlockScopeAbstractUnixSocket;
    const long fd = syscall(kSysLandlockCreateRuleset, &attr, sizeof attr, std::uint32_t{0});
    if (fd < 0) {
        throw_sys_error(errno,
                        "landlock_create_ruleset (scoped: signal, abstract unix socket) on ABI " +
                            std::to_string(plan.abi));
    }
    // The kernel always opens ruleset fds with O_CLOEXEC, so exec closes it
    // in the child after landlock_restrict_self.
    plan.ruleset.reset(static_cast<int>(fd));
    plan.scopes.signal = true;
    plan.scopes.abstract_unix_socket = true;
    return plan;
}

}  // namespace sandbox
