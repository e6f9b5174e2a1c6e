#include "sandbox/cgroup.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <thread>

#include "sandbox/cgroup_lookup.h"
#include "sandbox/error.h"
#include "sandbox/file_io.h"

namespace sandbox {

using detail::mkdir_path;
using detail::open_path;
using detail::opendir_path;
using detail::path_exists;
using detail::read_file;
using detail::read_keyed_value;
using detail::rmdir_path;
using detail::try_write_file;
using detail::write_file;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

namespace {

std::vector<std::string> split_words(std::string_view text) {
    std::vector<std::string> words;
    std::size_t pos = 0;
    while (pos < text.size()) {
        std::size_t start = text.find_first_not_of(" \n", pos);
        if (start == std::string_view::npos) break;
        std::size_t end = text.find_first_of(" \n", start);
        if (end == std::string_view::npos) end = text.size();
        words.emplace_back(text.substr(start, end - start));
        pos = end;
    }
    return words;
}

std::optional<std::uint64_t> read_u64_file(const std::string& path) {
    UniqueFd fd(open_path(path, O_RDONLY | O_CLOEXEC));
    if (!fd) return std::nullopt;  // the controller is not enabled for this group
    char buf[64];
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n <= 0) return std::nullopt;
    std::uint64_t value = 0;
    auto [p, ec] = std::from_chars(buf, buf + n, value);
    if (ec != std::errc()) return std::nullopt;
    return value;
}

std::optional<std::uint64_t> keyed(std::string_view text, std::string_view key) {
    long long v = read_keyed_value(text, key);
    if (v < 0) return std::nullopt;
    return static_cast<std::uint64_t>(v);
}

// Reads a kernfs file again from offset 0 through an fd kept open for poll().
std::string pread_all(int fd) {
    std::string out;
    char buf[512];
    off_t off = 0;
    for (;;) {
        ssize_t n = ::pread(fd, buf, sizeof buf, off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        out.append(buf, static_cast<std::size_t>(n));
        off += n;
    }
    return out;
}

// Waits until `key` in the flat-keyed file behind `fd` has `want`, polling
// for the kernel's POLLPRI change notification; false on timeout.
bool wait_keyed(int fd, std::string_view key, long long want, Clock::time_point deadline) {
    for (;;) {
        if (read_keyed_value(pread_all(fd), key) == want) return true;
        auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
        if (left <= 0) return false;
        pollfd p{fd, POLLPRI, 0};
        int r = ::poll(&p, 1, static_cast<int>(std::min<long long>(left, 100)));
        if (r < 0 && errno != EINTR) throw_sys_error(errno, "poll cgroup events");
    }
}

std::vector<std::string> child_dirs(const std::string& path) {
    std::vector<std::string> out;
    DIR* dir = opendir_path(path);
    if (!dir) {
        if (errno == ENOENT) return out;
        throw_sys_error(errno, "opendir", path);
    }
    // kernfs fills in d_type, so no stat() per entry is needed.
    while (dirent* e = ::readdir(dir)) {
        std::string_view name = e->d_name;
        if (e->d_type == DT_DIR && name != "." && name != "..") out.emplace_back(name);
    }
    ::closedir(dir);
    return out;
}

// rmdir of `path`'s descendants, deepest first, then of `path`; false at
// the first EBUSY of `path` itself or if any descendant stayed.
bool try_remove_tree(const std::string& path) {
    bool all_gone = true;
    for (const std::string& child : child_dirs(path)) {
        if (!try_remove_tree(path + "/" + child)) all_gone = false;
    }
    if (!all_gone) return false;  // rmdir would only say EBUSY
    if (rmdir_path(path) == 0 || errno == ENOENT) return true;
    if (errno == EBUSY) return false;
    throw_sys_error(errno, "remove cgroup", path);
}

UniqueFd open_dir_path(const std::string& path) {
    UniqueFd fd(open_path(path, O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!fd) throw_sys_error(errno, "open cgroup", path);
    return fd;
}

const char* controller_for(std::string_view file) {
    if (file.starts_with("memory.")) return "memory";
    if (file.starts_with("cpu.")) return "cpu";
    if (file.starts_with("pids.")) return "pids";
    return "";
}

}  // namespace

bool is_valid_cgroup_name(std::string_view name) noexcept {
    if (name.empty() || name.size() > 255 || name == "." || name == "..") return false;
    if (name.starts_with("cgroup.")) return false;
    return std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '.' || c == '_' || c == ':' || c == '@' || c == '-';
    });
}

