// A private view of the file system for a child in its own mount namespace:
// the host read-only, nosuid and nodev; fresh size-capped tmpfs on /tmp,
// /var/tmp and /dev/shm; a minimal /dev; /run replaced (it holds the
// launcher's sockets, systemd's and D-Bus's); the child's own /proc with the
// usual masks; /sys read-only; /sys/fs/cgroup showing only the child's own
// cgroup; chosen host paths masked; chosen host paths bound back in.
//
// The parent compiles a FileView into a flat list of MountOps (strings and
// all) before clone; the child only walks that list with raw syscalls
// (run_mount_ops, child_exec.cc).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sandbox {

// A host path made visible inside the view (after everything is masked).
struct BindMount {
    std::string source;  // host path; must exist when the view is compiled
    std::string target;  // absolute path in the view; created on a tmpfs of the view if missing
    bool writable = false;
};

struct FileView {
    bool enabled = false;                     // requires Namespaces::mount
    std::uint64_t tmpfs_bytes = 64ull << 20;  // each of /tmp, /var/tmp, /dev/shm
    bool proc = true;                         // own /proc (requires Namespaces::pid)
    bool cgroup = true;                       // own /sys/fs/cgroup (requires Namespaces::cgroup)
    std::vector<std::string> masked;  // host paths hidden: directories by an empty read-only tmpfs,
                                      // anything else by /dev/null; missing paths are skipped
    std::vector<BindMount> binds;
};

// True for a path below one of the view's own file systems (/tmp, /var/tmp,
// /dev/shm, /run, /dev), where the host's files are not visible: a caller
// binds back in what a child needs from there.
bool hidden_by_view(std::string_view path);

namespace detail {

enum class MountOpKind : int {
    kMakePrivate,   // mount(NULL, "/", MS_REC|MS_PRIVATE)
    kOpenTree,      // slot <- open_tree(source, OPEN_TREE_CLONE); attr applied to the copy
    kReadOnlyTree,  // mount_setattr(target, AT_RECURSIVE, attr)
    kMount,         // mount(source, target, fstype, flags, data)
    kRemount,       // mount(NULL, target, NULL, MS_REMOUNT|MS_BIND|flags)
    kMkdir,         // mkdir(target, mode); EEXIST is fine
    kMkfile,        // open(target, O_CREAT) + close
    kSymlink,       // symlink(source, target)
    kMoveTree,      // move_mount(slot -> target)
};

struct MountOp {
    MountOpKind kind = MountOpKind::kMount;
    const char* source = nullptr;
    const char* target = nullptr;
    const char* fstype = nullptr;
    const char* data = nullptr;
    unsigned long flags = 0;
    std::uint64_t attr = 0;  // MOUNT_ATTR_* for kOpenTree / kReadOnlyTree
    unsigned mode = 0;
    int slot = -1;          // index into the child's tree-fd scratch array
    bool optional = false;  // ENOENT (a path that is not there) is not a failure
};

// The compiled view: the ops and the storage their pointers point into.
struct CompiledView {
    std::vector<MountOp> ops;
    std::vector<int> tree_fds;  // scratch for the child, one per kOpenTree
    std::vector<std::unique_ptr<std::string>> strings;
};

// Throws ConfigError for a view that cannot be right (relative paths, a
// bind whose source is missing, a target below a read-only host path that
// does not exist there).
CompiledView compile_view(const FileView& view);

// "mount tmpfs on /tmp", "bind /run/x onto /run/pattern/notify", ...: what op
// `index` does, for the parent's error message after a failed step.
std::string describe_mount_op(const CompiledView& view, int index);

}  // namespace detail
}  // namespace sandbox
