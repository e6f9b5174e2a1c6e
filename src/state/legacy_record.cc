#include "state/legacy_record.h"

#include <charconv>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <stdexcept>
#include <string_view>
#include <system_error>
#include <vector>

// The text format of the launcher before state records were protobuf (issue
// 11), read only to take over the keys of a launcher being upgraded. Frozen:
// the parser is the one that launcher used, with its strictness.

namespace launcher::legacy {

namespace {

constexpr std::string_view kHeader = "pattern-launcher-state 1";
constexpr std::string_view kMagic = "pattern-launcher-state ";
constexpr std::string_view kVersion = "1";
constexpr std::string_view kEnd = "end";
constexpr std::string_view kConfigPrefix = "config.";

constexpr char kHex[] = "0123456789abcdef";

void append_hex(std::string& out, unsigned char c) {
    out += kHex[c >> 4];
    out += kHex[c & 0xf];
}

// Backslash escaping that keeps every record one line per field: `\\`,
// `\n`, and `\xHH` for every other byte below 0x20 (and for '=' in keys, so
// that the first '=' of a line always separates the key from the value).
std::string escape(std::string_view text, bool is_key) {
    std::string out;
    out.reserve(text.size());
    for (const char ch : text) {
        const auto c = static_cast<unsigned char>(ch);
        if (ch == '\\') {
            out += "\\\\";
        } else if (ch == '\n') {
            out += "\\n";
        } else if (c < 0x20 || (is_key && ch == '=')) {
            out += "\\x";
            append_hex(out, c);
        } else {
            out += ch;
        }
    }
    return out;
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

std::string at_line(std::size_t line, const std::string& message) {
    return "line " + std::to_string(line) + ": " + message;
}

[[noreturn]] void fail(std::size_t line, const std::string& message) {
    throw std::invalid_argument(at_line(line, message));
}

std::string unescape(std::string_view text, std::size_t line) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (c != '\\') {
            out += c;
            continue;
        }
        if (i + 1 >= text.size()) fail(line, "unfinished escape sequence at the end of the line");
        const char next = text[++i];
        if (next == '\\') {
            out += '\\';
        } else if (next == 'n') {
            out += '\n';
        } else if (next == 'x') {
            const int high = i + 1 < text.size() ? hex_value(text[i + 1]) : -1;
            const int low = i + 2 < text.size() ? hex_value(text[i + 2]) : -1;
            if (high < 0 || low < 0) fail(line, "'\\x' must be followed by two hex digits");
            out += static_cast<char>(high * 16 + low);
            i += 2;
        } else {
            fail(line,
                 std::string("unknown escape sequence '\\") + escape({&next, 1}, false) + "'");
        }
    }
    return out;
}

std::int64_t parse_integer(std::string_view key, std::string_view text, std::int64_t min,
                           std::int64_t max, std::size_t line) {
    std::int64_t value = 0;
    const char* end = text.data() + text.size();
    const auto [rest, ec] = std::from_chars(text.data(), end, value);
    if (text.empty() || ec != std::errc() || rest != end) {
        fail(line, std::string(key) + ": expected an integer, got '" + escape(text, false) + "'");
    }
    if (value < min || value > max) {
        fail(line, std::string(key) + ": " + std::to_string(value) + " is out of range (" +
                       std::to_string(min) + ".." + std::to_string(max) + ")");
    }
    return value;
}

bool parse_bool(std::string_view key, std::string_view text, std::size_t line) {
    if (text == "true") return true;
    if (text == "false") return false;
    fail(line, std::string(key) + ": expected true or false, got '" + escape(text, false) + "'");
}

}  // namespace

