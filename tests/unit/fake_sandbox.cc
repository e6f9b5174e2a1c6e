#include "fake_sandbox.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace launcher::fake {

namespace {

// Above PID_MAX_LIMIT (4194304, include/linux/threads.h): a fake pid that
// leaked into a real syscall (kill, pidfd_open, /proc) can only fail.
constexpr pid_t kFirstPid = 5'000'000;

sandbox::UniqueFd make_eventfd() {
    sandbox::UniqueFd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!fd) throw std::runtime_error(std::string("eventfd: ") + std::strerror(errno));
    return fd;
}

void signal_eventfd(int fd) {
    std::uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(fd, &one, sizeof one);
}

void clear_eventfd(int fd) {
    std::uint64_t count;
    [[maybe_unused]] ssize_t n = ::read(fd, &count, sizeof count);
}

}  // namespace

struct FakeProc {
    pid_t pid = 0;
    std::string process_id;
    std::string group;  // the leaf it was spawned into
    Behaviour behaviour;
    int health_port = 0;
    bool ready = false;   // listening
    bool exited = false;  // dead (a zombie until reaped)
    bool doomed = false;  // killed through its group: dies at the next pump()
    bool detached = false;
    int reaps = 0;
    siginfo_t status{};
    sandbox::UniqueFd exit_fd;   // readable once exited, like a pidfd
    sandbox::UniqueFd listener;  // 127.0.0.1:health_port while ready
    // Accepted probe connections, closed once the prober has closed its end:
    // the side that closes first keeps the port in TIME_WAIT for 60 s, and
    // that must not be the health port, which the next test binds again.
    std::vector<sandbox::UniqueFd> connections;
    std::vector<int> signals;
    // A session pool's process: its end of the claim socket (the process
    // "inherits" a duplicate, as a child does); closed when it exits.
    sandbox::UniqueFd claim;
};

struct GroupNode {
    // Our duplicates of the eventfds handed out by watch_events(): the
    // launcher closes its own copy whenever it likes, ours stays valid.
    std::vector<sandbox::UniqueFd> watchers;
    bool killed = false;  // has seen cgroup.kill
};

// A start held before its exec (FakeSandbox::hold_execs).
struct HeldExec {
    sandbox::UniqueFd ready = make_eventfd();
    bool released = false;
};

struct World {
    std::function<Clock::time_point()> now;
    std::string root = "/fake-cgroup/pattern-launcher";
    std::map<std::string, GroupNode> groups;
    std::vector<std::shared_ptr<FakeProc>> procs;
    std::map<std::string, Behaviour> behaviours;
    std::optional<Behaviour> default_behaviour;  // ids without a behaviour of their own
    std::map<std::string, std::deque<Behaviour>> next_behaviours;
    std::vector<SpawnRecord> spawns;
    std::vector<ExitRecord> exits;
    std::vector<std::string> violations;
    bool hold_execs = false;
    std::vector<std::weak_ptr<HeldExec>> held;
    int abandoned = 0;
    int busy_removals = 0;
    int try_remove_calls = 0;
    int max_not_ready = 0;
    pid_t next_pid = kFirstPid;

    static bool under(const std::string& path, const std::string& group) {
        return path == group ||
               (path.size() > group.size() && path.starts_with(group) && path[group.size()] == '/');
    }
    bool populated(const std::string& group) const {
        return std::any_of(procs.begin(), procs.end(),
                           [&](auto& p) { return !p->exited && under(p->group, group); });
    }
    // cgroup.events of `path` and of every group above it may have changed.
    void notify(const std::string& path) {
        for (auto& [name, node] : groups) {
            if (!under(path, name)) continue;
            for (auto& fd : node.watchers)
                signal_eventfd(fd.get());
        }
    }
    int live_not_ready() const {
        return static_cast<int>(std::count_if(procs.begin(), procs.end(),
                                              [](auto& p) { return !p->exited && !p->ready; }));
    }
    void finish(FakeProc& p, int how, int status) {
        if (p.exited) return;
        p.exited = true;
        p.doomed = false;
        p.ready = false;
        p.connections.clear();
        p.listener.reset();
        p.claim.reset();
        p.status = siginfo_t{};
        p.status.si_signo = SIGCHLD;
        p.status.si_code = how;
        p.status.si_status = status;
        p.status.si_pid = p.pid;
        signal_eventfd(p.exit_fd.get());
        notify(p.group);
        exits.push_back({p.process_id, p.pid, how, status, now()});
    }
    void listen(FakeProc& p) {
        sandbox::UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
        int one = 1;
        ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        addr.sin_port = htons(static_cast<std::uint16_t>(p.health_port));
        if (!fd || ::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
            ::listen(fd.get(), 64) != 0) {
            ADD_FAILURE() << "fake process " << p.process_id
                          << " cannot listen on 127.0.0.1:" << p.health_port << ": "
                          << std::strerror(errno);
            return;
        }
        p.listener = std::move(fd);
        p.ready = true;
    }
    std::shared_ptr<FakeProc> live_of(const std::string& process_id) const {
        for (auto it = procs.rbegin(); it != procs.rend(); ++it) {
            if ((*it)->process_id == process_id && !(*it)->exited) return *it;
        }
        return nullptr;
    }
};

