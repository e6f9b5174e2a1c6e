// prism.launcher.PatternLauncher over gRPC: decodes requests, hands them to
// the launcher on its event loop (handlers never block gRPC's threads) and
// maps results to the wire and to status codes.
#pragma once

#include "event_loop.h"
#include "launcher.h"
#include "prism/launcher/launcher.grpc.pb.h"

namespace launcher {

class PatternLauncherService final : public prism::launcher::PatternLauncher::CallbackService {
public:
    PatternLauncherService(EventLoop& loop, Launcher& launcher) : loop_(loop), launcher_(launcher) {}

    grpc::ServerUnaryReactor* LaunchPattern(grpc::CallbackServerContext* ctx,
                                            const prism::launcher::LaunchRequest* request,
                                            prism::launcher::LaunchResponse* response) override;
    grpc::ServerUnaryReactor* ListPatterns(grpc::CallbackServerContext* ctx,
                                           const prism::launcher::ListPatternsRequest* request,
                                           prism::launcher::ListPatternsResponse* response) override;
    grpc::ServerUnaryReactor* TerminatePattern(grpc::CallbackServerContext* ctx,
                                               const prism::launcher::TerminateRequest* request,
                                               prism::launcher::TerminateResponse* response) override;
    grpc::ServerUnaryReactor* Health(grpc::CallbackServerContext* ctx,
                                     const prism::launcher::HealthRequest* request,
                                     prism::launcher::HealthResponse* response) override;
    grpc::ServerUnaryReactor* GetProcessStatus(
        grpc::CallbackServerContext* ctx, const prism::launcher::GetProcessStatusRequest* request,
        prism::launcher::GetProcessStatusResponse* response) override;

private:
    EventLoop& loop_;
    Launcher& launcher_;
};

}  // namespace launcher