ProcessRecord parse(const std::string& text) {
    // The header first, so that a foreign file is called that rather than
    // "truncated"; a text that is only a prefix of the header is truncated.
    const std::string_view first = std::string_view(text).substr(0, text.find('\n'));
    const bool cut_header = first.size() == text.size() && kHeader.starts_with(first);
    if (first != kHeader && !cut_header) {
        if (first.starts_with(kMagic)) {
            fail(1, "unsupported version '" + escape(first.substr(kMagic.size()), false) +
                        "' (this launcher reads version " + std::string(kVersion) + ")");
        }
        fail(1, "not a pattern-launcher state file (expected '" + std::string(kHeader) + "')");
    }

    // Every line, the last one included, ends with '\n': a file cut anywhere
    // (even right after "end") does not parse.
    std::vector<std::string_view> lines;
    {
        std::string_view rest(text);
        while (!rest.empty()) {
            const std::size_t nl = rest.find('\n');
            if (nl == std::string_view::npos) {
                fail(lines.size() + 1, "unterminated last line (the file is truncated)");
            }
            lines.push_back(rest.substr(0, nl));
            rest.remove_prefix(nl + 1);
        }
    }
    if (lines.empty()) fail(1, "empty file (the file is truncated)");

    constexpr std::string_view kRequired[] = {"process_id", "pattern", "isolation",
                                              "pid",        "cgroup",  "grpc_port"};
    constexpr std::string_view kKnown[] = {"process_id",    "pattern",         "isolation",
                                           "namespace_id",  "session_id",      "pid",
                                           "cgroup",        "address",         "grpc_port",
                                           "health_port",   "notify_socket",   "started_at_unix_ms",
                                           "restart_count", "limits_enforced", "grace_period_ms",
                                           "identity"};

    ProcessRecord record;
    std::map<std::string, std::size_t, std::less<>> seen;  // key -> line
    bool ended = false;
    for (std::size_t i = 1; i < lines.size(); ++i) {
        const std::size_t line = i + 1;
        const std::string_view l = lines[i];
        if (ended) fail(line, "content after 'end'");
        if (l == kEnd) {
            ended = true;
            continue;
        }
        const std::size_t eq = l.find('=');
        if (eq == std::string_view::npos) {
            fail(line, "expected key=value, got '" + escape(l, false) + "'");
        }
        const std::string_view key = l.substr(0, eq);
        const std::string value = unescape(l.substr(eq + 1), line);
        if (const auto it = seen.find(key); it != seen.end()) {
            fail(line, "duplicate key '" + escape(key, false) + "' (first at line " +
                           std::to_string(it->second) + ")");
        }
        if (key.starts_with(kConfigPrefix)) {
            // Keyed by the decoded name: "config.a" and "config.\x61" are the same entry.
            std::string name = unescape(key.substr(kConfigPrefix.size()), line);
            const std::string decoded_key = std::string(kConfigPrefix) + name;
            if (const auto it = seen.find(decoded_key); it != seen.end()) {
                fail(line, "duplicate key '" + escape(decoded_key, true) + "' (first at line " +
                               std::to_string(it->second) + ")");
            }
            seen.emplace(decoded_key, line);
            record.config.emplace(std::move(name), value);
            continue;
        }
        if (std::find(std::begin(kKnown), std::end(kKnown), key) == std::end(kKnown)) {
            fail(line, "unknown key '" + escape(key, false) + "'");
        }
        seen.emplace(std::string(key), line);

        constexpr std::int64_t kIntMax = std::numeric_limits<int>::max();
        constexpr std::int64_t kInt64Min = std::numeric_limits<std::int64_t>::min();
        constexpr std::int64_t kInt64Max = std::numeric_limits<std::int64_t>::max();
        if (key == "process_id") {
            if (value.empty()) fail(line, "process_id: must not be empty");
            record.process_id = value;
        } else if (key == "pattern") {
            if (value.empty()) fail(line, "pattern: must not be empty");
            record.pattern = value;
        } else if (key == "isolation") {
            if (value != "none" && value != "namespace" && value != "session") {
                fail(line, "isolation: unknown level '" + escape(value, false) +
                               "' (known: none, namespace, session)");
            }
            record.isolation = value;
        } else if (key == "namespace_id") {
            record.namespace_id = value;
        } else if (key == "session_id") {
            record.session_id = value;
        } else if (key == "pid") {
            // Never 0 or negative: kill(0 or -1, ...) would signal far more than one process.
            record.pid = static_cast<pid_t>(parse_integer(key, value, 1, kIntMax, line));
        } else if (key == "cgroup") {
            if (value.empty()) fail(line, "cgroup: must not be empty");
            record.cgroup = value;
        } else if (key == "address") {
            record.address = value;
        } else if (key == "grpc_port") {
            record.grpc_port = static_cast<int>(parse_integer(key, value, 0, 65535, line));
        } else if (key == "health_port") {
            record.health_port = static_cast<int>(parse_integer(key, value, 0, 65535, line));
        } else if (key == "notify_socket") {
            record.notify_socket = value;
        } else if (key == "started_at_unix_ms") {
            record.started_at_unix_ms = parse_integer(key, value, kInt64Min, kInt64Max, line);
        } else if (key == "restart_count") {
            record.restart_count = static_cast<int>(parse_integer(key, value, 0, kIntMax, line));
        } else if (key == "limits_enforced") {
            record.limits_enforced = parse_bool(key, value, line);
        } else if (key == "grace_period_ms") {
            record.grace_period_ms = parse_integer(key, value, 0, kInt64Max, line);
        } else if (key == "identity") {
            // Never 0 (that is "none", written as no line) or (uid_t)-1.
            constexpr std::int64_t kIdMax = std::numeric_limits<std::uint32_t>::max() - 1;
            record.identity =
                static_cast<std::uint32_t>(parse_integer(key, value, 1, kIdMax, line));
        }
    }
    if (!ended) fail(lines.size(), "missing 'end' (the file is truncated)");
    for (const std::string_view key : kRequired) {
        if (!seen.contains(key))
            fail(lines.size(), "missing required key '" + std::string(key) + "'");
    }
    return record;
}

