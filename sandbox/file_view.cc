#include "sandbox/file_view.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <string_view>

#include "sandbox/error.h"

namespace sandbox::detail {
namespace {

constexpr std::uint64_t kReadOnlyAttrs = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
constexpr unsigned long kNoExecFlags = MS_NOSUID | MS_NODEV | MS_NOEXEC;

// The view's own file systems: a bind target below one of them is created
// there; anywhere else the host must already have it (the host is read-only).
constexpr std::array<std::string_view, 5> kViewTmpfs = {"/tmp", "/var/tmp", "/dev/shm", "/run",
                                                        "/dev"};

// OCI runtimes' usual masks (runc, crun): kernel memory and internals that
// no pattern needs and some of which leak other tenants' activity.
constexpr std::array<const char*, 7> kProcMaskedFiles = {
    "/proc/kcore",       "/proc/keys",        "/proc/timer_list",   "/proc/latency_stats",
    "/proc/sched_debug", "/proc/timer_stats", "/proc/sysrq-trigger"};
constexpr std::array<const char*, 2> kProcMaskedDirs = {"/proc/acpi", "/proc/scsi"};
constexpr std::array<const char*, 4> kProcReadOnly = {"/proc/sys", "/proc/bus", "/proc/fs",
                                                      "/proc/irq"};

constexpr std::array<const char*, 6> kDevices = {"/dev/null",   "/dev/zero",    "/dev/full",
                                                 "/dev/random", "/dev/urandom", "/dev/tty"};

bool below(std::string_view path, std::string_view dir) {
    return path == dir ||
           (path.starts_with(dir) && path.size() > dir.size() && path[dir.size()] == '/');
}

class Builder {
public:
    explicit Builder(CompiledView& out) : out_(out) {}

