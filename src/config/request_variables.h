// Environment variables a launch request's `config` may never set, whatever
// the pattern's manifest declares: names that make the C library, the
// loader, a shell or an interpreter run or load code or files the caller
// chooses, and the names the launcher sets itself. The one list; the daemon
// (core/spawn_plan.cc) refuses them, the manifest parser refuses to declare
// them, and docs/security.md prints describe_forbidden_request_variables().
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace launcher {

// One entry of the list: an exact name, or every name starting with `name`.
struct ForbiddenRequestVariable {
    std::string_view name;
    bool prefix = false;   // true: "LD_" stands for LD_*
    std::string_view why;  // "loader variable", "shell variable", ...
};

// The whole list, in the order the documentation shows it.
const std::vector<ForbiddenRequestVariable>& forbidden_request_variables();

// Why `name` is never accepted from a request ("loader variable"), or
// nullopt when it may be (if the manifest declares it).
std::optional<std::string_view> forbidden_request_variable_reason(std::string_view name);

inline bool is_forbidden_request_variable(std::string_view name) {
    return forbidden_request_variable_reason(name).has_value();
}

// True when every name that starts with `prefix` is forbidden (it starts
// with one of the list's prefixes): a config_keys glob "LD_*" declares
// nothing that could ever be accepted.
bool every_name_with_prefix_is_forbidden(std::string_view prefix);

// The list for people: one line per reason, "loader variable: LD_*, ...".
std::string describe_forbidden_request_variables();

}  // namespace launcher
