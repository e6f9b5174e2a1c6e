// Internal to src/config: a mapping keyed by namespace id (the config's
// namespace_quotas and egress.tenants). Its keys are free-form, so
// yaml_strict::Mapping (fixed keys) does not apply; the checks are these.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "config/yaml_strict.h"

namespace launcher {

// Each entry as a Field named by its id, in file order. Throws FileError
// for a node that is not a mapping (`expected` says of what, "a mapping of
// namespace id to quota"), a key that is not a string, an id a launch
// request could not carry (identifier rules), or an id given twice. Null:
// no entries.
std::vector<yaml_strict::Field> namespace_map_entries(const std::filesystem::path& file,
                                                      const yaml_strict::Field& field,
                                                      const std::string& expected);

// The same for keys that are another kind of identifier (`what`: "pattern name").
std::vector<yaml_strict::Field> identifier_map_entries(const std::filesystem::path& file,
                                                       const yaml_strict::Field& field,
                                                       const std::string& expected,
                                                       const std::string& what);

}  // namespace launcher
