// The launcher core: one record per isolation key, driven by the event
// loop. Every public method runs on the loop thread (and asserts it);
// results are delivered through callbacks, also on the loop thread.
//
// A key's life is the state machine of key_phase.h; every change goes
// through set_phase(). A key's durable record (state/) exists from the
// moment a launch is accepted until the key is terminated, and says what
// the launcher owes it, so that a launcher restart settles every key:
// adopted, started again, or its stop finished (recovery.cc).
//
// launcher.cc: the API side (launch, terminate, queries, shutdown, usage).
// key_lifecycle.cc: set_phase(), exits, restarts, drains, releases, records.
// supervision.cc: starting, readiness, liveness.
// warm_pool.cc: the NAMESPACE keys kept running before any launch.
// session_pool.cc: processes started ahead and claimed by SESSION launches.
// kernel_sandbox.cc: the real SandboxPort, and a key's compartment.
// recovery.cc: settling the records after the launcher itself restarted.
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "common/background_work.h"
#include "common/egress_pool.h"
#include "common/event_loop.h"
#include "common/identity_pool.h"
#include "common/isolation_key.h"
#include "config/config.h"
#include "core/egress_names.h"
#include "core/key_phase.h"
#include "core/launcher_observer.h"
#include "core/launcher_types.h"
#include "core/network_port.h"
#include "core/pattern_logs.h"
#include "core/pattern_sockets.h"
#include "core/restart_policy.h"
#include "core/sandbox_port.h"
#include "core/start_queue.h"
#include "sandbox/cgroup.h"
#include "sandbox/seccomp.h"
#include "sandbox/spawn.h"
#include "state/state_store.h"

namespace launcher {

struct Key;
struct StartFailure;
struct PatternEndpoints;

class Launcher {
public:
    using LaunchDone = std::function<void(const LaunchResult&)>;
    using TerminateDone = std::function<void(const TerminateResult&)>;

    // On the kernel (KernelSandbox on `tree`).
    Launcher(EventLoop& loop, LauncherConfig config, sandbox::CgroupTree& tree, Discovery patterns);
    // On any SandboxPort (the core's in-process tests pass a fake). Without
    // a NetworkPort, a key whose manifest has an egress list does not start.
    Launcher(EventLoop& loop, LauncherConfig config, std::unique_ptr<SandboxPort> sandbox,
             Discovery patterns, std::unique_ptr<NetworkPort> network = nullptr);
    ~Launcher();

    void launch(const LaunchParams& params, LaunchDone done);
    // The key a launch with `params` would use (its isolation level resolved
    // against the manifest), for authorization before the launch; nullopt
    // when the pattern is unknown. Nothing else is validated.
    std::optional<IsolationKey> key_for(const LaunchParams& params) const;
    // grace 0: the launch's, else the manifest's, else default_grace_period.
    void terminate(const std::string& process_id, std::chrono::milliseconds grace, bool force,
                   TerminateDone done);
    std::vector<ProcessInfo> list(const ListFilter& filter) const;
    std::optional<ProcessInfo> status(const std::string& process_id) const;
    HealthSummary health(bool include_processes) const;
    // The keys the warm pool keeps (warm_pool.cc), in process id order.
    std::vector<WarmKeyInfo> warm_pool() const;
    // The session pools (session_pool.cc), by pattern and namespace.
    std::vector<SessionPoolInfo> session_pools() const;

    // Replaces the known patterns; running processes are untouched.
    void replace_patterns(Discovery patterns);
    std::size_t pattern_count() const { return patterns_.size(); }

    // Receives lifecycle events (metrics, audit); may be null. Not owned.
    void set_observer(LauncherObserver* observer) { observer_ = observer; }
    // Where patterns' output goes; null: the launcher's own stderr. Not owned.
    void set_logs(PatternLogs* logs) { logs_ = logs; }

    // After a launcher restart: settles every state record (adopts its live
    // process, starts it again, finishes its stop; recovery_plan.h) and kills
    // and removes whatever in the cgroup subtree no record vouches for. Call
    // before serving, on the loop thread, before run().
    struct RecoveryReport {
        int adopted = 0;
        int started_again = 0;
        int stops_finished = 0;
        int kept_failed = 0;  // FAILED or FINISHED keys listed again
        int killed = 0;       // processes no record vouched for
        int set_aside = 0;    // records that could not be read
        int removed_groups = 0;
        int removed_links = 0;  // egress veths no adopted key held
    };
    RecoveryReport recover();
    // The periodic reconciliation (resync_interval): groups in the subtree
    // that no key owns are killed and removed. Also run by recover().
    // Returns the groups removed; adds the processes it killed to `killed`.
    int reconcile_groups(int* killed = nullptr);

