#include "sandbox/forwarding.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "sandbox/error.h"
#include "sandbox/unique_fd.h"

namespace sandbox {

bool ipv4_forwarding_enabled() {
    constexpr const char* kPath = "/proc/sys/net/ipv4/ip_forward";
    // The kernel looks /proc/sys/net up in the network namespace of the
    // thread that opens it (current's nsproxy), so this answers for the
    // calling thread, also one that joined another namespace.
    UniqueFd fd(::open(kPath, O_RDONLY | O_CLOEXEC));
    if (!fd) throw_sys_error(errno, "open", kPath);
    char value[8] = {};
    ssize_t n;
    do {
        n = ::read(fd.get(), value, sizeof value - 1);
    } while (n < 0 && errno == EINTR);
    if (n < 0) throw_sys_error(errno, "read", kPath);
    if (n == 0) throw SysError(EIO, std::string("read ") + kPath + ": empty");
    return value[0] != '0';
}

}  // namespace sandbox
