// Fuzz target: seccomp profile text (sandbox::parse_seccomp_profile), and
// for every profile that parses, its compilation with libseccomp
// (compile_seccomp_profile: in process, nothing is installed). ProfileError
// is the documented failure of both, SysError a libseccomp failure of the
// second; anything else is a finding.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_support.h"
#include "sandbox/error.h"
#include "sandbox/seccomp.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    sandbox::SeccompProfile profile;
    try {
        profile = sandbox::parse_seccomp_profile(text, "fuzz");
    } catch (const sandbox::ProfileError&) {
        return 0;
    }
    try {
        const sandbox::BpfProgram program = sandbox::compile_seccomp_profile(profile);
        fuzz::check(!program.empty(), "a profile compiled to an empty program");
    } catch (const sandbox::ProfileError&) {
    } catch (const sandbox::SysError&) {
    }
    return 0;
}
