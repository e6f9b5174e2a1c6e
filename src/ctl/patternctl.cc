// patternctl: the command line client of pattern-launcher.
//
// Exit codes: 0 done (health: healthy; terminate: success), 1 the call failed
// or its answer says no, 2 wrong command line (an option's file unusable too).
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>
#include <CLI/CLI.hpp>

#include <cctype>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "api_channel.h"
#include "common/cli_choice.h"
#include "config/confinement_report.h"
#include "config/manifest.h"
#include "export_command.h"
#include "prism/launcher/launcher.grpc.pb.h"

namespace pb = prism::launcher;

namespace {

constexpr const char* kDefaultSocket = "/run/pattern-launcher/api.sock";

// The wire name (STATE_RUNNING), as the JSON mapping prints it.
std::string state_text(pb::ProcessState s) {
    std::string name = pb::ProcessState_Name(s);
    return name.empty() ? std::to_string(static_cast<int>(s)) : name;
}

// A state from the command line: the wire name (STATE_RUNNING), or for
// convenience without its prefix (RUNNING), in any case.
bool parse_state(std::string text, pb::ProcessState* state) {
    for (char& c : text)
        c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return pb::ProcessState_Parse(text, state) || pb::ProcessState_Parse("STATE_" + text, state);
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
    // STATE fits STATE_TERMINATING.
    std::printf("%-20s %-36s %-17s %-8s %-10s %s\n", "PATTERN", "PROCESS ID", "STATE", "HEALTHY",
                "UPTIME", "ADDRESS");
    for (const pb::PatternInfo& p : patterns) {
        std::printf("%-20s %-36s %-17s %-8s %-10s %s\n", p.pattern_name().c_str(),
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
            case grpc::StatusCode::DEADLINE_EXCEEDED:
                return "DEADLINE_EXCEEDED";
            default:
                return "error";
        }
    }());
    return 1;
}

// The command line, as parsed.
struct Options {
    std::string socket = kDefaultSocket;
    std::string address;  // any gRPC target; wins over --socket
    enum class Output { kTable, kJson } output = Output::kTable;
    std::string tls_ca, tls_cert, tls_key, tls_server_name;  // TLS when tls_ca is given
    std::string token_file;  // a JWT sent as "authorization: Bearer <jwt>"

    std::string endpoint() const { return address.empty() ? "unix:" + socket : address; }
    launcher::ctl::ChannelOptions channel() const {
        return {endpoint(), tls_ca, tls_cert, tls_key, tls_server_name};
    }
};

struct LaunchArgs {
    std::string pattern, namespace_id, session;
    // Unspecified: the manifest's, else the daemon's default_isolation.
    pb::IsolationLevel isolation = pb::ISOLATION_LEVEL_UNSPECIFIED;
    std::vector<std::string> config;  // KEY=VALUE
    std::int64_t grace_period = -1;   // -1: not given
};
struct ListArgs {
    std::string pattern, namespace_id, state;
};
struct TerminateArgs {
    std::string process_id;
    std::int64_t grace_period = -1;
    bool force = false;
};

