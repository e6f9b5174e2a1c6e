// HealthProbe::start_grpc: `healthcheck: {type: grpc}`, the standard
// grpc.health.v1.Health/Check (https://github.com/grpc/grpc/blob/master/doc/health-checking.md)
// on the pattern's gRPC socket. The one file of the core that knows gRPC:
// it links the generated health_proto privately, and health_probe.h names
// no gRPC type.
//
// The call uses grpc++'s callback API, so the loop never waits: the
// completion runs on one of gRPC's threads, which only posts the outcome to
// the loop (EventLoop::post is the one thread-safe entry). A probe that is
// cancelled or destroyed first abandons its call: TryCancel, and the loop
// pointer cleared under the call's mutex, so that a completion racing with
// it never touches a loop (or a probe) that is gone.
//
// Who owns what: the channel and stub belong to the probe and are released
// on the loop thread, and never before the call's completion has run. With
// grpc 1.51 the last channel's release shuts down the shared callback
// completion queue: from one of that queue's threads, or while a call on
// it is pending, that aborts (grpc_cq_internal_unref, seen in
// GrpcHealthProbe.ACancelledProbeNeverCallsBack). So an abandoned call is
// buried: kept until its completion has run, then released by the next
// probe's start (or abandon) on a loop thread. What is still buried when
// the process exits is left to the exit.

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <iterator>
#include <mutex>
#include <vector>

#include "core/health_probe.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace launcher {

namespace health = grpc::health::v1;

// One Check in flight: shared by the probe and the completion.
struct GrpcCallState {
    grpc::ClientContext context;
    health::HealthCheckRequest request;
    health::HealthCheckResponse response;
    std::mutex mutex;
    EventLoop* loop = nullptr;           // null once abandoned: post nothing
    std::atomic<bool> completed{false};  // the completion has run (its channel may go)
};

struct HealthProbe::GrpcCall {
    std::shared_ptr<grpc::Channel> channel;  // the probe's only: released on the loop
    std::unique_ptr<health::Health::Stub> stub;
    std::shared_ptr<GrpcCallState> state;
};

namespace {

// Abandoned calls whose channels wait for their completions (see the top).
class Graveyard {
public:
    void bury(std::shared_ptr<void> call, std::shared_ptr<GrpcCallState> state) {
        std::lock_guard lock(mutex_);
        graves_.push_back({std::move(call), std::move(state)});
    }
    // Releases (here, on the caller's thread) those whose completion ran.
    void sweep() {
        std::vector<Grave> done;
        {
            std::lock_guard lock(mutex_);
            auto it = std::partition(graves_.begin(), graves_.end(),
                                     [](const Grave& g) { return !g.state->completed.load(); });
            done.assign(std::make_move_iterator(it), std::make_move_iterator(graves_.end()));
            graves_.erase(it, graves_.end());
        }
    }

private:
    struct Grave {
        std::shared_ptr<void> call;
        std::shared_ptr<GrpcCallState> state;
    };
    std::mutex mutex_;
    std::vector<Grave> graves_;
};

// Never destroyed: what is buried at exit stays there (see the top).
Graveyard& graveyard() {
    static Graveyard* const instance = new Graveyard;
    return *instance;
}

const char* code_name(grpc::StatusCode code) {
    switch (code) {
        case grpc::StatusCode::OK:
            return "OK";
        case grpc::StatusCode::CANCELLED:
            return "CANCELLED";
        case grpc::StatusCode::UNKNOWN:
            return "UNKNOWN";
        case grpc::StatusCode::INVALID_ARGUMENT:
            return "INVALID_ARGUMENT";
        case grpc::StatusCode::DEADLINE_EXCEEDED:
            return "DEADLINE_EXCEEDED";
        case grpc::StatusCode::NOT_FOUND:
            return "NOT_FOUND";
        case grpc::StatusCode::ALREADY_EXISTS:
            return "ALREADY_EXISTS";
        case grpc::StatusCode::PERMISSION_DENIED:
            return "PERMISSION_DENIED";
        case grpc::StatusCode::RESOURCE_EXHAUSTED:
            return "RESOURCE_EXHAUSTED";
        case grpc::StatusCode::FAILED_PRECONDITION:
            return "FAILED_PRECONDITION";
        case grpc::StatusCode::ABORTED:
            return "ABORTED";
        case grpc::StatusCode::OUT_OF_RANGE:
            return "OUT_OF_RANGE";
        case grpc::StatusCode::UNIMPLEMENTED:
            return "UNIMPLEMENTED";
        case grpc::StatusCode::INTERNAL:
            return "INTERNAL";
        case grpc::StatusCode::UNAVAILABLE:
            return "UNAVAILABLE";
        case grpc::StatusCode::DATA_LOSS:
            return "DATA_LOSS";
        case grpc::StatusCode::UNAUTHENTICATED:
            return "UNAUTHENTICATED";
        default:
            return "an unknown code";
    }
}

// What the answer means, as the readiness error and the liveness kill
// reason show it ("did not become healthy within 3000 ms (last check: ...)").
std::string describe(const grpc::Status& status, const health::HealthCheckResponse& response,
                     const std::string& address, const std::string& service,
                     std::chrono::milliseconds timeout) {
    const std::string call = "grpc.health.v1.Health/Check on " + address +
                             (service.empty() ? "" : " for service '" + service + "'");
    const std::string why = std::string(code_name(status.error_code())) +
                            (status.error_message().empty() ? "" : ": " + status.error_message());
    switch (status.error_code()) {
        case grpc::StatusCode::OK:
            return call + " answered " +
                   health::HealthCheckResponse::ServingStatus_Name(response.status());
        case grpc::StatusCode::DEADLINE_EXCEEDED:
            return "timed out after " + std::to_string(timeout.count()) + " ms (" + call + ")";
        case grpc::StatusCode::UNIMPLEMENTED:
            return call + ": the pattern's gRPC server does not implement grpc.health.v1.Health (" +
                   why + ")";
        case grpc::StatusCode::NOT_FOUND:
            return call + ": the pattern's health service does not know this service (" + why + ")";
        case grpc::StatusCode::UNAVAILABLE:
            return call + " failed (" + why + "): no gRPC server answered; is the pattern a " +
                   "gRPC server on its handed socket?";
        default:
            return call + " failed (" + why + ")";
    }
}

}  // namespace

