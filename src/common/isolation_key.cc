#include "common/isolation_key.h"

#include <algorithm>

namespace launcher {

namespace {
bool is_lower_alnum(char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}
}  // namespace

bool is_valid_identifier(std::string_view id) {
    if (id.empty() || id.size() > 63 || !is_lower_alnum(id.front())) return false;
    return std::all_of(id.begin(), id.end(), [](char c) {
        return is_lower_alnum(c) || c == '.' || c == '_' || c == '-';
    });
}

std::optional<Isolation> parse_isolation(std::string_view text) {
    if (text == "none") return Isolation::kNone;
    if (text == "namespace") return Isolation::kNamespace;
    if (text == "session") return Isolation::kSession;
    return std::nullopt;
}

const char* isolation_name(Isolation level) {
    switch (level) {
        case Isolation::kNone:
            return "none";
        case Isolation::kNamespace:
            return "namespace";
        case Isolation::kSession:
            return "session";
    }
    return "unknown";
}

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