int validate(const std::string& dir) {
    launcher::Discovery found = launcher::discover_patterns(dir);
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

class Client {
public:
    // `token`: sent with the call (patternctl makes one per run); empty: none.
    Client(const Options& o, const std::string& token)
        : o_(o), api_(pb::PatternLauncher::NewStub(launcher::ctl::open_channel(o.channel()))) {
        ctx_.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
        if (!token.empty()) ctx_.AddMetadata("authorization", "Bearer " + token);
    }

    int launch(const LaunchArgs& a) {
        pb::LaunchRequest req;
        req.set_pattern_name(a.pattern);
        req.set_namespace_(a.namespace_id);
        req.set_session_id(a.session);
        req.set_isolation(a.isolation);
        for (const std::string& kv : a.config) {
            const auto eq = kv.find('=');  // the option's validator vouched for it
            (*req.mutable_config())[kv.substr(0, eq)] = kv.substr(eq + 1);
        }
        if (a.grace_period >= 0) req.set_grace_period_secs(a.grace_period);
        pb::LaunchResponse resp;
        grpc::Status s = api_->LaunchPattern(&ctx_, req, &resp);
        if (!s.ok()) return fail(s);
        if (o_.output == Options::Output::kJson) {
            print_json(resp);
        } else {
            std::printf("%s %s pid %d at %s%s\n", resp.process_id().c_str(),
                        state_text(resp.state()).c_str(), resp.pid(), resp.address().c_str(),
                        resp.reused() ? " (reused)" : "");
        }
        return 0;
    }

    int list(const ListArgs& a) {
        pb::ListPatternsRequest req;
        req.set_pattern_name(a.pattern);
        req.set_namespace_(a.namespace_id);
        if (!a.state.empty()) {
            pb::ProcessState state = pb::STATE_UNSPECIFIED;
            parse_state(a.state, &state);  // the option's validator vouched for it
            req.set_state(state);
        }
        pb::ListPatternsResponse resp;
        grpc::Status s = api_->ListPatterns(&ctx_, req, &resp);
        if (!s.ok()) return fail(s);
        o_.output == Options::Output::kJson ? print_json(resp) : print_table(resp.patterns());
        return 0;
    }

    int status(const std::string& process_id) {
        pb::GetProcessStatusRequest req;
        req.set_process_id(process_id);
        pb::GetProcessStatusResponse resp;
        grpc::Status s = api_->GetProcessStatus(&ctx_, req, &resp);
        if (!s.ok()) return fail(s);
        if (resp.not_found()) {
            std::fprintf(stderr, "patternctl: process not found: %s\n", req.process_id().c_str());
            return 1;
        }
        if (o_.output == Options::Output::kJson) {
            print_json(resp);
        } else {
            google::protobuf::RepeatedPtrField<pb::PatternInfo> one;
            *one.Add() = resp.process();
            print_table(one);
        }
        return 0;
    }

    int terminate(const TerminateArgs& a) {
        pb::TerminateRequest req;
        req.set_process_id(a.process_id);
        req.set_force(a.force);
        if (a.grace_period >= 0) req.set_grace_period_secs(a.grace_period);
        pb::TerminateResponse resp;
        grpc::Status s = api_->TerminatePattern(&ctx_, req, &resp);
        if (!s.ok()) return fail(s);
        if (o_.output == Options::Output::kJson) {
            print_json(resp);
        } else {
            std::printf("%s terminated: %s\n", req.process_id().c_str(), resp.exit_cause().c_str());
        }
        return resp.success() ? 0 : 1;
    }

    int health(bool processes) {
        pb::HealthRequest req;
        req.set_include_processes(processes);
        pb::HealthResponse resp;
        grpc::Status s = api_->Health(&ctx_, req, &resp);
        if (!s.ok()) return fail(s);
        if (o_.output == Options::Output::kJson) {
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

    int reload() {
        pb::ReloadRequest req;
        pb::ReloadResponse resp;
        grpc::Status s = api_->Reload(&ctx_, req, &resp);
        if (!s.ok()) return fail(s);
        if (o_.output == Options::Output::kJson) {
            print_json(resp);
        } else {
            for (const auto& problem : resp.invalid_manifests())
                std::printf("invalid  %s\n", problem.c_str());
            std::printf("reloaded: %d patterns loaded, %d invalid manifests skipped\n",
                        resp.patterns_loaded(), resp.invalid_manifests_size());
        }
        return 0;
    }

private:
    const Options& o_;
    std::unique_ptr<pb::PatternLauncher::Stub> api_;
    grpc::ClientContext ctx_;
};

const CLI::Validator kKeyValue(
    [](std::string& text) {
        return text.find('=') == std::string::npos
                   ? std::string("expects KEY=VALUE, got '") + text + "'"
                   : std::string();
    },
    "");

const CLI::Validator kStateName(
    [](std::string& text) {
        pb::ProcessState state = pb::STATE_UNSPECIFIED;
        if (parse_state(text, &state)) return std::string();
        return "expects a state of the API, e.g. STATE_RUNNING (or RUNNING); got '" + text + "'";
    },
    "");

// Whole seconds, 0 or more (the daemon caps them).
const CLI::Validator kSeconds(
    [](std::string& text) {
        std::int64_t v = 0;
        const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
        return ec == std::errc() && end == text.data() + text.size() && v >= 0
                   ? std::string()
                   : "expects whole seconds, got '" + text + "'";
    },
    "");

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{
        "The command line client of pattern-launcher: one request to its gRPC API "
        "(prism.launcher.PatternLauncher), and the answer.",
        "patternctl"};
    app.footer(std::string("The default endpoint is unix:") + kDefaultSocket + ".");
    // Global options may also follow the command: `patternctl list --output json`.
    app.fallthrough();
    app.require_subcommand(1);

    Options o;
    CLI::Option* socket =
        app.add_option("--socket", o.socket, "the API's unix socket")->type_name("PATH");
    CLI::Option* address =
        app.add_option("--address", o.address, "a gRPC target instead, e.g. 127.0.0.1:8982")
            ->type_name("HOST:PORT")
            ->excludes(socket);
    // Mutual TLS to the TCP listener (launcher.api.tls). The files are read
    // after parsing, so that a bad one is reported with its path.
    CLI::Option* tls_ca =
        app.add_option("--tls-ca", o.tls_ca, "connect with TLS to --address; PEM CA of the server")
            ->type_name("PATH")
            ->needs(address);
    CLI::Option* tls_cert =
        app.add_option("--tls-cert", o.tls_cert, "PEM client certificate chain (mutual TLS)")
            ->type_name("PATH")
            ->needs(tls_ca);
    CLI::Option* tls_key = app.add_option("--tls-key", o.tls_key, "its PEM private key")
                               ->type_name("PATH")
                               ->needs(tls_ca)
                               ->needs(tls_cert);
    tls_cert->needs(tls_key);
    app.add_option("--tls-server-name", o.tls_server_name,
                   "the name the server's certificate must carry, instead of --address's host")
        ->type_name("NAME")
        ->needs(tls_ca);
    app.add_option("--token-file", o.token_file,
                   "send the JWT in PATH as \"authorization: Bearer <jwt>\"")
        ->type_name("PATH");
    const std::map<std::string, Options::Output> kOutputs{{"table", Options::Output::kTable},
                                                          {"json", Options::Output::kJson}};
    app.add_option("--output", o.output, "tables, or the API's answer as JSON")
        ->type_name("table|json")
        ->transform(launcher::cli::one_of(kOutputs));

    LaunchArgs launch;
    CLI::App* launch_cmd = app.add_subcommand(
        "launch", "start PATTERN for the request's isolation key, or join its running process");
    launch_cmd->add_option("PATTERN", launch.pattern, "the pattern's name")->required();
    launch_cmd->add_option("--namespace", launch.namespace_id, "the tenant")->type_name("NS");
    launch_cmd->add_option("--session", launch.session, "the session")->type_name("ID");
    const std::map<std::string, pb::IsolationLevel> kIsolations{
        {"none", pb::ISOLATION_NONE},
        {"namespace", pb::ISOLATION_NAMESPACE},
        {"session", pb::ISOLATION_SESSION}};
    launch_cmd->add_option("--isolation", launch.isolation, "which key the request maps to")
        ->type_name("none|namespace|session")
        ->transform(launcher::cli::one_of(kIsolations));
    launch_cmd->add_option("--config", launch.config, "a setting for the pattern (repeatable)")
        ->type_name("KEY=VALUE")
        ->allow_extra_args(false)
        ->check(kKeyValue);
    launch_cmd
        ->add_option("--grace-period", launch.grace_period,
                     "seconds between SIGTERM and SIGKILL for this process")
        ->type_name("SECONDS")
        ->check(kSeconds);

    ListArgs list;
    CLI::App* list_cmd = app.add_subcommand("list", "list pattern processes");
    list_cmd->add_option("--pattern", list.pattern, "only this pattern")->type_name("NAME");
    list_cmd->add_option("--namespace", list.namespace_id, "only this tenant")->type_name("NS");
    list_cmd
        ->add_option("--state", list.state,
                     "only processes in this state: STATE_RUNNING, or running")
        ->type_name("STATE")
        ->check(kStateName);

    std::string status_id;
    CLI::App* status_cmd = app.add_subcommand("status", "show one process");
    status_cmd->add_option("PROCESS_ID", status_id, "e.g. ns:tenant-a:echo")->required();

    TerminateArgs terminate;
    CLI::App* terminate_cmd = app.add_subcommand("terminate", "stop a process");
    terminate_cmd->add_option("PROCESS_ID", terminate.process_id, "e.g. ns:tenant-a:echo")
        ->required();
    terminate_cmd
        ->add_option("--grace-period", terminate.grace_period,
                     "seconds between SIGTERM and SIGKILL")
        ->type_name("SECONDS")
        ->check(kSeconds);
    terminate_cmd->add_flag("--force", terminate.force, "SIGKILL at once");

    bool processes = false;
    CLI::App* health_cmd =
        app.add_subcommand("health", "the daemon's health; exits 1 when it is unhealthy");
    health_cmd->add_flag("--processes", processes, "also list every process");

    CLI::App* reload_cmd =
        app.add_subcommand("reload", "re-read the manifests; answers once the reload is done");

    std::string validate_dir;
    CLI::App* validate_cmd =
        app.add_subcommand("validate", "check DIR/*/manifest.yaml offline, as the daemon would");
    validate_cmd->add_option("DIR", validate_dir, "the patterns directory")->required();

    launcher::ctl::ExportArgs export_args;
    CLI::App* export_kubernetes_cmd = launcher::ctl::add_export_command(app, export_args);

    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        std::fprintf(stderr, "patternctl: %s\n\n%s", e.what(), app.help().c_str());
        return 2;
    }

    try {
        if (*validate_cmd) return validate(validate_dir);
        if (*export_kubernetes_cmd) return launcher::ctl::run_export(export_args);
        std::string token;
        if (!o.token_file.empty()) {
            std::string warning;
            token = launcher::ctl::read_bearer_token(o.token_file, &warning);
            if (!warning.empty())
                std::fprintf(stderr, "patternctl: warning: %s\n", warning.c_str());
            if (o.tls_ca.empty() && !o.endpoint().starts_with("unix"))
                std::fprintf(stderr,
                             "patternctl: warning: the token goes to %s over TCP without TLS "
                             "(--tls-ca)\n",
                             o.endpoint().c_str());
        }
        Client client(o, token);
        if (*launch_cmd) return client.launch(launch);
        if (*list_cmd) return client.list(list);
        if (*status_cmd) return client.status(status_id);
        if (*terminate_cmd) return client.terminate(terminate);
        if (*health_cmd) return client.health(processes);
        if (*reload_cmd) return client.reload();
        return 2;  // require_subcommand(1) leaves no other case
    } catch (const launcher::ctl::OptionFileError& e) {
        std::fprintf(stderr, "patternctl: %s\n", e.what());
        return 2;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "patternctl: %s\n", e.what());
        return 1;
    }
}
