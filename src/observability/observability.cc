#include "observability/observability.h"

#include <nlohmann/json.hpp>

namespace launcher {

namespace {

constexpr const char* kLoopback = "127.0.0.1";

}  // namespace

// Keys in the order RFC-035 lists them (ordered_json keeps insertion order).
// Strings that are not valid UTF-8 (a pattern's last_error can hold any
// bytes) get U+FFFD for each bad byte instead of making dump() throw.
std::string health_json(const HealthSummary& h) {
    using Json = nlohmann::ordered_json;
    auto count = [&](const char* level) {
        auto it = h.isolation_distribution.find(level);
        return it == h.isolation_distribution.end() ? 0 : it->second;
    };
    Json processes = Json::array();
    for (const ProcessInfo& p : h.processes) {
        processes.push_back({
            {"pattern_name", p.pattern},
            {"process_id", p.process_id},
            {"state", state_name(p.state)},
            {"healthy", p.healthy},
            {"uptime_seconds", p.uptime_seconds},
            {"isolation", isolation_name(p.isolation)},
            {"namespace", p.namespace_id},
            {"session_id", p.session_id},
            {"address", p.address},
            {"pid", p.pid},
            {"restart_count", p.restart_count},
            {"last_error", p.last_error},
        });
    }
    const Json out = {
        {"status", h.healthy ? "healthy" : "unhealthy"},
        {"total_processes", h.total},
        {"running_processes", h.running},
        {"terminating_processes", h.terminating},
        {"failed_processes", h.failed},
        {"starting_processes", h.starting},
        {"uptime_seconds", h.uptime_seconds},
        {"patterns_loaded", h.patterns_loaded},
        {"isolation_distribution",
         {{"none", count("none")},
          {"namespace", count("namespace")},
          {"session", count("session")}}},
        {"processes", std::move(processes)},
    };
    return out.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

Observability::~Observability() {
    launcher.set_observer(nullptr);
    // The endpoints close their sockets and connections as members go.
}

std::string Observability::describe() const {
    auto one = [](const char* what, const std::unique_ptr<HttpEndpoint>& endpoint,
                  const std::string& path) {
        return std::string(what) +
               (endpoint ? " on http://" + endpoint->address() + path : " disabled");
    };
    return one("metrics", metrics_endpoint, metrics_path) + ", " +
           one("health", health_endpoint, health_path);
}

std::unique_ptr<Observability> start_observability(EventLoop& loop, Launcher& launcher,
                                                   const LauncherConfig& config,
                                                   int inherited_metrics_fd,
                                                   int inherited_health_fd) {
    // Owned from here on, so that a failure below closes them.
    sandbox::UniqueFd metrics_fd(inherited_metrics_fd);
    sandbox::UniqueFd health_fd(inherited_health_fd);
    if (!metrics_fd && config.metrics.port > 0) {
        metrics_fd = bind_http_listener(kLoopback, config.metrics.port);
    }
    if (!health_fd && config.health.port > 0) {
        health_fd = bind_http_listener(kLoopback, config.health.port);
    }

    auto obs = std::make_unique<Observability>(launcher);
    Observability* o = obs.get();
    o->metrics_path = config.metrics.path;
    o->health_path = config.health.path;
    if (metrics_fd) {
        o->metrics_endpoint =
            std::make_unique<HttpEndpoint>(loop, std::move(metrics_fd), "metrics");
        o->metrics_endpoint->route(config.metrics.path, [o](const HttpRequest&) {
            return HttpResponse{200, Metrics::kContentType, o->metrics.scrape()};
        });
        o->metrics_port = o->metrics_endpoint->port();
    }
    if (health_fd) {
        o->health_endpoint = std::make_unique<HttpEndpoint>(loop, std::move(health_fd), "health");
        o->health_endpoint->route(config.health.path, [o](const HttpRequest&) {
            HealthSummary summary = o->launcher.health(true);
            return HttpResponse{summary.healthy ? 200 : 503, "application/json",
                                health_json(summary)};
        });
        o->health_port = o->health_endpoint->port();
    }
    launcher.set_observer(&o->metrics);
    return obs;
}

}  // namespace launcher
