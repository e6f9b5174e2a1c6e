#include "sandbox/cgroup_mount.h"

#include <linux/magic.h>
#include <sys/vfs.h>
#include <sys/xattr.h>

#include <cerrno>

#include "sandbox/error.h"
#include "sandbox/file_io.h"

namespace sandbox {
namespace {

bool is_cgroup2(const char* path) {
    struct statfs fs {};
    return ::statfs(path, &fs) == 0 && fs.f_type == CGROUP2_SUPER_MAGIC;
}

// 1 for the value "1", 0 for any other value, -1 when absent or unreadable.
int read_flag_xattr(const std::string& path, const char* name) {
    char value[8] = {};
    const ssize_t n = ::getxattr(path.c_str(), name, value, sizeof value);
    if (n < 0) return -1;
    return n == 1 && value[0] == '1' ? 1 : 0;
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

bool cgroup_is_delegated(const std::string& cgroup_dir) {
    // systemd's system manager marks the cgroup of a unit with Delegate= on
    // with "trusted.delegate" = "1" (readable with CAP_SYS_ADMIN only); newer
    // versions also set "user.delegate" (user.* xattrs on cgroupfs need Linux
    // 5.7), for unprivileged readers. A user manager (systemd --user) sets
    // neither. The trusted one is preferred; the user one is read only when
    // it is absent, as systemd's own cg_is_delegated() does: whoever may set
    // it owns the cgroup anyway.
    const int trusted = read_flag_xattr(cgroup_dir, "trusted.delegate");
    if (trusted >= 0) return trusted == 1;
    return read_flag_xattr(cgroup_dir, "user.delegate") == 1;
}

std::string cgroup_dir(const CgroupMount& mount, std::string_view cgroup) {
    if (cgroup.empty() || cgroup == "/") return mount.path;
    std::string dir = mount.path;
    if (cgroup.front() != '/') dir += '/';
    dir += cgroup;
    return dir;
}

}  // namespace sandbox
