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

std::optional<IsolationKey> parse_process_id(std::string_view id,
                                             std::string_view session_namespace) {
    auto split = [&](std::string_view rest, std::string_view& first, std::string_view& second) {
        const std::size_t colon = rest.find(':');
        if (colon == std::string_view::npos) return false;
        first = rest.substr(0, colon);
        second = rest.substr(colon + 1);
        return is_valid_identifier(first) && is_valid_identifier(second);
    };
    IsolationKey key;
    std::string_view a, b;
    if (id.starts_with("shared:")) {
        key.level = Isolation::kNone;
        key.pattern = std::string(id.substr(7));
        if (!is_valid_identifier(key.pattern)) return std::nullopt;
    } else if (id.starts_with("ns:") && split(id.substr(3), a, b)) {
        key.level = Isolation::kNamespace;
        key.namespace_id = std::string(a);
        key.pattern = std::string(b);
    } else if (id.starts_with("session:") && split(id.substr(8), a, b)) {
        key.level = Isolation::kSession;
        key.session_id = std::string(a);
        key.pattern = std::string(b);
        key.namespace_id = std::string(session_namespace);
    } else {
        return std::nullopt;
    }
    return key;
}

}  // namespace launcher