void validate_cgroup_name(std::string_view name) {
    if (is_valid_cgroup_name(name)) return;
    std::string shown;
    for (char c : name.substr(0, 64))
        shown += (c >= 0x20 && c < 0x7f) ? c : '?';
    throw ConfigError("invalid cgroup name '" + shown +
                      "': use 1-255 characters from [A-Za-z0-9._:@-], not '.', '..' or "
                      "a 'cgroup.' prefix");
}

bool LimitReport::all_applied() const {
    return std::all_of(outcomes.begin(), outcomes.end(),
                       [](const LimitOutcome& o) { return o.applied; });
}

std::string LimitReport::describe_failures() const {
    std::string out;
    for (const LimitOutcome& o : outcomes) {
        if (o.applied) continue;
        if (!out.empty()) out += "; ";
        out += o.file + " not applied: " + o.reason;
    }
    return out;
}

// ---- Cgroup -------------------------------------------------------------

Cgroup::Cgroup(std::string path, UniqueFd dir, bool owned) noexcept
    : path_(std::move(path)), dir_(std::move(dir)), owned_(owned) {}

Cgroup Cgroup::create(std::string path) {
    if (mkdir_path(path, 0755) != 0) throw_sys_error(errno, "create cgroup", path);
    // Own it from here on, so a failure below removes it again.
    Cgroup group(path, UniqueFd(), true);
    group.dir_ = open_dir_path(group.path_);
    return group;
}

Cgroup Cgroup::adopt(std::string path) {
    UniqueFd dir = open_dir_path(path);
    return Cgroup(std::move(path), std::move(dir), true);
}

UniqueFd Cgroup::open_dir() const {
    return open_dir_path(path_);
}

Cgroup::Cgroup(Cgroup&& other) noexcept
    : path_(std::move(other.path_)),
      dir_(std::move(other.dir_)),
      owned_(std::exchange(other.owned_, false)) {}

Cgroup& Cgroup::operator=(Cgroup&& other) noexcept {
    if (this != &other) {
        Cgroup old(std::move(*this));  // destroyed (and cleaned up) at scope end
        path_ = std::move(other.path_);
        dir_ = std::move(other.dir_);
        owned_ = std::exchange(other.owned_, false);
    }
    return *this;
}

Cgroup::~Cgroup() {
    if (!owned_) return;
    try {
        kill();
        remove(std::chrono::seconds(2));
    } catch (...) {
        // Nothing sensible to do in a destructor; remove() reports errors.
    }
}

std::string Cgroup::release() noexcept {
    owned_ = false;
    return path_;
}

Cgroup Cgroup::create_incarnation(std::uint32_t n) const {
    const std::string name = "run." + std::to_string(n);
    const std::string leaf = path_ + "/" + name;
    if (rmdir_path(leaf) != 0 && errno != ENOENT) {
        throw_sys_error(errno, "remove the stale incarnation leaf", leaf);
    }
    return create_child(name);
}

Cgroup Cgroup::create_child(std::string_view name) const {
    validate_cgroup_name(name);
    return create(path_ + "/" + std::string(name));
}

std::vector<std::string> cgroup_controllers(const std::string& cgroup_dir) {
    return split_words(read_file(cgroup_dir + "/cgroup.controllers"));
}

std::vector<std::string> Cgroup::enabled_controllers() const {
    return split_words(read_file(file("cgroup.subtree_control")));
}

void Cgroup::enable_controller(std::string_view controller) {
    std::string value = "+" + std::string(controller);
    // The kernel can report EBUSY for a moment while a just-emptied child is
    // still being torn down (crun retries the same way).
    for (int attempt = 0;; ++attempt) {
        int err = try_write_file(file("cgroup.subtree_control"), value);
        if (err == 0) return;
        if (err != EBUSY || attempt == 100) {
            std::string why = "enable controller '" + std::string(controller) + "' in";
            if (err == EBUSY) why += " (the group has processes of its own)";
            throw_sys_error(err, why, file("cgroup.subtree_control"));
        }
        std::this_thread::sleep_for(milliseconds(1));
    }
}

