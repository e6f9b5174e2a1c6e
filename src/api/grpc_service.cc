#include "api/grpc_service.h"

#include "common/log.h"

namespace launcher {
namespace pb = prism::launcher;

namespace {

// One row per ErrorCode: its gRPC status and the name audit lines use.
struct CodeInfo {
    grpc::StatusCode status;
    const char* name;
};

CodeInfo code_info(ErrorCode code) {
    switch (code) {
        case ErrorCode::kOk:
            return {grpc::StatusCode::OK, "OK"};
        case ErrorCode::kInvalidArgument:
            return {grpc::StatusCode::INVALID_ARGUMENT, "INVALID_ARGUMENT"};
        case ErrorCode::kNotFound:
            return {grpc::StatusCode::NOT_FOUND, "NOT_FOUND"};
        case ErrorCode::kPermissionDenied:
            return {grpc::StatusCode::PERMISSION_DENIED, "PERMISSION_DENIED"};
        case ErrorCode::kFailedPrecondition:
            return {grpc::StatusCode::FAILED_PRECONDITION, "FAILED_PRECONDITION"};
        case ErrorCode::kResourceExhausted:
            return {grpc::StatusCode::RESOURCE_EXHAUSTED, "RESOURCE_EXHAUSTED"};
        case ErrorCode::kUnavailable:
            return {grpc::StatusCode::UNAVAILABLE, "UNAVAILABLE"};
        case ErrorCode::kInternal:
            return {grpc::StatusCode::INTERNAL, "INTERNAL"};
    }
    return {grpc::StatusCode::UNKNOWN, "UNKNOWN"};
}

pb::IsolationLevel to_wire(Isolation level) {
    switch (level) {
        case Isolation::kNone:
            return pb::ISOLATION_NONE;
        case Isolation::kNamespace:
            return pb::ISOLATION_NAMESPACE;
        case Isolation::kSession:
            return pb::ISOLATION_SESSION;
    }
    return pb::ISOLATION_LEVEL_UNSPECIFIED;
}

void to_wire(const ProcessInfo& i, pb::PatternInfo& out) {
    out.set_pattern_name(i.pattern);
    out.set_process_id(i.process_id);
    out.set_state(static_cast<pb::ProcessState>(i.state));
    out.set_address(i.address);
    out.set_healthy(i.healthy);
    out.set_uptime_seconds(i.uptime_seconds);
    out.set_namespace_(i.namespace_id);
    out.set_session_id(i.session_id);
    out.set_last_error(i.last_error);
    out.set_error_count(i.error_count);
    out.set_restart_count(i.restart_count);
    out.set_pid(static_cast<std::int32_t>(i.pid));
    out.set_isolation(to_wire(i.isolation));
    out.set_limits_enforced(i.limits_enforced);
    out.set_memory_bytes(i.memory_bytes);
    out.set_cpu_usage_usec(i.cpu_usage_usec);
    out.set_pids_current(i.pids_current);
    out.set_cgroup(i.cgroup);
    out.set_exit_cause(i.exit_cause);
    out.set_started_at_unix_ms(i.started_at_unix_ms);
    out.set_consecutive_failures(i.consecutive_failures);
    out.set_uid(i.uid);
    out.set_gid(i.gid);
    out.set_confinement(i.confinement);
    for (const std::string& w : i.weakened)
        out.add_weakened(w);
    out.set_recovery(i.recovery);
}

// Runs `work` on the loop; `work` calls the returned finisher exactly once.
template <typename Work>
grpc::ServerUnaryReactor* on_loop(grpc::CallbackServerContext* ctx, EventLoop& loop, Work work) {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    loop.post([reactor, work = std::move(work)]() mutable {
        work([reactor](ErrorCode code, const std::string& message) {
            reactor->Finish(code == ErrorCode::kOk ? grpc::Status::OK
                                                   : grpc::Status(code_info(code).status, message));
        });
    });
    return reactor;
}

// One line per launch and terminate: who asked, what, and the result. On
// stderr "audit: caller=[uid 0 gid 0 pid 12] launch pattern=echo ...
// result=OK process_id=..."; in the journal the same text with the key's
// fields and AUDIT_CALLER, AUDIT_METHOD, AUDIT_RESULT, so that
// `journalctl AUDIT_METHOD=TerminatePattern` needs no grep.
void audit(const char* method, const std::string& who, const std::string& what, ErrorCode code,
           const std::string& detail, const log::Key& key) {
    const char* result = code_info(code).name;
    std::string line = "audit: caller=[" + who + "] " + what + " result=" + result;
    if (!detail.empty()) line += " " + detail;
    log::write(log::Level::kNotice, line, key,
               {{"AUDIT_CALLER", who}, {"AUDIT_METHOD", method}, {"AUDIT_RESULT", result}});
}

}  // namespace

std::string PatternLauncherService::caller(grpc::CallbackServerContext* ctx) const {
    return hooks_.caller ? hooks_.caller(ctx->peer()) : ctx->peer();
}

grpc::ServerUnaryReactor* PatternLauncherService::LaunchPattern(grpc::CallbackServerContext* ctx,
                                                                const pb::LaunchRequest* request,
                                                                pb::LaunchResponse* response) {
    LaunchParams params;
    params.pattern = request->pattern_name();
    switch (request->isolation()) {
        case pb::ISOLATION_NONE:
            params.isolation = Isolation::kNone;
            break;
        case pb::ISOLATION_NAMESPACE:
            params.isolation = Isolation::kNamespace;
            break;
        case pb::ISOLATION_SESSION:
            params.isolation = Isolation::kSession;
            break;
        case pb::ISOLATION_LEVEL_UNSPECIFIED:
            break;
        default: {
            grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
            reactor->Finish(grpc::Status(
                grpc::StatusCode::INVALID_ARGUMENT,
                "isolation: unknown IsolationLevel value " + std::to_string(request->isolation())));
            return reactor;
        }
    }
    params.namespace_id = request->namespace_();
    params.session_id = request->session_id();
    params.config.insert(request->config().begin(), request->config().end());
    if (request->grace_period_secs() < 0 || request->grace_period_secs() > 86400) {
        grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
        reactor->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                     "grace_period_secs must be within 0..86400"));
        return reactor;
    }
    params.grace_period = std::chrono::seconds(request->grace_period_secs());
    std::string what = "launch pattern=" + params.pattern + " isolation=" +
                       (params.isolation ? isolation_name(*params.isolation) : "unspecified") +
                       " namespace=" + params.namespace_id + " session=" + params.session_id;
    return on_loop(
        ctx, loop_,
        [this, params = std::move(params), response, who = caller(ctx), what](auto finish) {
            launcher_.launch(params, [response, finish, who, what,
                                      namespace_id = params.namespace_id,
                                      pattern = params.pattern](const LaunchResult& r) {
                audit("LaunchPattern", who, what, r.code,
                      r.code == ErrorCode::kOk
                          ? "process_id=" + r.info.process_id +
                                " pid=" + std::to_string(r.info.pid) + (r.reused ? " reused" : "")
                          : "message=\"" + r.message + "\"",
                      {r.info.process_id, namespace_id, pattern});
                if (r.code == ErrorCode::kOk) {
                    response->set_process_id(r.info.process_id);
                    response->set_state(static_cast<pb::ProcessState>(r.info.state));
                    response->set_address(r.info.address);
                    response->set_healthy(r.info.healthy);
                    response->set_pid(static_cast<std::int32_t>(r.info.pid));
                    response->set_reused(r.reused);
                    response->set_limits_enforced(r.info.limits_enforced);
                }
                finish(r.code, r.message);
            });
        });
}

