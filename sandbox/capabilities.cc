#include "sandbox/capabilities.h"

#include <sys/capability.h>

#include <algorithm>
#include <cctype>
#include <charconv>

#include "sandbox/error.h"
#include "sandbox/file_io.h"

namespace sandbox {

CapabilityMask parse_capabilities(const std::vector<std::string>& names) {
    CapabilityMask mask = 0;
    for (const std::string& given : names) {
        std::string name = given;
        std::transform(name.begin(), name.end(), name.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        if (!name.starts_with("cap_")) name = "cap_" + name;
        cap_value_t value = 0;
        if (cap_from_name(name.c_str(), &value) != 0 || value < 0 || value > 63) {
            throw ConfigError("unknown capability '" + given + "'");
        }
        mask |= CapabilityMask{1} << value;
    }
    return mask;
}

std::string capability_names(CapabilityMask mask) {
    std::string out;
    for (int cap = 0; cap < 64; ++cap) {
        if ((mask & (CapabilityMask{1} << cap)) == 0) continue;
        char* name = cap_to_name(cap);
        if (!out.empty()) out += ',';
        out += name ? name : std::to_string(cap);
        cap_free(name);
    }
    return out;
}

int last_capability() {
    static const int last = [] {
        std::string text = detail::read_file("/proc/sys/kernel/cap_last_cap");
        int value = 0;
        if (std::from_chars(text.data(), text.data() + text.size(), value).ec != std::errc()) {
            throw ConfigError("cannot parse /proc/sys/kernel/cap_last_cap: '" + text + "'");
        }
        return value;
    }();
    return last;
}

}  // namespace sandbox
