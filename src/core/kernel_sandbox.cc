#include "core/kernel_sandbox.h"

#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "common/log.h"
#include "core/spawn_plan.h"
#include "sandbox/error.h"
#include "sandbox/spawn.h"

namespace launcher {

namespace {

class KernelGroup : public KeyGroup {
public:
    // No descriptor at rest: the core keeps two groups per key for as long
    // as the key lives, and each operation opens what it needs by path
    // (spawn() its own O_PATH fd for CLONE_INTO_CGROUP).
    explicit KernelGroup(sandbox::Cgroup group) : group_(std::move(group)) { group_.close_dir(); }
    // Never the blocking kill-and-remove of sandbox::Cgroup's destructor:
    // the core removes groups through the loop.
    ~KernelGroup() override { group_.release(); }

    const std::string& path() const override { return group_.path(); }
    void kill() override { group_.kill(); }
    bool populated() const override { return group_.populated(); }
    // Edge-triggered: kernfs keeps POLLPRI raised on this fd until it is
    // read again, and the core reads populated() through a fresh open.
    Events watch_events() override { return Events{group_.open_events(), EPOLLPRI | EPOLLET}; }
    bool try_remove() override { return group_.try_remove(); }
    void disown() override { group_.release(); }
    std::unique_ptr<KeyGroup> create_incarnation(std::uint32_t n) override {
        return std::make_unique<KernelGroup>(group_.create_incarnation(n));
    }
    std::uint64_t oom_kills() const override { return group_.memory_events().oom_kill; }
    UsageSample usage() const override {
        const sandbox::CgroupUsage usage = group_.usage();
        return UsageSample{usage.memory_current.value_or(0), usage.cpu_usage_usec.value_or(0),
                           usage.pids_current.value_or(0), usage.memory_current.has_value()};
    }
    std::vector<pid_t> processes() const override { return group_.processes(); }

