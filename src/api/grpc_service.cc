#include "api/grpc_service.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>

#include "common/log.h"

namespace launcher {
namespace pb = prism::launcher;
using auth::Rpc;

namespace {

grpc::StatusCode to_grpc_code(ErrorCode code) {
    switch (code) {
        case ErrorCode::kOk:
            return grpc::StatusCode::OK;
        case ErrorCode::kInvalidArgument:
            return grpc::StatusCode::INVALID_ARGUMENT;
        case ErrorCode::kNotFound:
            return grpc::StatusCode::NOT_FOUND;
        case ErrorCode::kPermissionDenied:
            return grpc::StatusCode::PERMISSION_DENIED;
        case ErrorCode::kFailedPrecondition:
            return grpc::StatusCode::FAILED_PRECONDITION;
        case ErrorCode::kResourceExhausted:
            return grpc::StatusCode::RESOURCE_EXHAUSTED;
        case ErrorCode::kUnavailable:
            return grpc::StatusCode::UNAVAILABLE;
        case ErrorCode::kInternal:
            return grpc::StatusCode::INTERNAL;
    }
    return grpc::StatusCode::UNKNOWN;
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
    out.set_egress_denied(i.egress_denied);
    out.set_egress_address(i.egress_address);
    out.set_warm_pool(i.warm_pool);
}

const char* status_name(grpc::StatusCode code) {
    switch (code) {
        case grpc::StatusCode::OK:
            return "OK";
        case grpc::StatusCode::INVALID_ARGUMENT:
            return "INVALID_ARGUMENT";
        case grpc::StatusCode::NOT_FOUND:
            return "NOT_FOUND";
        case grpc::StatusCode::PERMISSION_DENIED:
            return "PERMISSION_DENIED";
        case grpc::StatusCode::UNAUTHENTICATED:
            return "UNAUTHENTICATED";
        case grpc::StatusCode::FAILED_PRECONDITION:
            return "FAILED_PRECONDITION";
        case grpc::StatusCode::RESOURCE_EXHAUSTED:
            return "RESOURCE_EXHAUSTED";
        case grpc::StatusCode::UNAVAILABLE:
            return "UNAVAILABLE";
        case grpc::StatusCode::INTERNAL:
            return "INTERNAL";
        default:
            return "UNKNOWN";
    }
}

grpc::Status to_status(ErrorCode code, const std::string& message) {
    return code == ErrorCode::kOk ? grpc::Status::OK : grpc::Status(to_grpc_code(code), message);
}

std::int64_t unix_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// The names of a request's config, never its values (they may be secrets).
std::string config_key_names(const google::protobuf::Map<std::string, std::string>& config) {
    std::vector<std::string> names;
    for (const auto& [name, value] : config)
        names.push_back(name);
    std::sort(names.begin(), names.end());
    std::string out;
    for (const std::string& n : names)
        out += (out.empty() ? "" : ",") + n;
    return out;
}

}  // namespace

// One call in flight: its reactor, what the caller may do, and its audit record.
struct PatternLauncherService::Call {
    grpc::ServerUnaryReactor* reactor = nullptr;
    auth::Permissions permissions;
    AuditRecord audit;
};

PatternLauncherService::Call PatternLauncherService::begin(grpc::CallbackServerContext* ctx,
                                                           Rpc rpc) const {
    Call call;
    call.reactor = ctx->DefaultReactor();
    call.permissions = access_.policy.permissions_for(access_.authenticator.identify(*ctx));
    const auth::CallerIdentity& who = call.permissions.caller();
    call.audit.time_unix_ms = unix_ms();
    call.audit.identity = who.name();
    call.audit.auth = auth::auth_method_name(who.method);
    call.audit.transport = who.transport;
    call.audit.peer = who.peer;
    if (who.certificate) call.audit.certificate_sha256 = who.certificate->sha256_fingerprint;
    call.audit.rpc = auth::rpc_name(rpc);
    return call;
}

void PatternLauncherService::finish(Call& call, const grpc::Status& status) const {
    call.audit.result = status_name(status.error_code());
    if (!status.ok()) call.audit.message = status.error_message();
    if (call.audit.decision.empty()) call.audit.decision = "allowed";
    access_.audit.record(call.audit);
    call.reactor->Finish(status);
}

grpc::ServerUnaryReactor* PatternLauncherService::refuse(Call& call,
                                                         const auth::Decision& decision) const {
    const grpc::StatusCode code = decision.unauthenticated ? grpc::StatusCode::UNAUTHENTICATED
                                                           : grpc::StatusCode::PERMISSION_DENIED;
    call.audit.decision = "denied";
    if (hooks_.denied) hooks_.denied(call.audit.rpc.c_str(), status_name(code));
    grpc::ServerUnaryReactor* reactor = call.reactor;
    finish(call, grpc::Status(code, decision.message));
    return reactor;
}

grpc::ServerUnaryReactor* PatternLauncherService::LaunchPattern(grpc::CallbackServerContext* ctx,
                                                                const pb::LaunchRequest* request,
                                                                pb::LaunchResponse* response) {
    auto call = std::make_shared<Call>(begin(ctx, Rpc::kLaunchPattern));
    call->audit.namespace_id = request->namespace_();
    call->audit.session_id = request->session_id();
    call->audit.pattern = request->pattern_name();
    call->audit.config_keys = config_key_names(request->config());
    if (auth::Decision d = call->permissions.check(Rpc::kLaunchPattern); !d.allowed)
        return refuse(*call, d);
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
        default:
            finish(*call, grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                       "isolation: unknown IsolationLevel value " +
                                           std::to_string(request->isolation())));
            return call->reactor;
    }
    params.namespace_id = request->namespace_();
    params.session_id = request->session_id();
    // Malformed ids are refused as such before the policy judges them.
    for (const auto& [what, id] : {std::pair{"namespace", &params.namespace_id},
                                   std::pair{"session_id", &params.session_id}}) {
        if (id->empty()) continue;
        if (std::string problem = identifier_problem(what, *id); !problem.empty()) {
            finish(*call, grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, problem));
            return call->reactor;
        }
    }
    params.config.insert(request->config().begin(), request->config().end());
    if (request->grace_period_secs() < 0 || request->grace_period_secs() > 86400) {
        finish(*call, grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                   "grace_period_secs must be within 0..86400"));
        return call->reactor;
    }
    params.grace_period = std::chrono::seconds(request->grace_period_secs());
    loop_.post([this, call, params = std::move(params), response] {
        // The key this launch would use: its namespace is what the grant
        // must cover (none for a shared key, whatever the request named).
        const std::optional<IsolationKey> key = launcher_.key_for(params);
        const std::string namespace_id = key ? key->namespace_id : params.namespace_id;
        call->audit.namespace_id = namespace_id;
        auth::Decision d =
            call->permissions.check(Rpc::kLaunchPattern, namespace_id, params.pattern);
        if (!d.allowed) {
            refuse(*call, d);
            return;
        }
        call->audit.grant = d.grant;
        launcher_.launch(params, [this, call, response](const LaunchResult& r) {
            call->audit.process_id = r.info.process_id;
            call->audit.pid = static_cast<std::int32_t>(r.info.pid);
            if (r.code == ErrorCode::kOk) {
                response->set_process_id(r.info.process_id);
                response->set_state(static_cast<pb::ProcessState>(r.info.state));
                response->set_address(r.info.address);
                response->set_healthy(r.info.healthy);
                response->set_pid(static_cast<std::int32_t>(r.info.pid));
                response->set_reused(r.reused);
                response->set_limits_enforced(r.info.limits_enforced);
            }
            finish(*call, to_status(r.code, r.message));
        });
    });
    return call->reactor;
}

