// prism.launcher.PatternLauncher over gRPC: establishes who is calling,
// asks the policy, decodes requests, hands them to the launcher on its
// event loop (handlers never block gRPC's threads), maps results to the
// wire and to status codes, and leaves one audit record per call.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "api/audit_log.h"
#include "api/caller_authenticator.h"
#include "auth/api_policy.h"
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
        // A call was refused (rpc name, "PERMISSION_DENIED" or
        // "UNAUTHENTICATED"), for the metrics. Any thread.
        std::function<void(const char* rpc, const char* code)> denied;
    };
    // Who may call: every object must outlive the service.
    struct Access {
        const CallerAuthenticator& authenticator;
        const auth::ApiPolicy& policy;
        AuditLog& audit;
    };
    PatternLauncherService(EventLoop& loop, Launcher& launcher, Access access, Hooks hooks = {})
        : loop_(loop), launcher_(launcher), access_(access), hooks_(std::move(hooks)) {}

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
    struct Call;
    Call begin(grpc::CallbackServerContext* ctx, auth::Rpc rpc) const;
    // Answers `status` and records the call.
    void finish(Call& call, const grpc::Status& status) const;
    grpc::ServerUnaryReactor* refuse(Call& call, const auth::Decision& decision) const;

    EventLoop& loop_;
    Launcher& launcher_;
    Access access_;
    Hooks hooks_;
};

}  // namespace launcher
