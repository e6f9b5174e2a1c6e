// The warm pool's second half (issue 15): processes started ahead for the
// SESSION keys of a tenant, and given a session's identity when a launch
// claims one (docs/late-binding.md). Only patterns that speak the claim
// protocol (`late_binding: true`, claim_protocol.h) have one, per tenant
// listed in their `warm_pool.sessions`.
//
// A pool's process is a Key of its own with an id no client can name
// ("pool:<namespace>:<slot>:<pattern>"), in a compartment like any key's:
// its uid, its cgroup below the tenant's "ns:<id>" group with the manifest's
// limits, its network namespace and its sockets. It is invisible to List,
// Status and Terminate, and counts toward no quota: the operator sized the
// pool.
//
// A claim moves its record, log and state directory to the session's id,
// sends the claim message and waits, in kStarting with the manifest's
// start_timeout, for the pattern's READY=1 on the claim socket. From there
// it is the session's key and nothing else: pool_slot is cleared, the
// process is never offered again, and its restarts are ordinary cold spawns
// with the session in the environment. The pool refills in the background,
// within half of max_concurrent_starts.
//
// The cgroup keeps the name it was made with ("ns:<id>/pool:..."; the key's
// record and ProcessInfo.cgroup say where it is). cgroup v2 cannot rename a
// group: its kernfs syscall ops have no rename (only cgroup v1's do), so
// rename(2) fails with EPERM (seen on 6.18 here). Moving the processes into
// a group of the session's name instead would race with their forks and
// leave the memory they charged before the claim behind in the old group.
//
// A launcher restart cannot use a pool's process (the launcher's end of its
// claim socket is gone): its record says desired STOPPED, so recovery kills
// it and the pool starts a fresh one.
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <random>

#include "common/log.h"
#include "core/claim_protocol.h"
#include "core/key.h"
#include "core/launcher.h"

