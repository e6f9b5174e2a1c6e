#include "state/state_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string_view>
#include <system_error>
#include <utility>

#include "common/log.h"
#include "sandbox/error.h"
#include "sandbox/unique_fd.h"
#include "state/legacy_record.h"
#include "state/record_file.h"

namespace launcher {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view kStateSuffix = ".state";
constexpr std::string_view kTempInfix = ".tmp.";
constexpr std::string_view kSetAsideDir = "set-aside";
// Names tried in set-aside/ before giving up on moving one file.
constexpr int kSetAsideAttempts = 100;

constexpr char kHex[] = "0123456789abcdef";

void append_hex(std::string& out, unsigned char c) {
    out += kHex[c >> 4];
    out += kHex[c & 0xf];
}

// For messages: control bytes of a process id read from a file as \xHH.
std::string printable(std::string_view text) {
    std::string out;
    for (const char ch : text) {
        const auto c = static_cast<unsigned char>(ch);
        if (c < 0x20 || c == 0x7f || ch == '\\') {
            out += "\\x";
            append_hex(out, c);
        } else {
            out += ch;
        }
    }
    return out;
}

// The file name scheme of every launcher so far (kept so that an upgrade
// finds the records of the one before): bytes outside [a-z0-9._-] become
// %hh, so that any process id (':' included) maps to one file name and back.
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

// "<stem>.tmp.<pid>", what save() writes before the rename.
bool is_temp_name(std::string_view name) {
    const std::size_t at = name.rfind(kTempInfix);
    if (at == std::string_view::npos || at == 0) return false;
    const std::string_view digits = name.substr(at + kTempInfix.size());
    return !digits.empty() &&
           std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::int64_t unix_ms_now() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
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
// cannot be read or is too large to be a record.
bool read_record_file(const fs::path& path, std::string& bytes, std::string& problem) {
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
    constexpr auto kMax = static_cast<off_t>(record_file::kMaxFileSize);
    if (st.st_size > kMax) {
        problem = "too large to be a record (" + std::to_string(st.st_size) + " bytes)";
        return false;
    }
    bytes.clear();
    char buffer[4096];
    for (;;) {
        const ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
        if (n < 0) {
            if (errno == EINTR) continue;
            problem = std::string("cannot read: ") + std::strerror(errno);
            return false;
        }
        if (n == 0) break;
        bytes.append(buffer, static_cast<std::size_t>(n));
        if (bytes.size() > record_file::kMaxFileSize) {
            problem = "too large to be a record";
            return false;
        }
    }
    return true;
}

}  // namespace

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

void StateStore::save(const KeyRecord& record) {
    // A record that would not load back is a bug in the caller; refuse it
    // rather than write a file that the next start would set aside.
    if (record.process_id().empty()) {
        throw std::invalid_argument("refusing to save a record without a process_id");
    }
    const std::string bytes = record_file::encode(record);

    const fs::path target = file_for(record.process_id());
    const fs::path temp = dir_ / (encode_file_stem(record.process_id()) + std::string(kTempInfix) +
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
    write_all(fd.get(), bytes, temp);
    if (::close(fd.release()) != 0) sandbox::throw_sys_error(errno, "close", temp.string());
    if (::rename(temp.c_str(), target.c_str()) != 0) {
        sandbox::throw_sys_error(errno, "rename " + temp.string() + " to", target.string());
    }
    guard.dismiss();
}

void StateStore::remove(const std::string& process_id) {
    const fs::path file = file_for(process_id);
    if (::unlink(file.c_str()) != 0 && errno != ENOENT) {
        sandbox::throw_sys_error(errno, "unlink", file.string());
    }
}

// Moves `file` to <dir>/set-aside/<name>.<unix_ms> (never over another
// file there). Returns where it went; on failure, empty, with the reason
// extended to say so.
fs::path StateStore::set_aside(const fs::path& file, std::string& reason) {
    const fs::path aside_dir = dir_ / kSetAsideDir;
    if (::mkdir(aside_dir.c_str(), 0700) != 0 && errno != EEXIST) {
        reason += std::string(" (cannot create ") + aside_dir.string() + ": " +
                  std::strerror(errno) + "; left in place)";
        return {};
    }
    const std::string stem = file.filename().string() + "." + std::to_string(unix_ms_now());
    int err = 0;
    for (int attempt = 0; attempt < kSetAsideAttempts; ++attempt) {
        const fs::path target =
            aside_dir / (attempt == 0 ? stem : stem + "." + std::to_string(attempt));
        // RENAME_NOREPLACE (Linux 3.15; tmpfs since 3.17): an earlier file
        // set aside in the same millisecond is never overwritten.
        if (::renameat2(AT_FDCWD, file.c_str(), AT_FDCWD, target.c_str(), RENAME_NOREPLACE) == 0) {
            return target;
        }
        err = errno;
        if (err != EEXIST) break;
    }
    reason += std::string(" (cannot move it to ") + aside_dir.string() + ": " + std::strerror(err) +
              "; left in place)";
    return {};
}

LoadedRecords StateStore::load_all() {
    std::vector<fs::path> state_files;
    std::vector<fs::path> odd_files;  // named like a record, but a symlink, fifo, ...
    std::vector<fs::path> temp_files;
    LoadedRecords loaded;
    auto put_aside = [&](const fs::path& file, std::string reason) {
        fs::path moved_to = set_aside(file, reason);
        loaded.set_aside.push_back({file, std::move(moved_to), std::move(reason)});
    };

    std::error_code ec;
    fs::directory_iterator it(dir_, ec);
    if (ec) sandbox::throw_sys_error(ec.value(), "read directory", dir_.string());
    for (const fs::directory_iterator end; it != end; it.increment(ec)) {
        const fs::path& path = it->path();
        std::error_code type_ec;
        const fs::file_status status = it->symlink_status(type_ec);
        if (type_ec) {
            loaded.set_aside.push_back(
                {path, {}, "cannot stat: " + type_ec.message() + " (left in place)"});
            continue;
        }
        if (fs::is_directory(status)) continue;  // set-aside/, or nothing of ours
        const std::string name = path.filename().string();
        const bool regular = fs::is_regular_file(status);
        if (name.ends_with(kStateSuffix) && name.size() > kStateSuffix.size()) {
            (regular ? state_files : odd_files).push_back(path);
        } else if (regular && is_temp_name(name)) {
            temp_files.push_back(path);
        } else {
            loaded.set_aside.push_back({path, {}, "not a state file (left in place)"});
        }
    }
    if (ec) sandbox::throw_sys_error(ec.value(), "read directory", dir_.string());

    // Expected after a crash in the middle of save(); the record they were
    // meant to replace is still there.
    for (const fs::path& temp : temp_files)
        ::unlink(temp.c_str());

    for (const fs::path& odd : odd_files)
        put_aside(odd, "not a regular file");

    std::sort(state_files.begin(), state_files.end());
    for (const fs::path& path : state_files) {
        std::string bytes;
        std::string problem;
        if (!read_record_file(path, bytes, problem)) {
            put_aside(path, problem);
            continue;
        }
        KeyRecord record;
        bool converted = false;
        if (bytes.empty()) {
            put_aside(path, "empty file (truncated)");
            continue;
        }
        if (record_file::has_magic(bytes)) {
            if (!record_file::decode(bytes, record, problem)) {
                put_aside(path, problem);
                continue;
            }
        } else if (legacy::looks_like(bytes)) {
            try {
                record = legacy::to_key_record(legacy::parse(bytes));
                converted = true;
            } catch (const std::invalid_argument& e) {
                put_aside(path, std::string("a record of the previous format: ") + e.what());
                continue;
            }
        } else {
            put_aside(path,
                      "not a pattern-launcher state file (it begins with neither the \\x89PLSTATE "
                      "magic nor the previous format's 'pattern-launcher-state 1')");
            continue;
        }
        if (record.process_id().empty()) {
            put_aside(path, "the record has no process_id");
            continue;
        }
        const fs::path expected = file_for(record.process_id());
        if (expected.filename() != path.filename()) {
            put_aside(path, "process_id '" + printable(record.process_id()) + "' belongs in " +
                                expected.filename().string() + ", not in this file");
            continue;
        }
        if (converted) {
            const log::Key key{record.process_id(), record.namespace_id(), record.pattern()};
            try {
                save(record);
                log::info("state record of " + record.process_id() +
                              " converted from the previous format",
                          key);
            } catch (const std::invalid_argument& e) {
                put_aside(path, std::string(
                                    "a record of the previous format that cannot be converted: ") +
                                    e.what());
                continue;
            } catch (const std::exception& e) {
                // Still a good record in the old format: it is read again next
                // time, and the key's next save writes the new one.
                log::warning("state record of " + record.process_id() +
                                 ": cannot rewrite it in the new format: " + e.what(),
                             key);
            }
        }
        loaded.records.push_back(std::move(record));
    }
    std::sort(
        loaded.records.begin(), loaded.records.end(),
        [](const KeyRecord& a, const KeyRecord& b) { return a.process_id() < b.process_id(); });
    return loaded;
}

}  // namespace launcher