grpc::ServerUnaryReactor* PatternLauncherService::ListPatterns(
    grpc::CallbackServerContext* ctx, const pb::ListPatternsRequest* request,
    pb::ListPatternsResponse* response) {
    auto call = std::make_shared<Call>(begin(ctx, Rpc::kListPatterns));
    call->audit.namespace_id = request->namespace_();
    call->audit.pattern = request->pattern_name();
    auth::Decision d = call->permissions.check(Rpc::kListPatterns);
    if (!d.allowed) return refuse(*call, d);
    call->audit.grant = d.grant;
    ListFilter filter{request->pattern_name(), request->namespace_(), std::nullopt};
    if (request->state() != pb::STATE_UNSPECIFIED) {
        filter.state = static_cast<ProcessState>(request->state());
    }
    loop_.post([this, call, filter, response] {
        // Only what the caller may see; the count is of those.
        for (const ProcessInfo& i : launcher_.list(filter)) {
            if (call->permissions.allows(Rpc::kListPatterns, i.namespace_id, i.pattern))
                to_wire(i, *response->add_patterns());
        }
        response->set_total_count(response->patterns_size());
        finish(*call, grpc::Status::OK);
    });
    return call->reactor;
}

grpc::ServerUnaryReactor* PatternLauncherService::TerminatePattern(
    grpc::CallbackServerContext* ctx, const pb::TerminateRequest* request,
    pb::TerminateResponse* response) {
    auto call = std::make_shared<Call>(begin(ctx, Rpc::kTerminatePattern));
    call->audit.process_id = request->process_id();
    auth::Decision d = call->permissions.check(Rpc::kTerminatePattern);
    if (!d.allowed) return refuse(*call, d);
    if (request->process_id().empty() || request->grace_period_secs() < 0 ||
        request->grace_period_secs() > 86400) {
        finish(*call, grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                   request->process_id().empty()
                                       ? "process_id is required"
                                       : "grace_period_secs must be within 0..86400"));
        return call->reactor;
    }
    std::string id = request->process_id();
    auto grace = std::chrono::milliseconds(request->grace_period_secs() * 1000);
    bool force = request->force();
    loop_.post([this, call, id, grace, force, response] {
        std::optional<ProcessInfo> info = launcher_.status(id);
        if (info) {
            call->audit.namespace_id = info->namespace_id;
            call->audit.session_id = info->session_id;
            call->audit.pattern = info->pattern;
            call->audit.pid = static_cast<std::int32_t>(info->pid);
        }
        // A shared or namespace key's id names its namespace and pattern:
        // those decide, whether or not it runs, so the answer is no oracle
        // of other tenants' processes. A session key's namespace is known
        // only while it exists; one the caller may not see is answered as
        // if it did not exist.
        const std::optional<IsolationKey> named = parse_process_id(id);
        if (named && named->level != Isolation::kSession) {
            auth::Decision key_decision = call->permissions.check(
                Rpc::kTerminatePattern, named->namespace_id, named->pattern);
            if (!key_decision.allowed) {
                refuse(*call, key_decision);
                return;
            }
            call->audit.grant = key_decision.grant;
        } else if (info) {
            auth::Decision key_decision =
                call->permissions.check(Rpc::kTerminatePattern, info->namespace_id, info->pattern);
            if (!key_decision.allowed) {
                call->audit.decision = "denied";
                if (hooks_.denied) hooks_.denied(call->audit.rpc.c_str(), "PERMISSION_DENIED");
                finish(*call,
                       grpc::Status(grpc::StatusCode::NOT_FOUND, "process not found: " + id));
                return;
            }
            call->audit.grant = key_decision.grant;
        }
        launcher_.terminate(id, grace, force, [this, call, response](const TerminateResult& r) {
            call->audit.exit_cause = r.exit_cause;
            response->set_success(r.success);
            response->set_error(r.code == ErrorCode::kOk ? "" : r.message);
            response->set_exit_cause(r.exit_cause);
            finish(*call, to_status(r.code, r.message));
        });
    });
    return call->reactor;
}

