// The daemon's observability: Prometheus metrics on `metrics.port` +
// `metrics.path` and the RFC-035 health JSON on `health.port` +
// `health.path`, each on its own HttpEndpoint on the event loop. The
// launcher reports events to `metrics` for as long as this object lives.
#pragma once

#include <memory>
#include <string>

#include "common/event_loop.h"
#include "config/config.h"
#include "core/launcher.h"
#include "core/launcher_types.h"
#include "http/http_endpoint.h"
#include "observability/metrics.h"

namespace launcher {

struct Observability {
    explicit Observability(Launcher& launcher_ref)
        : launcher(launcher_ref), metrics(launcher_ref) {}
    // Stops serving and detaches the observer. Loop thread.
    ~Observability();
    Observability(const Observability&) = delete;
    Observability& operator=(const Observability&) = delete;

    Launcher& launcher;
    Metrics metrics;
    std::unique_ptr<HttpEndpoint> metrics_endpoint;  // null: disabled
    std::unique_ptr<HttpEndpoint> health_endpoint;   // null: disabled
    int metrics_port = 0;                            // bound ports, 0 when disabled
    int health_port = 0;
    std::string metrics_path;
    std::string health_path;

    // "metrics on http://127.0.0.1:9092/metrics, health on ..." for the log.
    std::string describe() const;
};

// Serves config.metrics and config.health on `loop` and makes the metrics
// the launcher's observer. An inherited fd (systemd socket activation) is
// served as is; otherwise the configured port is bound on 127.0.0.1 (port 0:
// that endpoint is disabled, unless an fd is inherited). Throws SysError
// when a port cannot be bound. Call on the loop thread, before loop.run().
std::unique_ptr<Observability> start_observability(EventLoop& loop, Launcher& launcher,
                                                   const LauncherConfig& config,
                                                   int inherited_metrics_fd = -1,
                                                   int inherited_health_fd = -1);

// The health JSON of RFC-035 ("Health Check Response") for `summary`,
// which should include its processes. Text that is not valid UTF-8 has each
// bad byte replaced by U+FFFD.
std::string health_json(const HealthSummary& summary);

}  // namespace launcher