namespace {

class FakeGroup : public KeyGroup {
public:
    FakeGroup(std::shared_ptr<World> world, std::string path)
        : world_(std::move(world)), path_(std::move(path)) {}

    const std::string& path() const override { return path_; }

    // cgroup.kill is asynchronous: the processes die at the next pump().
    void kill() override {
        auto node = world_->groups.find(path_);
        if (node == world_->groups.end()) {
            throw std::runtime_error("cgroup.kill of " + path_ + ": No such file or directory");
        }
        for (auto& [name, n] : world_->groups) {
            if (World::under(name, path_)) n.killed = true;
        }
        for (auto& p : world_->procs) {
            if (!p->exited && World::under(p->group, path_)) p->doomed = true;
        }
    }

    // Reading cgroup.events acknowledges its pending notification (kernfs).
    bool populated() const override {
        auto node = world_->groups.find(path_);
        if (node != world_->groups.end()) {
            for (auto& fd : node->second.watchers)
                clear_eventfd(fd.get());
        }
        return world_->populated(path_);
    }

    Events watch_events() override {
        auto node = world_->groups.find(path_);
        if (node == world_->groups.end()) {
            throw std::runtime_error("open " + path_ + "/cgroup.events: No such file or directory");
        }
        sandbox::UniqueFd fd = make_eventfd();
        sandbox::UniqueFd ours(::fcntl(fd.get(), F_DUPFD_CLOEXEC, 0));
        node->second.watchers.push_back(std::move(ours));
        return Events{std::move(fd), EPOLLIN};
    }

    bool try_remove() override {
        ++world_->try_remove_calls;
        if (world_->groups.find(path_) == world_->groups.end()) return true;  // gone already
        if (world_->populated(path_)) return false;
        if (world_->busy_removals > 0) {
            --world_->busy_removals;
            return false;
        }
        std::erase_if(world_->groups,
                      [&](auto& entry) { return World::under(entry.first, path_); });
        return true;
    }

    // Destroying a fake group never removes it, so there is nothing to give up.
    void disown() override {}

    std::unique_ptr<KeyGroup> create_incarnation(std::uint32_t n) override {
        if (world_->groups.find(path_) == world_->groups.end()) {
            throw std::runtime_error("mkdir below " + path_ + ": No such file or directory");
        }
        std::string leaf = path_ + "/run." + std::to_string(n);
        if (world_->groups.count(leaf)) {
            world_->violations.push_back("create_incarnation(" + std::to_string(n) + ") of " +
                                         path_ + ": the leaf exists already (EEXIST)");
        }
        world_->groups[leaf];
        return std::make_unique<FakeGroup>(world_, leaf);
    }

    std::uint64_t oom_kills() const override { return 0; }
    UsageSample usage() const override {
        UsageSample sample;
        for (auto& p : world_->procs) {
            if (!p->exited && World::under(p->group, path_)) ++sample.pids_current;
        }
        return sample;
    }
    std::vector<pid_t> processes() const override {
        std::vector<pid_t> pids;
        for (auto& p : world_->procs) {
            if (!p->exited && p->group == path_) pids.push_back(p->pid);
        }
        return pids;
    }

private:
    std::shared_ptr<World> world_;
    std::string path_;
};

class FakeProcess : public KeyProcess {
public:
    FakeProcess(std::shared_ptr<World> world, std::shared_ptr<FakeProc> proc)
        : world_(std::move(world)), proc_(std::move(proc)) {}

