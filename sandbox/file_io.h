// Small whole-file helpers for kernel interface files (cgroupfs, procfs).
// Internal to the sandbox library.
// Paths below the cgroup2 mount are looked up from its root (see
// cgroup_lookup.h for why).
#pragma once

#include <string>
#include <string_view>

namespace sandbox::detail {

// Reads a whole (small) file; throws SysError naming the path.
std::string read_file(const std::string& path);

// Writes `value` with a single write(2), as kernfs files require; throws
// SysError "write <path> ('<value>')" on failure.
void write_file(const std::string& path, std::string_view value);

// Same as write_file but returns the errno (0 on success) instead of throwing.
int try_write_file(const std::string& path, std::string_view value) noexcept;

// The value of `key` in a flat-keyed file such as cgroup.events or
// memory.events ("populated 1\nfrozen 0\n"); nullopt-like -1 when absent.
long long read_keyed_value(std::string_view text, std::string_view key) noexcept;

}  // namespace sandbox::detail