namespace launcher {

using std::chrono::milliseconds;

namespace {

// After a pool's process failed to start, its target waits this long
// before the next try.
constexpr milliseconds kPoolRetry{5000};

}  // namespace

std::string pool_process_id(const std::string& namespace_id, const std::string& slot,
                            const std::string& pattern) {
    return "pool:" + namespace_id + ":" + slot + ":" + pattern;
}

void Launcher::plan_session_pools() {
    std::map<PoolTarget, int> wanted;
    for (const auto& [name, manifest] : patterns_) {
        for (const auto& [namespace_id, size] : manifest->warm_sessions)
            wanted[{name, namespace_id}] = size;
    }
    // The config's, per tenant, checked against the patterns at every reload
    // as warm_pool.tenants is (plan_warm_pool); the larger of the two counts.
    for (const auto& [namespace_id, sizes] : config_.warm_pool.sessions) {
        for (const auto& [name, size] : sizes) {
            const std::string where =
                "warm_pool.sessions." + namespace_id + ": pattern '" + name + "'";
            auto found = patterns_.find(name);
            if (found == patterns_.end()) {
                log::warning(where + " is not discovered; no session pool is kept for it");
            } else if (!found->second->late_binding) {
                log::warning(where +
                             " does not declare late_binding: true; no session pool is kept "
                             "for it (docs/late-binding.md)");
            } else {
                int& n = wanted[{name, namespace_id}];
                n = std::max(n, size);
            }
        }
    }
    // Processes of a target no longer listed (or of a pattern whose manifest
    // changed) stay until claimed or ended; none is started for it again.
    if (wanted != pool_wanted_ && !wanted.empty()) {
        int total = 0;
        for (const auto& [target, size] : wanted)
            total += size;
        log::info("session pools: " + std::to_string(total) + " process(es) for " +
                  std::to_string(wanted.size()) + " pattern and tenant pair(s)");
    }
    pool_wanted_ = std::move(wanted);
}

void Launcher::refill_pools_soon() {
    if (pool_soon_) return;
    pool_soon_ = loop_.timer(milliseconds(0), [this] {
        pool_soon_ = {};
        refill_session_pools();
    });
}

// Starts what the pools lack while their starts take at most half of
// max_concurrent_starts, so that refilling never keeps a client's cold start
// waiting behind all of it. A tick costs one look at each pool's members
// (at most kMaxSessionPool each), never a walk over the keys.
void Launcher::refill_session_pools() {
    if (shutting_down_ || pool_wanted_.empty()) return;
    const int slots = std::max(1, config_.process_manager.max_concurrent_starts / 2);
    int starting = 0;
    for (const auto& [target, ids] : pool_members_) {
        for (const std::string& id : ids) {
            const Key* k = find(id);
            if (k && k->phase != Phase::kPooled) ++starting;
        }
    }
    for (const auto& [target, wanted] : pool_wanted_) {
        if (auto retry = pool_retry_at_.find(target); retry != pool_retry_at_.end()) {
            if (loop_.now() < retry->second) continue;
            pool_retry_at_.erase(retry);
        }
        for (std::size_t have = pool_members_[target].size();
             static_cast<int>(have) < wanted && starting < slots; ++have, ++starting) {
            start_pool_process(target);
        }
    }
}

void Launcher::start_pool_process(const PoolTarget& target) {
    const auto& [pattern, namespace_id] = target;
    auto manifest = patterns_.find(pattern);
    if (manifest == patterns_.end()) return;
    // A slot name no other key of this launcher has; random, so that a
    // group a previous launcher left behind is not taken for it.
    std::uniform_int_distribution<std::uint32_t> digits;
    std::string id, slot;
    do {
        char text[9];
        std::snprintf(text, sizeof(text), "%08x", digits(jitter_));
        slot = text;
        id = pool_process_id(namespace_id, slot, pattern);
    } while (processes_.count(id));
    auto owned = std::make_unique<Key>();
    Key& k = *owned;
    k.key = IsolationKey{Isolation::kSession, pattern, namespace_id, {}};
    k.id = id;
    k.pool_slot = slot;
    k.manifest = manifest->second;
    k.grace = manifest->second->grace_period.value_or(config_.default_grace_period);
    k.requested_at = loop_.now();
    k.accepted_at_unix_ms = unix_ms_now();
    processes_[id] = std::move(owned);
    pool_members_[target].insert(id);
    persist(k);
    enqueue_start(k);
}

// Its readiness check passed: it waits in kPooled for a claim. Its notify
// socket closes (the claim socket carries the next READY=1), and no
// liveness check runs: a process that died is seen through its pidfd.
void Launcher::pool_process_ready(Key& k) {
    k.running_since_unix_ms = unix_ms_now();
    k.readiness_error.clear();
    set_phase(k, Phase::kPooled);
    close_notify(k);
    if (observer_) observer_->session_pool_refilled(labels(k), loop_.now() - k.requested_at);
    log::debug(k.id + ": ready in the session pool", log_key(k));
    start_next_queued();
    refill_pools_soon();  // its start slot goes to the next missing one at once
}

void Launcher::pool_process_gone(const Key& k, bool refill) {
    const PoolTarget target{k.key.pattern, k.key.namespace_id};
    auto members = pool_members_.find(target);
    if (members != pool_members_.end()) {
        members->second.erase(k.id);
        if (members->second.empty()) pool_members_.erase(members);
    }
    // It never became ready: the pattern (or the host) refuses to start it,
    // and starting it again at once would only repeat the failure.
    // (A recovered one is only being stopped: recovery kills every pool process.)
    const bool failed = k.running_since_unix_ms == 0 && k.recovery.empty();
    if (failed && !shutting_down_ && pool_wanted_.count(target)) {
        pool_retry_at_[target] = loop_.now() + kPoolRetry;
        log::warning("session pool of " + k.key.pattern + " for namespace " + k.key.namespace_id +
                         ": a process failed to start (" + k.last_error + "); trying again in " +
                         std::to_string(kPoolRetry.count()) + " ms",
                     log_key(k));
    } else if (refill) {
        refill_pools_soon();
    }
}

bool Launcher::claim_pooled(const IsolationKey& key, const LaunchParams& params,
                            const std::shared_ptr<const Manifest>& manifest, LaunchDone& done) {
    const PoolTarget target{key.pattern, key.namespace_id};
    if (!pool_wanted_.count(target) && !pool_members_.count(target)) return false;
    const ProcessLabels session_labels{key.pattern, key.namespace_id, key.level, key.process_id()};
    Key* member = nullptr;
    if (auto members = pool_members_.find(target); members != pool_members_.end()) {
        for (const std::string& id : members->second) {
            Key* m = find(id);
            if (m && m->phase == Phase::kPooled && m->process_alive && m->claim) {
                member = m;
                break;
            }
        }
    }
    auto miss = [&] {
        if (observer_) observer_->session_pool_launch(session_labels, false);
        return false;
    };
    if (!member) return miss();
    const std::string old_id = member->id;
    const std::string new_id = key.process_id();
    // Nothing may be queued on the socket before the claim: an answer sent
    // ahead would be taken for the answer to it.
    char early[64];
    const ssize_t queued = ::recv(member->claim.get(), early, sizeof(early), MSG_DONTWAIT);
    std::string broken;
    if (queued >= 0) {
        broken = queued == 0 ? "it closed its claim socket"
                             : "it wrote to its claim socket before being claimed";
    } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
        broken = std::string("its claim socket: ") + std::strerror(errno);
    }
    const std::string message =
        encode_claim(Claim{key.namespace_id, key.session_id, new_id, params.config});
    if (broken.empty()) {
        const ssize_t sent = ::send(member->claim.get(), message.data(), message.size(),
                                    MSG_DONTWAIT | MSG_NOSIGNAL);
        if (sent != static_cast<ssize_t>(message.size())) {
            broken = std::string("sending the claim: ") +
                     (sent < 0 ? std::strerror(errno) : "short write");
        }
    }
    if (!broken.empty()) {
        log::warning(old_id + ": not handed to " + new_id + " (" + broken +
                         "); killed, and the launch starts a process of its own",
                     log_key(*member));
        drain(*member, AfterDrain::kForget);
        return miss();
    }
    // What else is named by the process id: one rename each.
    auto move_file = [&](const std::filesystem::path& from, const std::filesystem::path& to) {
        if (::rename(from.c_str(), to.c_str()) != 0 && errno != ENOENT) {
            log::warning(new_id + ": renaming " + from.string() + " to " + to.string() + ": " +
                             std::strerror(errno),
                         log_key(*member));
        }
    };
    if (manifest->sandbox.state_directory) {
        move_file(config_.runtime_dir / "keys" / old_id, config_.runtime_dir / "keys" / new_id);
    }
    if (member->network) {
        for (const char* suffix : {".hosts", ".resolv"}) {
            move_file(name_file(*member, suffix),
                      config_.runtime_dir / "egress" / (new_id + suffix));
        }
    }
    if (logs_) logs_->rename(old_id, new_id);