CgroupUsage Cgroup::usage() const {
    CgroupUsage u;
    u.memory_current = read_u64_file(file("memory.current"));
    u.pids_current = read_u64_file(file("pids.current"));
    std::string stat = read_file(file("cpu.stat"));
    u.cpu_usage_usec = keyed(stat, "usage_usec");
    return u;
}

bool Cgroup::populated() const {
    return read_keyed_value(read_file(file("cgroup.events")), "populated") == 1;
}

MemoryEvents Cgroup::memory_events() const {
    MemoryEvents ev;
    UniqueFd fd(open_path(file("memory.events"), O_RDONLY | O_CLOEXEC));
    if (!fd) return ev;
    std::string text = pread_all(fd.get());
    ev.oom = keyed(text, "oom").value_or(0);
    ev.oom_kill = keyed(text, "oom_kill").value_or(0);
    ev.max = keyed(text, "max").value_or(0);
    return ev;
}

std::vector<pid_t> Cgroup::processes() const {
    return cgroup_processes(path_);
}

std::vector<std::string> Cgroup::child_names() const {
    return cgroup_child_names(path_);
}

bool cgroup_exists(const std::string& cgroup_dir) {
    const int err = path_exists(cgroup_dir);
    if (err == 0) return true;
    if (err == ENOENT) return false;
    throw_sys_error(err, "look up the cgroup", cgroup_dir);
}

std::vector<std::string> cgroup_child_names(const std::string& cgroup_dir) {
    std::vector<std::string> names = child_dirs(cgroup_dir);
    std::sort(names.begin(), names.end());
    return names;
}

bool cgroup_has_pid(const std::string& cgroup_dir, pid_t pid) {
    std::vector<pid_t> pids;
    try {
        pids = cgroup_processes(cgroup_dir);
    } catch (const SysError& e) {
        // The group is gone (ENODEV: while it was being read), and the pid with it.
        if (e.code() == ENOENT || e.code() == ENODEV) return false;
        throw;
    }
    return std::find(pids.begin(), pids.end(), pid) != pids.end();
}

std::vector<pid_t> cgroup_processes(const std::string& cgroup_dir) {
    std::vector<pid_t> pids;
    for (const std::string& w : split_words(read_file(cgroup_dir + "/cgroup.procs"))) {
        pid_t pid = 0;
        if (std::from_chars(w.data(), w.data() + w.size(), pid).ec == std::errc()) {
            pids.push_back(pid);
        }
    }
    return pids;
}

UniqueFd Cgroup::open_events() const {
    UniqueFd fd(open_path(file("cgroup.events"), O_RDONLY | O_CLOEXEC));
    if (!fd) throw_sys_error(errno, "open", file("cgroup.events"));
    return fd;
}

UniqueFd Cgroup::open_memory_events() const {
    return UniqueFd(open_path(file("memory.events"), O_RDONLY | O_CLOEXEC));
}

void Cgroup::kill() {
    int err = try_write_file(file("cgroup.kill"), "1");
    if (err == 0) return;
    if (err != ENOENT) throw_sys_error(err, "write '1' to", file("cgroup.kill"));
    if (path_exists(path_) == ENOENT) return;  // removed: nobody left
    kill_by_freezing();
}

void Cgroup::kill_by_freezing() {
    // Frozen tasks cannot fork, so one pass over cgroup.procs sees them all;
    // a SIGKILL is delivered to frozen tasks once they are thawed.
    write_file(file("cgroup.freeze"), "1");
    UniqueFd events = open_events();
    wait_keyed(events.get(), "frozen", 1, Clock::now() + std::chrono::seconds(1));
    for (pid_t pid : processes())
        ::kill(pid, SIGKILL);
    for (const std::string& child : child_dirs(path_)) {
        Cgroup sub(path_ + "/" + child, open_dir_path(path_ + "/" + child), false);
        sub.kill_by_freezing();
    }
    write_file(file("cgroup.freeze"), "0");
}

