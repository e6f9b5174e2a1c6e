// Settling every key after the launcher itself was restarted (killed,
// crashed, upgraded). Each state record is resolved (recovery_plan.h): its
// live process adopted when the record, the cgroup, the pid and the ids all
// agree; else the key is started again, its stop finished, or it is listed
// FAILED/FINISHED as it was. Only the launcher's own cgroup subtree is
// searched; whatever no record vouches for is killed and removed.
#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <optional>
#include <set>

#include "common/log.h"
#include "config/confinement_report.h"
#include "core/key.h"
#include "core/launcher.h"
#include "core/recovery_plan.h"
#include "sandbox/cgroup.h"
#include "sandbox/error.h"
#include "sandbox/process.h"
#include "sandbox/socket_recovery.h"

namespace launcher {

using std::chrono::milliseconds;
using Clock = EventLoop::Clock;
namespace rec = pattern_launcher::state;

namespace {

// The steady-clock moment of a wall-clock time in the past.
Clock::time_point steady_from_unix_ms(const EventLoop& loop, std::int64_t unix_ms) {
    const auto age = milliseconds(std::max<std::int64_t>(0, unix_ms_now() - unix_ms));
    return loop.now() - std::chrono::duration_cast<Clock::duration>(age);
}

// Why a process that runs as `ids` cannot be the key whose record names
// `identity` (0: none), or "". A key with an identity runs as that uid and
// gid; one without runs as nothing from the pool, which could hand it out.
std::string identity_problem(const sandbox::ProcessIds& ids, std::uint32_t identity,
                             const IdentityPool& pool) {
    for (const bool uid : {true, false}) {
        const std::uint32_t real = uid ? ids.uid : ids.gid;
        const std::uint32_t effective = uid ? ids.euid : ids.egid;
        const std::string what = std::string(uid ? "uid " : "gid ") + std::to_string(real) +
                                 " (effective " + std::to_string(effective) + ")";
        if (identity != 0 && (real != identity || effective != identity)) {
            return "runs as " + what + ", not as its identity " + std::to_string(identity);
        }
        if (identity == 0 && (pool.contains(real) || pool.contains(effective))) {
            return "runs as " + what + " from identity_range, but its state record names no " +
                   "identity";
        }
    }
    return {};
}

bool has_pid(const std::string& cgroup, pid_t pid) {
    const auto members = sandbox::cgroup_processes(cgroup);
    return std::find(members.begin(), members.end(), pid) != members.end();
}

}  // namespace

// The key a record describes, in no phase yet and holding nothing; null if
// the record contradicts itself.
std::unique_ptr<Key> Launcher::key_from_record(const KeyRecord& r) {
    const std::optional<Isolation> level = parse_isolation(r.isolation());
    if (!level || !is_valid_identifier(r.pattern())) return nullptr;
    IsolationKey key{*level, r.pattern(), r.namespace_id(), r.session_id()};
    if (!r.pool_slot().empty()) {
        // A session pool's process: recovery only finishes its stop.
        if (key.level != Isolation::kSession || !key.session_id.empty() ||
            !is_valid_identifier(r.pool_slot()) ||
            pool_process_id(r.namespace_id(), r.pool_slot(), r.pattern()) != r.process_id()) {
            return nullptr;
        }
    } else if (key.process_id() != r.process_id()) {
        return nullptr;
    }
    if (!r.namespace_id().empty() && !is_valid_identifier(r.namespace_id())) return nullptr;
    if (!r.session_id().empty() && !is_valid_identifier(r.session_id())) return nullptr;
    auto k = std::make_unique<Key>();
    k->key = key;
    k->id = r.process_id();
    k->pool_slot = r.pool_slot();
    k->base_record = std::make_unique<const KeyRecord>(r);
    if (auto pattern = patterns_.find(r.pattern()); pattern != patterns_.end()) {
        k->manifest = pattern->second;
    }
    for (const auto& [name, value] : r.config())
        k->config[name] = value;
    k->grace =
        r.grace_period_ms() > 0 ? milliseconds(r.grace_period_ms()) : config_.default_grace_period;
    k->accepted_at_unix_ms = r.accepted_at_unix_ms();
    k->requested_at = steady_from_unix_ms(loop_, r.accepted_at_unix_ms());
    k->stop_requested = r.desired() == rec::DESIRED_STOPPED;
    k->grpc.port = static_cast<int>(r.grpc_port());
    k->health.port = static_cast<int>(r.health_port());
    k->limits_enforced = r.limits_enforced();
    k->incarnation = r.incarnation();
    k->leaf_used = true;
    k->started_at_unix_ms = r.started_at_unix_ms();
    k->restart_count = r.restart_count();
    k->error_count = r.error_count();
    k->consecutive_failures = r.consecutive_failures();
    k->ever_running = r.ever_running();
    k->last_error = r.last_error();
    k->exit_cause = r.exit_cause();
    return k;
}

// Takes back the record's live process, if the cgroup, the pid and the ids
// vouch for it; else `why` says what did not agree.
bool Launcher::adopt(Key& k, const KeyRecord& record, std::string& why) {
    const std::string& path = record.cgroup();
    const pid_t pid = record.pid();
    if (pid <= 0 || path.empty()) {
        why = "its record names no process";
        return false;
    }
    if (!path.starts_with(sandbox_->root_path() + "/") || !std::filesystem::is_directory(path)) {
        why = "its cgroup " + path + " is not in the launcher's subtree";
        return false;
    }
    // The process runs in one leaf ("run.N") of the key's group.
    std::string leaf;
    for (const std::string& name : sandbox::cgroup_child_names(path)) {
        if (has_pid(path + "/" + name, pid)) leaf = path + "/" + name;
    }
    if (leaf.empty()) {
        why = "pid " + std::to_string(pid) + " is not in its cgroup";
        return false;
    }
    std::unique_ptr<KeyProcess> process = sandbox_->open_process(pid);
    // The pid could have been recycled between the read and pidfd_open:
    // it must still be in the leaf now that the pidfd pins the process.
    if (!has_pid(leaf, pid)) {
        process->detach();  // not ours: never signal it
        why = "pid " + std::to_string(pid) + " left its cgroup";
        return false;
    }
    // Who it runs as must match the record's identity (the pid is the host's
    // view of PID 1 of the pattern's pid namespace, which runs as the key
    // too), and no other key may hold that identity.
    const std::optional<sandbox::ProcessIds> ids = sandbox::read_process_ids(pid, why);
    if (ids) why = identity_problem(*ids, record.identity(), identities_);
    // Still running after the read: the status was its own, not a recycled pid's.
    if (why.empty() && process->has_exited()) why = "it exited while being adopted";
    if (why.empty() && record.identity() != 0 && !identities_.reserve(record.identity())) {
        const IdRange& range = identities_.range();
        why = "identity " + std::to_string(record.identity());
        if (!identities_.contains(record.identity())) {
            why += " is outside identity_range " + std::to_string(range.first) + "-" +
                   std::to_string(range.last());
        } else if (identities_.is_held(record.identity())) {
            why += " is already held by another key";
        } else {
            why += " is named in /etc/passwd or /etc/group";
        }
    }
    if (!why.empty()) {
        process->detach();
        return false;
    }
    if (!adopt_network(k, record, pid, why)) {
        if (record.identity() != 0) identities_.release(record.identity());
        process->detach();
        return false;
    }
    k.identity = record.identity();
    k.group = sandbox_->adopt_group(path);
    k.run = sandbox_->adopt_group(leaf);
    try {
        k.oom_kills_at_start = k.group->oom_kills();
    } catch (const std::exception&) {
    }
    k.grpc.fd = sandbox::take_listening_socket(process->exit_fd(), 3, k.grpc.port);
    if (k.health.port && k.manifest->healthcheck.type == HealthcheckType::kHttp) {
        k.health.fd = sandbox::take_listening_socket(process->exit_fd(), 4, k.health.port);
    }
    k.address = "127.0.0.1:" + std::to_string(k.grpc.port);
    k.pid = pid;
    k.process = std::move(process);
    k.process_alive = true;
    k.adopted = true;
    k.started_at = steady_from_unix_ms(loop_, record.started_at_unix_ms());
    if (record.running_since_unix_ms() > 0) {
        k.running_since = steady_from_unix_ms(loop_, record.running_since_unix_ms());
        k.running_since_unix_ms = record.running_since_unix_ms();
    }
    if (ids) {
        k.uid = ids->uid;
        k.gid = ids->gid;
    }
    k.confinement = &*confinements_.insert(sandbox_->applied_confinement(*k.manifest)).first;
    k.weakened = confinement_weakenings(*k.manifest);
    return true;
}

// A recovered key takes its place: counted in its namespace's group (if it
// has a group), its ports and session held, listed.
Key& Launcher::place_recovered(std::unique_ptr<Key> owned) {
    Key& k = *owned;
    if (k.group && !k.key.namespace_id.empty()) {
        namespace_group(k.key.namespace_id);
        k.holds_namespace_group = true;
    }
    if (k.grpc.port) ports_.reserve(k.grpc.port);
    if (k.health.port) ports_.reserve(k.health.port);
    if (k.key.level == Isolation::kSession && !k.key.session_id.empty()) {
        session_owner_.emplace(k.key.session_id, k.key.namespace_id);
    }
    return *(processes_[k.id] = std::move(owned));
}

Launcher::RecoveryReport Launcher::recover() {
    loop_.assert_in_loop("Launcher::recover");
    RecoveryReport report;
    LoadedRecords loaded = state_.load_all();
    std::set<std::string> unreadable;  // the file names of records set aside
    for (const SetAsideRecord& bad : loaded.set_aside) {
        if (bad.moved_to.empty()) continue;  // not a record at all
        log::error("state record " + bad.file.string() + " cannot be read (" + bad.reason +
                   "); moved to " + bad.moved_to.string() +
                   "; its process is judged by the cgroup and pid checks");
        unreadable.insert(bad.file.filename().string());
        ++report.set_aside;
    }
    // First every adoption, so that a live process the checks vouch for
    // keeps its identity even if another key's record (wrongly) names it;
    // then the rest.
    struct Pending {
        std::unique_ptr<Key> key;
        const KeyRecord* record;
        RecoveryFacts facts;
        std::string why;
    };
    std::vector<Pending> pending;
    for (const KeyRecord& r : loaded.records) {
        std::unique_ptr<Key> owned = key_from_record(r);
        if (!owned) {
            log::error("state record of '" + r.process_id() +
                       "' contradicts itself; forgetting it (its cgroup is judged on its own)");
            try {
                state_.remove(r.process_id());
            } catch (const std::exception& e) {
                log::error(e.what());
            }
            ++report.set_aside;
            continue;
        }
        Pending p{std::move(owned), &r, {}, {}};
        p.facts.pattern_known = p.key->manifest != nullptr;
        if (config_.orphan_policy == OrphanPolicy::kKill) {
            p.why = "orphan_policy is kill";
        } else if (p.facts.pattern_known) {
            try {
                p.facts.live_process = adopt(*p.key, r, p.why);
            } catch (const std::exception& e) {
                p.why = e.what();
            }
        }
        pending.push_back(std::move(p));
    }
    for (Pending& p : pending) {
        std::unique_ptr<Key>& owned = p.key;
        Key& k = *owned;
        const KeyRecord& r = *p.record;
        const RecoveryFacts& facts = p.facts;
        const std::string& why = p.why;
        const Resolution resolution = resolve(r, facts);
        k.recovery = resolution_name(resolution);
        if (!why.empty() && resolution != Resolution::kAdopt) k.recovery += " (" + why + ")";
        // What is left of a key that is not adopted: its group (killed by
        // the drain below, and made anew if the key starts again, so that no
        // spent leaf stays behind) and, if free, its identity.
        if (!facts.live_process) {
            const std::string& path = r.cgroup();
            if (!path.empty() && path.starts_with(sandbox_->root_path() + "/") &&
                std::filesystem::is_directory(path)) {
                k.group = sandbox_->adopt_group(path);
                k.renew_group = true;
            }
            if (r.identity() != 0 && identities_.reserve(r.identity())) k.identity = r.identity();
        }
        Key& placed = place_recovered(std::move(owned));
        log::notice("recovered " + placed.id + ": " + placed.recovery,
                    log::Key{placed.id, placed.key.namespace_id, placed.key.pattern});
        // A recovered key is built in the phase it resumes from; from there
        // every change goes through set_phase(). A live process it keeps
        // (adopted, or one whose stop is finished) is watched from here.
        if (placed.process_alive) watch_process(placed);
        switch (resolution) {
            case Resolution::kAdopt:
                ++report.adopted;
                placed.phase = Phase::kRunning;
                persist(placed);
                schedule_liveness(placed);
                break;
            case Resolution::kStartAgain: {
                ++report.started_again;
                placed.phase = Phase::kBackoff;
                const std::int64_t left = r.backoff_until_unix_ms() - unix_ms_now();
                placed.resume_backoff = milliseconds(std::max<std::int64_t>(0, left));
                drain(placed, AfterDrain::kRestart);  // the restart counts itself
                break;
            }
            case Resolution::kFinishStop:
                ++report.stops_finished;
                placed.phase = Phase::kStopping;
                drain(placed, AfterDrain::kForget);
                break;
            case Resolution::kKeepFailed:
            case Resolution::kFailUnknown:
                ++report.kept_failed;
                placed.phase = Phase::kFailed;
                if (resolution == Resolution::kFailUnknown) {
                    placed.last_error = "pattern '" + placed.key.pattern +
                                        "' is no longer discovered; terminate the key";
                }
                drain(placed, AfterDrain::kFail);
                break;
            case Resolution::kKeepFinished:
                ++report.kept_failed;
                placed.phase = Phase::kFinished;
                drain(placed, AfterDrain::kFinish);
                break;
        }
    }
    if (!unreadable.empty()) report.adopted += adopt_unrecorded(unreadable);
    report.removed_groups = reconcile_groups(&report.killed);
    if (network_) {
        // The table anew for the adopted keys; veths no key holds go.
        try {
            report.removed_links = network_->reconcile();
        } catch (const std::exception& e) {
            log::error(std::string("egress: rebuilding the rules of the adopted keys: ") +
                       e.what());
        }
    }
    resync_timer_ = loop_.timer(config_.process_manager.resync_interval, [this] { resync(); });
    // After the adoptions: the pool launches only the keys no record brought back.
    warm_timer_ = loop_.timer(milliseconds(0), [this] { keep_warm(); });
    return report;
}

// Keys whose record could not be read: a group of the subtree that no key
// owns, named like a key whose record file was set aside, is rebuilt from
// what the kernel says (its name, the root process of its leaf, the ids
// that process runs as, the listeners it holds) and adopted if all of that
// passes the same checks as a record would. Its launch config is lost.
int Launcher::adopt_unrecorded(const std::set<std::string>& unreadable) {
    int adopted = 0;
    auto try_group = [&](const std::string& path, const std::string& name,
                         const std::string& parent_ns) {
        if (processes_.count(name) || !unreadable.count(state_.file_for(name).filename().string()))
            return;
        const std::optional<IsolationKey> key = parse_process_id(name, parent_ns);
        if (!key || key->namespace_id != parent_ns || !patterns_.count(key->pattern)) return;
        // The leaf with processes, and its root process: the one whose
        // parent is outside the leaf (the init, or the pattern without one).
        for (const std::string& leaf_name : sandbox::cgroup_child_names(path)) {
            if (!leaf_name.starts_with("run.")) continue;
            const std::string leaf = path + "/" + leaf_name;
            const std::vector<pid_t> members = sandbox::cgroup_processes(leaf);
            std::vector<pid_t> roots;
            for (pid_t pid : members) {
                const pid_t parent = sandbox::read_parent_pid(pid);
                if (std::find(members.begin(), members.end(), parent) == members.end())
                    roots.push_back(pid);
            }
            if (roots.size() != 1) continue;
            std::string problem;
            const std::optional<sandbox::ProcessIds> ids =
                sandbox::read_process_ids(roots[0], problem);
            if (!ids) continue;
            KeyRecord r;
            r.set_process_id(name);
            r.set_pattern(key->pattern);
            r.set_isolation(isolation_name(key->level));
            r.set_namespace_id(key->namespace_id);
            r.set_session_id(key->session_id);
            r.set_desired(pattern_launcher::state::DESIRED_RUNNING);
            r.set_phase(pattern_launcher::state::PHASE_RUNNING);
            r.set_ever_running(true);
            r.set_cgroup(path);
            r.set_pid(roots[0]);
            r.set_incarnation(
                static_cast<std::uint32_t>(std::strtoul(leaf_name.c_str() + 4, nullptr, 10)));
            r.set_started_at_unix_ms(unix_ms_now());
            r.set_accepted_at_unix_ms(unix_ms_now());
            r.set_limits_enforced(true);
            if (identities_.contains(ids->uid)) r.set_identity(ids->uid);
            try {
                std::unique_ptr<KeyProcess> probe = sandbox_->open_process(roots[0]);
                r.set_grpc_port(
                    static_cast<std::uint32_t>(sandbox::listening_port_of(probe->exit_fd(), 3)));
                r.set_health_port(
                    static_cast<std::uint32_t>(sandbox::listening_port_of(probe->exit_fd(), 4)));
                probe->detach();
            } catch (const std::exception&) {
                continue;
            }
            if (r.grpc_port() == 0) continue;  // no address to serve it on
            std::unique_ptr<Key> owned = key_from_record(r);
            if (!owned) continue;
            std::string why;
            if (!adopt(*owned, r, why)) {
                log::warning("not adopting " + name + " without its record: " + why);
                continue;
            }
            Key& k = place_recovered(std::move(owned));
            k.recovery = "adopted without its record (unreadable); its launch config is lost";
            k.phase = Phase::kRunning;
            log::warning("recovered " + name + ": " + k.recovery,
                         log::Key{k.id, k.key.namespace_id, k.key.pattern});
            persist(k);
            watch_process(k);
            schedule_liveness(k);
            ++adopted;
            return;
        }
    };
    const std::string root = sandbox_->root_path();
    for (const std::string& name : sandbox::cgroup_child_names(root)) {
        if (name == "supervisor") continue;
        const std::string path = root + "/" + name;
        if (name.starts_with("ns:") && std::count(name.begin(), name.end(), ':') == 1) {
            for (const std::string& child : sandbox::cgroup_child_names(path))
                try_group(path + "/" + child, child, name.substr(3));
        } else {
            try_group(path, name, "");
        }
    }
    return adopted;
}

namespace {

// Every how many resyncs the subtree is listed even when the link counts
// match: the safety net for a namespace group outside the slices so far,
// or a stray that replaced an owned group someone removed.
constexpr int kListingEvery = 10;
// How many namespace groups one resync stats.
constexpr std::size_t kNamespaceSlice = 256;

// On cgroupfs (kernfs) a directory's link count is 2 + its subdirectories
// (kernfs_refresh_inode), so one stat counts the groups in it. -1: unknown.
long subgroup_count(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_nlink < 2) return -1;
    return static_cast<long>(st.st_nlink) - 2;
}

}  // namespace