    pid_t pid() const override { return proc_->pid; }
    int exit_fd() const override { return proc_->exit_fd.get(); }

    std::optional<siginfo_t> try_reap() override {
        if (!proc_->exited) return std::nullopt;
        if (proc_->reaps++ > 0) {
            // waitid() on a reaped child fails with ECHILD.
            world_->violations.push_back(proc_->process_id + ": pid " + std::to_string(proc_->pid) +
                                         " reaped twice");
        }
        return proc_->status;
    }

    bool has_exited() const override { return proc_->exited; }

    bool send_signal(int signal) override {
        if (proc_->detached) {
            world_->violations.push_back(proc_->process_id + ": signal " + std::to_string(signal) +
                                         " to a detached process");
        }
        if (proc_->reaps > 0) return false;  // ESRCH: gone (a zombie still takes signals)
        proc_->signals.push_back(signal);
        if (proc_->exited) return true;
        if (signal == SIGKILL) {
            world_->finish(*proc_, CLD_KILLED, SIGKILL);
        } else if (signal == SIGTERM) {
            switch (proc_->behaviour.on_sigterm) {
                case Behaviour::OnSigterm::kExit0:
                    world_->finish(*proc_, CLD_EXITED, 0);
                    break;
                case Behaviour::OnSigterm::kExit143:
                    world_->finish(*proc_, CLD_EXITED, 128 + SIGTERM);
                    break;
                case Behaviour::OnSigterm::kIgnore:
                    break;
            }
        }
        return true;
    }

    void detach() override { proc_->detached = true; }

private:
    std::shared_ptr<World> world_;
    std::shared_ptr<FakeProc> proc_;
};

}  // namespace

FakeSandbox::FakeSandbox(std::function<Clock::time_point()> now)
    : world_(std::make_shared<World>()) {
    world_->now = std::move(now);
}

FakeSandbox::~FakeSandbox() = default;

const std::string& FakeSandbox::root_path() const {
    return world_->root;
}

std::unique_ptr<KeyGroup> FakeSandbox::create_group(const std::string& name, KeyGroup* parent) {
    const std::string base = parent ? parent->path() : world_->root;
    if (parent && world_->groups.find(base) == world_->groups.end()) {
        throw std::runtime_error("mkdir below " + base + ": No such file or directory");
    }
    const std::string path = base + "/" + name;
    world_->groups[path];  // an existing one is taken over
    return std::make_unique<FakeGroup>(world_, path);
}

sandbox::LimitReport FakeSandbox::apply_limits(KeyGroup&, const sandbox::CgroupLimits&,
                                               sandbox::Enforcement) {
    return {};  // no outcomes: all applied
}

