// Path lookups below the cgroup2 mount that start at a descriptor of the
// mount's root instead of at "/". Internal to the sandbox library.
//
// Why: an absolute path such as /sys/fs/cgroup/<key>/cgroup.kill is walked
// through sysfs's own dentries first (sys, fs, cgroup), and kernfs
// revalidates every dentry of a walk under the rwsem of its kernfs root
// (kernfs_dop_revalidate, fs/kernfs/dir.c; a rwsem per root in current
// kernels, seen on 6.18). The kernel holds sysfs's rwsem for writing while
// it removes the devices of dying network namespaces (each key's loopback),
// so during a mass shutdown the launcher's cgroup operations queued behind
// that teardown (an off-CPU profile of terminate-all at 9,950 keys in
// docs/performance.md). A walk that starts at the cgroup2 root never enters
// sysfs; it still revalidates the cgroup hierarchy's own dentries.
//
// The descriptor is opened on the first lookup of a path below
// /sys/fs/cgroup and held for the life of the process: every cgroup of the
// process lives on the one cgroup2 mount that find_cgroup2_mount() names,
// and one O_PATH fd costs less than the alternative, a held fd per group
// (two per key).
#pragma once

#include <dirent.h>
#include <sys/types.h>

#include <string>

namespace sandbox::detail {

// Where the lookup of `path` starts: the cgroup2 root's fd and the rest of
// the path below it ("." for the root itself), or AT_FDCWD and the path
// unchanged for anything else (procfs, relative paths, a host without
// cgroup2). `relative` points into `path`, so it lives as long as it does.
struct LookupStart {
    int dir_fd;
    const char* relative;
};
LookupStart lookup_start(const std::string& path) noexcept;

// The libc calls, through lookup_start(); results and errno as theirs.
int open_path(const std::string& path, int flags) noexcept;
int mkdir_path(const std::string& path, mode_t mode) noexcept;
int rmdir_path(const std::string& path) noexcept;
DIR* opendir_path(const std::string& path) noexcept;
// 0 when `path` exists, else the errno of the lookup (ENOENT: it does not).
int path_exists(const std::string& path) noexcept;

}  // namespace sandbox::detail
