#include "config/namespace_map.h"

#include <map>

#include "common/isolation_key.h"
#include "config/manifest.h"

namespace launcher {

std::vector<yaml_strict::Field> namespace_map_entries(const std::filesystem::path& file,
                                                      const yaml_strict::Field& field,
                                                      const std::string& expected) {
    return identifier_map_entries(file, field, expected, "namespace id");
}

std::vector<yaml_strict::Field> identifier_map_entries(const std::filesystem::path& file,
                                                       const yaml_strict::Field& field,
                                                       const std::string& expected,
                                                       const std::string& what) {
    std::vector<yaml_strict::Field> entries;
    if (field.value.IsNull()) return entries;
    if (!field.value.IsMap())
        yaml_strict::fail(file, field,
                          "expected " + expected + ", got " + yaml_strict::describe(field.value));
    std::map<std::string, int> key_lines;
    for (const auto& entry : field.value) {
        const YAML::Node key = entry.first;  // a copy: the iterator's value is a temporary
        const int key_line = yaml_strict::line_of(key, field.line());
        if (!key.IsScalar()) {
            throw FileError(
                file, key_line,
                field.path + ": " + what + "s must be strings, got " + yaml_strict::describe(key));
        }
        const std::string id = key.Scalar();
        if (!is_valid_identifier(id)) {
            throw FileError(file, key_line,
                            field.path + ": invalid " + what + " '" + id +
                                "' (1 to 63 of a-z, 0-9, '.', '_', '-', starting with a letter "
                                "or digit)");
        }
        if (const auto seen = key_lines.find(id); seen != key_lines.end()) {
            throw FileError(file, key_line,
                            "duplicate key '" + id + "' in " + field.path + " (first at line " +
                                std::to_string(seen->second) + ")");
        }
        key_lines.emplace(id, key_line);
        entries.push_back({id, field.path + "." + id, entry.second, key_line});
    }
    return entries;
}

}  // namespace launcher
