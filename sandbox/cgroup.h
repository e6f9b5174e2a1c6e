// cgroup v2 groups: create, limit, observe, kill and remove.
//
// A CgroupTree is the subtree the caller owns (under systemd, the unit's
// delegated cgroup). Opening it moves the calling process into the
// `supervisor` leaf, because cgroup v2 forbids processes in inner nodes that
// have controllers enabled. Groups for children are Cgroup objects below it;
// controllers are enabled top-down, one at a time, only when a limit needs
// them.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sandbox/cgroup_mount.h"
#include "sandbox/limits.h"
#include "sandbox/unique_fd.h"

namespace sandbox {

// True for a name that is safe as one cgroup directory component:
// 1..255 characters from [A-Za-z0-9._:@-], not "." or "..", and not starting
// with "cgroup." (the kernel's interface files live in the same directory).
bool is_valid_cgroup_name(std::string_view name) noexcept;
// Throws ConfigError naming the bad name and the rule it breaks.
void validate_cgroup_name(std::string_view name);

// The controllers a cgroup directory can hand to its children (its
// cgroup.controllers), without taking ownership of the directory.
std::vector<std::string> cgroup_controllers(const std::string& cgroup_dir);

// The processes directly in a cgroup directory (its cgroup.procs), without
// taking ownership of the directory.
std::vector<pid_t> cgroup_processes(const std::string& cgroup_dir);

// True when `pid` is listed in the cgroup.procs of `cgroup_dir` itself (not
// of a descendant). False too when the directory does not exist.
bool cgroup_has_pid(const std::string& cgroup_dir, pid_t pid);

// Whether the cgroup directory exists; throws SysError naming the path when
// the lookup fails otherwise than with ENOENT.
bool cgroup_exists(const std::string& cgroup_dir);

// The names of the direct child groups of `cgroup_dir` (its subdirectories;
// the kernel's interface files are not directories), sorted. Empty when the
// directory does not exist; throws SysError naming the path on other errors.
std::vector<std::string> cgroup_child_names(const std::string& cgroup_dir);

struct CgroupUsage {
    std::optional<std::uint64_t> memory_current;  // memory.current (memory controller)
    std::optional<std::uint64_t> cpu_usage_usec;  // cpu.stat usage_usec (always on v2)
    std::optional<std::uint64_t> pids_current;    // pids.current (pids controller)
};

struct MemoryEvents {
    std::uint64_t oom = 0;       // times the group hit memory.max and the OOM killer ran
    std::uint64_t oom_kill = 0;  // processes killed by the OOM killer
    std::uint64_t max = 0;       // times usage was about to exceed memory.max
};

// Whether limits whose controller is missing are an error or only reported.
enum class Enforcement { kStrict, kBestEffort };

// What happened to each limit file we were asked to write.
struct LimitOutcome {
    std::string file;   // "memory.max"
    std::string value;  // "67108864"
    bool applied = false;
    std::string reason;  // why not, when !applied
};

struct LimitReport {
    std::vector<LimitOutcome> outcomes;
    bool all_applied() const;
    // "memory.max not applied: controller 'memory' is not available ..." lines.
    std::string describe_failures() const;
};

// Owns one cgroup directory. Destroying a Cgroup that still owns its
// directory kills everything in it and removes it (bounded, but it may wait
// up to 2 s: not for an event loop, which kills, waits for cgroup.events
// and calls try_remove() instead; errors are swallowed because destructors
// cannot report them: call remove() or try_remove() to see them). release()
// gives up ownership, e.g. to leave a group for adoption.
class Cgroup {
public:
    // mkdir + open. Fails with SysError(EEXIST) if the directory exists.
    static Cgroup create(std::string path);
    // Takes ownership of an existing cgroup directory.
    static Cgroup adopt(std::string path);

    Cgroup(Cgroup&& other) noexcept;
    Cgroup& operator=(Cgroup&& other) noexcept;
    Cgroup(const Cgroup&) = delete;
    Cgroup& operator=(const Cgroup&) = delete;
    ~Cgroup();

    const std::string& path() const noexcept { return path_; }
    // O_PATH directory fd: the `cgroup` argument of clone3(CLONE_INTO_CGROUP).
    // -1 after close_dir().
    int dir_fd() const noexcept { return dir_.get(); }
    // Closes the fd that create() and adopt() keep. Every other operation
    // goes by path, so a holder of many long-lived groups (the launcher has
    // two per key) need not pin one descriptor for each; it opens one with
    // open_dir() for the spawn that needs it.
    void close_dir() noexcept { dir_.reset(); }
    // A fresh O_PATH|O_DIRECTORY|O_CLOEXEC fd of the directory; throws
    // SysError naming the path (ENOENT once it is removed).
    UniqueFd open_dir() const;
    bool owned() const noexcept { return owned_; }

    // Creates a child group; the name is validated first.
    Cgroup create_child(std::string_view name) const;
    // The leaf "run.<n>" a process incarnation is born into. Each
    // incarnation needs a fresh one: on current kernels (seen on 6.18) a
    // group that has ever received cgroup.kill SIGKILLs every later
    // CLONE_INTO_CGROUP child at birth, so a spent leaf is never reused.
    // A stale empty leaf of that name (left by a launcher that died) is
    // removed first.
    Cgroup create_incarnation(std::uint32_t n) const;

    std::vector<std::string> enabled_controllers() const;  // cgroup.subtree_control
    // Writes "+<controller>" to cgroup.subtree_control, retrying a transient EBUSY.
    void enable_controller(std::string_view controller);