bool looks_like(std::string_view bytes) {
    if (bytes.size() < kMagic.size()) return !bytes.empty() && kMagic.starts_with(bytes);
    return bytes.starts_with(kMagic);
}

KeyRecord to_key_record(const ProcessRecord& old) {
    KeyRecord r;
    r.set_process_id(old.process_id);
    r.set_pattern(old.pattern);
    r.set_isolation(old.isolation);
    r.set_namespace_id(old.namespace_id);
    r.set_session_id(old.session_id);
    r.mutable_config()->insert(old.config.begin(), old.config.end());
    r.set_grace_period_ms(old.grace_period_ms);
    // The old record does not know when the launch was accepted; its
    // current incarnation's start is the earliest time it knows.
    r.set_accepted_at_unix_ms(old.started_at_unix_ms);

    // That launcher wrote a record only once the process was healthy
    // (became_healthy) and removed it when the key ended: a record is a key
    // it owed a running process.
    r.set_desired(pattern_launcher::state::DESIRED_RUNNING);
    r.set_phase(pattern_launcher::state::PHASE_RUNNING);

    r.set_identity(old.identity);
    r.set_grpc_port(static_cast<std::uint32_t>(old.grpc_port));
    r.set_health_port(static_cast<std::uint32_t>(old.health_port));
    r.set_cgroup(old.cgroup);
    r.set_limits_enforced(old.limits_enforced);

    r.set_pid(old.pid);
    // It created the leaf as "run.<restart_count>" at spawn and did not count
    // a restart between spawn and the record; adoption still checks that the
    // leaf holds the pid.
    r.set_incarnation(static_cast<std::uint32_t>(old.restart_count));
    r.set_started_at_unix_ms(old.started_at_unix_ms);
    // Healthy at some time after its start; the start is the best bound.
    r.set_running_since_unix_ms(old.started_at_unix_ms);

    r.set_restart_count(old.restart_count);
    r.set_ever_running(true);
    // address ("127.0.0.1:<grpc_port>") follows from grpc_port; the notify
    // socket was bound by the old launcher's process and was never re-attached
    // on adoption: neither is carried over.
    return r;
}

}  // namespace launcher::legacy
