// The launcher core: one record per isolation key, driven by the event
// loop. Every public method runs on the loop thread; results are delivered
// through callbacks, also on the loop thread.
//
// A key's life: launch() creates it STARTING (cgroup with limits, sockets,
// spawn), it turns RUNNING once healthy. A RUNNING process that ends is
// restarted per the manifest's policy with exponential back-off, on the same
// socket and cgroup, until the circuit breaker leaves the key FAILED. A
// failed liveness check restarts it too. terminate() makes it TERMINATING;
// it is removed once its process and every descendant are gone and its
// cgroup is removed. A cold start that fails tears everything down before
// it answers.
//
// launcher.cc: the API side (launch, terminate, queries, shutdown).
// supervision.cc: starting, readiness, liveness, exits, restarts, teardown.
// recovery.cc: taking processes back after the launcher itself restarted.
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/confinement.h"
#include "common/event_loop.h"
#include "common/identity_pool.h"
#include "common/isolation_key.h"
#include "core/launcher_observer.h"
#include "core/launcher_types.h"
#include "core/pattern_logs.h"
#include "core/pattern_sockets.h"
#include "sandbox/cgroup.h"
#include "sandbox/seccomp.h"
#include "sandbox/spawn.h"
#include "state/state_store.h"

namespace launcher {

struct ManagedProcess;
struct PatternEndpoints;

class Launcher {
public:
    using LaunchDone = std::function<void(const LaunchResult&)>;
    using TerminateDone = std::function<void(const TerminateResult&)>;

    Launcher(EventLoop& loop, LauncherConfig config, sandbox::CgroupTree& tree, Discovery patterns);
    ~Launcher();

    void launch(const LaunchParams& params, LaunchDone done);
    // grace 0: the launch's, else the manifest's, else default_grace_period.
    void terminate(const std::string& process_id, std::chrono::milliseconds grace, bool force,
                   TerminateDone done);
    std::vector<ProcessInfo> list(const ListFilter& filter) const;
    std::optional<ProcessInfo> status(const std::string& process_id) const;
    HealthSummary health(bool include_processes) const;

    // Replaces the known patterns; running processes are untouched.
    void replace_patterns(Discovery patterns);
    std::size_t pattern_count() const { return patterns_.size(); }

    // Receives lifecycle events (metrics, audit); may be null. Not owned.
    void set_observer(LauncherObserver* observer) { observer_ = observer; }
    // Where patterns' output goes; null: the launcher's own stderr. Not owned.
    void set_logs(PatternLogs* logs) { logs_ = logs; }

    // After a launcher restart: finds the pattern processes still running in
    // the cgroup subtree and adopts them (or kills them, per orphan_policy);
    // kills and cleans whatever cannot be trusted. Call before serving.
    struct RecoveryReport {
        int adopted = 0;
        int killed = 0;
        int stale_records = 0;
        int removed_groups = 0;
    };
    RecoveryReport recover();

    // Stops taking launches (UNAVAILABLE), terminates everything in
    // parallel with its grace period, then calls `done`.
    void shutdown(std::function<void()> done);
    bool shutting_down() const { return shutting_down_; }
    std::size_t process_count() const { return processes_.size(); }
    // The uids/gids of the keys (launcher.identity_range).
    const IdentityPool& identities() const { return identities_; }

private:
    // launcher.cc
    ManagedProcess* find(const std::string& id) const;
    LaunchResult validate(const LaunchParams& params, std::shared_ptr<const Manifest>& manifest,
                          IsolationKey& key) const;
    std::string quota_problem(const IsolationKey& key, std::string& limit) const;
    ProcessLabels labels(const ManagedProcess& p) const;
    ProcessInfo info(const ManagedProcess& p) const;
    void maybe_finish_shutdown();

    // supervision.cc
    void start(ManagedProcess& p);
    void prepare(ManagedProcess& p);
    void ensure_identity(ManagedProcess& p);
    void spawn_process(ManagedProcess& p);
    void start_next_queued();
    int starts_in_flight() const;
    sandbox::Cgroup& namespace_group(const std::string& namespace_id);
    void release_namespace_group(const std::string& namespace_id);
    void watch_process(ManagedProcess& p);
    void watch_readiness(ManagedProcess& p);
    void probe_readiness(ManagedProcess& p);
    void on_notify(ManagedProcess& p);
    void became_healthy(ManagedProcess& p);
    void schedule_liveness(ManagedProcess& p);
    void on_exit(ManagedProcess& p);
    void start_failed(ManagedProcess& p, const std::string& reason);
    void process_failed(ManagedProcess& p, const std::string& reason, bool failure);
    void schedule_restart(ManagedProcess& p);
    std::chrono::milliseconds backoff_delay(int failures);
    void begin_stop(ManagedProcess& p, bool force);
    void stop_timers(ManagedProcess& p);
    void drain(ManagedProcess& p, std::function<void(ManagedProcess&)> then);
    void teardown(ManagedProcess& p);
    void release(ManagedProcess& p);
    void finish(ManagedProcess& p);
    void persist(const ManagedProcess& p);

    // compartment.cc
    const sandbox::BpfProgram* seccomp_program(const std::string& profile);
    std::filesystem::path state_directory(const ManagedProcess& p) const;
    sandbox::SpawnSpec compartment_spec(ManagedProcess& p, const PatternEndpoints& endpoints);

    // recovery.cc
    bool adopt(const ProcessRecord& record, sandbox::Cgroup& group);

    EventLoop& loop_;
    LauncherConfig config_;
    sandbox::CgroupTree& tree_;
    StateStore state_;
    std::map<std::string, std::shared_ptr<const Manifest>> patterns_;
    std::map<std::string, std::unique_ptr<ManagedProcess>> processes_;
    std::map<std::string, std::string> session_owner_;  // session id -> namespace
    struct NamespaceGroup {
        std::unique_ptr<sandbox::Cgroup> group;
        int users = 0;
    };
    std::map<std::string, NamespaceGroup> namespace_groups_;
    std::map<std::string, sandbox::BpfProgram> seccomp_cache_;
    std::deque<std::string> start_queue_;  // keys waiting for max_concurrent_starts
    PortAllocator ports_;
    IdentityPool identities_;
    std::mt19937 jitter_{std::random_device{}()};
    EventLoop::Clock::time_point started_;
    bool shutting_down_ = false;
    std::function<void()> shutdown_done_;
    LauncherObserver* observer_ = nullptr;
    PatternLogs* logs_ = nullptr;
    std::unique_ptr<HostConfinement> confinement_;
};

}  // namespace launcher