    // Stops taking launches (UNAVAILABLE), terminates everything in
    // parallel with its grace period, then calls `done`.
    void shutdown(std::function<void()> done);
    bool shutting_down() const { return shutting_down_; }
    std::size_t process_count() const { return processes_.size(); }
    // The back-off jitter's random numbers (tests make them reproducible).
    void set_random_seed(std::uint32_t seed) { jitter_.seed(seed); }
    // The uids/gids of the keys (launcher.identity_range).
    const IdentityPool& identities() const { return identities_; }

private:
    // Who asked for a launch: a client, or the warm pool refilling itself
    // (only a client's launch counts as a pool hit or miss).
    enum class LaunchOrigin { kRequest, kWarmPool };

    // launcher.cc
    void launch_from(const LaunchParams& params, LaunchDone done, LaunchOrigin origin);
    Key* find(const std::string& id) const;
    void accept_request(Key& k, const LaunchParams& params, const Manifest& manifest,
                        LaunchDone done);
    LaunchResult validate(const LaunchParams& params, std::shared_ptr<const Manifest>& manifest,
                          IsolationKey& key) const;
    std::string quota_problem(const IsolationKey& key, std::string& limit) const;
    ProcessLabels labels(const Key& k) const;
    ProcessInfo info(const Key& k) const;
    void maybe_finish_shutdown();
    void stop_key(Key& k, bool force);
    void refresh_usage();  // a bounded slice of keys per tick
    void sample_usage(Key& k);
    void resync();  // every resync_interval: reconcile_groups() when a stray may exist
    bool stray_possible();

    // key_lifecycle.cc: the transition function and what follows an exit.
    void set_phase(Key& k, Phase next);
    void on_exit(Key& k);
    void exited(Key& k, const std::string& reason, bool failure);
    void cold_start_failed(Key& k, StartFailure failure);
    void drain(Key& k, AfterDrain after);
    void continue_drain(Key& k);
    void drained(Key& k);
    void release(Key& k);
    void forget(Key& k);
    void answer_launch_failure(Key& k);
    void persist(const Key& k);
    RestartSettings restart_settings(const Key& k) const;

    // supervision.cc
    void enqueue_start(Key& k);
    void start(Key& k);
    void start_next_queued();
    int starts_in_flight() const;
    void prepare(Key& k);
    void ensure_identity(Key& k);
    void spawn_process(Key& k);
    void spawned(Key& k);
    void start_failed(Key& k, const std::exception& e);
    void arm_starting_timer(Key& k);
    void watch_process(Key& k);
    void probe_readiness(Key& k);
    void on_notify(Key& k);
    void close_notify(Key& k);
    void became_healthy(Key& k);
    void schedule_liveness(Key& k);
    void check_liveness(Key& k);
    void begin_stop(Key& k, bool force);
    KeyGroup& namespace_group(const std::string& namespace_id);
    void release_namespace_group(const std::string& namespace_id);
    // Runs `fn` with the key `id` if it still exists in phase `phase`: what a
    // callback that outlives a loop turn holds instead of a pointer.
    void with_key(const std::string& id, Phase phase, const std::function<void(Key&)>& fn);

    // key_egress.cc: a key's way out (network_port.h) and its names.
    void open_network(Key& k);
    void close_network(Key& k);
    bool adopt_network(Key& k, const KeyRecord& record, pid_t pid, std::string& why);
    std::vector<sandbox::EgressAllow> egress_allowed(const Key& k) const;
    void write_name_files(const Key& k);
    std::filesystem::path name_file(const Key& k, const char* suffix) const;
    std::vector<std::string> known_egress_names() const;
    void resolve_names();
    void names_resolved(NameResolution resolution);

    // warm_pool.cc
    void plan_warm_pool();  // from the manifests and the config, at every replace_patterns()
    void keep_warm();       // every kWarmTick: refill_missing()
    void refill_missing();  // launches kept keys that are not there, within the pool's slots
    void refill_warm(const std::string& id);
    void count_warm_launch(const std::string& id, const Key* existing);