void Launcher::resync() {
    resync_timer_ = loop_.timer(config_.process_manager.resync_interval, [this] { resync(); });
    // Listing the subtree reads every group's directory: with thousands of
    // keys that was most of the idle daemon's CPU, for nothing while no
    // group appeared that the launcher does not own.
    if (++resyncs_since_listing_ < kListingEvery && !stray_possible()) return;
    resyncs_since_listing_ = 0;
    reconcile_groups();
}

// Whether the subtree may hold a group no key owns: the groups directly
// under the root, and those of a slice of the namespace groups, counted by
// their link counts against what the launcher owns there. Any doubt
// (a count that does not match, a stat that fails) says yes.
bool Launcher::stray_possible() {
    const std::string& root = sandbox_->root_path();
    long owned_at_root = static_cast<long>(namespace_groups_.size());
    for (const auto& [id, k] : processes_) {
        if (k->group && !k->holds_namespace_group) ++owned_at_root;
    }
    if (subgroup_count(root + "/supervisor") >= 0) ++owned_at_root;
    if (subgroup_count(root) != owned_at_root) return true;
    if (namespace_groups_.empty()) return false;
    auto it = namespace_groups_.upper_bound(ns_group_cursor_);
    const std::size_t slice = std::min(kNamespaceSlice, namespace_groups_.size());
    for (std::size_t n = 0; n < slice; ++n, ++it) {
        if (it == namespace_groups_.end()) it = namespace_groups_.begin();
        ns_group_cursor_ = it->first;
        if (subgroup_count(it->second.group->path()) != it->second.users) return true;
    }
    return false;
}