    CgroupUsage usage() const;
    // cgroup.events "populated": whether any process is in the group or below.
    // One open+read of a kernfs file; never waits.
    bool populated() const;
    MemoryEvents memory_events() const;    // zeros when the memory controller is off
    std::vector<pid_t> processes() const;  // cgroup.procs of this group only
    // The direct child groups' names (cgroup_child_names of path()).
    std::vector<std::string> child_names() const;

    // Fds to poll(2) for POLLPRI: the kernel signals them when the file's
    // content changes (e.g. populated 1 -> 0, a new oom_kill).
    UniqueFd open_events() const;
    // nullopt-like empty fd when memory.events does not exist.
    UniqueFd open_memory_events() const;

    // SIGKILLs every process in the group and its descendants: cgroup.kill,
    // or kill_by_freezing() where cgroup.kill does not exist (kernel < 5.14).
    // With cgroup.kill it is one write and does not wait for the deaths
    // (watch open_events() for that); the fallback waits up to 1 s for the
    // freeze. Nothing to do, and no error, when the group is gone already.
    void kill();
    // The fallback: freeze (so nothing can fork), SIGKILL each pid, thaw.
    void kill_by_freezing();

    // Waits until no process is left in the group or below; false on timeout.
    bool wait_until_empty(std::chrono::milliseconds timeout) const;

    // Removes the group (child groups first) once it is empty, retrying a
    // transient EBUSY; throws SysError if it is still populated at the
    // timeout. Does not kill: call kill() first when that is the intent.
    // It sleeps and waits: for startup and tests only. An event loop uses
    // try_remove(), and on false waits for POLLPRI on open_events() (the
    // kernel's populated 1 -> 0) and calls it again.
    void remove(std::chrono::milliseconds timeout = std::chrono::seconds(5));

    // One attempt, never sleeping, waiting or killing: rmdir of every
    // descendant group, deepest first, then of the group itself. True when
    // the group is gone (also when it already was: ENOENT); the Cgroup then
    // owns nothing. False while some directory is still busy (EBUSY: a
    // process is in it, or was and is still being released, which the
    // kernel shows for a moment after populated drops to 0: retry on a short
    // timer then); the empty descendants are removed already. Throws SysError
    // naming the path on any other error.
    bool try_remove();

    // Stops owning the directory (it stays); returns its path.
    std::string release() noexcept;

private:
    friend class CgroupTree;  // borrows inner nodes without owning them
    Cgroup(std::string path, UniqueFd dir, bool owned) noexcept;
    std::string file(std::string_view name) const { return path_ + "/" + std::string(name); }

    std::string path_;
    UniqueFd dir_;
    bool owned_ = false;
};

// The caller's own subtree of the cgroup hierarchy.
class CgroupTree {
public:
    struct Options {
        // Move the calling process into <root>/supervisor so that the root
        // can enable controllers for its children.
        bool move_self_to_supervisor = true;
        // Move this process into <root>/supervisor instead of the caller: a
        // placeholder that keeps a root the caller does not live in (a
        // systemd scope) populated. The root and the supervisor are then
        // left to the caller by close(). 0: none.
        pid_t supervisor_occupant = 0;
        // The controllers the tree may use, when whoever delegated the root
        // said which (systemd's DelegateControllers). A controller outside
        // the list counts as missing even if cgroup.controllers offers it.
        std::optional<std::vector<std::string>> delegated_controllers;
    };

    // root_path: an absolute directory on the cgroup2 mount, created if
    // missing. close() removes it again unless the caller came from inside it.
    static CgroupTree open(std::string root_path, Options options);
    static CgroupTree open(std::string root_path) { return open(std::move(root_path), Options{}); }

    CgroupTree(CgroupTree&& other) noexcept;
    CgroupTree& operator=(CgroupTree&& other) = delete;
    CgroupTree(const CgroupTree&) = delete;
    CgroupTree& operator=(const CgroupTree&) = delete;
    ~CgroupTree();

    const CgroupMount& mount() const noexcept { return mount_; }
    const std::string& root_path() const noexcept { return root_path_; }
    std::string supervisor_path() const { return root_path_ + "/supervisor"; }

    // Creates <root>/<name> (name validated). Deeper groups come from
    // Cgroup::create_child on the result.
    Cgroup create_group(std::string_view name) const;

    // Writes the limits into `group` (which must lie below the root), first
    // enabling each needed controller from the root down to the group's
    // parent. Strict: a limit whose controller is not available throws
    // ConfigError naming the controller, the file and where it is missing.
    // Best effort: such limits are skipped and listed in the report.
    LimitReport apply_limits(const Cgroup& group, const CgroupLimits& limits,
                             Enforcement enforcement) const;

    // Controllers the root can hand to its children: its cgroup.controllers,
    // narrowed to Options::delegated_controllers when given.
    std::vector<std::string> available_controllers() const;

    // Kills and removes every group below the root (not the supervisor), moves
    // the caller back to the cgroup it came from if that lies outside the
    // root, and then removes the root. Throws on failure; the destructor
    // calls it and swallows errors.
    void close();

private:
    CgroupTree() = default;
    void ensure_controller_path(const std::string& group_path, std::string_view controller) const;

    CgroupMount mount_;
    std::string root_path_;
    std::string original_cgroup_dir_;  // where the caller was before open()
    std::optional<std::vector<std::string>> delegated_;
    bool moved_self_ = false;
    bool occupied_ = false;  // a supervisor_occupant keeps the root
    bool open_ = false;
};

}  // namespace sandbox
