// Where cgroup v2 lives on this host, and where in it we are.
#pragma once

#include <string>
#include <string_view>

namespace sandbox {

enum class CgroupLayout {
    kUnified,  // /sys/fs/cgroup is cgroup2: all controllers available to v2
    kHybrid,   // v2 at /sys/fs/cgroup/unified, controllers bound to v1: grouping, kill, events only
};

struct CgroupMount {
    std::string path;  // e.g. "/sys/fs/cgroup" or "/sys/fs/cgroup/unified"
    CgroupLayout layout = CgroupLayout::kUnified;
};

// Finds the cgroup2 mount by statfs() of /sys/fs/cgroup, then
// /sys/fs/cgroup/unified. Throws SysError(ENOENT) naming both paths if neither
// is cgroup2 (a v1-only host is not supported).
CgroupMount find_cgroup2_mount();

// The calling process's v2 cgroup, the "0::" entry of /proc/self/cgroup
// (e.g. "/system.slice/pattern-launcher.service").
std::string self_cgroup();

// Extracts the "0::" path from the text of a /proc/<pid>/cgroup file; throws
// ConfigError when there is none (a v1-only view).
std::string parse_v2_cgroup_entry(std::string_view proc_cgroup_text);

// Joins the mount path and a cgroup path ("/" stays the mount itself).
std::string cgroup_dir(const CgroupMount& mount, std::string_view cgroup);

// Whether systemd delegated the cgroup directory `cgroup_dir` (Delegate=yes
// on its unit): the delegation xattr systemd's system manager sets on it
// reads "1". False when the xattr is absent or cannot be read. A root
// process can write to any cgroup, so write access would prove nothing.
bool cgroup_is_delegated(const std::string& cgroup_dir);

}  // namespace sandbox
