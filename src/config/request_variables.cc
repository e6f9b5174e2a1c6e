#include "config/request_variables.h"

#include <algorithm>

#include "config/manifest.h"

namespace launcher {
namespace {

constexpr std::string_view kLoader = "loader variable";
constexpr std::string_view kLibc = "C library variable";
constexpr std::string_view kShell = "shell variable";
constexpr std::string_view kInterpreter = "interpreter variable";
constexpr std::string_view kTls = "TLS library variable";
constexpr std::string_view kDesktop = "XDG base directory variable";
constexpr std::string_view kLauncher = "set by the launcher";

// What glibc itself drops from the environment of a set-user-ID program
// (sysdeps/generic/unsecvars.h, UNSECURE_ENVVARS, glibc 2.36 as in
// Debian 12): each one makes the C library load or read a file the
// environment names. A pattern is not set-user-ID, so its C library obeys
// them: from a request they would be code execution inside the pattern
// (LD_PRELOAD, GCONV_PATH) or a redirection of its files, resolver or time
// zone. Every LD_* is refused, not only glibc's list, since the loader
// grows new ones (LD_BIND_NOW, LD_LIBRARY_PATH's friends, musl's and
// other loaders' own).
const std::vector<ForbiddenRequestVariable> kList = {
    {"LD_", true, kLoader},
    {"GCONV_PATH", false, kLibc},
    {"GETCONF_DIR", false, kLibc},
    {"GLIBC_TUNABLES", false, kLibc},  // CVE-2023-4911 was a parser bug in it
    {"HOSTALIASES", false, kLibc},
    {"LOCALDOMAIN", false, kLibc},
    {"LOCPATH", false, kLibc},
    // MALLOC_TRACE (unsecvars.h), MALLOC_CHECK_, MALLOC_PERTURB_, MALLOC_ARENA_MAX, ...:
    // glibc's older spellings of its malloc tunables.
    {"MALLOC_", true, kLibc},
    {"NIS_PATH", false, kLibc},
    {"NLSPATH", false, kLibc},
    {"RESOLV_HOST_CONF", false, kLibc},
    {"RES_OPTIONS", false, kLibc},
    {"TMPDIR", false, kLibc},
    {"TZDIR", false, kLibc},
    // Where programs are found and what a shell runs before its script:
    // BASH_ENV and ENV name a file a non-interactive bash or sh sources;
    // BASH_FUNC_name%% defines functions (Shellshock's way in); SHELLOPTS
    // with PS4 runs a command substitution on every traced line.
    {"PATH", false, kShell},
    {"HOME", false, kShell},
    {"SHELL", false, kShell},
    {"ENV", false, kShell},
    {"BASH_ENV", false, kShell},
    {"BASH_FUNC_", true, kShell},
    {"BASHOPTS", false, kShell},
    {"SHELLOPTS", false, kShell},
    {"IFS", false, kShell},
    {"PS4", false, kShell},
    {"CDPATH", false, kShell},
    // Interpreters that load modules or run code named by the environment.
    {"PYTHONPATH", false, kInterpreter},
    {"PYTHONSTARTUP", false, kInterpreter},
    {"PYTHONHOME", false, kInterpreter},
    {"PYTHONUSERBASE", false, kInterpreter},
    {"PERL5LIB", false, kInterpreter},
    {"PERL5OPT", false, kInterpreter},
    {"PERLLIB", false, kInterpreter},
    {"RUBYOPT", false, kInterpreter},
    {"RUBYLIB", false, kInterpreter},
    {"NODE_OPTIONS", false, kInterpreter},
    {"NODE_PATH", false, kInterpreter},
    {"JAVA_TOOL_OPTIONS", false, kInterpreter},
    {"_JAVA_OPTIONS", false, kInterpreter},
    {"JDK_JAVA_OPTIONS", false, kInterpreter},
    // LUA_PATH_5_4, LUA_CPATH_5_4 and LUA_INIT (code run at start) too.
    {"LUA_PATH", true, kInterpreter},
    {"LUA_CPATH", true, kInterpreter},
    {"LUA_INIT", true, kInterpreter},
    // OpenSSL loads its config, engines and providers (shared objects) from
    // these; the others replace the trusted certificate authorities.
    {"OPENSSL_CONF", false, kTls},
    {"OPENSSL_ENGINES", false, kTls},
    {"OPENSSL_MODULES", false, kTls},
    {"SSL_CERT_FILE", false, kTls},
    {"SSL_CERT_DIR", false, kTls},
    // Where libraries look for config, data and autostart files.
    {"XDG_", true, kDesktop},
    // Set for every pattern only when it has one, so not among the names a
    // manifest may not set (manifest.h); a request never sets it.
    {"STATE_DIRECTORY", false, kLauncher},
};

bool entry_covers(const ForbiddenRequestVariable& entry, std::string_view name) {
    return entry.prefix ? name.starts_with(entry.name) : name == entry.name;
}

}  // namespace

const std::vector<ForbiddenRequestVariable>& forbidden_request_variables() {
    return kList;
}

std::optional<std::string_view> forbidden_request_variable_reason(std::string_view name) {
    if (is_reserved_env_name(name)) return kLauncher;
    for (const ForbiddenRequestVariable& entry : kList) {
        if (entry_covers(entry, name)) return entry.why;
    }
    return std::nullopt;
}

bool every_name_with_prefix_is_forbidden(std::string_view prefix) {
    return std::any_of(kList.begin(), kList.end(), [&](const ForbiddenRequestVariable& entry) {
        return entry.prefix && prefix.starts_with(entry.name);
    });
}

std::string describe_forbidden_request_variables() {
    std::vector<std::pair<std::string_view, std::string>> lines;
    auto add = [&](std::string_view why, std::string name) {
        auto line =
            std::find_if(lines.begin(), lines.end(), [&](const auto& l) { return l.first == why; });
        if (line == lines.end()) {
            lines.emplace_back(why, std::move(name));
        } else {
            line->second += ", " + name;
        }
    };
    for (const std::string& name : reserved_env_names())
        add(kLauncher, name);
    for (const ForbiddenRequestVariable& entry : kList)
        add(entry.why, std::string(entry.name) + (entry.prefix ? "*" : ""));
    std::string out;
    for (const auto& [why, names] : lines)
        out += std::string(why) + ": " + names + "\n";
    return out;
}

}  // namespace launcher
