// Internal to src/config: the `sandbox:` section of a manifest, parsed on
// its own (manifest_sandbox.cc) to keep manifest.cc to the top-level keys.
#pragma once

#include <filesystem>

#include "config/manifest.h"
#include "config/yaml_strict.h"

namespace launcher::manifest_detail {

// The `sandbox` section at `field`; throws FileError. Looks up sandbox.user
// and sandbox.group in the account databases (NSS).
SandboxSettings parse_sandbox(const std::filesystem::path& file, const yaml_strict::Field& field);

}  // namespace launcher::manifest_detail
