// The seccomp profiles shipped in sandbox/profiles/, compiled into the library
// by embed_profiles.cmake. Use seccomp.h's builtin_profile_text() instead of
// reading this table directly.
#pragma once

#include <cstddef>

namespace sandbox::detail {

struct BuiltinProfile {
    const char* name;  // file name without ".profile"
    const char* text;  // the file's contents
};

extern const BuiltinProfile kBuiltinProfiles[];
extern const std::size_t kBuiltinProfileCount;

}  // namespace sandbox::detail
