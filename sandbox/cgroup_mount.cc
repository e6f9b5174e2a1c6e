#include "sandbox/cgroup_mount.h"

#include <linux/magic.h>
#include <sys/vfs.h>

#include <cerrno>

#include "sandbox/error.h"
#include "sandbox/file_io.h"

namespace sandbox {
namespace {

bool is_cgroup2(const char* path) {
    struct statfs fs {};
    return ::statfs(path, &fs) == 0 && fs.f_type == CGROUP2_SUPER_MAGIC;
}

}  // namespace

CgroupMount find_cgroup2_mount() {
    // The three setups systemd documents (CGROUP_DELEGATION.md): unified has
    // cgroup2 at /sys/fs/cgroup; hybrid has a tmpfs there with cgroup2 at
    // ./unified; legacy has no cgroup2 at all.
    if (is_cgroup2("/sys/fs/cgroup")) return {"/sys/fs/cgroup", CgroupLayout::kUnified};
    if (is_cgroup2("/sys/fs/cgroup/unified")) {
        return {"/sys/fs/cgroup/unified", CgroupLayout::kHybrid};
    }
    throw SysError(ENOENT,
                   "find cgroup v2: neither /sys/fs/cgroup nor /sys/fs/cgroup/unified is a "
                   "cgroup2 mount (cgroup v1-only hosts are not supported)");
}

std::string parse_v2_cgroup_entry(std::string_view text) {
    std::size_t pos = 0;
    while (pos < text.size()) {
        std::size_t eol = text.find('\n', pos);
        if (eol == std::string_view::npos) eol = text.size();
        std::string_view line = text.substr(pos, eol - pos);
        if (line.starts_with("0::")) return std::string(line.substr(3));
        pos = eol + 1;
    }
    throw ConfigError("no cgroup v2 entry (\"0::\") in /proc/self/cgroup");
}

std::string self_cgroup() {
    return parse_v2_cgroup_entry(detail::read_file("/proc/self/cgroup"));
}

std::string cgroup_dir(const CgroupMount& mount, std::string_view cgroup) {
    if (cgroup.empty() || cgroup == "/") return mount.path;
    std::string dir = mount.path;
    if (cgroup.front() != '/') dir += '/';
    dir += cgroup;
    return dir;
}

}  // namespace sandbox