grpc::ServerUnaryReactor* PatternLauncherService::Health(grpc::CallbackServerContext* ctx,
                                                         const pb::HealthRequest* request,
                                                         pb::HealthResponse* response) {
    auto call = std::make_shared<Call>(begin(ctx, Rpc::kHealth));
    auth::Decision d = call->permissions.check(Rpc::kHealth);
    if (!d.allowed) return refuse(*call, d);
    call->audit.grant = d.grant;
    bool include = request->include_processes();
    loop_.post([this, call, include, response] {
        HealthSummary h = launcher_.health(true);
        // The counts are of the processes the caller may see.
        int total = 0, running = 0, terminating = 0, failed = 0, starting = 0;
        // Every level is present, 0 included, as the launcher reports it.
        std::map<std::string, int> distribution;
        for (const auto& [level, count] : h.isolation_distribution)
            distribution[level] = 0;
        for (const ProcessInfo& i : h.processes) {
            if (!call->permissions.allows(Rpc::kHealth, i.namespace_id, i.pattern)) continue;
            ++total;
            running += i.state == ProcessState::kRunning;
            terminating += i.state == ProcessState::kTerminating;
            failed += i.state == ProcessState::kFailed;
            starting += i.state == ProcessState::kStarting;
            ++distribution[isolation_name(i.isolation)];
            if (include) to_wire(i, *response->add_processes());
        }
        response->set_healthy(h.healthy);
        response->set_total_processes(total);
        response->set_running_processes(running);
        response->set_terminating_processes(terminating);
        response->set_failed_processes(failed);
        response->set_starting_processes(starting);
        for (const auto& [level, count] : distribution)
            (*response->mutable_isolation_distribution())[level] = count;
        response->set_uptime_seconds(h.uptime_seconds);
        response->set_patterns_loaded(h.patterns_loaded);
        finish(*call, grpc::Status::OK);
    });
    return call->reactor;
}

