// Fuzz target: byte sizes ("512Mi", "1G": sandbox::parse_size) and CPU
// counts (cpu_max_from_cpus, fed the input's first 8 bytes as a double and
// the next 4 as a period). ConfigError is the documented failure of both.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "fuzz_support.h"
#include "sandbox/error.h"
#include "sandbox/limits.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    try {
        const std::uint64_t bytes = sandbox::parse_size(text);
        fuzz::check(sandbox::parse_size(std::to_string(bytes)) == bytes, "size round trip",
                    std::string(text));
    } catch (const sandbox::ConfigError&) {
    }
    if (size >= 12) {
        double cpus = 0;
        std::uint32_t period = 0;
        std::memcpy(&cpus, data, sizeof cpus);
        std::memcpy(&period, data + 8, sizeof period);
        try {
            const sandbox::CpuMax max = sandbox::cpu_max_from_cpus(cpus, period);
            fuzz::check(max.quota_us >= 1000 && max.period_us == period, "cpu.max out of range",
                        max.to_string());
        } catch (const sandbox::ConfigError&) {
        }
    }
    return 0;
}
