// prism.launcher.PatternLauncher over gRPC: decodes requests, hands them to
// the launcher on its event loop (handlers never block gRPC's threads) and
// maps results to the wire and to status codes.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "common/event_loop.h"
#include "core/launcher.h"
#include "prism/launcher/launcher.grpc.pb.h"

namespace launcher {

class PatternLauncherService final : public prism::launcher::PatternLauncher::CallbackService {
public:
    struct ReloadOutcome {
        ErrorCode code = ErrorCode::kOk;
        std::string message;  // code != kOk: why nothing was reloaded
        std::vector<std::string> invalid_manifests;
    };
    using ReloadDone = std::function<void(const ReloadOutcome&)>;
    struct Hooks {
        // Re-reads the manifests (off the loop) and applies them; calls
        // `done` on the loop once they are applied. Called on the loop.
        std::function<void(ReloadDone done)> reload;
        // Who is behind a call's peer string, for the audit log (any thread).
        std::function<std::string(const std::string&)> caller;
    };
    PatternLauncherService(EventLoop& loop, Launcher& launcher, Hooks hooks = {})
        : loop_(loop), launcher_(launcher), hooks_(std::move(hooks)) {}

    grpc::ServerUnaryReactor* LaunchPattern(grpc::CallbackServerContext* ctx,
                                            const prism::launcher::LaunchRequest* request,
                                            prism::launcher::LaunchResponse* response) override;
    grpc::ServerUnaryReactor* ListPatterns(
        grpc::CallbackServerContext* ctx, const prism::launcher::ListPatternsRequest* request,
        prism::launcher::ListPatternsResponse* response) override;
    grpc::ServerUnaryReactor* TerminatePattern(
        grpc::CallbackServerContext* ctx, const prism::launcher::TerminateRequest* request,
        prism::launcher::TerminateResponse* response) override;
    grpc::ServerUnaryReactor* Health(grpc::CallbackServerContext* ctx,
                                     const prism::launcher::HealthRequest* request,
                                     prism::launcher::HealthResponse* response) override;
    grpc::ServerUnaryReactor* GetProcessStatus(
        grpc::CallbackServerContext* ctx, const prism::launcher::GetProcessStatusRequest* request,
        prism::launcher::GetProcessStatusResponse* response) override;
    grpc::ServerUnaryReactor* Reload(grpc::CallbackServerContext* ctx,
                                     const prism::launcher::ReloadRequest* request,
                                     prism::launcher::ReloadResponse* response) override;

private:
    std::string caller(grpc::CallbackServerContext* ctx) const;

    EventLoop& loop_;
    Launcher& launcher_;
    Hooks hooks_;
};

}  // namespace launcher