    sandbox::Cgroup& cgroup() { return group_; }

private:
    sandbox::Cgroup group_;
};

class KernelProcess : public KeyProcess {
public:
    explicit KernelProcess(sandbox::Process process) : process_(std::move(process)) {}
    pid_t pid() const override { return process_.pid(); }
    int exit_fd() const override { return process_.pidfd(); }
    std::optional<siginfo_t> try_reap() override { return process_.try_reap(); }
    bool has_exited() const override { return process_.has_exited(); }
    bool send_signal(int signal) override { return process_.send_signal(signal); }
    void detach() override { process_.detach(); }

private:
    sandbox::Process process_;
};

}  // namespace

KernelSandbox::KernelSandbox(sandbox::CgroupTree& tree, const LauncherConfig& config)
    : tree_(tree), config_(config), confinement_(config) {}

std::unique_ptr<KeyGroup> KernelSandbox::create_group(const std::string& name, KeyGroup* parent) {
    const std::string base = parent ? parent->path() : tree_.root_path();
    const std::string path = base + "/" + name;
    // A namespace's group outlives its keys' (a launcher restart finds it).
    const bool namespace_group =
        !parent && name.starts_with("ns:") && std::count(name.begin(), name.end(), ':') == 1;
    if (namespace_group && sandbox::cgroup_exists(path)) {
        return std::make_unique<KernelGroup>(sandbox::Cgroup::adopt(path));
    }
    if (parent) {
        return std::make_unique<KernelGroup>(
            static_cast<KernelGroup*>(parent)->cgroup().create_child(name));
    }
    return std::make_unique<KernelGroup>(tree_.create_group(name));
}

sandbox::LimitReport KernelSandbox::apply_limits(KeyGroup& group,
                                                 const sandbox::CgroupLimits& limits,
                                                 sandbox::Enforcement enforcement) {
    return tree_.apply_limits(static_cast<KernelGroup&>(group).cgroup(), limits, enforcement);
}

const sandbox::BpfProgram* KernelSandbox::seccomp_program(const std::string& profile) {
    if (profile == "none") return nullptr;
    auto it = seccomp_cache_.find(profile);
    if (it == seccomp_cache_.end()) {
        it = seccomp_cache_.emplace(profile, sandbox::compile_builtin_profile(profile)).first;
    }
    return &it->second;
}

// <runtime_dir>/keys/<process id>, made on first use and owned by the
// key's ids; it lives as long as the key (Launcher::release() removes it).
std::filesystem::path KernelSandbox::state_directory(const std::string& process_id,
                                                     std::uint32_t owner) const {
    std::filesystem::path dir = config_.runtime_dir / "keys" / process_id;
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
        sandbox::throw_sys_error(errno, "create the state directory", dir.string());
    if (owner != 0 && ::chown(dir.c_str(), owner, owner) != 0)
        sandbox::throw_sys_error(errno, "chown the state directory", dir.string());
    return dir;
}

namespace {

// The outcome is known before the clone; only the process comes at the end.
class KernelPendingProcess : public PendingProcess {
public:
    KernelPendingProcess(SpawnOutcome outcome, sandbox::PendingSpawn pending)
        : outcome_(std::move(outcome)), pending_(std::move(pending)) {}
    int ready_fd() const override { return pending_.ready_fd(); }
    SpawnOutcome finish() override {
        outcome_.process = std::make_unique<KernelProcess>(std::move(pending_.finish().process));
        return std::move(outcome_);
    }

private:
    SpawnOutcome outcome_;
    sandbox::PendingSpawn pending_;
};

}  // namespace

SpawnOutcome KernelSandbox::spawn(const SpawnRequest& request) {
    return start_spawn(request)->finish();
}

std::unique_ptr<PendingProcess> KernelSandbox::start_spawn(const SpawnRequest& request) {
    const Manifest& manifest = *request.manifest;
    KeyConfinement confinement{request.identity, &confinement_,      {},
                               request.netns_fd, request.hosts_file, request.resolv_file};
    if (manifest.sandbox.state_directory) {
        confinement.state_directory = state_directory(request.process_id, request.identity);
    }
    sandbox::SpawnSpec spec =
        build_spawn_spec(manifest, request.key, *request.config, request.endpoints, confinement);
    // The key's own ids own its notify socket: connecting needs write access.
    const std::filesystem::path& notify = request.endpoints.notify_socket;
    if (!notify.empty() &&
        ::chown(notify.c_str(), spec.credentials->uid, spec.credentials->gid) != 0) {
        sandbox::throw_sys_error(errno, "chown the notify socket", notify.string());
    }
    spec.seccomp = seccomp_program(manifest.sandbox.seccomp);
    // Open for this clone3() only (KernelGroup keeps no fd).
    const sandbox::UniqueFd leaf = static_cast<KernelGroup*>(request.leaf)->cgroup().open_dir();
    spec.cgroup_fd = leaf.get();
    if (request.output_fd >= 0) {
        spec.stdout_fd = request.output_fd;
        spec.stderr_fd = request.output_fd;
    }
    SpawnOutcome outcome;
    outcome.weakened = confinement_weakenings(manifest);
    if (request.first_spawn) {
        for (const std::string& weakened : outcome.weakened) {
            log::warning(
                request.process_id + ": WARNING: confinement weakened by its manifest: " + weakened,
                log::Key{request.process_id, request.key.namespace_id, request.key.pattern});
        }
    }
    outcome.uid = spec.credentials->uid;
    outcome.gid = spec.credentials->gid;
    outcome.confinement = launcher::applied_confinement(manifest, confinement_);
    return std::make_unique<KernelPendingProcess>(std::move(outcome), sandbox::start_spawn(spec));
}

std::optional<siginfo_t> KernelSandbox::reported_exit(pid_t pid) {
    return confinement_.reports().take(pid);
}

std::string KernelSandbox::applied_confinement(const Manifest& manifest) const {
    return launcher::applied_confinement(manifest, confinement_);
}

std::unique_ptr<KeyGroup> KernelSandbox::adopt_group(const std::string& path) {
    return std::make_unique<KernelGroup>(sandbox::Cgroup::adopt(path));
}

std::unique_ptr<KeyProcess> KernelSandbox::open_process(pid_t pid) {
    return std::make_unique<KernelProcess>(sandbox::Process::open(pid));
}

}  // namespace launcher