    const char* str(std::string s) {
        out_.strings.push_back(std::make_unique<std::string>(std::move(s)));
        return out_.strings.back()->c_str();
    }
    MountOp& add(MountOpKind kind, const char* target) {
        MountOp op;
        op.kind = kind;
        op.target = target;
        out_.ops.push_back(op);
        return out_.ops.back();
    }
    void mount(const char* source, const char* target, const char* fstype, unsigned long flags,
               const char* data, bool optional = false) {
        MountOp& op = add(MountOpKind::kMount, target);
        op.source = source;
        op.fstype = fstype;
        op.flags = flags;
        op.data = data;
        op.optional = optional;
    }
    void remount_read_only(const char* target, unsigned long flags, bool optional = false) {
        MountOp& op = add(MountOpKind::kRemount, target);
        op.flags = MS_RDONLY | flags;
        op.optional = optional;
    }
    void mask_dir(const char* path) {
        mount("tmpfs", path, "tmpfs", MS_RDONLY | kNoExecFlags, "size=0,mode=000", true);
    }
    void mask_file(const char* path) { mount("/dev/null", path, nullptr, MS_BIND, nullptr, true); }
    void bind_read_only(const char* path) {
        mount(path, path, nullptr, MS_BIND | MS_REC, nullptr, true);
        remount_read_only(path, kNoExecFlags, true);
    }
    // mkdir -p below a view tmpfs, then the mount point itself.
    void make_mount_point(const std::string& target, bool directory) {
        std::string prefix;
        std::size_t pos = 1;
        while ((pos = target.find('/', pos)) != std::string::npos) {
            prefix = target.substr(0, pos++);
            if (is_view_tmpfs(prefix)) continue;
            add(MountOpKind::kMkdir, str(prefix)).mode = 0755;
        }
        if (directory) {
            add(MountOpKind::kMkdir, str(target)).mode = 0755;
        } else {
            add(MountOpKind::kMkfile, str(target)).mode = 0644;
        }
    }
    int next_slot() {
        out_.tree_fds.push_back(-1);
        return static_cast<int>(out_.tree_fds.size()) - 1;
    }

private:
    static bool is_view_tmpfs(std::string_view path) {
        return std::find(kViewTmpfs.begin(), kViewTmpfs.end(), path) != kViewTmpfs.end();
    }
    CompiledView& out_;
};

void check_absolute(const std::string& path, const char* what) {
    if (path.empty() || path.front() != '/' || path.find("/../") != std::string::npos ||
        path.ends_with("/..")) {
        throw ConfigError(std::string(what) + " '" + path +
                          "' must be an absolute path without ..");
    }
}

}  // namespace

CompiledView compile_view(const FileView& view) {
    CompiledView out;
    Builder b(out);
    const std::string tmp_options =
        "mode=1777,size=" + std::to_string(std::max<std::uint64_t>(view.tmpfs_bytes, 4096));

    // What is bound back in is opened first, while the host still shows it.
    struct PendingBind {
        const BindMount* bind;
        int slot;
        bool directory;
    };
    std::vector<PendingBind> pending;
    for (const BindMount& bind : view.binds) {
        check_absolute(bind.source, "bind source");
        check_absolute(bind.target, "bind target");
        struct stat st {};
        if (::stat(bind.source.c_str(), &st) != 0) {
            throw ConfigError("bind source '" + bind.source + "': " + std::strerror(errno));
        }
        if (!hidden_by_view(bind.target) && ::stat(bind.target.c_str(), &st) != 0) {
            throw ConfigError("bind target '" + bind.target +
                              "' does not exist on the read-only host and is not below a tmpfs "
                              "of the view (/tmp, /var/tmp, /dev/shm, /run)");
        }
        pending.push_back({&bind, b.next_slot(), S_ISDIR(st.st_mode)});
    }

    // Our mounts must never propagate back to the host (and the host's
    // later mounts, which would be writable, must not appear in here).
    b.add(MountOpKind::kMakePrivate, "/");
    for (const PendingBind& p : pending) {
        MountOp& op = b.add(MountOpKind::kOpenTree, nullptr);
        op.source = b.str(p.bind->source);
        op.slot = p.slot;
        op.attr = p.bind->writable ? (MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV) : kReadOnlyAttrs;
    }
    struct OpenedDevice {
        const char* path;
        int slot;
    };
    std::vector<OpenedDevice> devices;
    for (const char* path : kDevices) {
        MountOp& op = b.add(MountOpKind::kOpenTree, nullptr);
        op.source = path;
        op.slot = b.next_slot();
        op.attr = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC;
        devices.push_back({path, op.slot});
    }
    // The whole host tree, every submount included (mount_setattr, 5.12).
    b.add(MountOpKind::kReadOnlyTree, "/").attr = kReadOnlyAttrs;

    // A minimal /dev on a tmpfs, read-only at the end. The device nodes are
    // the host's, bound in: mknod would need CAP_MKNOD in the initial user
    // namespace, which a child in its own user namespace does not have.
    b.mount("tmpfs", "/dev", "tmpfs", kNoExecFlags, "mode=0755,size=64k");
    for (const OpenedDevice& dev : devices) {
        b.add(MountOpKind::kMkfile, dev.path).mode = 0644;
        b.add(MountOpKind::kMoveTree, dev.path).slot = dev.slot;
    }
    const std::array<std::pair<const char*, const char*>, 5> links = {
        {{"/proc/self/fd", "/dev/fd"},
         {"/proc/self/fd/0", "/dev/stdin"},
         {"/proc/self/fd/1", "/dev/stdout"},
         {"/proc/self/fd/2", "/dev/stderr"},
         {"pts/ptmx", "/dev/ptmx"}}};
    for (const auto& [to, from] : links)
        b.add(MountOpKind::kSymlink, from).source = to;
    b.add(MountOpKind::kMkdir, "/dev/pts").mode = 0755;
    b.mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
            "newinstance,ptmxmode=0666,mode=0620");
    b.add(MountOpKind::kMkdir, "/dev/shm").mode = 01777;
    b.mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, b.str(tmp_options));

    // Private temporary directories, charged to the child's memory cgroup.
    b.mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, b.str(tmp_options));
    b.mount("tmpfs", "/var/tmp", "tmpfs", MS_NOSUID | MS_NODEV, b.str(tmp_options), true);
    // /run: the launcher's runtime directory and API socket, systemd's and D-Bus's sockets.
    b.mount("tmpfs", "/run", "tmpfs", kNoExecFlags, "mode=0755,size=1m");

    if (view.proc) {
        b.mount("proc", "/proc", "proc", kNoExecFlags, nullptr);
        for (const char* path : kProcMaskedFiles)
            b.mask_file(path);
        for (const char* path : kProcMaskedDirs)
            b.mask_dir(path);
        for (const char* path : kProcReadOnly)
            b.bind_read_only(path);
    }
    if (view.cgroup) {
        // In the child's cgroup namespace: the root is its own cgroup. On a
        // unified host /sys/fs/cgroup already is a mount of the one cgroup2
        // superblock, and the kernel refuses the same superblock on the same
        // mount point (EBUSY): a tmpfs goes in between.
        b.mount("tmpfs", "/sys/fs/cgroup", "tmpfs", MS_RDONLY | kNoExecFlags, "size=0,mode=0555");
        b.mount("cgroup2", "/sys/fs/cgroup", "cgroup2", MS_RDONLY | kNoExecFlags, nullptr);
    }
    b.mask_dir("/sys/firmware");

    for (const std::string& path : view.masked) {
        check_absolute(path, "masked path");
        if (hidden_by_view(path)) continue;  // replaced already
        struct stat st {};
        if (::lstat(path.c_str(), &st) != 0) continue;
        if (S_ISDIR(st.st_mode)) {
            b.mask_dir(b.str(path));
        } else {
            b.mask_file(b.str(path));
        }
    }

    for (const PendingBind& p : pending) {
        if (hidden_by_view(p.bind->target)) b.make_mount_point(p.bind->target, p.directory);
        b.add(MountOpKind::kMoveTree, b.str(p.bind->target)).slot = p.slot;
    }
    b.remount_read_only("/run", kNoExecFlags);
    b.remount_read_only("/dev", kNoExecFlags);
    return out;
}

