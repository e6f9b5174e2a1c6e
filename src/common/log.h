// The launcher's one logger. Lines go to stderr as
// "pattern-launcher: <message>"; under systemd (stderr is the journal stream
// named by $JOURNAL_STREAM) they go to the journal instead, with PRIORITY and
// structured fields (PROCESS_ID, NAMESPACE, PATTERN, and AUDIT_* for audit
// lines) so that `journalctl PROCESS_ID=ns:a:echo` finds one key's history.
// Thread-safe; never blocks the caller for long (one write or one datagram).
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace launcher::log {

// syslog(3) priorities, as journald and sd-daemon(3) prefixes number them.
enum class Level { kError = 3, kWarning = 4, kNotice = 5, kInfo = 6, kDebug = 7 };

// Which key a line is about; empty fields are left out.
struct Key {
    Key() = default;
    Key(std::string_view id, std::string_view ns = {}, std::string_view pattern_name = {})
        : process_id(id), namespace_id(ns), pattern(pattern_name) {}
    std::string_view process_id;
    std::string_view namespace_id;
    std::string_view pattern;
};

// Extra structured fields: {"AUDIT_CALLER", "uid=0 pid=1"}, ... Names are
// journal field names ([A-Z0-9_], not starting with "_").
using Fields = std::vector<std::pair<std::string, std::string>>;

void write(Level level, std::string_view message, const Key& key = {}, const Fields& fields = {});

// The same, whatever the level: for records that must not be dropped by
// $PATTERN_LAUNCHER_LOG_LEVEL (the audit trail).
void write_record(Level level, std::string_view message, const Key& key, const Fields& fields);

// Whether lines go to the journal (stderr is the journal stream systemd
// named in $JOURNAL_STREAM): the daemon runs under systemd.
bool to_journal();

inline void error(std::string_view message, const Key& key = {}) {
    write(Level::kError, message, key);
}
inline void warning(std::string_view message, const Key& key = {}) {
    write(Level::kWarning, message, key);
}
inline void notice(std::string_view message, const Key& key = {}) {
    write(Level::kNotice, message, key);
}
inline void info(std::string_view message, const Key& key = {}) {
    write(Level::kInfo, message, key);
}
inline void debug(std::string_view message, const Key& key = {}) {
    write(Level::kDebug, message, key);
}

// Lines above `level` (less important) are dropped. Default: kInfo;
// $PATTERN_LAUNCHER_LOG_LEVEL (error|warning|notice|info|debug) at first use.
void set_level(Level level);
bool enabled(Level level);
// "error" ... "debug"; false if unknown.
bool parse_level(std::string_view text, Level& level);

}  // namespace launcher::log