SpawnOutcome FakeSandbox::spawn(const SpawnRequest& request) {
    World& w = *world_;
    SpawnRecord record;
    record.process_id = request.process_id;
    record.leaf = request.leaf ? request.leaf->path() : "";
    record.identity = request.identity;
    record.grpc_port = request.endpoints.grpc_port;
    record.health_port = request.endpoints.health_port;
    if (request.config) record.config = *request.config;
    record.first_spawn = request.first_spawn;
    record.at = w.now();

    Behaviour behaviour;
    if (auto queued = w.next_behaviours.find(request.process_id);
        queued != w.next_behaviours.end() && !queued->second.empty()) {
        behaviour = queued->second.front();
        queued->second.pop_front();
    } else if (auto set = w.behaviours.find(request.process_id); set != w.behaviours.end()) {
        behaviour = set->second;
    } else if (w.default_behaviour) {
        behaviour = *w.default_behaviour;
    }
    if (behaviour.start == Behaviour::Start::kThrow) {
        w.spawns.push_back(record);
        throw std::runtime_error(behaviour.throw_message);
    }
    auto leaf = w.groups.find(record.leaf);
    if (leaf == w.groups.end()) {
        w.violations.push_back(request.process_id + ": spawn into " + record.leaf +
                               ", which does not exist");
    } else if (leaf->second.killed) {
        // CLONE_INTO_CGROUP into a group that has seen cgroup.kill: the child dies.
        w.violations.push_back(request.process_id + ": spawn into " + record.leaf +
                               ", which has seen cgroup.kill");
    }

    auto proc = std::make_shared<FakeProc>();
    proc->pid = w.next_pid++;
    proc->process_id = request.process_id;
    proc->group = record.leaf;
    proc->behaviour = behaviour;
    proc->health_port = request.endpoints.health_port;
    proc->exit_fd = make_eventfd();
    if (request.endpoints.claim_fd >= 0)
        proc->claim = sandbox::UniqueFd(::fcntl(request.endpoints.claim_fd, F_DUPFD_CLOEXEC, 0));
    w.procs.push_back(proc);
    record.pid = proc->pid;
    w.spawns.push_back(record);
    w.notify(proc->group);

    switch (behaviour.start) {
        case Behaviour::Start::kReady:
            if (!request.manifest || request.manifest->healthcheck.type != HealthcheckType::kTcp) {
                ADD_FAILURE() << request.process_id
                              << ": the fake makes only tcp-checked processes ready";
            } else {
                w.listen(*proc);
            }
            break;
        case Behaviour::Start::kExit:
            w.finish(*proc, CLD_EXITED, behaviour.exit_code);
            break;
        case Behaviour::Start::kNeverReady:
        case Behaviour::Start::kThrow:
            break;
    }
    w.max_not_ready = std::max(w.max_not_ready, w.live_not_ready());

    SpawnOutcome outcome;
    outcome.process = std::make_unique<FakeProcess>(world_, proc);
    outcome.uid = outcome.gid = request.identity;
    outcome.confinement = "fake";
    return outcome;
}

std::optional<siginfo_t> FakeSandbox::reported_exit(pid_t) {
    return std::nullopt;
}

std::string FakeSandbox::applied_confinement(const Manifest&) const {
    return "fake";
}

std::unique_ptr<KeyGroup> FakeSandbox::adopt_group(const std::string& path) {
    if (world_->groups.find(path) == world_->groups.end()) {
        throw std::runtime_error("open " + path + ": No such file or directory");
    }
    return std::make_unique<FakeGroup>(world_, path);
}

std::unique_ptr<KeyProcess> FakeSandbox::open_process(pid_t pid) {
    for (auto& p : world_->procs) {
        if (p->pid == pid && p->reaps == 0) return std::make_unique<FakeProcess>(world_, p);
    }
    throw std::runtime_error("pidfd_open(" + std::to_string(pid) + "): No such process");
}

void FakeSandbox::set_behaviour(const std::string& process_id, Behaviour behaviour) {
    world_->behaviours[process_id] = std::move(behaviour);
}

void FakeSandbox::set_default_behaviour(Behaviour behaviour) {
    world_->default_behaviour = std::move(behaviour);
}

int FakeSandbox::claim_socket(pid_t pid) const {
    for (const auto& p : world_->procs) {
        if (p->pid == pid && !p->exited) return p->claim ? p->claim.get() : -1;
    }
    return -1;
}

void FakeSandbox::push_behaviour(const std::string& process_id, Behaviour behaviour) {
    world_->next_behaviours[process_id].push_back(std::move(behaviour));
}

void FakeSandbox::make_ready(const std::string& process_id) {
    auto proc = world_->live_of(process_id);
    if (!proc) {
        ADD_FAILURE() << "make_ready: " << process_id << " has no live process";
        return;
    }
    if (!proc->ready) world_->listen(*proc);
}

void FakeSandbox::exit_process(const std::string& process_id, int code) {
    auto proc = world_->live_of(process_id);
    if (!proc) {
        ADD_FAILURE() << "exit_process: " << process_id << " has no live process";
        return;
    }
    world_->finish(*proc, CLD_EXITED, code);
}

void FakeSandbox::kill_process(const std::string& process_id, int signal) {
    auto proc = world_->live_of(process_id);
    if (!proc) {
        ADD_FAILURE() << "kill_process: " << process_id << " has no live process";
        return;
    }
    world_->finish(*proc, CLD_KILLED, signal);
}

void FakeSandbox::set_busy_removals(int times) {
    world_->busy_removals = times;
}

