// pattern-launcher: starts pattern executables in sandboxes.
//
//   pattern-launcher [--config FILE] [flags]   the daemon
//   pattern-launcher check [--config FILE] [--patterns-dir DIR]
//   pattern-launcher hold                      (started by the daemon)
//
// Exit codes: 0 done, 1 the daemon failed or its flags are wrong, 2 wrong
// flags of `check` (its report exits 1 when it finds problems).
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>
#include <iterator>
#include <map>
#include <optional>
#include <string>

#include "common/cli_choice.h"
#include "common/log.h"
#include "daemon/commands.h"
#include "systemd/tenant_scope.h"

namespace {

using launcher::DaemonFlags;

// An option bound to an optional<T> of the flags: set only when given.
template <typename T>
CLI::Option* add_optional(CLI::App& app, const std::string& name, std::optional<T>& target,
                          const std::string& help) {
    return app.add_option_function<T>(
        name, [&target](const T& value) { target = value; }, help);
}

}  // namespace

int main(int argc, char** argv) {
    std::setvbuf(stderr, nullptr, _IOLBF, 0);
    namespace log = launcher::log;

    CLI::App app{
        "Starts pattern executables in sandboxes and supervises them; serves the gRPC "
        "API prism.launcher.PatternLauncher.",
        "pattern-launcher"};
    app.footer("Flags override the config file; see docs/configuration.md for the config file.");

    DaemonFlags flags;
    add_optional(app, "--config", flags.config_file, "the launcher's configuration (YAML)")
        ->type_name("FILE");
    add_optional(app, "--patterns-dir", flags.patterns_dir, "where <pattern>/manifest.yaml live")
        ->type_name("DIR");
    add_optional(app, "--grpc-socket", flags.grpc_socket,
                 "unix socket of the API (default <runtime_dir>/api.sock)")
        ->type_name("PATH");
    add_optional(app, "--grpc-port", flags.grpc_port, "also serve on 127.0.0.1:N (0: no TCP)")
        ->type_name("N")
        ->check(CLI::Range(0, 65535).description(""));
    add_optional(app, "--runtime-dir", flags.runtime_dir,
                 "sockets and state (default /run/pattern-launcher)")
        ->type_name("DIR");
    add_optional(app, "--cgroup-root", flags.cgroup_root,
                 "cgroup subtree to own (default <cgroup2 mount>/pattern-launcher)")
        ->type_name("PATH");
    // Words on the command line, enums from here on.
    using launcher::Isolation;
    using launcher::LimitsEnforcement;
    const std::map<std::string, LimitsEnforcement> kEnforcements{
        {"strict", LimitsEnforcement::kStrict}, {"warn", LimitsEnforcement::kWarn}};
    const std::map<std::string, Isolation> kIsolations{{"none", Isolation::kNone},
                                                       {"namespace", Isolation::kNamespace},
                                                       {"session", Isolation::kSession}};
    const std::map<std::string, log::Level> kLevels{{"error", log::Level::kError},
                                                    {"warning", log::Level::kWarning},
                                                    {"notice", log::Level::kNotice},
                                                    {"info", log::Level::kInfo},
                                                    {"debug", log::Level::kDebug}};
    add_optional(app, "--limits-enforcement", flags.limits_enforcement,
                 "refuse (strict) or log (warn) unenforceable limits")
        ->type_name("strict|warn")
        ->transform(launcher::cli::one_of(kEnforcements));
    add_optional(app, "--default-isolation", flags.default_isolation,
                 "isolation of a launch whose request and manifest name none")
        ->type_name("none|namespace|session")
        ->transform(launcher::cli::one_of(kIsolations));
    std::optional<log::Level> log_level;
    add_optional(app, "--log-level", log_level,
                 "drop log lines less important than this (default info, or "
                 "$PATTERN_LAUNCHER_LOG_LEVEL)")
        ->type_name("error|warning|notice|info|debug")
        ->transform(launcher::cli::one_of(kLevels));

    launcher::CheckFlags check_flags;
    CLI::App* check = app.add_subcommand(
        "check",
        "report what this host gives the sandbox, and what the patterns' manifests give up of it");
    check->add_option("--config", check_flags.config_file, "the launcher's configuration (YAML)")
        ->type_name("FILE");
    check->add_option("--patterns-dir", check_flags.patterns_dir, "the manifests to report on")
        ->type_name("DIR");
    check->footer("The manifests are reported on when --config or --patterns-dir is given.");
    CLI::App* hold =
        app.add_subcommand("hold", "(started by the daemon) keep the tenants' systemd scope");
    app.require_subcommand(0, 1);

    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);  // the help of the command given, on stdout
    } catch (const CLI::ParseError& e) {
        if (check->parsed()) {
            log::error(std::string("check: ") + e.what() + " (see check --help)");
            return 2;
        }
        log::error(std::string(e.what()) + " (see --help)");
        return 1;
    }
    if (log_level) log::set_level(*log_level);

    try {
        if (*check) return launcher::run_host_check(check_flags);
        // The placeholder that keeps the tenants' systemd scope (tenant_scope.h).
        if (*hold) return launcher::run_holder();
        return launcher::run_daemon(flags);
    } catch (const std::exception& e) {
        log::error(e.what());
        return 1;
    }
}
