// An in-memory SandboxPort for the core's in-process tests
// (core_machine_test.cc): groups are objects holding fake processes, a
// process is a record with an eventfd for its exit, and a test decides what
// each spawn does (ready, never ready, exit at once, throw) and when a
// process ends. Nothing here needs root or touches the kernel's cgroups; the
// only real resources are eventfds (so that the Launcher's EventLoop watches
// them as it watches pidfds and cgroup.events) and, for a ready process, a
// listening TCP socket on 127.0.0.1:<health_port> that the launcher's tcp
// probe connects to.
//
// The fake models the kernel, not the launcher: a core bug must show in a
// test, never be absorbed here. Where the kernel is asynchronous (cgroup.kill
// lets the processes die a moment later) the fake is too, until pump().
#pragma once

#include <sys/types.h>

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/sandbox_port.h"

namespace launcher::fake {

using Clock = std::chrono::steady_clock;

// What one spawn of a key does.
struct Behaviour {
    enum class Start {
        kReady,       // listens on its health port at once (tcp checks)
        kNeverReady,  // runs but never listens (until FakeSandbox::make_ready)
        kExit,        // exits at once with exit_code
        kThrow,       // spawn() throws throw_message; no process
    };
    enum class OnSigterm {
        kExit0,    // exits with code 0
        kExit143,  // exits with code 143 (128 + SIGTERM, as a shell does)
        kIgnore,   // keeps running until killed
    };
    Start start = Start::kReady;
    int exit_code = 1;
    std::string throw_message = "fake spawn refused";
    OnSigterm on_sigterm = OnSigterm::kExit0;

    static Behaviour ready() { return {}; }
    static Behaviour never_ready() { return {Start::kNeverReady}; }
    static Behaviour exits(int code) { return {Start::kExit, code}; }
    static Behaviour throws(std::string message) { return {Start::kThrow, 1, std::move(message)}; }
    Behaviour& sigterm(OnSigterm what) {
        on_sigterm = what;
        return *this;
    }
};

// One call of spawn(), as the core asked for it.
struct SpawnRecord {
    std::string process_id;
    std::string leaf;  // request.leaf->path()
    std::uint32_t identity = 0;
    int grpc_port = 0;
    int health_port = 0;
    std::map<std::string, std::string> config;
    bool first_spawn = false;
    pid_t pid = 0;  // 0: it threw
    Clock::time_point at{};
};

// How a fake process ended.
struct ExitRecord {
    std::string process_id;
    pid_t pid = 0;
    int how = 0;     // si_code: CLD_EXITED or CLD_KILLED
    int status = 0;  // si_status: the exit code or the signal
    Clock::time_point at{};
};

struct World;  // the state shared with the groups and processes handed out

class FakeSandbox : public SandboxPort {
public:
    // `now` stamps spawns and exits (the test's manual clock).
    explicit FakeSandbox(std::function<Clock::time_point()> now);
    ~FakeSandbox() override;

    // ---- SandboxPort ----
    const std::string& root_path() const override;
    std::unique_ptr<KeyGroup> create_group(const std::string& name, KeyGroup* parent) override;
    sandbox::LimitReport apply_limits(KeyGroup& group, const sandbox::CgroupLimits& limits,
                                      sandbox::Enforcement enforcement) override;
    SpawnOutcome spawn(const SpawnRequest& request) override;
    // With hold_execs(true), returns before the "exec": the child exists in
    // its leaf, but the ready fd fires only at release_execs(), as the
    // kernel's spawn pipe does at the exec. Otherwise finished at once.
    std::unique_ptr<PendingProcess> start_spawn(const SpawnRequest& request) override;
    std::optional<siginfo_t> reported_exit(pid_t pid) override;
    std::string applied_confinement(const Manifest& manifest) const override;
    std::unique_ptr<KeyGroup> adopt_group(const std::string& path) override;
    std::unique_ptr<KeyProcess> open_process(pid_t pid) override;

    // ---- what the test decides ----
    // What spawns of `process_id` do from now on (default: ready).
    void set_behaviour(const std::string& process_id, Behaviour behaviour);
    // What spawns of ids without a behaviour of their own do (a session
    // pool's ids are random).
    void set_default_behaviour(Behaviour behaviour);
    // The claim socket a session pool's live process `pid` inherited, or -1.
    int claim_socket(pid_t pid) const;
    // What the next spawn of `process_id` does, before set_behaviour's.
    void push_behaviour(const std::string& process_id, Behaviour behaviour);
    void hold_execs(bool on);
    void release_execs();
    // Held starts not yet finished nor given up; given up (destroyed before
    // finish(): their child is killed and reaped, as sandbox::PendingSpawn does).
    int held_execs() const;
    int abandoned_execs() const;
    // The key's live process starts listening on its health port.
    void make_ready(const std::string& process_id);
    // The key's live process exits with `code`, or dies of `signal`.
    void exit_process(const std::string& process_id, int code);
    void kill_process(const std::string& process_id, int signal);
    // The next `times` try_remove() calls that would succeed say busy.
    void set_busy_removals(int times);
    // Runs what the kernel would do by itself: processes doomed by kill()
    // die, and connections to ready processes are accepted and closed (so
    // that liveness probes never fill a backlog). Call every loop turn.
    void pump();

    // ---- what the test observes ----
    const std::vector<SpawnRecord>& spawns() const;
    std::vector<SpawnRecord> spawns_of(const std::string& process_id) const;
    const std::vector<ExitRecord>& exits() const;
    // Signals sent through KeyProcess::send_signal to the key's processes.
    std::vector<int> signals_sent(const std::string& process_id) const;
    bool alive(const std::string& process_id) const;
    // Processes spawned and still not listening nor exited: now, and the most ever.
    int live_not_ready() const;
    int max_live_not_ready() const;
    // Groups that exist (created or adopted, not yet removed), sorted.
    std::vector<std::string> groups() const;
    int try_remove_calls() const;
    // Things the core did that the kernel would refuse (a spawn into a
    // removed leaf, a signal to a detached process, a second reap): tests
    // expect none.
    const std::vector<std::string>& violations() const;

private:
    std::shared_ptr<World> world_;
};

}  // namespace launcher::fake
