// patternctl: the command line client of pattern-launcher.
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>

#include <charconv>
#include <cstdio>
#include <iostream>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "config/confinement_report.h"
#include "config/manifest.h"
#include "prism/launcher/launcher.grpc.pb.h"

namespace pb = prism::launcher;

namespace {

constexpr const char* kUsage =
    R"(usage: patternctl [--socket PATH | --address HOST:PORT] [--output table|json] COMMAND

commands:
  launch PATTERN [--namespace NS] [--session ID] [--isolation none|namespace|session]
                 [--config KEY=VALUE]... [--grace-period SECONDS]
  list [--pattern NAME] [--namespace NS] [--state STATE]
  status PROCESS_ID
  terminate PROCESS_ID [--grace-period SECONDS] [--force]
  health [--processes]
  reload                     re-read the manifests; answers once the reload is done
  validate DIR               check DIR/*/manifest.yaml offline, as the daemon would

The default endpoint is unix:/run/pattern-launcher/api.sock.
)";

struct Options {
    std::string endpoint = "unix:/run/pattern-launcher/api.sock";
    bool json = false;
    std::string command;
    std::vector<std::string> args;
};

class UsageError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

Options parse_global(int argc, char** argv) {
    Options o;
    int i = 1;
    for (; i < argc; ++i) {
        std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) throw UsageError(a + " needs a value");
            return argv[++i];
        };
        if (a == "--socket") {
            o.endpoint = "unix:" + value();
        } else if (a == "--address") {
            o.endpoint = value();
        } else if (a == "--output") {
            std::string v = value();
            if (v != "table" && v != "json") throw UsageError("--output expects table or json");
            o.json = v == "json";
        } else if (a == "-h" || a == "--help") {
            std::fputs(kUsage, stdout);
            std::exit(0);
        } else {
            break;
        }
    }
    if (i >= argc) throw UsageError("missing COMMAND");
    o.command = argv[i++];
    for (; i < argc; ++i)
        o.args.push_back(argv[i]);
    return o;
}

// Pulls "--name value" and "--flag" options out of args; the rest stay positional.
struct CommandArgs {
    std::vector<std::string> positional;
    std::multimap<std::string, std::string> values;
    std::vector<std::string> flags;

    CommandArgs(const std::vector<std::string>& args, const std::vector<std::string>& with_value,
                const std::vector<std::string>& bare) {
        for (std::size_t i = 0; i < args.size(); ++i) {
            const std::string& a = args[i];
            if (std::find(with_value.begin(), with_value.end(), a) != with_value.end()) {
                if (i + 1 >= args.size()) throw UsageError(a + " needs a value");
                values.emplace(a, args[++i]);
            } else if (std::find(bare.begin(), bare.end(), a) != bare.end()) {
                flags.push_back(a);
            } else if (a.starts_with("--")) {
                throw UsageError("unknown option " + a);
            } else {
                positional.push_back(a);
            }
        }
    }
    std::string get(const std::string& name) const {
        auto it = values.find(name);
        return it == values.end() ? "" : it->second;
    }
    bool has(const std::string& flag) const {
        return std::find(flags.begin(), flags.end(), flag) != flags.end();
    }
};

std::int64_t parse_seconds(const std::string& text) {
    std::int64_t v = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || end != text.data() + text.size() || v < 0) {
        throw UsageError("--grace-period expects whole seconds, got '" + text + "'");
    }
    return v;
}

std::string state_text(pb::ProcessState s) {
    std::string name = pb::ProcessState_Name(s);
    return name.empty() ? std::to_string(static_cast<int>(s)) : name;
}

std::string uptime_text(std::int64_t s) {
    std::string out;
    if (s >= 3600) out += std::to_string(s / 3600) + "h";
    if (s >= 60) out += std::to_string((s % 3600) / 60) + "m";
    return out + std::to_string(s % 60) + "s";
}

void print_json(const google::protobuf::Message& m) {
    std::string out;
    google::protobuf::util::JsonPrintOptions options;
    options.add_whitespace = true;
    options.always_print_primitive_fields = true;
    options.preserve_proto_field_names = true;
    (void)google::protobuf::util::MessageToJsonString(m, &out, options);
    std::cout << out;
}

void print_table(const google::protobuf::RepeatedPtrField<pb::PatternInfo>& patterns) {
    std::printf("%-20s %-36s %-12s %-8s %-10s %s\n", "PATTERN", "PROCESS ID", "STATE", "HEALTHY",
                "UPTIME", "ADDRESS");
    for (const pb::PatternInfo& p : patterns) {
        std::printf("%-20s %-36s %-12s %-8s %-10s %s\n", p.pattern_name().c_str(),
                    p.process_id().c_str(), state_text(p.state()).c_str(),
                    p.healthy() ? "true" : "false", uptime_text(p.uptime_seconds()).c_str(),
                    p.address().c_str());
    }
}

int fail(const grpc::Status& status) {
    std::fprintf(stderr, "patternctl: %s (%s)\n", status.error_message().c_str(), [&] {
        switch (status.error_code()) {
            case grpc::StatusCode::INVALID_ARGUMENT:
                return "INVALID_ARGUMENT";
            case grpc::StatusCode::NOT_FOUND:
                return "NOT_FOUND";
            case grpc::StatusCode::PERMISSION_DENIED:
                return "PERMISSION_DENIED";
            case grpc::StatusCode::FAILED_PRECONDITION:
                return "FAILED_PRECONDITION";
            case grpc::StatusCode::RESOURCE_EXHAUSTED:
                return "RESOURCE_EXHAUSTED";
            case grpc::StatusCode::UNAVAILABLE:
                return "UNAVAILABLE";
            case grpc::StatusCode::INTERNAL:
                return "INTERNAL";
            case grpc::StatusCode::DEADLINE_EXCEEDED:
                return "DEADLINE_EXCEEDED";
            default:
                return "error";
        }
    }());
    return 1;
}

int validate(const CommandArgs& a) {
    if (a.positional.size() != 1) throw UsageError("validate needs DIR");
    launcher::Discovery found = launcher::discover_patterns(a.positional[0]);
    for (const auto& [name, m] : found.patterns) {
        std::printf("ok       %s (%s) %s\n", name.c_str(), m.version.c_str(), m.file.c_str());
        for (const std::string& weakened : launcher::confinement_weakenings(m))
            std::printf("weakened %s: %s\n", name.c_str(), weakened.c_str());
    }
    for (const auto& e : found.errors)
        std::printf("invalid  %s\n", e.what());
    std::printf("%zu valid, %zu invalid\n", found.patterns.size(), found.errors.size());
    return found.errors.empty() && !found.patterns.empty() ? 0 : 1;
}

int run(const Options& o) {
    if (o.command == "validate") return validate(CommandArgs(o.args, {}, {}));

    auto channel = grpc::CreateChannel(o.endpoint, grpc::InsecureChannelCredentials());
    auto api = pb::PatternLauncher::NewStub(channel);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));

    if (o.command == "launch") {
        CommandArgs a(
            o.args, {"--namespace", "--session", "--isolation", "--config", "--grace-period"}, {});
        if (a.positional.size() != 1) throw UsageError("launch needs PATTERN");
        pb::LaunchRequest req;
        req.set_pattern_name(a.positional[0]);
        req.set_namespace_(a.get("--namespace"));
        req.set_session_id(a.get("--session"));
        if (std::string iso = a.get("--isolation"); !iso.empty()) {
            auto level = launcher::parse_isolation(iso);
            if (!level) throw UsageError("--isolation expects none, namespace or session");
            req.set_isolation(*level == launcher::Isolation::kNone        ? pb::ISOLATION_NONE
                              : *level == launcher::Isolation::kNamespace ? pb::ISOLATION_NAMESPACE
                                                                          : pb::ISOLATION_SESSION);
        }
        for (auto [it, end] = a.values.equal_range("--config"); it != end; ++it) {
            auto eq = it->second.find('=');
            if (eq == std::string::npos) throw UsageError("--config expects KEY=VALUE");
            (*req.mutable_config())[it->second.substr(0, eq)] = it->second.substr(eq + 1);
        }
        if (std::string g = a.get("--grace-period"); !g.empty())
            req.set_grace_period_secs(parse_seconds(g));
        pb::LaunchResponse resp;
        grpc::Status s = api->LaunchPattern(&ctx, req, &resp);
        if (!s.ok()) return fail(s);
        if (o.json) {
            print_json(resp);
        } else {
            std::printf("%s %s pid %d at %s%s\n", resp.process_id().c_str(),
                        state_text(resp.state()).c_str(), resp.pid(), resp.address().c_str(),
                        resp.reused() ? " (reused)" : "");
        }
        return 0;
    }
    if (o.command == "list") {
        CommandArgs a(o.args, {"--pattern", "--namespace", "--state"}, {});
        pb::ListPatternsRequest req;
        req.set_pattern_name(a.get("--pattern"));
        req.set_namespace_(a.get("--namespace"));
        if (std::string st = a.get("--state"); !st.empty()) {
            pb::ProcessState state;
            if (!pb::ProcessState_Parse(st, &state))
                throw UsageError("--state expects e.g. RUNNING");
            req.set_state(state);
        }
        pb::ListPatternsResponse resp;
        grpc::Status s = api->ListPatterns(&ctx, req, &resp);
        if (!s.ok()) return fail(s);
        o.json ? print_json(resp) : print_table(resp.patterns());
        return 0;
    }
    if (o.command == "status") {
        CommandArgs a(o.args, {}, {});
        if (a.positional.size() != 1) throw UsageError("status needs PROCESS_ID");
        pb::GetProcessStatusRequest req;
        req.set_process_id(a.positional[0]);
        pb::GetProcessStatusResponse resp;
        grpc::Status s = api->GetProcessStatus(&ctx, req, &resp);
        if (!s.ok()) return fail(s);
        if (resp.not_found()) {
            std::fprintf(stderr, "patternctl: process not found: %s\n", req.process_id().c_str());
            return 1;
        }
        if (o.json) {
            print_json(resp);
        } else {
            google::protobuf::RepeatedPtrField<pb::PatternInfo> one;
            *one.Add() = resp.process();
            print_table(one);
        }
        return 0;
    }
    if (o.command == "terminate") {
        CommandArgs a(o.args, {"--grace-period"}, {"--force"});
        if (a.positional.size() != 1) throw UsageError("terminate needs PROCESS_ID");
        pb::TerminateRequest req;
        req.set_process_id(a.positional[0]);
        req.set_force(a.has("--force"));
        if (std::string g = a.get("--grace-period"); !g.empty())
            req.set_grace_period_secs(parse_seconds(g));
        pb::TerminateResponse resp;
        grpc::Status s = api->TerminatePattern(&ctx, req, &resp);
        if (!s.ok()) return fail(s);
        if (o.json) {
            print_json(resp);
        } else {
            std::printf("%s terminated: %s\n", req.process_id().c_str(), resp.exit_cause().c_str());
        }
        return resp.success() ? 0 : 1;
    }
    if (o.command == "health") {
        CommandArgs a(o.args, {}, {"--processes"});
        pb::HealthRequest req;
        req.set_include_processes(a.has("--processes"));
        pb::HealthResponse resp;
        grpc::Status s = api->Health(&ctx, req, &resp);
        if (!s.ok()) return fail(s);
        if (o.json) {
            print_json(resp);
        } else {
            std::printf(
                "healthy: %s\ntotal: %d  starting: %d  running: %d  terminating: %d  "
                "failed: %d\npatterns loaded: %d  uptime: %s\n",
                resp.healthy() ? "true" : "false", resp.total_processes(),
                resp.starting_processes(), resp.running_processes(), resp.terminating_processes(),
                resp.failed_processes(), resp.patterns_loaded(),
                uptime_text(resp.uptime_seconds()).c_str());
            if (req.include_processes()) print_table(resp.processes());
        }
        return resp.healthy() ? 0 : 1;
    }
    if (o.command == "reload") {
        CommandArgs a(o.args, {}, {});
        if (!a.positional.empty()) throw UsageError("reload takes no arguments");
        pb::ReloadRequest req;
        pb::ReloadResponse resp;
        grpc::Status s = api->Reload(&ctx, req, &resp);
        if (!s.ok()) return fail(s);
        if (o.json) {
            print_json(resp);
        } else {
            for (const auto& problem : resp.invalid_manifests())
                std::printf("invalid  %s\n", problem.c_str());
            std::printf("reloaded: %d patterns loaded, %d invalid manifests skipped\n",
                        resp.patterns_loaded(), resp.invalid_manifests_size());
        }
        return 0;
    }
    throw UsageError("unknown command '" + o.command + "'");
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(parse_global(argc, argv));
    } catch (const UsageError& e) {
        std::fprintf(stderr, "patternctl: %s\n\n%s", e.what(), kUsage);
        return 2;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "patternctl: %s\n", e.what());
        return 1;
    }
}
