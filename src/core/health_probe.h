// One health probe of a pattern, driven by the event loop: an HTTP GET
// (status 200 is healthy), a bare TCP connect, or a gRPC
// grpc.health.v1.Health/Check (SERVING is healthy), with a timeout. It never
// blocks the loop.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "common/event_loop.h"
#include "config/manifest.h"

namespace launcher {

class HealthProbe : public std::enable_shared_from_this<HealthProbe> {
public:
    // ok: healthy; detail: why not ("HTTP 503", "connection refused", "timed out after 5000 ms").
    using Done = std::function<void(bool ok, const std::string& detail)>;

    // `http_path` empty: a TCP connect probe. `done` runs exactly once, on
    // the loop, unless the probe is cancelled first.
    static std::shared_ptr<HealthProbe> start(EventLoop& loop, int port, std::string http_path,
                                              std::chrono::milliseconds timeout, Done done);
    // grpc.health.v1.Health/Check of `service` ("" = the server as a whole)
    // at 127.0.0.1:`port`, on a channel of its own, with `timeout` as the
    // call's deadline; healthy only if the answer is SERVING. The call runs
    // on gRPC's threads (grpc_health_probe.cc); `done` runs exactly once, on
    // the loop, unless the probe is cancelled (or destroyed) first.
    static std::shared_ptr<HealthProbe> start_grpc(EventLoop& loop, int port, std::string service,
                                                   std::chrono::milliseconds timeout, Done done);
    // The probe `check` asks for (any type but notify): http and tcp at
    // `health_port`, grpc at the pattern's gRPC socket, `grpc_port`.
    static std::shared_ptr<HealthProbe> start_for(EventLoop& loop, const Healthcheck& check,
                                                  int health_port, int grpc_port, Done done);
    void cancel();
    ~HealthProbe();

private:
    struct GrpcCall;  // grpc_health_probe.cc: keeps gRPC types out of this header
    static void abandon(std::shared_ptr<GrpcCall> call);

    HealthProbe(EventLoop& loop, Done done) : loop_(loop), done_(std::move(done)) {}
    void on_event(std::uint32_t events);
    void finish(bool ok, const std::string& detail);

    EventLoop& loop_;
    Done done_;
    sandbox::UniqueFd fd_;
    std::string request_;
    std::size_t sent_ = 0;
    std::string response_;
    EventLoop::TimerId timer_ = 0;
    bool finished_ = false;
    std::shared_ptr<GrpcCall> grpc_call_;  // start_grpc: the call in flight
};

}  // namespace launcher
