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

#include "manifest.h"

namespace launcher {

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

}  // namespace launcher
