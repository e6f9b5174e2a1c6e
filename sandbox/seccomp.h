// Seccomp profiles: a small text format, parsed and compiled in the parent to
// a classic-BPF program that the child installs with one raw syscall.
//
// Profile format (sandbox/profiles/*.profile), one statement per line, '#'
// starts a comment:
//   default <action>                 exactly once: what every unlisted syscall gets
//   <action>: name name ...          rule lines; names may repeat across lines
//   <action>: name if flags & FLAG|FLAG... [else <action>]
//                                    a conditional rule: calls of `name` (clone or
//                                    unshare only) whose flags argument has ANY of
//                                    the FLAGs set get <action>; its other calls get
//                                    the `else` action, or the default without one
// where <action> is one of
//   allow | log | kill | errno <ERRNAME>   (ERRNAME: EPERM, ENOSYS, EACCES, ...)
// and FLAG a namespace flag: CLONE_NEWNS CLONE_NEWUTS CLONE_NEWIPC CLONE_NEWUSER
// CLONE_NEWPID CLONE_NEWNET CLONE_NEWCGROUP, and CLONE_NEWTIME for unshare only
// (for clone its bit is in the exit-signal byte). Spaces around '&' and '|' are
// optional. The built-in profiles use it to answer EPERM for
//   errno EPERM: clone if flags & CLONE_NEWNS|CLONE_NEWUTS|...
// `kill` is SCMP_ACT_KILL_PROCESS (the whole process, never one thread).
// An unknown syscall name, an unknown action or errno name, a duplicate
// `default`, or a syscall named twice with different actions is an error that
// names the profile and the line. So are, for conditions: a syscall other than
// clone/unshare, more than one name before `if`, anything but `flags &`, an
// empty or malformed flag list, an unknown or repeated flag, an `else` equal to
// the rule's action, a second conditional line for the same syscall, and a
// syscall named both with and without a condition unless both lines give the
// same action and the conditional one has no `else` (then the unconditional
// rule covers every call and the condition is dropped).
#pragma once

#include <linux/filter.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sandbox {

// Raised for a profile that does not parse; what() is "<source>:<line>: <message>".
class ProfileError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

enum class SeccompActionKind { kAllow, kLog, kKillProcess, kErrno };

struct SeccompAction {
    SeccompActionKind kind = SeccompActionKind::kAllow;
    int errno_value = 0;  // only for kErrno
    bool operator==(const SeccompAction&) const = default;
};

// `if flags & A|B|...`: the rule's action applies to calls whose flags
// argument (argument 0 of clone and unshare) has ANY of these bits set.
struct SeccompFlagsCondition {
    std::vector<std::string> flag_names;  // as written, e.g. "CLONE_NEWUSER"
    std::uint64_t any_of = 0;             // the union of their bits
    // `else <action>`: what the calls without any of these bits get;
    // nullopt means the profile's default action.
    std::optional<SeccompAction> otherwise;
    bool operator==(const SeccompFlagsCondition&) const = default;
};

struct SeccompRule {
    std::string syscall;  // as libseccomp names it, e.g. "kexec_load"
    SeccompAction action;
    int line = 0;  // where the profile names it, for error messages
    std::optional<SeccompFlagsCondition> condition;  // nullopt: every call
};

struct SeccompProfile {
    std::string source;  // file name or "builtin:<name>", used in messages
    SeccompAction default_action;
    std::vector<SeccompRule> rules;
};

// A compiled filter for the native architecture. The child installs it with
// seccomp(SECCOMP_SET_MODE_FILTER, 0, &program.fprog()) after no_new_privs.
class BpfProgram {
public:
    BpfProgram() = default;
    explicit BpfProgram(std::vector<sock_filter> instructions)
        : instructions_(std::move(instructions)) {}
    bool empty() const noexcept { return instructions_.empty(); }
    std::size_t size() const noexcept { return instructions_.size(); }
    // Points into this object: keep the BpfProgram alive while it is used.
    sock_fprog fprog() const noexcept;

private:
    std::vector<sock_filter> instructions_;
};

// Parses profile text; throws ProfileError ("<source>:<line>: message").
SeccompProfile parse_seccomp_profile(std::string_view text, std::string_view source);

// Compiles with libseccomp (seccomp_export_bpf); throws ProfileError or SysError.
BpfProgram compile_seccomp_profile(const SeccompProfile& profile);

// Names of the profiles compiled into the library ("default", "strict", ...).
std::vector<std::string> builtin_profile_names();

// The text of a built-in profile; throws ConfigError naming the known profiles
// when there is none by that name.
std::string_view builtin_profile_text(std::string_view name);

// parse + compile of a built-in profile.
BpfProgram compile_builtin_profile(std::string_view name);

}  // namespace sandbox
