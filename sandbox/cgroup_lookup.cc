#include "sandbox/cgroup_lookup.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <new>

#include "sandbox/cgroup_mount.h"
#include "sandbox/unique_fd.h"

namespace sandbox::detail {
namespace {

struct Anchor {
    std::string mount;  // "/sys/fs/cgroup"; empty when there is no cgroup2 mount
    UniqueFd fd;
};

const Anchor& anchor() noexcept {
    // Initialised once, thread-safely, on the first lookup (CgroupTree::open
    // in the daemon). Never destroyed: a static destructor that ran before
    // another one's cgroup work would leave it looking up through a closed fd.
    static const Anchor& instance = *[]() noexcept {
        auto* a = new (std::nothrow) Anchor;
        if (!a) std::abort();
        try {
            CgroupMount mount = find_cgroup2_mount();
            a->fd = UniqueFd(::open(mount.path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
            if (a->fd) a->mount = std::move(mount.path);
        } catch (...) {
            // No cgroup2 mount: every lookup starts at "/".
        }
        return a;
    }();
    return instance;
}

}  // namespace

LookupStart lookup_start(const std::string& path) noexcept {
    // find_cgroup2_mount() names /sys/fs/cgroup or a directory below it.
    // Other paths (procfs above all) never open the anchor: a process that
    // touches no cgroup keeps the descriptor table it had.
    if (!path.starts_with("/sys/fs/cgroup")) return {AT_FDCWD, path.c_str()};
    const Anchor& a = anchor();
    if (a.mount.empty() || !path.starts_with(a.mount)) return {AT_FDCWD, path.c_str()};
    if (path.size() == a.mount.size()) return {a.fd.get(), "."};
    if (path[a.mount.size()] != '/') return {AT_FDCWD, path.c_str()};  // "/sys/fs/cgroupX"
    std::size_t rest = a.mount.size();
    while (rest < path.size() && path[rest] == '/')
        ++rest;
    if (rest == path.size()) return {a.fd.get(), "."};
    return {a.fd.get(), path.c_str() + rest};
}

int open_path(const std::string& path, int flags) noexcept {
    const LookupStart at = lookup_start(path);
    return ::openat(at.dir_fd, at.relative, flags);
}

int mkdir_path(const std::string& path, mode_t mode) noexcept {
    const LookupStart at = lookup_start(path);
    return ::mkdirat(at.dir_fd, at.relative, mode);
}

int rmdir_path(const std::string& path) noexcept {
    const LookupStart at = lookup_start(path);
    return ::unlinkat(at.dir_fd, at.relative, AT_REMOVEDIR);
}

DIR* opendir_path(const std::string& path) noexcept {
    const int fd = open_path(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return nullptr;
    DIR* dir = ::fdopendir(fd);
    if (!dir) {
        const int err = errno;
        ::close(fd);
        errno = err;
    }
    return dir;
}

int path_exists(const std::string& path) noexcept {
    const LookupStart at = lookup_start(path);
    return ::faccessat(at.dir_fd, at.relative, F_OK, 0) == 0 ? 0 : errno;
}

}  // namespace sandbox::detail