grpc::ServerUnaryReactor* PatternLauncherService::ListPatterns(
    grpc::CallbackServerContext* ctx, const pb::ListPatternsRequest* request,
    pb::ListPatternsResponse* response) {
    ListFilter filter{request->pattern_name(), request->namespace_(), std::nullopt};
    if (request->state() != pb::STATE_UNSPECIFIED) {
        filter.state = static_cast<ProcessState>(request->state());
    }
    return on_loop(ctx, loop_, [this, filter, response](auto finish) {
        for (const ProcessInfo& i : launcher_.list(filter))
            to_wire(i, *response->add_patterns());
        response->set_total_count(response->patterns_size());
        finish(ErrorCode::kOk, {});
    });
}

grpc::ServerUnaryReactor* PatternLauncherService::TerminatePattern(
    grpc::CallbackServerContext* ctx, const pb::TerminateRequest* request,
    pb::TerminateResponse* response) {
    if (request->process_id().empty() || request->grace_period_secs() < 0 ||
        request->grace_period_secs() > 86400) {
        grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
        reactor->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                     request->process_id().empty()
                                         ? "process_id is required"
                                         : "grace_period_secs must be within 0..86400"));
        return reactor;
    }
    std::string id = request->process_id();
    auto grace = std::chrono::milliseconds(request->grace_period_secs() * 1000);
    bool force = request->force();
    std::string what = "terminate process_id=" + id + (force ? " force" : "");
    return on_loop(
        ctx, loop_, [this, id, grace, force, response, who = caller(ctx), what](auto finish) {
            // The key's namespace and pattern for the journal, while it exists.
            std::string namespace_id, pattern;
            if (std::optional<ProcessInfo> info = launcher_.status(id)) {
                namespace_id = info->namespace_id;
                pattern = info->pattern;
            }
            launcher_.terminate(
                id, grace, force,
                [response, finish, who, what, id, namespace_id, pattern](const TerminateResult& r) {
                    audit("TerminatePattern", who, what, r.code,
                          r.code == ErrorCode::kOk ? "exit_cause=\"" + r.exit_cause + "\""
                                                   : "message=\"" + r.message + "\"",
                          {id, namespace_id, pattern});
                    response->set_success(r.success);
                    response->set_error(r.code == ErrorCode::kOk ? "" : r.message);
                    response->set_exit_cause(r.exit_cause);
                    finish(r.code, r.message);
                });
        });
}

