// Fuzz target: the launcher configuration (load_config: strict YAML, every
// section, ports, ranges, quotas, paths resolved against the file's
// directory). FileError is the documented failure.
#include <cstddef>
#include <cstdint>

#include "config/config.h"
#include "fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const std::filesystem::path file = fuzz::scratch_dir() / "pattern-launcher.yaml";
    fuzz::write_file(file, data, size);
    try {
        const launcher::LauncherConfig config = launcher::load_config(file);
        fuzz::check(config.grpc_port >= 0 && config.grpc_port <= 65535, "grpc_port out of range");
        fuzz::check(config.pattern_ports.first <= config.pattern_ports.last,
                    "empty pattern_ports accepted");
    } catch (const launcher::FileError&) {
    }
    return 0;
}
