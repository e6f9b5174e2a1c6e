// Seccomp profiles: a small text format, parsed and compiled in the parent to
// a classic-BPF program that the child installs with one raw syscall.
//
// Profile format (sandbox/profiles/*.profile), one statement per line, '#'
// starts a comment:
//   default <action>                 exactly once: what every unlisted syscall gets
//   <action>: name name ...          rule lines; names may repeat across lines
// where <action> is one of
//   allow | log | kill | errno <ERRNAME>   (ERRNAME: EPERM, ENOSYS, EACCES, ...)
// `kill` is SCMP_ACT_KILL_PROCESS (the whole process, never one thread).
// An unknown syscall name, an unknown action or errno name, a duplicate
// `default`, or a syscall named twice with different actions is an error that
// names the profile and the line.
#pragma once

#include <linux/filter.h>

#include <cstddef>
#include <cstdint>
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

struct SeccompRule {
    std::string syscall;  // as libseccomp names it, e.g. "kexec_load"
    SeccompAction action;
    int line = 0;  // where the profile names it, for error messages
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