std::shared_ptr<HealthProbe> HealthProbe::start_grpc(EventLoop& loop, int port, std::string service,
                                                     std::chrono::milliseconds timeout, Done done) {
    graveyard().sweep();
    std::shared_ptr<HealthProbe> probe(new HealthProbe(loop, std::move(done)));
    // The launcher bound the socket (in its own network namespace, also for
    // a pattern with network: isolated) and handed it over: 127.0.0.1 here
    // reaches it. "ipv4:" needs no resolver.
    const std::string address = "127.0.0.1:" + std::to_string(port);
    const std::string target = "ipv4:" + address;
    grpc::ChannelArguments args;
    // Never through an http(s)_proxy/grpc_proxy of the daemon's environment.
    args.SetInt(GRPC_ARG_ENABLE_HTTP_PROXY, 0);
    // A connection of its own, not one shared with (or left in back-off by)
    // another channel to the same port.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    // The answer is a few bytes; a pattern cannot make us buffer megabytes.
    args.SetMaxReceiveMessageSize(4096);

    auto call = std::make_shared<GrpcCall>();
    call->channel = grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
    call->stub = health::Health::NewStub(call->channel);
    auto state = std::make_shared<GrpcCallState>();
    state->request.set_service(service);
    state->context.set_deadline(std::chrono::system_clock::now() + timeout);
    state->loop = &loop;
    call->state = state;
    probe->grpc_call_ = call;

    std::weak_ptr<HealthProbe> weak = probe;
    call->stub->async()->Check(
        &state->context, &state->request, &state->response,
        [state, weak, address, service, timeout](grpc::Status status) {
            // A gRPC thread. Read the answer here (the call is ours until
            // this returns), then hand it to the loop.
            const bool ok =
                status.ok() && state->response.status() == health::HealthCheckResponse::SERVING;
            std::string detail =
                ok ? "SERVING" : describe(status, state->response, address, service, timeout);
            std::lock_guard lock(state->mutex);
            state->completed = true;
            if (!state->loop) return;  // abandoned: the probe, maybe the loop, are gone
            state->loop->post([weak, ok, detail = std::move(detail)] {
                if (auto p = weak.lock()) p->finish(ok, detail);
            });
        });
    return probe;
}

void HealthProbe::abandon(std::shared_ptr<GrpcCall> call) {
    std::shared_ptr<GrpcCallState> state = call->state;
    {
        std::lock_guard lock(state->mutex);
        state->loop = nullptr;
    }
    state->context.TryCancel();  // ends it soon; harmless once it has completed
    // Completed already (its answer is on its way to the loop, or here):
    // the channel may go now, on this thread. Else it waits, buried.
    if (!state->completed) graveyard().bury(std::move(call), std::move(state));
    graveyard().sweep();
}

}  // namespace launcher
