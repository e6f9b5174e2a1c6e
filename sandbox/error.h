// Errors raised by the sandbox library.
//
// Every failure that comes from the kernel is a SysError: it carries the errno
// and a message that says what was being done and to which path, e.g.
//   "write /sys/fs/cgroup/pl/ns-a/memory.max: Permission denied (errno 13)".
// Callers can switch on code() (ENOENT, EBUSY, ...) and show what() as is.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace sandbox {

class SysError : public std::runtime_error {
public:
    SysError(int err, std::string message);
    int code() const noexcept { return err_; }

private:
    int err_;
};

// Throws SysError for `err`, formatted as "<action> <path>: <strerror> (errno N)".
[[noreturn]] void throw_sys_error(int err, std::string_view action, std::string_view path = {});

// A request the kernel was never asked about because it cannot be right
// (a malformed size, an unknown capability name, a limit whose controller is
// missing). The message names the offending input.
class ConfigError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

}  // namespace sandbox
