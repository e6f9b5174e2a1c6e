#include "common/log.h"

#include <sys/stat.h>
#include <sys/uio.h>
#include <systemd/sd-journal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>

namespace launcher::log {

namespace {

std::atomic<int> g_level{-1};  // -1: not read from the environment yet

// Under systemd, stderr is the journal's stream socket and $JOURNAL_STREAM
// names its device and inode (systemd.exec(5)); only then are native
// journal messages the same destination with more structure.
bool stderr_is_journal() {
    static const bool journal = [] {
        const char* stream = std::getenv("JOURNAL_STREAM");
        if (!stream) return false;
        unsigned long long dev = 0, ino = 0;
        if (std::sscanf(stream, "%llu:%llu", &dev, &ino) != 2) return false;
        struct stat st {};
        return ::fstat(STDERR_FILENO, &st) == 0 && st.st_dev == dev && st.st_ino == ino;
    }();
    return journal;
}

int current_level() {
    int level = g_level.load(std::memory_order_relaxed);
    if (level >= 0) return level;
    Level parsed = Level::kInfo;
    if (const char* env = std::getenv("PATTERN_LAUNCHER_LOG_LEVEL")) parse_level(env, parsed);
    g_level.store(static_cast<int>(parsed), std::memory_order_relaxed);
    return static_cast<int>(parsed);
}

// What a request put into a line must not make it two lines (a newline in a
// namespace would forge an audit line), cut it (a NUL) or flood the log (a
// 3 MiB value): control characters are escaped as \xNN and a line is capped.
constexpr std::size_t kMaxLine = 8192;

std::string printable(std::string_view text) {
    std::string out;
    out.reserve(std::min(text.size(), kMaxLine) + 16);
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (out.size() >= kMaxLine) {
            out += "... (" + std::to_string(text.size() - i) + " more bytes)";
            break;
        }
        const auto c = static_cast<unsigned char>(text[i]);
        if (c < 0x20 || c == 0x7f) {
            static constexpr char kHex[] = "0123456789abcdef";
            out += "\\x";
            out += kHex[c >> 4];
            out += kHex[c & 0xf];
        } else {
            out += static_cast<char>(c);
        }
    }
    return out;
}

std::string field(std::string_view name, std::string_view value) {
    std::string out(name);
    out += '=';
    out += printable(value);
    return out;
}

void write_journal(Level level, std::string_view message, const Key& key, const Fields& fields) {
    std::vector<std::string> parts;
    parts.reserve(6 + fields.size());
    parts.push_back(field("MESSAGE", message));
    parts.push_back(field("PRIORITY", std::to_string(static_cast<int>(level))));
    parts.push_back("SYSLOG_IDENTIFIER=pattern-launcher");
    if (!key.process_id.empty()) parts.push_back(field("PROCESS_ID", key.process_id));
    if (!key.namespace_id.empty()) parts.push_back(field("NAMESPACE", key.namespace_id));
    if (!key.pattern.empty()) parts.push_back(field("PATTERN", key.pattern));
    for (const auto& [name, value] : fields) {
        if (!value.empty()) parts.push_back(field(name, value));
    }
    std::vector<iovec> iov;
    iov.reserve(parts.size());
    for (std::string& part : parts)
        iov.push_back({part.data(), part.size()});
    if (sd_journal_sendv(iov.data(), static_cast<int>(iov.size())) < 0) {
        const std::string text = printable(message);
        std::fprintf(stderr, "<%d>pattern-launcher: %s\n", static_cast<int>(level), text.c_str());
    }
}

}  // namespace

bool parse_level(std::string_view text, Level& level) {
    static constexpr std::pair<std::string_view, Level> kNames[] = {
        {"error", Level::kError}, {"warning", Level::kWarning}, {"notice", Level::kNotice},
        {"info", Level::kInfo},   {"debug", Level::kDebug},
    };
    for (const auto& [name, value] : kNames) {
        if (text == name) {
            level = value;
            return true;
        }
    }
    return false;
}

void set_level(Level level) {
    g_level.store(static_cast<int>(level), std::memory_order_relaxed);
}

bool enabled(Level level) {
    return static_cast<int>(level) <= current_level();
}

void write_record(Level level, std::string_view message, const Key& key, const Fields& fields) {
    if (stderr_is_journal()) return write_journal(level, message, key, fields);
    std::string line = "pattern-launcher: ";
    line += printable(message);
    line += '\n';
    std::fwrite(line.data(), 1, line.size(), stderr);
}

void write(Level level, std::string_view message, const Key& key, const Fields& fields) {
    if (!enabled(level)) return;
    if (stderr_is_journal()) return write_journal(level, message, key, fields);
    // One fwrite: stdio locks the stream, so lines from threads never mix.
    // The fields are for the journal; the message already says what matters.
    std::string line = "pattern-launcher: ";
    line += printable(message);
    line += '\n';
    std::fwrite(line.data(), 1, line.size(), stderr);
}

bool to_journal() {
    return stderr_is_journal();
}

}  // namespace launcher::log