bool Cgroup::wait_until_empty(milliseconds timeout) const {
    UniqueFd events = open_events();
    return wait_keyed(events.get(), "populated", 0, Clock::now() + timeout);
}

void Cgroup::remove(milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    auto left = [&] {
        return std::max(milliseconds(0),
                        std::chrono::duration_cast<milliseconds>(deadline - Clock::now()));
    };
    for (const std::string& child : child_dirs(path_)) {
        Cgroup sub = adopt(path_ + "/" + child);
        sub.remove(left());
    }
    if (!wait_until_empty(left())) {
        throw SysError(EBUSY, "remove cgroup " + path_ + ": still has processes after " +
                                  std::to_string(timeout.count()) + " ms");
    }
    dir_.reset();
    // rmdir can still see EBUSY briefly after populated drops to 0, while
    // the last task finishes exiting; retry with a growing pause.
    for (int pause_ms = 1;; pause_ms = std::min(pause_ms * 2, 10)) {
        if (rmdir_path(path_) == 0 || errno == ENOENT) {
            owned_ = false;
            return;
        }
        if (errno != EBUSY || Clock::now() >= deadline)
            throw_sys_error(errno, "remove cgroup", path_);
        std::this_thread::sleep_for(milliseconds(pause_ms));
    }
}

bool Cgroup::try_remove() {
    if (!try_remove_tree(path_)) return false;
    dir_.reset();
    owned_ = false;
    return true;
}

// ---- CgroupTree ---------------------------------------------------------

CgroupTree CgroupTree::open(std::string root_path, Options options) {
    CgroupTree tree;
    tree.mount_ = find_cgroup2_mount();
    if (!root_path.starts_with(tree.mount_.path + "/") && root_path != tree.mount_.path) {
        throw ConfigError("cgroup root " + root_path + " is not below the cgroup2 mount " +
                          tree.mount_.path);
    }
    while (root_path.size() > 1 && root_path.back() == '/')
        root_path.pop_back();
    tree.root_path_ = root_path;
    tree.original_cgroup_dir_ = cgroup_dir(tree.mount_, self_cgroup());

    if (mkdir_path(root_path, 0755) != 0 && errno != EEXIST) {
        throw_sys_error(errno, "create cgroup root", root_path);
    }
    tree.open_ = true;  // from here on the destructor undoes what was done

    tree.delegated_ = std::move(options.delegated_controllers);
    if (options.move_self_to_supervisor || options.supervisor_occupant > 0) {
        std::string supervisor = tree.supervisor_path();
        if (mkdir_path(supervisor, 0755) != 0 && errno != EEXIST) {
            throw_sys_error(errno, "create supervisor cgroup", supervisor);
        }
        if (options.supervisor_occupant > 0) {
            write_file(supervisor + "/cgroup.procs", std::to_string(options.supervisor_occupant));
            tree.occupied_ = true;
        } else {
            // "0" moves the writer's whole thread group.
            write_file(supervisor + "/cgroup.procs", "0");
            tree.moved_self_ = true;
        }
    }
    return tree;
}

CgroupTree::CgroupTree(CgroupTree&& other) noexcept
    : mount_(std::move(other.mount_)),
      root_path_(std::move(other.root_path_)),
      original_cgroup_dir_(std::move(other.original_cgroup_dir_)),
      delegated_(std::move(other.delegated_)),
      moved_self_(other.moved_self_),
      occupied_(other.occupied_),
      open_(std::exchange(other.open_, false)) {}

CgroupTree::~CgroupTree() {
    try {
        close();
    } catch (...) {
        // close() is the way to see errors.
    }
}

Cgroup CgroupTree::create_group(std::string_view name) const {
    validate_cgroup_name(name);
    if (name == "supervisor") throw ConfigError("cgroup name 'supervisor' is reserved");
    return Cgroup::create(root_path_ + "/" + std::string(name));
}

std::vector<std::string> CgroupTree::available_controllers() const {
    std::vector<std::string> available = cgroup_controllers(root_path_);
    if (delegated_) {
        std::erase_if(available, [this](const std::string& c) {
            return std::find(delegated_->begin(), delegated_->end(), c) == delegated_->end();
        });
    }
    return available;
}

