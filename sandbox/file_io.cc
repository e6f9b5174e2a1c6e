#include "sandbox/file_io.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>

#include "sandbox/cgroup_lookup.h"
#include "sandbox/error.h"
#include "sandbox/unique_fd.h"

namespace sandbox::detail {

std::string read_file(const std::string& path) {
    UniqueFd fd(open_path(path, O_RDONLY | O_CLOEXEC));
    if (!fd) throw_sys_error(errno, "open", path);
    std::string out;
    char buf[4096];
    for (;;) {
        ssize_t n = ::read(fd.get(), buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            throw_sys_error(errno, "read", path);
        }
        if (n == 0) break;
        out.append(buf, static_cast<std::size_t>(n));
    }
    return out;
}

int try_write_file(const std::string& path, std::string_view value) noexcept {
    UniqueFd fd(open_path(path, O_WRONLY | O_CLOEXEC));
    if (!fd) return errno;
    ssize_t n;
    do {
        n = ::write(fd.get(), value.data(), value.size());
    } while (n < 0 && errno == EINTR);
    if (n < 0) return errno;
    return static_cast<std::size_t>(n) == value.size() ? 0 : EIO;
}

void write_file(const std::string& path, std::string_view value) {
    if (int err = try_write_file(path, value); err != 0) {
        throw_sys_error(err, "write '" + std::string(value) + "' to", path);
    }
}

long long read_keyed_value(std::string_view text, std::string_view key) noexcept {
    std::size_t pos = 0;
    while (pos < text.size()) {
        std::size_t eol = text.find('\n', pos);
        if (eol == std::string_view::npos) eol = text.size();
        std::string_view line = text.substr(pos, eol - pos);
        pos = eol + 1;
        if (line.size() > key.size() && line.starts_with(key) && line[key.size()] == ' ') {
            std::string_view num = line.substr(key.size() + 1);
            long long value = 0;
            auto [p, ec] = std::from_chars(num.data(), num.data() + num.size(), value);
            if (ec == std::errc()) return value;
            return -1;
        }
    }
    return -1;
}

}  // namespace sandbox::detail