void FakeSandbox::pump() {
    for (auto& p : world_->procs) {
        if (p->listener) {
            while (true) {
                sandbox::UniqueFd fd(
                    ::accept4(p->listener.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
                if (!fd) break;
                p->connections.push_back(std::move(fd));
            }
        }
        std::erase_if(p->connections, [](const sandbox::UniqueFd& fd) {
            char byte;
            ssize_t n = ::recv(fd.get(), &byte, 1, MSG_DONTWAIT);
            return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
        });
    }
    // Copied: finish() may not add processes, but stay safe against it.
    auto procs = world_->procs;
    for (auto& p : procs) {
        if (p->doomed) world_->finish(*p, CLD_KILLED, SIGKILL);
    }
}

namespace {

class FakePendingProcess : public PendingProcess {
public:
    FakePendingProcess(std::shared_ptr<World> world, std::shared_ptr<HeldExec> held,
                       SpawnOutcome outcome)
        : world_(std::move(world)), held_(std::move(held)), outcome_(std::move(outcome)) {}
    ~FakePendingProcess() override {
        if (finished_) return;
        ++world_->abandoned;
        outcome_.process->send_signal(SIGKILL);
        outcome_.process->try_reap();
    }
    int ready_fd() const override { return held_->ready.get(); }
    SpawnOutcome finish() override {
        if (!held_->released) {
            world_->violations.push_back("finish() of a start whose ready fd has not fired");
        }
        finished_ = true;
        return std::move(outcome_);
    }

private:
    std::shared_ptr<World> world_;
    std::shared_ptr<HeldExec> held_;
    SpawnOutcome outcome_;
    bool finished_ = false;
};

}  // namespace

std::unique_ptr<PendingProcess> FakeSandbox::start_spawn(const SpawnRequest& request) {
    SpawnOutcome outcome = spawn(request);
    if (!world_->hold_execs) return std::make_unique<FinishedProcess>(std::move(outcome));
    auto held = std::make_shared<HeldExec>();
    world_->held.push_back(held);
    return std::make_unique<FakePendingProcess>(world_, std::move(held), std::move(outcome));
}

void FakeSandbox::hold_execs(bool on) {
    world_->hold_execs = on;
}

void FakeSandbox::release_execs() {
    for (auto& weak : world_->held) {
        if (auto held = weak.lock(); held && !held->released) {
            held->released = true;
            signal_eventfd(held->ready.get());
        }
    }
    world_->held.clear();
}

int FakeSandbox::held_execs() const {
    return static_cast<int>(std::count_if(world_->held.begin(), world_->held.end(), [](auto& w) {
        auto held = w.lock();
        return held && !held->released;
    }));
}

int FakeSandbox::abandoned_execs() const {
    return world_->abandoned;
}

const std::vector<SpawnRecord>& FakeSandbox::spawns() const {
    return world_->spawns;
}

std::vector<SpawnRecord> FakeSandbox::spawns_of(const std::string& process_id) const {
    std::vector<SpawnRecord> out;
    for (auto& s : world_->spawns) {
        if (s.process_id == process_id) out.push_back(s);
    }
    return out;
}

const std::vector<ExitRecord>& FakeSandbox::exits() const {
    return world_->exits;
}

std::vector<int> FakeSandbox::signals_sent(const std::string& process_id) const {
    std::vector<int> out;
    for (auto& p : world_->procs) {
        if (p->process_id == process_id)
            out.insert(out.end(), p->signals.begin(), p->signals.end());
    }
    return out;
}

bool FakeSandbox::alive(const std::string& process_id) const {
    return world_->live_of(process_id) != nullptr;
}

int FakeSandbox::live_not_ready() const {
    return world_->live_not_ready();
}

int FakeSandbox::max_live_not_ready() const {
    return world_->max_not_ready;
}

std::vector<std::string> FakeSandbox::groups() const {
    std::vector<std::string> out;
    for (auto& [path, node] : world_->groups)
        out.push_back(path);
    return out;
}

int FakeSandbox::try_remove_calls() const {
    return world_->try_remove_calls;
}

const std::vector<std::string>& FakeSandbox::violations() const {
    return world_->violations;
}

}  // namespace launcher::fake
