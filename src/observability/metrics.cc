#include "observability/metrics.h"

#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>
#include <unistd.h>

#include <map>
#include <sstream>
#include <utility>

#include "core/launcher.h"

namespace launcher {

namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

// Cold starts take milliseconds to seconds (start_timeout caps them).
const prometheus::Histogram::BucketBoundaries kLaunchBuckets = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

prometheus::Labels key_labels(const ProcessLabels& l) {
    return {{"pattern", l.pattern},
            {"namespace", l.namespace_id},
            {"isolation", isolation_name(l.isolation)}};
}

MetricFamily family(std::string name, std::string help, MetricType type) {
    MetricFamily f;
    f.name = std::move(name);
    f.help = std::move(help);
    f.type = type;
    return f;
}

ClientMetric sample(std::vector<ClientMetric::Label> labels, double value, MetricType type) {
    ClientMetric m;
    m.label = std::move(labels);
    if (type == MetricType::Counter) {
        m.counter.value = value;
    } else {
        m.gauge.value = value;
    }
    return m;
}

}  // namespace

// The scrape-time part: built from a snapshot of the launcher each time.
class Metrics::Snapshot : public prometheus::Collectable {
public:
    explicit Snapshot(const Launcher& launcher) : launcher_(launcher) {}

    std::vector<MetricFamily> Collect() const override {
        const std::vector<ProcessInfo> processes = launcher_.list({});
        const HealthSummary health = launcher_.health(false);

        // Per (pattern, isolation): every state gauge, zeros included, for
        // each pair that has a key in any state.
        struct Counts {
            int starting = 0, running = 0, terminating = 0, failed = 0;
        };
        std::map<std::pair<std::string, std::string>, Counts> by_pattern;
        std::map<std::string, int> levels = {{"none", 0}, {"namespace", 0}, {"session", 0}};
        for (const ProcessInfo& p : processes) {
            Counts& c = by_pattern[{p.pattern, isolation_name(p.isolation)}];
            switch (p.state) {
                case ProcessState::kStarting:
                    ++c.starting;
                    break;
                case ProcessState::kRunning:
                    ++c.running;
                    break;
                case ProcessState::kTerminating:
                    ++c.terminating;
                    break;
                case ProcessState::kFailed:
                    ++c.failed;
                    break;
                default:
                    break;
            }
            ++levels[isolation_name(p.isolation)];
        }

        MetricFamily starting =
            family("pattern_launcher_processes_starting",
                   "Keys STARTING: a cold start or a restart, not yet healthy", MetricType::Gauge);
        MetricFamily running =
            family("pattern_launcher_processes_running",
                   "Keys RUNNING: started and passed readiness", MetricType::Gauge);
        MetricFamily terminating =
            family("pattern_launcher_processes_terminating",
                   "Keys TERMINATING: stop requested, grace period or cleanup under way",
                   MetricType::Gauge);
        MetricFamily failed = family(
            "pattern_launcher_processes_failed",
            "Keys FAILED: the restart policy or the circuit breaker gave up (/health answers 503)",
            MetricType::Gauge);
        for (const auto& [key, c] : by_pattern) {
            std::vector<ClientMetric::Label> labels = {{"isolation", key.second},
                                                       {"pattern", key.first}};
            starting.metric.push_back(sample(labels, c.starting, MetricType::Gauge));
            running.metric.push_back(sample(labels, c.running, MetricType::Gauge));
            terminating.metric.push_back(sample(labels, c.terminating, MetricType::Gauge));
            failed.metric.push_back(sample(labels, c.failed, MetricType::Gauge));
        }

        MetricFamily isolation =
            family("pattern_launcher_isolation_level",
                   "Processes (keys in any state) per isolation level", MetricType::Gauge);
        for (const auto& [level, n] : levels) {
            isolation.metric.push_back(sample({{"level", level}}, n, MetricType::Gauge));
        }

        MetricFamily cpu_usage = family(
            "pattern_launcher_process_cpu_usage",
            "CPU time used by the process's cgroup so far, in seconds (cpu.stat usage_usec / 1e6; "
            "the RFC-035 name, same value as pattern_launcher_process_cpu_seconds_total)",
            MetricType::Gauge);
        MetricFamily cpu_seconds = family(
            "pattern_launcher_process_cpu_seconds_total",
            "CPU time used by the process's cgroup so far, in seconds; rate() gives cores in use",
            MetricType::Counter);
        MetricFamily memory = family(
            "pattern_launcher_process_memory_bytes",
            "Memory charged to the process's cgroup in bytes (memory.current; absent without the "
            "memory controller)",
            MetricType::Gauge);
        for (const ProcessInfo& p : processes) {
            if (p.cgroup.empty()) continue;  // resources already released
            const double seconds = static_cast<double>(p.cpu_usage_usec) / 1e6;
            std::vector<ClientMetric::Label> labels = {{"process_id", p.process_id}};
            cpu_usage.metric.push_back(sample(labels, seconds, MetricType::Gauge));
            cpu_seconds.metric.push_back(sample(labels, seconds, MetricType::Counter));
            // Without the memory controller there is no memory.current, and
            // no value: better no series than a false 0.
            // (The usage cache knows; a scrape reads no cgroupfs file.)
            if (p.memory_known) {
                memory.metric.push_back(
                    sample(labels, static_cast<double>(p.memory_bytes), MetricType::Gauge));
            }
        }

        MetricFamily healthy = family(
            "pattern_launcher_healthy",
            "1 when the launcher reports healthy (/health 200): no FAILED key, not shutting down",
            MetricType::Gauge);
        healthy.metric.push_back(sample({}, health.healthy ? 1 : 0, MetricType::Gauge));
        MetricFamily uptime =
            family("pattern_launcher_uptime_seconds",
                   "Seconds since this launcher instance started", MetricType::Gauge);
        uptime.metric.push_back(
            sample({}, static_cast<double>(health.uptime_seconds), MetricType::Gauge));
        MetricFamily patterns = family("pattern_launcher_patterns_loaded",
                                       "Valid pattern manifests loaded", MetricType::Gauge);
        patterns.metric.push_back(sample({}, health.patterns_loaded, MetricType::Gauge));

        // The warm pool per pattern: the keys it keeps, and those of them RUNNING.
        std::map<std::string, std::pair<int, int>> warm;  // pattern -> (kept, running)
        for (const WarmKeyInfo& w : launcher_.warm_pool()) {
            auto& [kept, up] = warm[w.pattern];
            ++kept;
            if (w.state == ProcessState::kRunning) ++up;
        }
        MetricFamily warm_kept =
            family("pattern_launcher_warm_pool_keys",
                   "NAMESPACE keys the warm pool keeps running (warm_pool:)", MetricType::Gauge);
        MetricFamily warm_size =
            family("pattern_launcher_warm_pool_size",
                   "Keys of the warm pool RUNNING now, ready for a launch", MetricType::Gauge);
        for (const auto& [pattern, counts] : warm) {
            warm_kept.metric.push_back(
                sample({{"pattern", pattern}}, counts.first, MetricType::Gauge));
            warm_size.metric.push_back(
                sample({{"pattern", pattern}}, counts.second, MetricType::Gauge));
        }

        // The session pools: processes wanted, and those ready for a claim.
        MetricFamily pool_wanted = family("pattern_launcher_session_pool_wanted",
                                          "Processes a session pool keeps for a tenant's "
                                          "SESSION keys (warm_pool.sessions)",
                                          MetricType::Gauge);
        MetricFamily pool_size =
            family("pattern_launcher_session_pool_size",
                   "Processes of a session pool ready for a claim now", MetricType::Gauge);
        for (const SessionPoolInfo& pool : launcher_.session_pools()) {
            const std::vector<ClientMetric::Label> labels{{"namespace", pool.namespace_id},
                                                          {"pattern", pool.pattern}};
            pool_wanted.metric.push_back(sample(labels, pool.wanted, MetricType::Gauge));
            pool_size.metric.push_back(sample(labels, pool.ready, MetricType::Gauge));
        }

        std::vector<MetricFamily> out;
        for (MetricFamily* f : {&starting, &running, &terminating, &failed, &isolation, &cpu_usage,
                                &cpu_seconds, &memory, &healthy, &uptime, &patterns, &warm_kept,
                                &warm_size, &pool_wanted, &pool_size}) {
            out.push_back(std::move(*f));
        }
        return out;
    }

private:
    const Launcher& launcher_;
};

