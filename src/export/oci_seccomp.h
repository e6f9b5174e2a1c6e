// A seccomp profile of ours as the OCI runtime-spec `LinuxSeccomp` JSON that
// runc and crun load (a Kubernetes `Localhost` seccompProfile), meaning what
// compile_seccomp_profile means: the same syscalls, actions and errnos, and
// clone/unshare flag conditions as argument rules. Pure: nothing is loaded.
//
// The mapping (docs/seccomp.md, "Exported as OCI JSON"):
//   default <action>        -> defaultAction (+ defaultErrnoRet for errno)
//   allow | log | kill      -> SCMP_ACT_ALLOW | SCMP_ACT_LOG | SCMP_ACT_KILL_PROCESS
//   errno NAME              -> SCMP_ACT_ERRNO with errnoRet NAME's value
//   A: name if flags & F1|F2 [else B]
//                           -> per bit F: {index 0, value F, valueTwo F, SCMP_CMP_MASKED_EQ} -> A
//                              and, for an else B that is not the default,
//                              {index 0, value F1|F2, valueTwo 0, SCMP_CMP_MASKED_EQ} -> B
// Rules whose action is the default are left out, as the compiler does.
// `architectures` is the native one only, so syscalls of other ABIs (i386,
// x32) hit the runtime's bad-architecture action, as ours do. What the
// runtimes still do differently (they kill only the calling thread there,
// and runc answers ENOSYS for syscalls newer than any the profile names when
// the default is `kill` or an errno other than ENOSYS) is in docs/seccomp.md.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>

#include "sandbox/seccomp.h"

namespace launcher {

// The LinuxSeccomp object, in a fixed order: the same profile gives the same
// JSON. Rules are grouped by (action, args), names sorted within a group,
// groups without args first, then by action and by the args' values. Throws
// sandbox::ProfileError where the profile cannot be expressed for the native
// architecture (a clone condition on s390/s390x, which compile refuses too).
nlohmann::ordered_json oci_seccomp_profile(const sandbox::SeccompProfile& profile);

// The file text of oci_seccomp_profile: 2-space indent, trailing newline; what
// the exporter writes to <dir>/seccomp/<profile>.json.
std::string oci_seccomp_json(const sandbox::SeccompProfile& profile);

// oci_seccomp_json of a built-in profile (a manifest's `sandbox.seccomp`);
// throws sandbox::ConfigError naming the known ones for an unknown name.
std::string oci_seccomp_builtin_json(std::string_view name);

}  // namespace launcher
