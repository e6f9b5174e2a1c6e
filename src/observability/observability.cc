#include "observability/observability.h"

namespace launcher {

namespace {

constexpr const char* kLoopback = "127.0.0.1";

// The length of the valid UTF-8 sequence at s[i], or 0 if there is none
// (stray continuation byte, overlong form, surrogate, above U+10FFFF,
// truncated).
std::size_t utf8_sequence(std::string_view s, std::size_t i) {
    const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
    const unsigned char b0 = byte(i);
    std::size_t len = 0;
    unsigned char lo = 0x80, hi = 0xBF;  // the allowed range of the second byte
    if (b0 >= 0xC2 && b0 <= 0xDF) {
        len = 2;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
        len = 3;
        if (b0 == 0xE0) lo = 0xA0;  // overlong
        if (b0 == 0xED) hi = 0x9F;  // UTF-16 surrogates
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        len = 4;
        if (b0 == 0xF0) lo = 0x90;  // overlong
        if (b0 == 0xF4) hi = 0x8F;  // above U+10FFFF
    } else {
        return 0;
    }
    if (i + len > s.size()) return 0;
    if (byte(i + 1) < lo || byte(i + 1) > hi) return 0;
    for (std::size_t k = 2; k < len; ++k) {
        if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) return 0;
    }
    return len;
}

std::string json_string(std::string_view text) {
    return "\"" + json_escape(text) + "\"";
}

}  // namespace

std::string json_escape(std::string_view text) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    out.reserve(text.size() + 8);
    std::size_t i = 0;
    while (i < text.size()) {
        const auto c = static_cast<unsigned char>(text[i]);
        if (c >= 0x80) {
            if (std::size_t len = utf8_sequence(text, i)) {
                out.append(text.substr(i, len));
                i += len;
            } else {
                out += "\xEF\xBF\xBD";  // U+FFFD REPLACEMENT CHARACTER
                ++i;
            }
            continue;
        }
        switch (c) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\b':
                out += "\\b";
                break;
            case '\f':
                out += "\\f";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\r':
                out += "\\r";
                break;
            case '\t':
                out += "\\t";
                break;
            default:
                if (c < 0x20) {
                    out += "\\u00";
                    out += kHex[c >> 4];
                    out += kHex[c & 0xF];
                } else {
                    out += static_cast<char>(c);
                }
        }
        ++i;
    }
    return out;
}

std::string health_json(const HealthSummary& h) {
    auto count = [&](const char* level) {
        auto it = h.isolation_distribution.find(level);
        return std::to_string(it == h.isolation_distribution.end() ? 0 : it->second);
    };
    std::string out = "{\n";
    out += "  \"status\": " + json_string(h.healthy ? "healthy" : "unhealthy") + ",\n";
    out += "  \"total_processes\": " + std::to_string(h.total) + ",\n";
    out += "  \"running_processes\": " + std::to_string(h.running) + ",\n";
    out += "  \"terminating_processes\": " + std::to_string(h.terminating) + ",\n";
    out += "  \"failed_processes\": " + std::to_string(h.failed) + ",\n";
    out += "  \"starting_processes\": " + std::to_string(h.starting) + ",\n";
    out += "  \"uptime_seconds\": " + std::to_string(h.uptime_seconds) + ",\n";
    out += "  \"patterns_loaded\": " + std::to_string(h.patterns_loaded) + ",\n";
    out += "  \"isolation_distribution\": {\"none\": " + count("none") +
           ", \"namespace\": " + count("namespace") + ", \"session\": " + count("session") + "},\n";
    out += "  \"processes\": [";
    bool first = true;
    for (const ProcessInfo& p : h.processes) {
        out += first ? "\n" : ",\n";
        first = false;
        out += "    {\"pattern_name\": " + json_string(p.pattern) +
               ", \"process_id\": " + json_string(p.process_id) +
               ", \"state\": " + json_string(state_name(p.state)) +
               ", \"healthy\": " + (p.healthy ? "true" : "false") +
               ", \"uptime_seconds\": " + std::to_string(p.uptime_seconds) +
               ", \"isolation\": " + json_string(isolation_name(p.isolation)) +
               ", \"namespace\": " + json_string(p.namespace_id) +
               ", \"session_id\": " + json_string(p.session_id) +
               ", \"address\": " + json_string(p.address) + ", \"pid\": " + std::to_string(p.pid) +
               ", \"restart_count\": " + std::to_string(p.restart_count) +
               ", \"last_error\": " + json_string(p.last_error) + "}";
    }
    out += first ? "]\n" : "\n  ]\n";
    out += "}\n";
    return out;
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