Metrics::Metrics(const Launcher& launcher)
    : registry_(std::make_shared<prometheus::Registry>()),
      starts_(prometheus::BuildCounter()
                  .Name("pattern_launcher_process_starts_total")
                  .Help("Cold starts that reached RUNNING (reuses and restarts not counted)")
                  .Register(*registry_)),
      stops_(prometheus::BuildCounter()
                 .Name("pattern_launcher_process_stops_total")
                 .Help("Processes that went away after running: terminated, or finished without "
                       "restart")
                 .Register(*registry_)),
      failures_(prometheus::BuildCounter()
                    .Name("pattern_launcher_process_failures_total")
                    .Help("Failed cold starts, and crashes, OOM kills or liveness failures of "
                          "running processes")
                    .Register(*registry_)),
      restarts_(prometheus::BuildCounter()
                    .Name("pattern_launcher_process_restarts_total")
                    .Help("Restarts of a process by its restart policy")
                    .Register(*registry_)),
      oom_kills_(prometheus::BuildCounter()
                     .Name("pattern_launcher_oom_kills_total")
                     .Help("Processes killed by the kernel's OOM killer in their cgroup")
                     .Register(*registry_)),
      health_checks_(prometheus::BuildCounter()
                         .Name("pattern_launcher_health_checks_total")
                         .Help("HTTP/TCP health probes of patterns (readiness and liveness) by "
                               "result")
                         .Register(*registry_)),
      quota_rejections_(prometheus::BuildCounter()
                            .Name("pattern_launcher_quota_rejections_total")
                            .Help("Launches refused by a process quota, by the limit that refused")
                            .Register(*registry_)),
      api_denials_(prometheus::BuildCounter()
                       .Name("pattern_launcher_api_denials_total")
                       .Help("API calls refused by the policy (PERMISSION_DENIED) or for want of "
                             "an identity (UNAUTHENTICATED), by RPC")
                       .Register(*registry_)),
      launch_duration_(prometheus::BuildHistogram()
                           .Name("pattern_launcher_launch_duration_seconds")
                           .Help("Cold start time from the launch request to RUNNING (healthy)")
                           .Register(*registry_)),
      warm_hits_(prometheus::BuildCounter()
                     .Name("pattern_launcher_warm_pool_hits_total")
                     .Help("Launches of a key the warm pool keeps that found it RUNNING (a reuse)")
                     .Register(*registry_)),
      warm_misses_(prometheus::BuildCounter()
                       .Name("pattern_launcher_warm_pool_misses_total")
                       .Help("Launches of a key the warm pool keeps that did not find it RUNNING "
                             "(they waited for its start)")
                       .Register(*registry_)),
      warm_refill_duration_(prometheus::BuildHistogram()
                                .Name("pattern_launcher_warm_pool_refill_duration_seconds")
                                .Help("Time from the warm pool's launch of one of its keys to "
                                      "RUNNING")
                                .Register(*registry_)),
      pool_hits_(prometheus::BuildCounter()
                     .Name("pattern_launcher_session_pool_hits_total")
                     .Help("SESSION launches that claimed a process of their tenant's session "
                           "pool")
                     .Register(*registry_)),
      pool_misses_(prometheus::BuildCounter()
                       .Name("pattern_launcher_session_pool_misses_total")
                       .Help("SESSION launches of a pattern with a session pool for their "
                             "tenant that found no ready process (a cold start)")
                       .Register(*registry_)),
      pool_refill_duration_(prometheus::BuildHistogram()
                                .Name("pattern_launcher_session_pool_refill_duration_seconds")
                                .Help("Time from a session pool's start of a process to its "
                                      "readiness")
                                .Register(*registry_)),
      snapshot_(std::make_unique<Snapshot>(launcher)) {}

