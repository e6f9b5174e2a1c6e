// Resource limits of one cgroup, and the pure conversions behind them
// (sizes such as "512Mi", CPU counts such as 0.5 -> "50000 100000").
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sandbox {

// Parses a byte size: a non-negative integer with an optional suffix.
//   binary: Ki Mi Gi Ti Pi Ei (powers of 1024)   decimal: K M G T P E (powers of 1000)
// "max" is not accepted here: an absent limit means no limit.
// Throws ConfigError ("invalid size '12Mx': unknown suffix 'Mx'", overflow, sign...).
std::uint64_t parse_size(std::string_view text);

// A cpu.max value: the group may run `quota_us` every `period_us`.
struct CpuMax {
    std::uint64_t quota_us = 0;
    std::uint64_t period_us = 0;
    std::string to_string() const;  // "50000 100000"
    bool operator==(const CpuMax&) const = default;
};

// CPU count (0.5 = half a CPU, 2 = two CPUs) to cpu.max with the given period.
// The quota is rounded to the nearest microsecond and must come out at
// least 1000 us, the kernel's minimum. Throws ConfigError for a count that is
// not finite and positive, or too small or too large for the period.
CpuMax cpu_max_from_cpus(double cpus, std::uint64_t period_us = 100000);

// The limits a caller may ask of one cgroup. Unset means "leave the kernel
// default" (which is no limit).
struct CgroupLimits {
    std::optional<std::uint64_t> memory_max;       // memory.max, bytes
    std::optional<std::uint64_t> memory_swap_max;  // memory.swap.max, bytes
    std::optional<CpuMax> cpu_max;                 // cpu.max
    std::optional<std::uint32_t> cpu_weight;       // cpu.weight, 1..10000
    std::optional<std::uint64_t> pids_max;         // pids.max
    bool empty() const {
        return !memory_max && !memory_swap_max && !cpu_max && !cpu_weight && !pids_max;
    }
};

}  // namespace sandbox
