// Strict YAML reading for manifests and the launcher config: every mapping
// has a fixed set of keys, every value a fixed type, and every problem becomes
// a FileError naming the file and the line (1-based) where it is.
//
// yaml-cpp itself is lenient (it keeps duplicate keys, converts anything that
// looks like a number, ignores what nobody asks for); the Mapping and the
// conversions below are the one place where that leniency is taken away.
#pragma once

#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/manifest.h"

namespace launcher::yaml_strict {

// Files larger than this are refused before parsing (a manifest or a config
// is a few hundred bytes; a huge file is a mistake or an attack).
inline constexpr std::uintmax_t kMaxFileSize = 1024 * 1024;

// The 1-based line of a node. Null values carry the mark of whatever token
// follows them, so for those (and for nodes without a mark) `fallback` is used.
int line_of(const YAML::Node& node, int fallback);

// "a mapping", "a list", "a scalar", "nothing": what a node is, for messages.
std::string describe(const YAML::Node& node);

// Reads `file` and parses it as exactly one YAML document whose root is a
// mapping. Throws FileError: line 0 when the file cannot be read, the line of
// the problem for syntax errors, a second document or a root that is not a
// mapping, line 1 for an empty file.
YAML::Node load_mapping_file(const std::filesystem::path& file);

// One value in a mapping (or one item of a list), with where it came from.
struct Field {
    std::string key;   // "memory_limit" ("" for list items)
    std::string path;  // "resources.memory_limit", "backend_slots[0]": used in messages
    YAML::Node value;
    int key_line = 0;  // the line of the key (of the item for list items)

    // The line to blame for a bad value: the value's own line, or the key's
    // when the value is null.
    int line() const { return line_of(value, key_line); }
};

// A mapping checked against its known keys. Construction throws FileError for
// a node that is not a mapping (null counts as an empty mapping), a key that
// is not a plain scalar, a duplicate key, or an unknown key:
//   "unknown key 'memroy_limit' in resources (known: cpu_limit, memory_limit, ...)"
class Mapping {
public:
    // `where` names the mapping in messages ("" for the top level of a file).
    // `line` is used for messages about the mapping as a whole when the node
    // itself has no line (an empty or null section).
    Mapping(const std::filesystem::path& file, const YAML::Node& node, std::string where,
            std::initializer_list<std::string_view> known, int line);
    // The mapping that is the value of `field` (where = field.path).
    Mapping(const std::filesystem::path& file, const Field& field,
            std::initializer_list<std::string_view> known);
    // The same, for a key list built at run time (e.g. resource_keys() plus more).
    Mapping(const std::filesystem::path& file, const Field& field,
            const std::vector<std::string_view>& known);

    // The field for `key`, or nullptr when the mapping does not have it.
    const Field* find(std::string_view key) const;
    // The field for `key`; throws "missing required key 'name'" (at the mapping's line).
    const Field& require(std::string_view key) const;

    const std::filesystem::path& file() const { return file_; }
    const std::string& where() const { return where_; }
    int line() const { return line_; }
    const std::vector<Field>& fields() const { return fields_; }

private:
    void load(const YAML::Node& node, const std::vector<std::string_view>& known);

    std::filesystem::path file_;
    std::string where_;
    int line_;
    std::vector<Field> fields_;
};

// Throws FileError(file, field.line(), "<field.path>: <message>").
[[noreturn]] void fail(const std::filesystem::path& file, const Field& field,
                       const std::string& message);

// Conversions of one field. Each accepts only a scalar (a quoted "32" is as
// good as 32) and throws FileError at the value's line with the field's path:
//   "resources.pids_limit: must be at least 1, got 0"
std::string to_string(const std::filesystem::path& file, const Field& field);
// A string that must not be empty.
std::string to_nonempty_string(const std::filesystem::path& file, const Field& field);
std::int64_t to_integer(const std::filesystem::path& file, const Field& field, std::int64_t min,
                        std::int64_t max);
double to_number(const std::filesystem::path& file, const Field& field);
bool to_bool(const std::filesystem::path& file, const Field& field);  // true | false
std::chrono::milliseconds to_duration(const std::filesystem::path& file, const Field& field);
std::uint64_t to_size(const std::filesystem::path& file,
                      const Field& field);  // sandbox::parse_size
// A path; a relative one is resolved against `base` (the result is lexically normal).
std::filesystem::path to_path(const std::filesystem::path& file, const Field& field,
                              const std::filesystem::path& base);

// The items of a list (null counts as an empty list); each item's path is
// "<field.path>[i]". Throws FileError if the value is not a list.
std::vector<Field> to_items(const std::filesystem::path& file, const Field& field);

// The `resources` section, shared by manifests and the launcher config:
// cpu_limit, memory_limit, memory_swap_limit, pids_limit, cpu_weight.
Resources to_resources(const std::filesystem::path& file, const Field& field);
// The keys of a `resources` section, in the order messages list them.
std::vector<std::string_view> resource_keys();
// The resources keys of a mapping that may have more keys than those (built
// with resource_keys() plus its own, e.g. namespace_quotas' max_processes);
// the caller reads the others. Same validation as the overload above.
Resources to_resources(const std::filesystem::path& file, const Mapping& map);

// "a, b, c"
std::string join(const std::vector<std::string>& items);

}  // namespace launcher::yaml_strict