    // session_pool.cc
    using PoolTarget = std::pair<std::string, std::string>;  // (pattern, namespace id)
    void plan_session_pools();    // from the manifests and the config, at every replace_patterns()
    void refill_session_pools();  // every kWarmTick, and after a claim's answer or an exit
    void start_pool_process(const PoolTarget& target);
    void pool_process_ready(Key& k);
    // A SESSION launch of a late-binding pattern: hands it a pooled process
    // of its tenant if one is ready (true: `done` is the key's now).
    bool claim_pooled(const IsolationKey& key, const LaunchParams& params,
                      const std::shared_ptr<const Manifest>& manifest, LaunchDone& done);
    void on_claim_answer(Key& k);
    // No longer a member (claimed, or forgotten); `refill`: start its
    // replacement on the next loop turn rather than at the next tick.
    void pool_process_gone(const Key& k, bool refill = true);
    void refill_pools_soon();

    // recovery.cc
    bool adopt(Key& k, const KeyRecord& record, std::string& why);
    std::unique_ptr<Key> key_from_record(const KeyRecord& record);
    int adopt_unrecorded(const std::set<std::string>& unreadable_files);
    Key& place_recovered(std::unique_ptr<Key> owned);

    EventLoop& loop_;
    LauncherConfig config_;
    std::unique_ptr<SandboxPort> sandbox_;
    StateStore state_;
    std::map<std::string, std::shared_ptr<const Manifest>> patterns_;
    std::map<std::string, std::unique_ptr<Key>> processes_;
    std::map<std::string, std::string> session_owner_;  // session id -> namespace
    struct NamespaceGroup {
        std::unique_ptr<KeyGroup> group;
        int users = 0;
    };
    std::map<std::string, NamespaceGroup> namespace_groups_;
    StartQueue start_queue_;
    int starting_ = 0;  // keys in kStarting (set_phase keeps it): starts_in_flight()
    // The applied-confinement texts keys point to (Key::confinement): one per
    // pattern and host, never erased (a std::set: its elements do not move).
    std::set<std::string> confinements_;
    PortAllocator ports_;
    IdentityPool identities_;
    std::mt19937 jitter_{std::random_device{}()};
    std::uniform_real_distribution<double> jitter_dist_{0.8, 1.2};
    std::uint64_t trash_counter_ = 0;
    EventLoop::Clock::time_point started_;
    bool shutting_down_ = false;
    std::function<void()> shutdown_done_;
    LauncherObserver* observer_ = nullptr;
    PatternLogs* logs_ = nullptr;
    EventLoop::Timer usage_timer_;   // refresh_usage()
    EventLoop::Timer resync_timer_;  // reconcile_groups(), every resync_interval
    EventLoop::Timer stray_timer_;   // reconcile_groups() again while killed groups empty
    int stray_retries_ = 0;
    int resyncs_since_listing_ = 0;  // resync(): a full listing every kListingEvery
    std::string ns_group_cursor_;    // stray_possible(): where the last slice ended
    std::string usage_cursor_;       // where the last usage slice ended
    // Egress: the kernel's side (null: none), the veth addresses, and what
    // the listed host names resolved to (resolved on background_).
    std::unique_ptr<NetworkPort> network_;
    EgressPool egress_pool_;
    NameResolution names_;
    bool resolving_ = false;
    bool resolve_again_ = false;
    EventLoop::Timer names_timer_;  // resolve_names(), every egress.resolve_interval
    // The warm pool: the keys it keeps (by process id), those whose launch
    // it is waiting for, and the last problem logged for each (logged again
    // only when it changes). Armed by recover(), after the adoptions.
    struct WarmTarget {
        std::string pattern;
        std::string namespace_id;
    };
    std::map<std::string, WarmTarget> warm_targets_;
    std::set<std::string> warm_refilling_;
    std::map<std::string, std::string> warm_problems_;
    std::string warm_cursor_;      // where the last refill_missing() pass stopped
    EventLoop::Timer warm_timer_;  // keep_warm()
    EventLoop::Timer warm_soon_;   // refill_missing() after a refill reached RUNNING
    // The session pools: how many processes each (pattern, namespace) keeps,
    // the ids of its unclaimed ones, and when a target whose start failed
    // is tried again (a failing pattern is not started every tick).
    std::map<PoolTarget, int> pool_wanted_;
    std::map<PoolTarget, std::set<std::string>> pool_members_;
    std::map<PoolTarget, EventLoop::Clock::time_point> pool_retry_at_;
    EventLoop::Timer pool_soon_;  // refill_session_pools() on the next loop turn
    // Tells work that finishes on background_ whether the launcher still exists.
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
    BackgroundWork background_;  // state directory removal and name lookups, off the loop
};

}  // namespace launcher