grpc::ServerUnaryReactor* PatternLauncherService::GetProcessStatus(
    grpc::CallbackServerContext* ctx, const pb::GetProcessStatusRequest* request,
    pb::GetProcessStatusResponse* response) {
    auto call = std::make_shared<Call>(begin(ctx, Rpc::kGetProcessStatus));
    call->audit.process_id = request->process_id();
    auth::Decision d = call->permissions.check(Rpc::kGetProcessStatus);
    if (!d.allowed) return refuse(*call, d);
    call->audit.grant = d.grant;
    std::string id = request->process_id();
    loop_.post([this, call, id, response] {
        std::optional<ProcessInfo> i = launcher_.status(id);
        if (i && call->permissions.allows(Rpc::kGetProcessStatus, i->namespace_id, i->pattern)) {
            call->audit.namespace_id = i->namespace_id;
            call->audit.pattern = i->pattern;
            call->audit.pid = static_cast<std::int32_t>(i->pid);
            to_wire(*i, *response->mutable_process());
        } else {
            // OK with not_found, as the Go launcher answers; a key the caller
            // may not see is not found either (the record says denied).
            if (i) {
                call->audit.decision = "denied";
                if (hooks_.denied) hooks_.denied(call->audit.rpc.c_str(), "PERMISSION_DENIED");
            }
            response->set_not_found(true);
        }
        finish(*call, grpc::Status::OK);
    });
    return call->reactor;
}

grpc::ServerUnaryReactor* PatternLauncherService::Reload(grpc::CallbackServerContext* ctx,
                                                         const pb::ReloadRequest*,
                                                         pb::ReloadResponse* response) {
    auto call = std::make_shared<Call>(begin(ctx, Rpc::kReload));
    auth::Decision d = call->permissions.check(Rpc::kReload);
    if (!d.allowed) return refuse(*call, d);
    call->audit.grant = d.grant;
    loop_.post([this, call, response] {
        if (!hooks_.reload) {
            finish(*call,
                   grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "reload is not available"));
            return;
        }
        // Answered once the reload is applied, as `systemctl reload` expects.
        hooks_.reload([this, call, response](const ReloadOutcome& outcome) {
            if (outcome.code != ErrorCode::kOk) {
                finish(*call, to_status(outcome.code, outcome.message));
                return;
            }
            for (const std::string& problem : outcome.invalid_manifests)
                response->add_invalid_manifests(problem);
            response->set_patterns_loaded(static_cast<std::int32_t>(launcher_.pattern_count()));
            finish(*call, grpc::Status::OK);
        });
    });
    return call->reactor;
}

}  // namespace launcher
