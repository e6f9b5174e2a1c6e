// A manifest's `config_keys`: the launch-request config keys its pattern
// accepts, each with an optional value pattern, list of values and length.
// Pure matching; the section is parsed by manifest.cc and a request is
// checked against it by core/spawn_plan.cc (request_config_problem).
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace launcher {

// A config value's limit (and a declared max_length's ceiling), in bytes.
inline constexpr std::size_t kMaxConfigValue = 4096;
// The longest value pattern a manifest may write.
inline constexpr std::size_t kMaxValuePatternLength = 1024;

// A regular expression a whole value must match (ECMAScript syntax,
// std::regex_match), compiled once when the manifest is loaded.
//
// Values come from requests, so matching must not depend on them for its
// stack or time: libstdc++'s default (backtracking) executor recurses once
// per character and overflows a 1 MiB stack on `.*` against 4096 bytes. The
// pattern is compiled for its polynomial executor (breadth-first; depth and
// time bounded by the pattern's size, linear in the value), which refuses
// back-references, and patterns whose automaton would be large (nested
// counted repetitions such as `(a{100}){100}`) are refused at load.
class ValuePattern {
public:
    // Throws std::invalid_argument with the reason (syntax, back-reference,
    // too long, too deeply nested, too large once repetitions are expanded).
    static ValuePattern compile(std::string_view source);

    const std::string& source() const;
    bool matches(std::string_view value) const;

private:
    struct Compiled;
    std::shared_ptr<const Compiled> compiled_;
};

// One item of `config_keys`.
struct ConfigKeyRule {
    // An exact environment name, or a glob of name characters with `*` (any
    // run) and `?` (one character), e.g. FEATURE_*.
    std::string name;
    std::optional<ValuePattern> pattern;
    std::vector<std::string> values;  // non-empty: the value must be one of these
    std::size_t max_length = kMaxConfigValue;
    int line = 0;  // of the item in the manifest

    bool is_glob() const { return name.find_first_of("*?") != std::string::npos; }
};

// `*` matches any run of characters (also none), `?` exactly one.
bool glob_matches(std::string_view glob, std::string_view name);

// The rule for `key`: the rule with its exact name, else the first glob (in
// manifest order) that matches it; nullptr when none does.
const ConfigKeyRule* find_config_key_rule(const std::vector<ConfigKeyRule>& rules,
                                          std::string_view key);

// Empty when `value` satisfies `rule`, else why, naming `key` and never the
// value (it may be a secret): "config value of 'LOG_LEVEL' is not one of its
// declared values (debug, info, warn)".
std::string config_value_problem(const ConfigKeyRule& rule, std::string_view key,
                                 std::string_view value);

}  // namespace launcher
