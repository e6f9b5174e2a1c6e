// The warm pool's first half (issue 15): NAMESPACE keys that a manifest's
// `warm_pool.namespaces` or the config's `warm_pool.tenants` list are kept
// running before any launch asks for them, so that a tenant's first launch
// is a reuse and not a cold start.
//
// The pool owns no process of its own: it launches its keys through the
// same path as a client (launch_from), so a kept key is an ordinary key with
// an ordinary record. It survives a launcher crash and is adopted like any
// other, counts toward the quotas, follows its restart policy and its
// circuit breaker. The pool only launches again what is not there: a key a
// client terminated, or one that finished. A FAILED key stays FAILED until
// it is terminated, as for a client.
#include <algorithm>

#include "common/log.h"
#include "core/key.h"
#include "core/launcher.h"

namespace launcher {

using std::chrono::milliseconds;

namespace {

// How often the pool looks for its missing keys: a terminated key is back
// within about this long. A tick costs one map lookup per kept key.
constexpr milliseconds kWarmTick{1000};

ProcessLabels warm_labels(const std::string& id, const std::string& pattern,
                          const std::string& namespace_id) {
    return ProcessLabels{pattern, namespace_id, Isolation::kNamespace, id};
}

}  // namespace

void Launcher::plan_warm_pool() {
    std::map<std::string, WarmTarget> targets;
    auto keep = [&](const std::string& pattern, const std::string& namespace_id) {
        const IsolationKey key{Isolation::kNamespace, pattern, namespace_id, {}};
        targets.emplace(key.process_id(), WarmTarget{pattern, namespace_id});
    };
    for (const auto& [name, manifest] : patterns_) {
        for (const std::string& namespace_id : manifest->warm_namespaces)
            keep(name, namespace_id);
    }
    // The config is read before the patterns are found, so its names are
    // checked here, at every reload, and a name that is wrong only now (a
    // pattern removed, its isolation level changed) is logged, not fatal.
    for (const auto& [namespace_id, names] : config_.warm_pool.tenants) {
        for (const std::string& name : names) {
            const std::string where = "warm_pool.tenants." + namespace_id + ": pattern '" + name;
            auto found = patterns_.find(name);
            if (found == patterns_.end()) {
                log::warning(where + "' is not discovered; no key of it is kept running");
            } else if (found->second->isolation_level != Isolation::kNamespace) {
                log::warning(where + "' has isolation_level " +
                             isolation_name(found->second->isolation_level) +
                             "; only NAMESPACE keys are kept running");
            } else {
                keep(name, namespace_id);
            }
        }
    }
    // Keys that are no longer listed stay as they are, ordinary keys now.
    for (auto it = warm_problems_.begin(); it != warm_problems_.end();) {
        it = targets.count(it->first) ? std::next(it) : warm_problems_.erase(it);
    }
    if (!targets.empty() && targets.size() != warm_targets_.size()) {
        log::info("warm pool: " + std::to_string(targets.size()) + " key(s) kept running");
    }
    warm_targets_ = std::move(targets);
}

void Launcher::keep_warm() {
    if (shutting_down_) return;
    warm_timer_ = loop_.timer(kWarmTick, [this] { keep_warm(); });
    refill_missing();
    refill_session_pools();
}

// Goes once around the kept keys from where the last pass stopped, and
// launches those that are not there while start slots are the pool's: at
// most half of them, so a pool filling up after a restart never keeps the
// clients' cold starts waiting behind all of it.
void Launcher::refill_missing() {
    if (shutting_down_ || warm_targets_.empty()) return;
    const std::size_t slots =
        static_cast<std::size_t>(std::max(1, config_.process_manager.max_concurrent_starts / 2));
    auto it = warm_targets_.upper_bound(warm_cursor_);
    for (std::size_t n = 0; n < warm_targets_.size() && warm_refilling_.size() < slots; ++n) {
        if (it == warm_targets_.end()) it = warm_targets_.begin();
        const std::string id = it->first;
        warm_cursor_ = id;
        ++it;
        if (warm_refilling_.count(id)) continue;
        const Key* k = find(id);
        if (k && k->phase != Phase::kFinished) continue;  // there, in whatever state
        refill_warm(id);
    }
}

void Launcher::refill_warm(const std::string& id) {
    const WarmTarget target = warm_targets_.at(id);
    LaunchParams params;
    params.pattern = target.pattern;
    params.isolation = Isolation::kNamespace;
    params.namespace_id = target.namespace_id;
    warm_refilling_.insert(id);
    const EventLoop::Clock::time_point asked = loop_.now();
    launch_from(
        params,
        [this, id, target, asked](const LaunchResult& result) {
            warm_refilling_.erase(id);
            if (shutting_down_) return;
            if (result.code == ErrorCode::kOk) {
                warm_problems_.erase(id);
                if (!result.reused && observer_) {
                    observer_->warm_pool_refilled(
                        warm_labels(id, target.pattern, target.namespace_id), loop_.now() - asked);
                }
                // The freed slot goes to the next missing key at once, not
                // at the next tick (on the next loop turn: this may run
                // within launch_from). After a failure the tick waits: the
                // same refusal again at once would only spin.
                if (!warm_soon_) {
                    warm_soon_ = loop_.timer(milliseconds(0), [this] {
                        warm_soon_ = {};
                        refill_missing();
                    });
                }
                return;
            }
            // Tried again every tick: said once, and again when it changes.
            std::string& said = warm_problems_[id];
            if (said != result.message) {
                said = result.message;
                log::warning("warm pool: cannot keep " + id + " running: " + result.message,
                             log::Key{id, target.namespace_id, target.pattern});
            }
        },
        LaunchOrigin::kWarmPool);
}

void Launcher::count_warm_launch(const std::string& id, const Key* existing) {
    auto target = warm_targets_.find(id);
    if (target == warm_targets_.end() || !observer_) return;
    const bool hit = existing && existing->state() == ProcessState::kRunning;
    observer_->warm_pool_launch(
        warm_labels(id, target->second.pattern, target->second.namespace_id), hit);
}

std::vector<WarmKeyInfo> Launcher::warm_pool() const {
    loop_.assert_in_loop("Launcher::warm_pool");
    std::vector<WarmKeyInfo> out;
    for (const auto& [id, target] : warm_targets_) {
        WarmKeyInfo info{target.pattern, target.namespace_id, id, std::nullopt};
        if (const Key* k = find(id)) info.state = k->state();
        out.push_back(std::move(info));
    }
    return out;
}

}  // namespace launcher