Metrics::~Metrics() = default;

std::vector<MetricFamily> Metrics::collect() const {
    std::vector<MetricFamily> out = registry_->Collect();
    std::vector<MetricFamily> state = snapshot_->Collect();
    out.insert(out.end(), std::make_move_iterator(state.begin()),
               std::make_move_iterator(state.end()));
    return out;
}

std::string Metrics::scrape() const {
    std::ostringstream out;
    prometheus::TextSerializer().Serialize(out, collect());
    return out.str();
}

void Metrics::process_started(const ProcessLabels& labels, std::chrono::nanoseconds duration) {
    starts_.Add(key_labels(labels)).Increment();
    launch_duration_
        .Add({{"pattern", labels.pattern}, {"isolation", isolation_name(labels.isolation)}},
             kLaunchBuckets)
        .Observe(std::chrono::duration<double>(duration).count());
}

void Metrics::process_stopped(const ProcessLabels& labels) {
    stops_.Add(key_labels(labels)).Increment();
}

void Metrics::process_failed(const ProcessLabels& labels) {
    failures_.Add(key_labels(labels)).Increment();
}

void Metrics::process_restarted(const ProcessLabels& labels) {
    restarts_.Add(key_labels(labels)).Increment();
}

void Metrics::process_oom_killed(const ProcessLabels& labels) {
    oom_kills_.Add(key_labels(labels)).Increment();
}

void Metrics::health_checked(const ProcessLabels& labels, bool ok) {
    health_checks_.Add({{"pattern", labels.pattern}, {"result", ok ? "success" : "failure"}})
        .Increment();
}

void Metrics::quota_rejected(const std::string& namespace_id, const std::string& limit) {
    quota_rejections_.Add({{"namespace", namespace_id}, {"limit", limit}}).Increment();
}

void Metrics::warm_pool_launch(const ProcessLabels& labels, bool hit) {
    (hit ? warm_hits_ : warm_misses_)
        .Add({{"pattern", labels.pattern}, {"namespace", labels.namespace_id}})
        .Increment();
}

void Metrics::warm_pool_refilled(const ProcessLabels& labels, std::chrono::nanoseconds duration) {
    warm_refill_duration_.Add({{"pattern", labels.pattern}}, kLaunchBuckets)
        .Observe(std::chrono::duration<double>(duration).count());
}

void Metrics::session_pool_launch(const ProcessLabels& labels, bool hit) {
    (hit ? pool_hits_ : pool_misses_)
        .Add({{"pattern", labels.pattern}, {"namespace", labels.namespace_id}})
        .Increment();
}

void Metrics::session_pool_refilled(const ProcessLabels& labels,
                                    std::chrono::nanoseconds duration) {
    pool_refill_duration_.Add({{"pattern", labels.pattern}}, kLaunchBuckets)
        .Observe(std::chrono::duration<double>(duration).count());
}

void Metrics::api_denied(const std::string& rpc, const std::string& code) {
    api_denials_.Add({{"rpc", rpc}, {"code", code}}).Increment();
}

}  // namespace launcher
