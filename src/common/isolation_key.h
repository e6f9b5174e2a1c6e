// Isolation keys: which process serves a launch request.
//   NONE       shared:<pattern>
//   NAMESPACE  ns:<namespace>:<pattern>
//   SESSION    session:<session_id>:<pattern>
// Namespace and session ids are validated before they touch any path or
// cgroup name.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace launcher {

enum class Isolation { kNone, kNamespace, kSession };

// "none" | "namespace" | "session" <-> Isolation.
std::optional<Isolation> parse_isolation(std::string_view text);
const char* isolation_name(Isolation level);

// [a-z0-9][a-z0-9._-]{0,62}: pattern names, namespace and session ids. Safe
// as a path component and a cgroup name.
bool is_valid_identifier(std::string_view id);

// Empty when valid, else why not: "namespace '../x' is invalid: ...".
std::string identifier_problem(std::string_view what, std::string_view id);

struct IsolationKey {
    Isolation level = Isolation::kNamespace;
    std::string pattern;
    std::string namespace_id;  // set for kNamespace and kSession
    std::string session_id;    // set for kSession

    // "shared:echo", "ns:tenant-a:echo", "session:s1:echo".
    std::string process_id() const;
};

// The key a process id names (the inverse of process_id()), given the
// namespace of a session key (which its id does not carry); nullopt if `id`
// is not a valid process id.
std::optional<IsolationKey> parse_process_id(std::string_view id,
                                             std::string_view session_namespace = {});

}  // namespace launcher