    // From here the process is the session's key.
    auto node = processes_.extract(old_id);
    node.key() = new_id;
    Key& k = *node.mapped();
    // Out of the pool. Its refill waits for the claim's answer: a spawn on
    // the loop (about a millisecond) in between would delay the answer.
    pool_process_gone(k, false);
    k.key = key;
    k.id = new_id;
    k.pool_slot.clear();
    k.running_since_unix_ms = 0;
    accept_request(k, params, *manifest, std::move(done));
    processes_.insert(std::move(node));
    session_owner_.emplace(key.session_id, key.namespace_id);
    k.start_deadline = loop_.now() + manifest->healthcheck.start_timeout;
    // The pool's record goes before the session's is written: both name the
    // same cgroup and pid, and a launcher crash must never find two records
    // for one process. A crash in between finds none, so the reconciliation
    // kills the process; the launch had not been answered.
    try {
        state_.remove(old_id);
    } catch (const std::exception& e) {
        log::error(old_id + ": removing its state record: " + e.what(), log_key(k));
    }
    set_phase(k, Phase::kStarting);  // the session's record, with its pid and cgroup
    k.process_watch.reset();         // its pidfd is watched again, for the new id
    watch_process(k);
    arm_starting_timer(k);
    k.claim_watch = loop_.watch(k.claim.get(), EPOLLIN, [this, new_id](std::uint32_t) {
        with_key(new_id, Phase::kStarting, [this](Key& q) { on_claim_answer(q); });
    });
    log::info(new_id + ": claimed " + old_id + " from the session pool", log_key(k));
    if (observer_) observer_->session_pool_launch(session_labels, true);
    return true;
}

void Launcher::on_claim_answer(Key& k) {
    char buffer[4096];
    const ssize_t n = ::recv(k.claim.get(), buffer, sizeof(buffer), MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    std::string why;
    if (n > 0) {
        const ClaimAnswer answer = parse_claim_answer(std::string_view(buffer, n));
        if (answer.ready) {
            k.claim_watch.reset();
            k.claim.reset();  // one message each way, ever
            became_healthy(k);
            return refill_pools_soon();
        }
        why = "its pool process refused the claim: " + answer.error;
    } else {
        why = n == 0 ? "its pool process closed its claim socket without answering READY=1"
                     : std::string("reading its claim socket: ") + std::strerror(errno);
    }
    k.claim_watch.reset();
    k.claim.reset();
    cold_start_failed(k, {ErrorCode::kInternal, why});
    refill_pools_soon();
}

std::vector<SessionPoolInfo> Launcher::session_pools() const {
    loop_.assert_in_loop("Launcher::session_pools");
    std::map<PoolTarget, SessionPoolInfo> pools;
    for (const auto& [target, wanted] : pool_wanted_)
        pools[target] = SessionPoolInfo{target.first, target.second, wanted, 0, 0};
    for (const auto& [target, ids] : pool_members_) {
        SessionPoolInfo& info = pools[target];
        info.pattern = target.first;
        info.namespace_id = target.second;
        for (const std::string& id : ids) {
            const Key* k = find(id);
            if (!k) continue;
            if (k->phase == Phase::kPooled) {
                ++info.ready;
            } else if (k->phase == Phase::kQueued || k->phase == Phase::kStarting) {
                ++info.starting;
            }
        }
    }
    std::vector<SessionPoolInfo> out;
    for (auto& [target, info] : pools)
        out.push_back(std::move(info));
    return out;
}

}  // namespace launcher
