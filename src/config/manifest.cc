#include "config/manifest.h"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <limits>
#include <system_error>
#include <vector>

#include "config/manifest_sandbox.h"
#include "config/request_variables.h"
#include "config/warm_pool.h"
#include "config/yaml_strict.h"

namespace launcher {

namespace fs = std::filesystem;
using yaml_strict::Field;
using yaml_strict::Mapping;

namespace {

std::string format_error(const fs::path& file, int line, const std::string& message) {
    std::string out = file.string();
    if (line > 0) out += ":" + std::to_string(line);
    return out + ": " + message;
}

// [A-Za-z_][A-Za-z0-9_]*
bool env_name_ok(std::string_view name) {
    auto letter = [](char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
    };
    if (name.empty() || !letter(name.front())) return false;
    return std::all_of(name.begin(), name.end(),
                       [&](char c) { return letter(c) || (c >= '0' && c <= '9'); });
}

// Variables the launcher sets for every pattern; neither a manifest nor a
// request may set them.
constexpr std::array<std::string_view, 10> kLauncherVariables = {
    "PATTERN_NAME", "NAMESPACE",     "SESSION_ID", "PROCESS_ID",     "GRPC_PORT",
    "HEALTH_PORT",  "NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_FDNAMES", "LISTEN_PID"};

// True if `path` is `dir` or lies below it (both canonical).
bool is_within(const fs::path& path, const fs::path& dir) {
    auto [dir_end, path_it] = std::mismatch(dir.begin(), dir.end(), path.begin(), path.end());
    (void)path_it;
    return dir_end == dir.end();
}

// The `executable` key: an absolute path is taken as is; a relative one is
// resolved against the pattern directory and must stay inside it (after
// symlinks). Either way it must be an existing regular file we may execute.
fs::path resolve_executable(const fs::path& file, const Field& field, const fs::path& directory) {
    const fs::path given(yaml_strict::to_nonempty_string(file, field));
    std::error_code ec;
    fs::path resolved;
    if (given.is_absolute()) {
        resolved = fs::weakly_canonical(given, ec);
    } else {
        resolved = fs::weakly_canonical(directory / given, ec);
        if (!ec && !is_within(resolved, directory)) {
            yaml_strict::fail(file, field,
                              "'" + given.string() + "' resolves to " + resolved.string() +
                                  ", outside the pattern directory " + directory.string() +
                                  " (use an absolute path for a program kept elsewhere)");
        }
    }
    if (ec)
        yaml_strict::fail(file, field, "cannot resolve '" + given.string() + "': " + ec.message());

    const fs::file_status status = fs::status(resolved, ec);
    if (ec || !fs::exists(status)) {
        yaml_strict::fail(
            file, field,
            "'" + given.string() + "' (" + resolved.string() + ") does not exist" +
                (ec && ec != std::errc::no_such_file_or_directory ? ": " + ec.message()
                                                                  : std::string()));
    }
    if (!fs::is_regular_file(status)) {
        yaml_strict::fail(
            file, field,
            "'" + given.string() + "' (" + resolved.string() + ") is not a regular file");
    }
    const auto exec_bits = fs::perms::owner_exec | fs::perms::group_exec | fs::perms::others_exec;
    if ((status.permissions() & exec_bits) == fs::perms::none ||
        ::access(resolved.c_str(), X_OK) != 0) {
        yaml_strict::fail(file, field,
                          "'" + given.string() + "' (" + resolved.string() + ") is not executable");
    }
    return resolved;
}

Healthcheck parse_healthcheck(const fs::path& file, const Field& field) {
    const Mapping map(file, field,
                      {"type", "port", "path", "service", "interval", "timeout", "start_timeout",
                       "failure_threshold"});
    Healthcheck hc;
    if (const Field* f = map.find("type")) {
        const std::string type = yaml_strict::to_string(file, *f);
        if (type == "http") {
            hc.type = HealthcheckType::kHttp;
        } else if (type == "notify") {
            hc.type = HealthcheckType::kNotify;
        } else if (type == "tcp") {
            hc.type = HealthcheckType::kTcp;
        } else if (type == "grpc") {
            hc.type = HealthcheckType::kGrpc;
        } else {
            yaml_strict::fail(file, *f,
                              "unknown type '" + type + "' (known: http, notify, tcp, grpc)");
        }
    }
    // RFC-035's example has one, but it cannot be honoured: a pattern runs as
    // many processes as it has keys, each with ports of its own from
    // pattern_ports. Known (so the message says why), and refused.
    if (const Field* f = map.find("port")) {
        throw FileError(file, f->key_line,
                        f->path +
                            ": not supported: every key of a pattern runs a process of its own, "
                            "so the launcher assigns each one its health port from the config's "
                            "pattern_ports and passes it in HEALTH_PORT; remove this key");
    }
    if (const Field* f = map.find("path")) {
        // A gRPC check has no URL: it names a service (a path here would be
        // silently ignored, and is most likely meant as one).
        if (hc.type == HealthcheckType::kGrpc) {
            yaml_strict::fail(file, *f,
                              "not used by type grpc, which calls grpc.health.v1.Health/Check; "
                              "name the service to ask about with 'service' instead");
        }
        hc.path = yaml_strict::to_string(file, *f);
        if (!hc.path.starts_with('/')) {
            yaml_strict::fail(file, *f, "must start with '/', got '" + hc.path + "'");
        }
    }
    if (const Field* f = map.find("service")) {
        if (hc.type != HealthcheckType::kGrpc) {
            yaml_strict::fail(file, *f,
                              "only for type grpc (the gRPC service whose health is "
                              "checked)");
        }
        hc.service = yaml_strict::to_string(file, *f);
        const bool printable = std::all_of(hc.service.begin(), hc.service.end(), [](char c) {
            return static_cast<unsigned char>(c) > 0x20 && c != 0x7f;
        });
        if (!printable || hc.service.size() > 255) {
            yaml_strict::fail(file, *f,
                              "expected a gRPC service name such as 'package.Service' (at most "
                              "255 characters, no spaces or control characters), got '" +
                                  hc.service + "'");
        }
    }
    if (const Field* f = map.find("interval")) hc.interval = yaml_strict::to_duration(file, *f);
    if (const Field* f = map.find("timeout")) hc.timeout = yaml_strict::to_duration(file, *f);
    if (const Field* f = map.find("start_timeout")) {
        hc.start_timeout = yaml_strict::to_duration(file, *f);
    }
    if (const Field* f = map.find("failure_threshold")) {
        hc.failure_threshold =
            static_cast<int>(yaml_strict::to_integer(file, *f, 1, std::numeric_limits<int>::max()));
    }
    return hc;
}

// Checked (a list of {name, type, required, config_schema} with unique
// names) and not kept: the launcher does not connect patterns to backends.
void check_backend_slots(const fs::path& file, const Field& field) {
    std::vector<std::string> names;
    for (const Field& item : yaml_strict::to_items(file, field)) {
        if (!item.value.IsMap()) {
            yaml_strict::fail(
                file, item,
                "expected a mapping with name and type, got " + yaml_strict::describe(item.value));
        }
        const Mapping map(file, item, {"name", "type", "required", "config_schema"});
        const Field& name_field = map.require("name");
        std::string name = yaml_strict::to_nonempty_string(file, name_field);
        if (std::find(names.begin(), names.end(), name) != names.end()) {
            yaml_strict::fail(file, name_field, "duplicate backend slot '" + name + "'");
        }
        (void)yaml_strict::to_nonempty_string(file, map.require("type"));
        if (const Field* f = map.find("required")) (void)yaml_strict::to_bool(file, *f);
        if (const Field* f = map.find("config_schema")) {
            // The launcher does not validate backend config beyond its shape.
            if (!f->value.IsNull() && !f->value.IsMap()) {
                yaml_strict::fail(file, *f,
                                  "expected a mapping, got " + yaml_strict::describe(f->value));
            }
        }
        names.push_back(std::move(name));
    }
}

std::map<std::string, std::string> parse_environment(const fs::path& file, const Field& field) {
    std::map<std::string, std::string> env;
    if (field.value.IsNull()) return env;
    if (!field.value.IsMap()) {
        yaml_strict::fail(
            file, field,
            "expected a mapping of NAME: value, got " + yaml_strict::describe(field.value));
    }
    // Keys are free-form here, so Mapping (fixed keys) does not apply; the
    // duplicate and type checks are the same.
    for (const auto& entry : field.value) {
        const YAML::Node key = entry.first;  // a copy: the iterator's value is a temporary
        const int key_line = yaml_strict::line_of(key, field.line());
        if (!key.IsScalar()) {
            throw FileError(
                file, key_line,
                field.path + ": variable names must be strings, got " + yaml_strict::describe(key));
        }
        const std::string name = key.Scalar();
        if (!is_valid_env_name(name)) {
            throw FileError(file, key_line,
                            field.path + ": invalid variable name '" + name +
                                "' (letters, digits and '_', not starting with a digit)");
        }
        if (is_reserved_env_name(name)) {
            std::vector<std::string> reserved(kLauncherVariables.begin(), kLauncherVariables.end());
            throw FileError(file, key_line,
                            field.path + ": '" + name + "' is set by the launcher (reserved: " +
                                yaml_strict::join(reserved) + ")");
        }
        const Field value{name, field.path + "." + name, entry.second, key_line};
        if (env.contains(name)) {
            throw FileError(file, key_line, "duplicate key '" + name + "' in " + field.path);
        }
        env[name] = yaml_strict::to_string(file, value);
    }
    return env;
}

// A config_keys name: an environment name, or a glob of name characters
// with * and ? that has at least one character that is not a wildcard.
bool config_key_name_ok(const std::string& name) {
    if (name.find_first_of("*?") == std::string::npos) return is_valid_env_name(name);
    std::string literal = name;  // the name with its wildcards as letters
    std::replace_if(
        literal.begin(), literal.end(), [](char c) { return c == '*' || c == '?'; }, 'X');
    return is_valid_env_name(literal) && name.find_first_not_of("*?") != std::string::npos;
}

// `config_keys`: a list of {name, pattern | values, max_length}, or of bare
// names. Every problem, including a pattern std::regex refuses, at its line.
std::vector<ConfigKeyRule> parse_config_keys(const fs::path& file, const Field& field) {
    std::vector<ConfigKeyRule> rules;
    for (const Field& item : yaml_strict::to_items(file, field)) {
        ConfigKeyRule rule;
        rule.line = item.key_line;
        const Field* name_field = &item;
        std::optional<Mapping> map;
        if (item.value.IsMap()) {
            map.emplace(
                file, item,
                std::initializer_list<std::string_view>{"name", "pattern", "values", "max_length"});
            name_field = &map->require("name");
        } else if (!item.value.IsScalar()) {
            yaml_strict::fail(file, item,
                              "expected a name or a mapping with name (and pattern, values, "
                              "max_length), got " +
                                  yaml_strict::describe(item.value));
        }
        rule.name = yaml_strict::to_nonempty_string(file, *name_field);
        if (!config_key_name_ok(rule.name)) {
            yaml_strict::fail(file, *name_field,
                              "invalid config key '" + rule.name +
                                  "' (an environment name: letters, digits and '_', not "
                                  "starting with a digit; or a glob of those with * and ?, "
                                  "not only wildcards: accept_any_config: true accepts any key)");
        }
        if (rule.is_glob()) {
            const std::string prefix = rule.name.substr(0, rule.name.find_first_of("*?"));
            if (every_name_with_prefix_is_forbidden(prefix)) {
                yaml_strict::fail(file, *name_field,
                                  "'" + rule.name +
                                      "' names only variables that are never accepted from a "
                                      "request (" +
                                      std::string(*forbidden_request_variable_reason(prefix)) +
                                      "s; docs/security.md)");
            }
        } else if (auto why = forbidden_request_variable_reason(rule.name)) {
            yaml_strict::fail(file, *name_field,
                              "'" + rule.name + "' is never accepted from a request (" +
                                  std::string(*why) +
                                  "), declared or not; set it in `environment` if the pattern "
                                  "needs it (docs/security.md)");
        }
        for (const ConfigKeyRule& other : rules) {
            if (other.name == rule.name) {
                yaml_strict::fail(file, *name_field,
                                  "config key '" + rule.name +
                                      "' is declared twice (also at line " +
                                      std::to_string(other.line) + ")");
            }
        }
        if (map) {
            if (const Field* f = map->find("max_length")) {
                rule.max_length = static_cast<std::size_t>(yaml_strict::to_integer(
                    file, *f, 1, static_cast<std::int64_t>(kMaxConfigValue)));
            }
            const Field* pattern = map->find("pattern");
            const Field* values = map->find("values");
            if (pattern && values) {
                yaml_strict::fail(
                    file, *values,
                    "give either pattern or values for '" + rule.name + "', not both");
            }
            if (pattern) {
                const std::string source = yaml_strict::to_nonempty_string(file, *pattern);
                try {
                    rule.pattern = ValuePattern::compile(source);
                } catch (const std::invalid_argument& e) {
                    yaml_strict::fail(file, *pattern, e.what());
                }
            }
            if (values) {
                for (const Field& v : yaml_strict::to_items(file, *values)) {
                    std::string value = yaml_strict::to_string(file, v);
                    if (value.size() > rule.max_length) {
                        yaml_strict::fail(
                            file, v,
                            "longer than max_length (" + std::to_string(rule.max_length) + ")");
                    }
                    if (std::find(rule.values.begin(), rule.values.end(), value) !=
                        rule.values.end()) {
                        yaml_strict::fail(file, v, "'" + value + "' is listed twice");
                    }
                    rule.values.push_back(std::move(value));
                }
                if (rule.values.empty()) {
                    yaml_strict::fail(file, *values,
                                      "an empty list accepts no value: remove the key instead");
                }
            }
        }
        rules.push_back(std::move(rule));
    }
    return rules;
}

// parse_manifest, also telling where the `name` key is (for duplicate names).
Manifest parse_manifest_at(const fs::path& file, int& name_line) {
    const YAML::Node root = yaml_strict::load_mapping_file(file);
    const Mapping map(
        file, root, "",
        {"name", "version", "description", "author", "executable", "isolation_level",
         "grace_period", "restart", "healthcheck", "resources", "backend_slots", "environment",
         "config_keys", "accept_any_config", "sandbox", "warm_pool", "late_binding"},
        1);
    Manifest m;
    m.file = file;
    std::error_code ec;
    fs::path parent = file.parent_path();
    if (parent.empty()) parent = ".";
    m.directory = fs::canonical(parent, ec);
    if (ec) throw FileError(file, 0, "cannot resolve the pattern directory: " + ec.message());

    const Field& name = map.require("name");
    m.name = yaml_strict::to_nonempty_string(file, name);
    if (!is_valid_identifier(m.name)) {
        yaml_strict::fail(
            file, name,
            "invalid pattern name '" + m.name +
                "' (1 to 63 of a-z, 0-9, '.', '_', '-', starting with a letter or digit)");
    }
    name_line = name.key_line;
    m.version = yaml_strict::to_nonempty_string(file, map.require("version"));
    // Free text for people; checked to be a string, not kept.
    if (const Field* f = map.find("description")) (void)yaml_strict::to_string(file, *f);
    if (const Field* f = map.find("author")) (void)yaml_strict::to_string(file, *f);
    m.executable = resolve_executable(file, map.require("executable"), m.directory);
    if (const Field* f = map.find("isolation_level")) {
        const std::string text = yaml_strict::to_string(file, *f);
        const std::optional<Isolation> level = parse_isolation(text);
        if (!level) {
            yaml_strict::fail(
                file, *f,
                "unknown isolation level '" + text + "' (known: none, namespace, session)");
        }
        m.isolation_level = *level;
    }
    if (const Field* f = map.find("grace_period"))
        m.grace_period = yaml_strict::to_duration(file, *f);
    if (const Field* f = map.find("restart")) {
        const std::string text = yaml_strict::to_string(file, *f);
        if (text == "always") {
            m.restart = RestartPolicy::kAlways;
        } else if (text == "on-failure") {
            m.restart = RestartPolicy::kOnFailure;
        } else if (text == "never") {
            m.restart = RestartPolicy::kNever;
        } else {
            yaml_strict::fail(
                file, *f,
                "unknown restart policy '" + text + "' (known: always, on-failure, never)");
        }
    }
    if (const Field* f = map.find("healthcheck")) m.healthcheck = parse_healthcheck(file, *f);
    if (const Field* f = map.find("resources")) m.resources = yaml_strict::to_resources(file, *f);
    if (const Field* f = map.find("backend_slots")) check_backend_slots(file, *f);
    if (const Field* f = map.find("environment")) m.environment = parse_environment(file, *f);
    if (const Field* f = map.find("config_keys")) m.config_keys = parse_config_keys(file, *f);
    if (const Field* f = map.find("accept_any_config"))
        m.accept_any_config = yaml_strict::to_bool(file, *f);
    if (const Field* f = map.find("sandbox")) m.sandbox = manifest_detail::parse_sandbox(file, *f);
    if (const Field* f = map.find("late_binding")) m.late_binding = yaml_strict::to_bool(file, *f);
    if (const Field* f = map.find("warm_pool")) {
        ManifestWarmPool pool = to_manifest_warm_pool(file, *f);
        m.warm_namespaces = std::move(pool.namespaces);
        m.warm_sessions = std::move(pool.sessions);
        if (!m.warm_sessions.empty() && !m.late_binding) {
            throw FileError(file, pool.sessions_line,
                            "warm_pool.sessions: needs late_binding: true (a process started "
                            "ahead learns its session only through the claim protocol, "
                            "docs/late-binding.md)");
        }
        // A SESSION key is not known before its launch, and a SHARED one is
        // started by the first launch of anyone: only NAMESPACE keys can be
        // named ahead.
        if (!m.warm_namespaces.empty() && m.isolation_level != Isolation::kNamespace) {
            yaml_strict::fail(file, *f,
                              "keeps NAMESPACE keys running, but this pattern's isolation_level "
                              "is " +
                                  std::string(isolation_name(m.isolation_level)) +
                                  " (SESSION keys are kept ready with warm_pool.sessions)");
        }
    }
    return m;
}

}  // namespace

bool is_valid_env_name(std::string_view name) {
    return env_name_ok(name);
}

bool is_reserved_env_name(std::string_view name) {
    return std::find(kLauncherVariables.begin(), kLauncherVariables.end(), name) !=
           kLauncherVariables.end();
}

std::vector<std::string> reserved_env_names() {
    return {kLauncherVariables.begin(), kLauncherVariables.end()};
}

FileError::FileError(std::filesystem::path file, int line, const std::string& message)
    : std::runtime_error(format_error(file, line, message)),
      file_(std::move(file)),
      line_(line),
      message_(message) {}

std::chrono::milliseconds parse_duration(std::string_view text) {
    const std::string quoted = "invalid duration '" + std::string(text) + "': ";
    if (text.empty()) throw std::invalid_argument("invalid duration '': empty");
    if (text.front() == '-') throw std::invalid_argument(quoted + "must be positive");
    if (text.front() < '0' || text.front() > '9') {
        throw std::invalid_argument(quoted +
                                    "expected a whole number and a unit (ms, s, m or h), e.g. 30s");
    }
    std::uint64_t number = 0;
    const char* end = text.data() + text.size();
    auto [rest, ec] = std::from_chars(text.data(), end, number);
    if (ec == std::errc::result_out_of_range) throw std::invalid_argument(quoted + "too large");
    const std::string_view unit(rest, static_cast<std::size_t>(end - rest));
    if (unit.empty()) throw std::invalid_argument(quoted + "missing unit (ms, s, m or h)");
    if (unit.front() == '.' || unit.front() == ',') {
        throw std::invalid_argument(
            quoted + "fractions are not allowed; use a smaller unit (1500ms, not 1.5s)");
    }
    if (unit.find_first_of(" \t\r\n") != std::string_view::npos) {
        throw std::invalid_argument(quoted + "no spaces allowed (write 30s, not 30 s)");
    }
    std::uint64_t ms_per_unit = 0;
    if (unit == "ms") {
        ms_per_unit = 1;
    } else if (unit == "s") {
        ms_per_unit = 1000;
    } else if (unit == "m") {
        ms_per_unit = 60 * 1000;
    } else if (unit == "h") {
        ms_per_unit = 60 * 60 * 1000;
    } else {
        throw std::invalid_argument(quoted + "unknown unit '" + std::string(unit) +
                                    "' (use ms, s, m or h)");
    }
    if (number == 0) throw std::invalid_argument(quoted + "must be positive");
    constexpr auto kMax = static_cast<std::uint64_t>(std::chrono::milliseconds::max().count());
    if (number > kMax / ms_per_unit) throw std::invalid_argument(quoted + "too large");
    return std::chrono::milliseconds(
        static_cast<std::chrono::milliseconds::rep>(number * ms_per_unit));
}

Manifest parse_manifest(const std::filesystem::path& file) {
    int name_line = 0;
    return parse_manifest_at(file, name_line);
}

Discovery discover_patterns(const std::filesystem::path& dir) {
    std::error_code ec;
    std::vector<fs::path> subdirs;
    fs::directory_iterator it(dir, ec);
    if (ec) throw FileError(dir, 0, "cannot read the patterns directory: " + ec.message());
    for (const fs::directory_iterator end; it != end; it.increment(ec)) {
        std::error_code type_ec;
        if (it->is_directory(type_ec)) subdirs.push_back(it->path());  // follows symlinks
    }
    if (ec) throw FileError(dir, 0, "cannot read the patterns directory: " + ec.message());
    std::sort(subdirs.begin(), subdirs.end());

    Discovery discovery;
    for (const fs::path& subdir : subdirs) {
        const fs::path file = subdir / "manifest.yaml";
        std::error_code exists_ec;
        if (!fs::exists(fs::symlink_status(file, exists_ec))) continue;  // not a pattern
        try {
            int name_line = 0;
            Manifest manifest = parse_manifest_at(file, name_line);
            auto found = discovery.patterns.find(manifest.name);
            if (found != discovery.patterns.end()) {
                throw FileError(file, name_line,
                                "duplicate pattern name '" + manifest.name + "' (also defined in " +
                                    found->second.file.string() + ")");
            }
            std::string name = manifest.name;
            discovery.patterns.emplace(std::move(name), std::move(manifest));
        } catch (const FileError& e) {
            discovery.errors.push_back(e);
        } catch (const fs::filesystem_error& e) {
            discovery.errors.emplace_back(file, 0, e.code().message());
        }
    }
    return discovery;
}

}  // namespace launcher
