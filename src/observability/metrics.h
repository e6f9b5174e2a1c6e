// The launcher's Prometheus metrics (RFC-035 "Metrics and Observability").
//
// Two sources, one exposition:
// - events the launcher reports through LauncherObserver (starts, stops,
//   failures, restarts, OOM kills, health checks, quota rejections, launch
//   durations) accumulate in counters and a histogram of a prometheus-cpp
//   Registry, since this daemon instance started;
// - state (processes per state, isolation levels, per-process CPU and
//   memory) is built at scrape time from a snapshot of the launcher, so a
//   process's series disappear with it.
// Everything runs on the event loop thread: observer calls come from the
// launcher, scrapes from the HTTP endpoint on the same loop. The one
// exception is api_denied(), which gRPC's threads call.
//
// docs/operations.md lists every metric.
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <memory>
#include <string>
#include <vector>

#include "core/launcher_observer.h"

namespace launcher {

class Launcher;

class Metrics : public LauncherObserver {
public:
    // `launcher` is read at scrape time; it must outlive this object.
    explicit Metrics(const Launcher& launcher);
    ~Metrics() override;
    Metrics(const Metrics&) = delete;
    Metrics& operator=(const Metrics&) = delete;

    // Every family: the event registry's and the snapshot's.
    std::vector<prometheus::MetricFamily> collect() const;
    // The Prometheus text exposition format (version 0.0.4).
    std::string scrape() const;
    static constexpr const char* kContentType = "text/plain; version=0.0.4; charset=utf-8";

    // LauncherObserver
    void process_started(const ProcessLabels& labels, std::chrono::nanoseconds duration) override;
    void process_stopped(const ProcessLabels& labels) override;
    void process_failed(const ProcessLabels& labels) override;
    void process_restarted(const ProcessLabels& labels) override;
    void process_oom_killed(const ProcessLabels& labels) override;
    void health_checked(const ProcessLabels& labels, bool ok) override;
    void quota_rejected(const std::string& namespace_id, const std::string& limit) override;
    void warm_pool_launch(const ProcessLabels& labels, bool hit) override;
    void warm_pool_refilled(const ProcessLabels& labels,
                            std::chrono::nanoseconds duration) override;
    void session_pool_launch(const ProcessLabels& labels, bool hit) override;
    void session_pool_refilled(const ProcessLabels& labels,
                               std::chrono::nanoseconds duration) override;

    // An API call was refused (code: PERMISSION_DENIED or UNAUTHENTICATED).
    // Any thread: prometheus-cpp families and counters lock themselves.
    void api_denied(const std::string& rpc, const std::string& code);

private:
    class Snapshot;

    std::shared_ptr<prometheus::Registry> registry_;
    prometheus::Family<prometheus::Counter>& starts_;
    prometheus::Family<prometheus::Counter>& stops_;
    prometheus::Family<prometheus::Counter>& failures_;
    prometheus::Family<prometheus::Counter>& restarts_;
    prometheus::Family<prometheus::Counter>& oom_kills_;
    prometheus::Family<prometheus::Counter>& health_checks_;
    prometheus::Family<prometheus::Counter>& quota_rejections_;
    prometheus::Family<prometheus::Counter>& api_denials_;
    prometheus::Family<prometheus::Histogram>& launch_duration_;
    prometheus::Family<prometheus::Counter>& warm_hits_;
    prometheus::Family<prometheus::Counter>& warm_misses_;
    prometheus::Family<prometheus::Histogram>& warm_refill_duration_;
    prometheus::Family<prometheus::Counter>& pool_hits_;
    prometheus::Family<prometheus::Counter>& pool_misses_;
    prometheus::Family<prometheus::Histogram>& pool_refill_duration_;
    std::unique_ptr<Snapshot> snapshot_;
};

}  // namespace launcher
