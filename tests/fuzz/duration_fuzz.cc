// Fuzz target: durations ("100ms", "5s", "2m", "1h": parse_duration).
// std::invalid_argument is the documented failure; an accepted duration is
// positive, and prints back in milliseconds as the same value.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "config/manifest.h"
#include "fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    try {
        const auto ms = launcher::parse_duration(text);
        fuzz::check(ms.count() > 0, "non-positive duration accepted", std::string(text));
        fuzz::check(launcher::parse_duration(std::to_string(ms.count()) + "ms") == ms,
                    "duration round trip", std::string(text));
    } catch (const std::invalid_argument&) {
    }
    return 0;
}