void CgroupTree::ensure_controller_path(const std::string& group_path,
                                        std::string_view controller) const {
    // Enable top-down: root, then each inner node, down to the group's parent.
    std::string node = root_path_;
    std::string_view rest = std::string_view(group_path).substr(root_path_.size());
    for (;;) {
        Cgroup inner(node, open_dir_path(node), false);
        auto enabled = inner.enabled_controllers();
        if (std::find(enabled.begin(), enabled.end(), controller) == enabled.end()) {
            inner.enable_controller(controller);
        }
        // rest is "/a/b/group": step one component down, stop at the parent.
        std::size_t next = rest.find('/', 1);
        if (next == std::string_view::npos) return;
        node += rest.substr(0, next);
        rest = rest.substr(next);
    }
}

LimitReport CgroupTree::apply_limits(const Cgroup& group, const CgroupLimits& limits,
                                     Enforcement enforcement) const {
    if (!group.path().starts_with(root_path_ + "/")) {
        throw ConfigError("cgroup " + group.path() + " is not below the tree root " + root_path_);
    }
    std::vector<std::pair<std::string, std::string>> writes;
    if (limits.memory_max) writes.emplace_back("memory.max", std::to_string(*limits.memory_max));
    if (limits.memory_swap_max) {
        writes.emplace_back("memory.swap.max", std::to_string(*limits.memory_swap_max));
    }
    if (limits.cpu_max) writes.emplace_back("cpu.max", limits.cpu_max->to_string());
    if (limits.cpu_weight) {
        if (*limits.cpu_weight < 1 || *limits.cpu_weight > 10000) {
            throw ConfigError("cpu.weight " + std::to_string(*limits.cpu_weight) +
                              " is outside 1..10000");
        }
        writes.emplace_back("cpu.weight", std::to_string(*limits.cpu_weight));
    }
    if (limits.pids_max) writes.emplace_back("pids.max", std::to_string(*limits.pids_max));

    LimitReport report;
    const auto available = available_controllers();
    for (auto& [file_name, value] : writes) {
        LimitOutcome outcome{file_name, value, false, {}};
        const std::string controller = controller_for(file_name);
        if (std::find(available.begin(), available.end(), controller) == available.end()) {
            std::string have;
            for (const auto& c : available)
                have += (have.empty() ? "" : " ") + c;
            // A controller is usable here only if it was delegated: the
            // parent enabled it for this subtree (cgroup.controllers) and,
            // where systemd said which, it is one of DelegateControllers.
            outcome.reason = "controller '" + controller + "' is not delegated to " + root_path_ +
                             (delegated_ ? " (delegated: " : " (its cgroup.controllers lists: ") +
                             (have.empty() ? "none" : have) + ")";
            if (enforcement == Enforcement::kStrict) {
                throw ConfigError("cannot enforce " + file_name + "=" + value + ": " +
                                  outcome.reason);
            }
            report.outcomes.push_back(std::move(outcome));
            continue;
        }
        ensure_controller_path(group.path(), controller);
        write_file(group.path() + "/" + file_name, value);
        outcome.applied = true;
        report.outcomes.push_back(std::move(outcome));
    }
    return report;
}

void CgroupTree::close() {
    if (!open_) return;
    open_ = false;
    // Leave first: our own process must not be inside what we kill.
    bool left_tree =
        !original_cgroup_dir_.starts_with(root_path_ + "/") && original_cgroup_dir_ != root_path_;
    if (moved_self_ && left_tree) write_file(original_cgroup_dir_ + "/cgroup.procs", "0");
    // The occupant's supervisor and the root it keeps are the caller's to end.
    const bool keep_supervisor = !left_tree || occupied_;
    for (const std::string& child : child_dirs(root_path_)) {
        if (child == "supervisor" && keep_supervisor) continue;
        Cgroup group = Cgroup::adopt(root_path_ + "/" + child);
        if (child != "supervisor") group.kill();
        group.remove();
    }
    // The subtree is ours whether this instance created it or inherited it
    // from one that died; it goes unless we live in it (a delegated unit).
    if (left_tree && !occupied_ && rmdir_path(root_path_) != 0 && errno != ENOENT) {
        throw_sys_error(errno, "remove cgroup root", root_path_);
    }
}

}  // namespace sandbox
