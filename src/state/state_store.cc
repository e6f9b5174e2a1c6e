#include "state/state_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "sandbox/error.h"
#include "sandbox/unique_fd.h"

namespace launcher {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view kHeader = "pattern-launcher-state 1";
constexpr std::string_view kMagic = "pattern-launcher-state ";
constexpr std::string_view kVersion = "1";
constexpr std::string_view kEnd = "end";
constexpr std::string_view kConfigPrefix = "config.";
constexpr std::string_view kStateSuffix = ".state";
constexpr std::string_view kTempInfix = ".tmp.";
// A record is a few hundred bytes; anything this large is not one of ours.
constexpr off_t kMaxRecordSize = 1024 * 1024;

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

// File name of a record: bytes outside [a-z0-9._-] become %hh, so that any
// process id (':' included) maps to one file name and back.
std::string encode_file_stem(std::string_view process_id) {
    std::string out;
    for (const char ch : process_id) {
        const bool plain = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '.' ||
                           ch == '_' || ch == '-';
        if (plain) {
            out += ch;
        } else {
            out += '%';
            append_hex(out, static_cast<unsigned char>(ch));
        }
    }
    return out;
}

bool ends_with_digits_after_temp_infix(std::string_view name) {
    const std::size_t at = name.rfind(kTempInfix);
    if (at == std::string_view::npos || at == 0) return false;
    const std::string_view digits = name.substr(at + kTempInfix.size());
    return !digits.empty() &&
           std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; });
}

void write_all(int fd, std::string_view data, const fs::path& path) {
    while (!data.empty()) {
        const ssize_t n = ::write(fd, data.data(), data.size());
        if (n < 0) {
            if (errno == EINTR) continue;
            sandbox::throw_sys_error(errno, "write", path.string());
        }
        data.remove_prefix(static_cast<std::size_t>(n));
    }
}

void fsync_directory(const fs::path& dir) {
    const sandbox::UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd) sandbox::throw_sys_error(errno, "open directory", dir.string());
    if (::fsync(fd.get()) != 0) sandbox::throw_sys_error(errno, "fsync directory", dir.string());
}

// Unlinks the temporary file unless dismissed (after the rename).
class TempFileGuard {
public:
    explicit TempFileGuard(const fs::path& path) : path_(path) {}
    TempFileGuard(const TempFileGuard&) = delete;
    TempFileGuard& operator=(const TempFileGuard&) = delete;
    ~TempFileGuard() {
        if (armed_) ::unlink(path_.c_str());
    }
    void dismiss() { armed_ = false; }

private:
    const fs::path& path_;
    bool armed_ = true;
};

// Reads a whole state file. Returns false (and sets `problem`) when it
// cannot be read; a file that is too large is read as far as the limit, which
// makes it fail to parse.
bool read_record_file(const fs::path& path, std::string& text, std::string& problem) {
    const sandbox::UniqueFd fd(
        ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
    if (!fd) {
        problem = std::string("cannot open: ") + std::strerror(errno);
        return false;
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) {
        problem = std::string("cannot stat: ") + std::strerror(errno);
        return false;
    }
    if (!S_ISREG(st.st_mode)) {
        problem = "not a regular file";
        return false;
    }
    if (st.st_size > kMaxRecordSize) {
        problem = "too large to be a record (" + std::to_string(st.st_size) + " bytes)";
        return false;
    }
    text.clear();
    char buffer[4096];
    for (;;) {
        const ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
        if (n < 0) {
            if (errno == EINTR) continue;
            problem = std::string("cannot read: ") + std::strerror(errno);
            return false;
        }
        if (n == 0) break;
        text.append(buffer, static_cast<std::size_t>(n));
        if (text.size() > static_cast<std::size_t>(kMaxRecordSize)) {
            problem = "too large to be a record";
            return false;
        }
    }
    return true;
}

}  // namespace

std::string serialize(const ProcessRecord& record) {
    std::string out;
    out += kHeader;
    out += '\n';
    auto field = [&out](std::string_view key, std::string_view value) {
        out += key;
        out += '=';
        out += escape(value, false);
        out += '\n';
    };
    field("process_id", record.process_id);
    field("pattern", record.pattern);
    field("isolation", record.isolation);
    field("namespace_id", record.namespace_id);
    field("session_id", record.session_id);
    field("pid", std::to_string(record.pid));
    field("cgroup", record.cgroup);
    field("address", record.address);
    field("grpc_port", std::to_string(record.grpc_port));
    field("health_port", std::to_string(record.health_port));
    field("notify_socket", record.notify_socket);
    field("started_at_unix_ms", std::to_string(record.started_at_unix_ms));
    field("restart_count", std::to_string(record.restart_count));
    field("limits_enforced", record.limits_enforced ? "true" : "false");
    field("grace_period_ms", std::to_string(record.grace_period_ms));
    // Optional, and left out when 0: records of keys without an identity stay
    // exactly what the launcher wrote before identities existed.
    if (record.identity != 0) field("identity", std::to_string(record.identity));
    for (const auto& [name, value] : record.config) {
        out += kConfigPrefix;
        out += escape(name, true);
        out += '=';
        out += escape(value, false);
        out += '\n';
    }
    out += kEnd;
    out += '\n';
    return out;
}