std::string describe_mount_op(const CompiledView& view, int index) {
    if (index < 0 || index >= static_cast<int>(view.ops.size())) return "file view";
    const MountOp& op = view.ops[static_cast<std::size_t>(index)];
    auto s = [](const char* p) { return std::string(p ? p : ""); };
    switch (op.kind) {
        case MountOpKind::kMakePrivate:
            return "make mounts private";
        case MountOpKind::kOpenTree:
            return "open " + s(op.source) + " to bind it in";
        case MountOpKind::kReadOnlyTree:
            return "make " + s(op.target) + " read-only, nosuid, nodev (recursively)";
        case MountOpKind::kMount:
            if (op.flags & MS_BIND) return "bind " + s(op.source) + " onto " + s(op.target);
            return "mount " + s(op.fstype) + " on " + s(op.target);
        case MountOpKind::kRemount:
            return "remount " + s(op.target) + " read-only";
        case MountOpKind::kMkdir:
            return "mkdir " + s(op.target);
        case MountOpKind::kMkfile:
            return "create mount point " + s(op.target);
        case MountOpKind::kSymlink:
            return "symlink " + s(op.target);
        case MountOpKind::kMoveTree:
            for (const MountOp& open : view.ops) {
                if (open.kind == MountOpKind::kOpenTree && open.slot == op.slot)
                    return "bind " + s(open.source) + " onto " + s(op.target);
            }
            return "bind onto " + s(op.target);
    }
    return "file view";
}

}  // namespace sandbox::detail

namespace sandbox {

bool hidden_by_view(std::string_view path) {
    return std::any_of(detail::kViewTmpfs.begin(), detail::kViewTmpfs.end(),
                       [&](std::string_view dir) { return detail::below(path, dir); });
}

}  // namespace sandbox
