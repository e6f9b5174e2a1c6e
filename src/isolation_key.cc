#include "isolation_key.h"

namespace launcher {

std::string identifier_problem(std::string_view what, std::string_view id) {
    if (is_valid_identifier(id)) return {};
    std::string shown;
    for (char c : id.substr(0, 80))
        shown += (c >= 0x20 && c < 0x7f) ? c : '?';
    if (id.empty()) return std::string(what) + " must not be empty";
    return std::string(what) + " '" + shown +
           "' is invalid: use 1-63 characters from [a-z0-9._-], starting with a letter or digit";
}

std::string IsolationKey::process_id() const {
    switch (level) {
        case Isolation::kNone:
            return "shared:" + pattern;
        case Isolation::kNamespace:
            return "ns:" + namespace_id + ":" + pattern;
        case Isolation::kSession:
            return "session:" + session_id + ":" + pattern;
    }
    return pattern;
}

}  // namespace launcher