ProcessRecord deserialize(const std::string& text) {
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

StateStore::StateStore(std::filesystem::path dir) : dir_(std::move(dir)) {
    if (::mkdir(dir_.c_str(), 0700) == 0) return;
    int err = errno;
    if (err == ENOENT) {
        // Parents are ordinary directories (e.g. the runtime dir); only the
        // state directory itself is private.
        std::error_code ec;
        fs::create_directories(dir_.parent_path(), ec);
        if (ec)
            sandbox::throw_sys_error(ec.value(), "create directory", dir_.parent_path().string());
        if (::mkdir(dir_.c_str(), 0700) == 0) return;
        err = errno;
    }
    if (err == EEXIST) {
        struct stat st {};
        if (::stat(dir_.c_str(), &st) != 0) sandbox::throw_sys_error(errno, "stat", dir_.string());
        if (S_ISDIR(st.st_mode)) return;
        err = ENOTDIR;
    }
    sandbox::throw_sys_error(err, "create directory", dir_.string());
}

fs::path StateStore::file_for(const std::string& process_id) const {
    return dir_ / (encode_file_stem(process_id) + std::string(kStateSuffix));
}

void StateStore::save(const ProcessRecord& record) {
    const std::string text = serialize(record);
    // A record that would not load back (pid 0, an empty process id, ...)
    // is a bug in the caller; refuse it rather than write a file that the
    // next start would throw away.
    try {
        (void)deserialize(text);
    } catch (const std::invalid_argument& e) {
        throw std::invalid_argument("refusing to save the record of '" + record.process_id +
                                    "': " + e.what());
    }

    const fs::path target = file_for(record.process_id);
    const fs::path temp = dir_ / (encode_file_stem(record.process_id) + std::string(kTempInfix) +
                                  std::to_string(::getpid()));
    constexpr int kFlags = O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW;
    sandbox::UniqueFd fd(::open(temp.c_str(), kFlags, 0600));
    if (!fd && errno == EEXIST) {
        // Left by an earlier process with our pid (which crashed): ours to replace.
        ::unlink(temp.c_str());
        fd.reset(::open(temp.c_str(), kFlags, 0600));
    }
    if (!fd) sandbox::throw_sys_error(errno, "create", temp.string());

    TempFileGuard guard(temp);
    write_all(fd.get(), text, temp);
    if (::fsync(fd.get()) != 0) sandbox::throw_sys_error(errno, "fsync", temp.string());
    if (::close(fd.release()) != 0) sandbox::throw_sys_error(errno, "close", temp.string());
    if (::rename(temp.c_str(), target.c_str()) != 0) {
        sandbox::throw_sys_error(errno, "rename " + temp.string() + " to", target.string());
    }
    guard.dismiss();
    fsync_directory(dir_);
}

void StateStore::remove(const std::string& process_id) {
    const fs::path file = file_for(process_id);
    if (::unlink(file.c_str()) != 0) {
        if (errno == ENOENT) return;
        sandbox::throw_sys_error(errno, "unlink", file.string());
    }
    fsync_directory(dir_);
}

LoadedRecords StateStore::load_all() {
    std::vector<fs::path> state_files;
    std::vector<fs::path> temp_files;
    LoadedRecords loaded;

    std::error_code ec;
    fs::directory_iterator it(dir_, ec);
    if (ec) sandbox::throw_sys_error(ec.value(), "read directory", dir_.string());
    for (const fs::directory_iterator end; it != end; it.increment(ec)) {
        const fs::path& path = it->path();
        std::error_code type_ec;
        const fs::file_status status = it->symlink_status(type_ec);
        if (type_ec) {
            loaded.problems.push_back(path.string() + ": cannot stat: " + type_ec.message());
            continue;
        }
        if (fs::is_directory(status)) continue;
        const std::string name = path.filename().string();
        const bool regular = fs::is_regular_file(status);
        if (name.ends_with(kStateSuffix) && name.size() > kStateSuffix.size()) {
            if (regular) {
                state_files.push_back(path);
            } else {
                loaded.problems.push_back(path.string() + ": not a regular file (left in place)");
            }
        } else if (regular && ends_with_digits_after_temp_infix(name)) {
            temp_files.push_back(path);
        } else {
            loaded.problems.push_back(path.string() + ": not a state file (left in place)");
        }
    }
    if (ec) sandbox::throw_sys_error(ec.value(), "read directory", dir_.string());

    // Expected after a crash in the middle of save(); the record they were
    // meant to replace is still there. Deletions here are not fsynced: a file
    // that comes back after a crash is found (and deleted) again next time.
    for (const fs::path& temp : temp_files)
        ::unlink(temp.c_str());

    std::sort(state_files.begin(), state_files.end());
    for (const fs::path& path : state_files) {
        std::string text;
        std::string problem;
        if (!read_record_file(path, text, problem)) {
            loaded.problems.push_back(path.string() + ": " + problem + " (left in place)");
            continue;
        }
        try {
            ProcessRecord record = deserialize(text);
            if (file_for(record.process_id).filename() != path.filename()) {
                throw std::invalid_argument(
                    "process_id '" + escape(record.process_id, false) + "' belongs in " +
                    file_for(record.process_id).filename().string() + ", not in this file");
            }
            loaded.records.push_back(std::move(record));
        } catch (const std::invalid_argument& e) {
            loaded.problems.push_back(path.string() + ": " + e.what() + " (deleted)");
            ::unlink(path.c_str());
        }
    }
    std::sort(
        loaded.records.begin(), loaded.records.end(),
        [](const ProcessRecord& a, const ProcessRecord& b) { return a.process_id < b.process_id; });
    return loaded;
}

}  // namespace launcher
