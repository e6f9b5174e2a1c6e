#include "sandbox/limits.h"

#include <array>
#include <charconv>
#include <cmath>
#include <limits>

#include "sandbox/error.h"

namespace sandbox {
namespace {

struct Suffix {
    std::string_view name;
    std::uint64_t multiplier;
};

constexpr std::uint64_t kKi = 1024;
constexpr std::array<Suffix, 13> kSuffixes{{
    {"", 1},
    {"Ki", kKi},
    {"Mi", kKi* kKi},
    {"Gi", kKi* kKi* kKi},
    {"Ti", kKi* kKi* kKi* kKi},
    {"Pi", kKi* kKi* kKi* kKi* kKi},
    {"Ei", kKi* kKi* kKi* kKi* kKi* kKi},
    {"K", 1000ULL},
    {"M", 1000ULL * 1000},
    {"G", 1000ULL * 1000 * 1000},
    {"T", 1000ULL * 1000 * 1000 * 1000},
    {"P", 1000ULL * 1000 * 1000 * 1000 * 1000},
    {"E", 1000ULL * 1000 * 1000 * 1000 * 1000 * 1000},
}};

[[noreturn]] void bad_size(std::string_view text, std::string_view why) {
    throw ConfigError("invalid size '" + std::string(text) + "': " + std::string(why));
}

}  // namespace

std::uint64_t parse_size(std::string_view text) {
    if (text.empty()) bad_size(text, "empty");
    if (text.front() == '-') bad_size(text, "negative sizes are not allowed");
    // from_chars accepts neither '+' nor whitespace, which is what we want.
    std::uint64_t number = 0;
    const char* end = text.data() + text.size();
    auto [rest, ec] = std::from_chars(text.data(), end, number);
    if (rest == text.data())
        bad_size(text,
                 "expected a whole number of bytes, optionally with a suffix such as Mi or G");
    if (ec == std::errc::result_out_of_range) bad_size(text, "number too large");
    std::string_view suffix(rest, static_cast<std::size_t>(end - rest));
    for (const Suffix& s : kSuffixes) {
        if (s.name != suffix) continue;
        if (number > std::numeric_limits<std::uint64_t>::max() / s.multiplier) {
            bad_size(text, "overflows 64 bits");
        }
        return number * s.multiplier;
    }
    bad_size(text, "unknown suffix '" + std::string(suffix) +
                       "' (use Ki, Mi, Gi, Ti, Pi, Ei or K, M, G, T, P, E)");
}

std::string CpuMax::to_string() const {
    return std::to_string(quota_us) + " " + std::to_string(period_us);
}

CpuMax cpu_max_from_cpus(double cpus, std::uint64_t period_us) {
    // The kernel accepts periods of 1 ms .. 1 s and quotas of at least 1 ms.
    constexpr std::uint64_t kMinQuotaUs = 1000;
    constexpr double kMaxQuotaUs =
        static_cast<double>(std::numeric_limits<std::int64_t>::max() / 1000);
    if (period_us < 1000 || period_us > 1000000) {
        throw ConfigError("cpu.max period " + std::to_string(period_us) +
                          " us is outside the kernel's range 1000..1000000");
    }
    if (!std::isfinite(cpus) || cpus <= 0) {
        throw ConfigError("CPU limit must be a positive number, got " + std::to_string(cpus));
    }
    double quota = std::round(cpus * static_cast<double>(period_us));
    if (quota > kMaxQuotaUs)
        throw ConfigError("CPU limit " + std::to_string(cpus) + " is too large");
    auto quota_us = static_cast<std::uint64_t>(quota);
    if (quota_us < kMinQuotaUs) {
        throw ConfigError(
            "CPU limit " + std::to_string(cpus) + " is below the kernel's minimum of " +
            std::to_string(static_cast<double>(kMinQuotaUs) / static_cast<double>(period_us)) +
            " CPU for a " + std::to_string(period_us) + " us period");
    }
    return CpuMax{quota_us, period_us};
}

}  // namespace sandbox