// Groups in the launcher's subtree that no key owns (a crash between mkdir
// and the record, a record that could not be read, a namespace group left
// busy) are killed and removed; a busy one is tried again next time.
int Launcher::reconcile_groups(int* killed) {
    std::set<std::string> owned;
    for (const auto& [id, k] : processes_) {
        if (k->group) owned.insert(k->group->path());
    }
    for (const auto& [ns, group] : namespace_groups_)
        owned.insert(group.group->path());
    int removed = 0;
    int busy = 0;
    auto judge = [&](const std::string& path) {
        if (owned.count(path)) return;
        try {
            std::unique_ptr<KeyGroup> group = sandbox_->adopt_group(path);
            std::size_t count = group->processes().size();
            for (const std::string& leaf : sandbox::cgroup_child_names(path))
                count += sandbox::cgroup_processes(path + "/" + leaf).size();
            if (count > 0) {
                log::warning("killing the processes in " + path +
                             ": no state record describes it (" + std::to_string(count) +
                             " found)");
                if (killed) *killed += static_cast<int>(count);
            }
            group->kill();
            if (group->try_remove()) {
                ++removed;
            } else {
                ++busy;  // still exiting: tried again shortly
            }
        } catch (const std::exception& e) {
            log::warning("reconciling " + path + ": " + e.what());
        }
    };
    const std::string root = sandbox_->root_path();
    for (const std::string& name : sandbox::cgroup_child_names(root)) {
        if (name == "supervisor") continue;
        const std::string path = root + "/" + name;
        if (name.starts_with("ns:") && std::count(name.begin(), name.end(), ':') == 1) {
            for (const std::string& child : sandbox::cgroup_child_names(path))
                judge(path + "/" + child);
            // A namespace group no key uses.
            if (!namespace_groups_.count(name.substr(3))) judge(path);
        } else {
            judge(path);
        }
    }
    // Killed groups empty within milliseconds: look again soon, not only
    // at the next resync_interval.
    if (busy == 0) stray_retries_ = 0;
    if (busy > 0 && !stray_timer_) {
        const milliseconds delay = std::min(config_.process_manager.resync_interval,
                                            milliseconds(100 << std::min(stray_retries_++, 8)));
        stray_timer_ = loop_.timer(delay, [this] {
            stray_timer_ = {};
            reconcile_groups();
        });
    }
    return removed;
}

}  // namespace launcher
