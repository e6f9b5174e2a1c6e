// Fuzz target: the text state records of launchers before issue 11
// (legacy::parse, then the conversion to a KeyRecord done on upgrade).
// std::invalid_argument is parse's documented failure; encode's
// std::invalid_argument (a record that could not be saved) is accepted too,
// since the upgrade reports it for that key.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_support.h"
#include "state/legacy_record.h"
#include "state/record_file.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    (void)launcher::legacy::looks_like(text);
    launcher::legacy::ProcessRecord old;
    try {
        old = launcher::legacy::parse(text);
    } catch (const std::invalid_argument&) {
        return 0;
    }
    fuzz::check(old.pid > 0, "non-positive pid accepted");
    const launcher::legacy::KeyRecord record = launcher::legacy::to_key_record(old);
    try {
        (void)launcher::record_file::encode(record);
    } catch (const std::invalid_argument&) {
    }
    return 0;
}