grpc::ServerUnaryReactor* PatternLauncherService::Health(grpc::CallbackServerContext* ctx,
                                                         const pb::HealthRequest* request,
                                                         pb::HealthResponse* response) {
    bool include = request->include_processes();
    return on_loop(ctx, loop_, [this, include, response](auto finish) {
        HealthSummary h = launcher_.health(include);
        response->set_healthy(h.healthy);
        response->set_total_processes(h.total);
        response->set_running_processes(h.running);
        response->set_terminating_processes(h.terminating);
        response->set_failed_processes(h.failed);
        response->set_starting_processes(h.starting);
        for (const auto& [level, count] : h.isolation_distribution) {
            (*response->mutable_isolation_distribution())[level] = count;
        }
        for (const ProcessInfo& i : h.processes)
            to_wire(i, *response->add_processes());
        response->set_uptime_seconds(h.uptime_seconds);
        response->set_patterns_loaded(h.patterns_loaded);
        finish(ErrorCode::kOk, {});
    });
}

grpc::ServerUnaryReactor* PatternLauncherService::GetProcessStatus(
    grpc::CallbackServerContext* ctx, const pb::GetProcessStatusRequest* request,
    pb::GetProcessStatusResponse* response) {
    std::string id = request->process_id();
    return on_loop(ctx, loop_, [this, id, response](auto finish) {
        if (auto i = launcher_.status(id)) {
            to_wire(*i, *response->mutable_process());
        } else {
            response->set_not_found(true);  // OK with not_found, as the Go launcher answers
        }
        finish(ErrorCode::kOk, {});
    });
}

grpc::ServerUnaryReactor* PatternLauncherService::Reload(grpc::CallbackServerContext* ctx,
                                                         const pb::ReloadRequest*,
                                                         pb::ReloadResponse* response) {
    return on_loop(ctx, loop_, [this, response](auto finish) {
        if (!hooks_.reload)
            return finish(ErrorCode::kFailedPrecondition, "reload is not available");
        // Answered once the reload is applied, as `systemctl reload` expects.
        hooks_.reload([this, response, finish](const ReloadOutcome& outcome) {
            if (outcome.code != ErrorCode::kOk) return finish(outcome.code, outcome.message);
            for (const std::string& problem : outcome.invalid_manifests)
                response->add_invalid_manifests(problem);
            response->set_patterns_loaded(static_cast<std::int32_t>(launcher_.pattern_count()));
            finish(ErrorCode::kOk, {});
        });
    });
}

}  // namespace launcher
