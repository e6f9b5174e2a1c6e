#include "sandbox/error.h"

#include <cstring>

namespace sandbox {

SysError::SysError(int err, std::string message)
    : std::runtime_error(std::move(message)), err_(err) {}

void throw_sys_error(int err, std::string_view action, std::string_view path) {
    std::string message(action);
    if (!path.empty()) {
        message += ' ';
        message += path;
    }
    message += ": ";
    message += std::strerror(err);
    message += " (errno " + std::to_string(err) + ")";
    throw SysError(err, std::move(message));
}

}  // namespace sandbox
