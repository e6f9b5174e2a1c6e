// Internal to src/config: reading egress lists and the launcher config's
// `egress:` section from YAML (egress.h has the values and the parser of
// one destination).
#pragma once

#include <filesystem>
#include <vector>

#include "config/egress.h"
#include "config/yaml_strict.h"

namespace launcher {

// A list of destination strings (manifest `sandbox.egress`, a tenant's list
// in the config). Throws FileError at the entry's line for an entry
// parse_egress_destination() refuses, an entry that is not a string (with
// a hint to quote "[...]" values, which YAML reads as lists), a
// destination listed twice, or an empty list (it would open nothing).
std::vector<EgressDestination> to_egress_list(const std::filesystem::path& file,
                                              const yaml_strict::Field& field);

// The config's `egress:` section: pool, resolve_interval, tenants.
// Throws FileError.
EgressSettings to_egress_settings(const std::filesystem::path& file,
                                  const yaml_strict::Field& field);

}  // namespace launcher
