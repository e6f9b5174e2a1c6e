// A manifest's `config_keys` and `accept_any_config`, the variables never
// accepted from a request (config/request_variables.h), and the check of a
// request's config against both (request_config_problem, core/spawn_plan.h).
#include <gtest/gtest.h>
#include <pthread.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "config/config_keys.h"
#include "config/confinement_report.h"
#include "config/manifest.h"
#include "config/request_variables.h"
#include "core/spawn_plan.h"

namespace {

namespace fs = std::filesystem;
using launcher::FileError;
using launcher::Manifest;
using Config = std::map<std::string, std::string>;

class ConfigKeysTest : public ::testing::Test {
protected:
    void SetUp() override {
        std::string tmpl = (fs::temp_directory_path() / "pl-config-keys-test.XXXXXX").string();
        ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
        root_ = tmpl;
        std::ofstream(root_ / "run") << "#!/bin/sh\nexit 0\n";
        fs::permissions(root_ / "run", fs::perms(0755));
    }
    void TearDown() override {
        std::error_code ec;
        fs::remove_all(root_, ec);
    }

    // kHeader (3 lines) + `body`, parsed.
    Manifest parse(const std::string& body) {
        std::ofstream(root_ / "manifest.yaml") << kHeader << body;
        return launcher::parse_manifest(root_ / "manifest.yaml");
    }
    // The FileError `body` must raise.
    FileError error_of(const std::string& body) {
        try {
            parse(body);
        } catch (const FileError& e) {
            EXPECT_EQ(e.file(), root_ / "manifest.yaml");
            return e;
        }
        ADD_FAILURE() << "no error for:\n" << body;
        return FileError(root_ / "manifest.yaml", -1, "no error");
    }

    static constexpr const char* kHeader =
        "name: demo\n"          // 1
        "version: \"1.0\"\n"    // 2
        "executable: ./run\n";  // 3
    fs::path root_;
};

#define EXPECT_FILE_ERROR(body, want_line, want_message)    \
    do {                                                    \
        const FileError e_ = error_of(body);                \
        EXPECT_EQ(e_.line(), want_line) << e_.what();       \
        EXPECT_EQ(e_.message(), want_message) << e_.what(); \
    } while (0)

// ---- the never-accepted list ----------------------------------------------------

TEST(ForbiddenRequestVariables, LoaderShellInterpreterAndLauncherNames) {
    for (const char* name : {"LD_PRELOAD",
                             "LD_LIBRARY_PATH",
                             "LD_AUDIT",
                             "LD_BIND_NOW",
                             "LD_ANYTHING_NEW",
                             "GCONV_PATH",
                             "GETCONF_DIR",
                             "GLIBC_TUNABLES",
                             "HOSTALIASES",
                             "LOCALDOMAIN",
                             "LOCPATH",
                             "MALLOC_CHECK_",
                             "MALLOC_TRACE",
                             "MALLOC_ARENA_MAX",
                             "NIS_PATH",
                             "NLSPATH",
                             "RESOLV_HOST_CONF",
                             "RES_OPTIONS",
                             "TMPDIR",
                             "TZDIR",
                             "PATH",
                             "HOME",
                             "SHELL",
                             "ENV",
                             "BASH_ENV",
                             "BASH_FUNC_ls%%",
                             "IFS",
                             "PS4",
                             "CDPATH",
                             "SHELLOPTS",
                             "PYTHONPATH",
                             "PYTHONSTARTUP",
                             "PYTHONHOME",
                             "PERL5LIB",
                             "PERL5OPT",
                             "PERLLIB",
                             "RUBYOPT",
                             "RUBYLIB",
                             "NODE_OPTIONS",
                             "NODE_PATH",
                             "JAVA_TOOL_OPTIONS",
                             "_JAVA_OPTIONS",
                             "JDK_JAVA_OPTIONS",
                             "LUA_PATH",
                             "LUA_CPATH",
                             "LUA_PATH_5_4",
                             "LUA_INIT",
                             "OPENSSL_CONF",
                             "OPENSSL_ENGINES",
                             "SSL_CERT_FILE",
                             "SSL_CERT_DIR",
                             "XDG_CONFIG_HOME",
                             "XDG_RUNTIME_DIR",
                             "GRPC_PORT",
                             "PATTERN_NAME",
                             "LISTEN_FDS",
                             "NOTIFY_SOCKET",
                             "STATE_DIRECTORY"}) {
        EXPECT_TRUE(launcher::is_forbidden_request_variable(name)) << name;
    }
    EXPECT_EQ(launcher::forbidden_request_variable_reason("LD_PRELOAD"), "loader variable");
    EXPECT_EQ(launcher::forbidden_request_variable_reason("GCONV_PATH"), "C library variable");
    EXPECT_EQ(launcher::forbidden_request_variable_reason("BASH_ENV"), "shell variable");
    EXPECT_EQ(launcher::forbidden_request_variable_reason("GRPC_PORT"), "set by the launcher");
    // Names are case-sensitive; near misses are ordinary names.
    for (const char* name : {"LOG_LEVEL", "BACKEND_URL", "ld_preload", "LD", "XPATH", "PATH_",
                             "HOMEPAGE", "MALLOC", "PYTHONUNBUFFERED", "TZ", "LANG"}) {
        EXPECT_FALSE(launcher::is_forbidden_request_variable(name)) << name;
    }
}

TEST(ForbiddenRequestVariables, PrefixesCoverEveryNameBelowThem) {
    EXPECT_TRUE(launcher::every_name_with_prefix_is_forbidden("LD_"));
    EXPECT_TRUE(launcher::every_name_with_prefix_is_forbidden("XDG_DATA"));
    EXPECT_TRUE(launcher::every_name_with_prefix_is_forbidden("BASH_FUNC_"));
    EXPECT_FALSE(launcher::every_name_with_prefix_is_forbidden("L"));
    EXPECT_FALSE(launcher::every_name_with_prefix_is_forbidden("PATH"));  // PATHX is fine
    EXPECT_FALSE(launcher::every_name_with_prefix_is_forbidden("FEATURE_"));
}

TEST(ForbiddenRequestVariables, DescriptionListsEveryEntry) {
    const std::string text = launcher::describe_forbidden_request_variables();
    for (const auto& entry : launcher::forbidden_request_variables()) {
        const std::string shown = std::string(entry.name) + (entry.prefix ? "*" : "");
        EXPECT_NE(text.find(shown), std::string::npos) << shown << " in\n" << text;
    }
    EXPECT_NE(text.find("set by the launcher: PATTERN_NAME, NAMESPACE"), std::string::npos) << text;
    EXPECT_NE(text.find("loader variable: LD_*\n"), std::string::npos) << text;
}

// docs/security.md shows the list: every entry, and every launcher name.
TEST(ForbiddenRequestVariables, SecurityDocListsEveryEntry) {
    std::ifstream in(fs::path(PL_SOURCE_DIR) / "docs/security.md");
    ASSERT_TRUE(in);
    const std::string doc((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    for (const auto& entry : launcher::forbidden_request_variables()) {
        const std::string shown = "`" + std::string(entry.name) + (entry.prefix ? "*`" : "`");
        EXPECT_NE(doc.find(shown), std::string::npos) << shown << " is not in docs/security.md";
    }
    for (const std::string& name : launcher::reserved_env_names())
        EXPECT_NE(doc.find("`" + name + "`"), std::string::npos) << name;
}

// ---- globs and value patterns ---------------------------------------------------------

TEST(ConfigKeyGlob, Matches) {
    EXPECT_TRUE(launcher::glob_matches("FEATURE_*", "FEATURE_X"));
    EXPECT_TRUE(launcher::glob_matches("FEATURE_*", "FEATURE_"));
    EXPECT_FALSE(launcher::glob_matches("FEATURE_*", "FEATURE"));
    EXPECT_FALSE(launcher::glob_matches("FEATURE_*", "XFEATURE_A"));
    EXPECT_TRUE(launcher::glob_matches("*_URL", "BACKEND_URL"));
    EXPECT_FALSE(launcher::glob_matches("*_URL", "BACKEND_URLS"));
    EXPECT_TRUE(launcher::glob_matches("A?C", "ABC"));
    EXPECT_FALSE(launcher::glob_matches("A?C", "AC"));
    EXPECT_TRUE(launcher::glob_matches("A*B*C", "AxxBxxBxC"));
    EXPECT_FALSE(launcher::glob_matches("A*B*C", "AxxBxxBx"));
}

TEST(ValuePattern, MatchesTheWholeValue) {
    const auto url = launcher::ValuePattern::compile("https://[a-z0-9.-]+(:[0-9]+)?/.*");
    EXPECT_TRUE(url.matches("https://db.example:8443/x"));
    EXPECT_FALSE(url.matches("http://db.example/x"));
    EXPECT_FALSE(url.matches("xhttps://db.example/x")) << "regex_match, not regex_search";
    EXPECT_FALSE(url.matches("https://db.example/x\n")) << ". does not match a newline";
    EXPECT_EQ(url.source(), "https://[a-z0-9.-]+(:[0-9]+)?/.*");
}

TEST(ValuePattern, RefusesWhatCouldExhaustTheDaemon) {
    auto reason = [](const std::string& source) {
        try {
            launcher::ValuePattern::compile(source);
        } catch (const std::invalid_argument& e) {
            return std::string(e.what());
        }
        return std::string("accepted");
    };
    EXPECT_NE(reason("[a-z").find("not a valid ECMAScript regular expression"), std::string::npos);
    EXPECT_NE(reason("(a)\\1").find("not a valid ECMAScript"), std::string::npos)
        << "back-references need the backtracking executor";
    EXPECT_NE(reason("(a{100}){100}").find("too large"), std::string::npos);
    EXPECT_NE(reason("((a{1000}){1000}){1000}").find("too large"), std::string::npos);
    EXPECT_NE(reason(std::string(20, '(') + "a" + std::string(20, ')')).find("nested"),
              std::string::npos);
    EXPECT_NE(reason(std::string(1025, 'a')).find("longer than 1024"), std::string::npos);
    EXPECT_EQ(reason(""), "empty pattern");
    // Numbers std::regex would overflow a long reading (libstdc++ 12), closed or not.
    for (const char* source : {"a\\99999999999999999999", "a{99999999999999999999,",
                               "a{2,99999999999999999999}", "a{1234567890}"}) {
        EXPECT_NE(reason(source).find("more than 9 digits"), std::string::npos) << source;
    }
    EXPECT_EQ(reason("[0-9]{3}99999999999999999999"), "accepted") << "literal digits are no number";
    // Ordinary patterns stay well inside the bounds.
    EXPECT_EQ(reason("[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "accepted");
    EXPECT_EQ(reason("([a-z0-9-]{1,63}\\.){1,10}[a-z]{2,63}"), "accepted");
}

// libstdc++'s default executor recurses once per character: `.*` against
// 4096 bytes needs more than 1 MiB of stack. The polynomial one must not.
TEST(ValuePattern, MatchingALongValueNeedsLittleStack) {
    const auto any = launcher::ValuePattern::compile("https://x/(a|aa|[a-z]+)*.*");
    const std::string value = "https://x/" + std::string(launcher::kMaxConfigValue - 10, 'a');
    bool matched = false;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 128 * 1024);
    struct Job {
        const launcher::ValuePattern* pattern;
        const std::string* value;
        bool* matched;
    } job{&any, &value, &matched};
    pthread_t thread;
    ASSERT_EQ(::pthread_create(
                  &thread, &attr,
                  [](void* arg) -> void* {
                      auto* j = static_cast<Job*>(arg);
                      *j->matched = j->pattern->matches(*j->value);
                      return nullptr;
                  },
                  &job),
              0);
    ::pthread_join(thread, nullptr);
    pthread_attr_destroy(&attr);
    EXPECT_TRUE(matched);
}

// ---- the manifest section -------------------------------------------------------------

TEST_F(ConfigKeysTest, DeclaredKeysParse) {
    const Manifest m = parse(
        "config_keys:\n"                                         // 4
        "  - name: BACKEND_URL\n"                                // 5
        "    pattern: \"^https://[a-z0-9.-]+(:[0-9]+)?/.*$\"\n"  // 6
        "    max_length: 256\n"                                  // 7
        "  - name: LOG_LEVEL\n"                                  // 8
        "    values: [debug, info, warn]\n"                      // 9
        "  - FEATURE_*\n");                                      // 10
    ASSERT_EQ(m.config_keys.size(), 3u);
    EXPECT_EQ(m.config_keys[0].name, "BACKEND_URL");
    ASSERT_TRUE(m.config_keys[0].pattern.has_value());
    EXPECT_EQ(m.config_keys[0].pattern->source(), "^https://[a-z0-9.-]+(:[0-9]+)?/.*$");
    EXPECT_EQ(m.config_keys[0].max_length, 256u);
    EXPECT_EQ(m.config_keys[0].line, 5);
    EXPECT_EQ(m.config_keys[1].values, (std::vector<std::string>{"debug", "info", "warn"}));
    EXPECT_FALSE(m.config_keys[1].pattern.has_value());
    EXPECT_EQ(m.config_keys[1].max_length, launcher::kMaxConfigValue);
    EXPECT_EQ(m.config_keys[2].name, "FEATURE_*");
    EXPECT_TRUE(m.config_keys[2].is_glob());
    EXPECT_EQ(m.config_keys[2].line, 10);
    EXPECT_FALSE(m.accept_any_config);
    EXPECT_TRUE(launcher::confinement_weakenings(m).empty());
}

TEST_F(ConfigKeysTest, NoSectionDeclaresNothing) {
    const Manifest m = parse("");
    EXPECT_TRUE(m.config_keys.empty());
    EXPECT_FALSE(m.accept_any_config);
    EXPECT_TRUE(parse("config_keys: []\n").config_keys.empty());
}

TEST_F(ConfigKeysTest, AcceptAnyConfigIsAWeakening) {
    const Manifest m = parse("accept_any_config: true\n");
    EXPECT_TRUE(m.accept_any_config);
    const auto weakened = launcher::confinement_weakenings(m);
    ASSERT_EQ(weakened.size(), 1u);
    EXPECT_TRUE(weakened[0].starts_with("accept_any_config: true")) << weakened[0];
    EXPECT_FALSE(parse("accept_any_config: false\n").accept_any_config);
    EXPECT_FILE_ERROR("accept_any_config: yes\n", 4,
                      "accept_any_config: expected true or false, got 'yes'");
}

TEST_F(ConfigKeysTest, ABadPatternIsAnErrorAtItsLine) {
    const FileError e = error_of(
        "config_keys:\n"             // 4
        "  - name: A\n"              // 5
        "    pattern: \"[a-z\"\n");  // 6
    EXPECT_EQ(e.line(), 6) << e.what();
    EXPECT_TRUE(e.message().starts_with(
        "config_keys[0].pattern: not a valid ECMAScript regular expression: "))
        << e.message();
    EXPECT_EQ(std::string(e.what()).rfind((root_ / "manifest.yaml").string() + ":6: ", 0), 0u)
        << e.what();
    EXPECT_FILE_ERROR("config_keys:\n  - name: A\n    pattern: \"(x{100}){100}\"\n", 6,
                      "config_keys[0].pattern: too large once its repetitions are expanded (at "
                      "most about 2000 states; use * or + instead of large {n,m} counts)");
}

TEST_F(ConfigKeysTest, DeclaringANeverAcceptedNameIsAnError) {
    EXPECT_FILE_ERROR(
        "config_keys:\n"           // 4
        "  - name: LOG_LEVEL\n"    // 5
        "  - name: LD_PRELOAD\n",  // 6
        6,
        "config_keys[1].name: 'LD_PRELOAD' is never accepted from a request "
        "(loader variable), declared or not; set it in `environment` if the "
        "pattern needs it (docs/security.md)");
    EXPECT_FILE_ERROR("config_keys: [PATH]\n", 4,
                      "config_keys[0]: 'PATH' is never accepted from a request (shell "
                      "variable), declared or not; set it in `environment` if the pattern "
                      "needs it (docs/security.md)");
    EXPECT_FILE_ERROR("config_keys: [GRPC_PORT]\n", 4,
                      "config_keys[0]: 'GRPC_PORT' is never accepted from a request (set by the "
                      "launcher), declared or not; set it in `environment` if the pattern needs "
                      "it (docs/security.md)");
    EXPECT_FILE_ERROR("config_keys:\n  - name: \"LD_*\"\n", 5,
                      "config_keys[0].name: 'LD_*' names only variables that are never accepted "
                      "from a request (loader variables; docs/security.md)");
    // A glob that merely includes some is fine: those stay refused at launch.
    EXPECT_EQ(parse("config_keys: [\"L*\"]\n").config_keys.size(), 1u);
}

TEST_F(ConfigKeysTest, OtherMistakesNameTheirLine) {
    EXPECT_FILE_ERROR("config_keys:\n  - name: BAD-NAME\n", 5,
                      "config_keys[0].name: invalid config key 'BAD-NAME' (an environment name: "
                      "letters, digits and '_', not starting with a digit; or a glob of those "
                      "with * and ?, not only wildcards: accept_any_config: true accepts any key)");
    EXPECT_EQ(error_of("config_keys: [\"*\"]\n").line(), 4) << "a bare * is accept_any_config";
    EXPECT_EQ(error_of("config_keys: [\"1*\"]\n").line(), 4);
    EXPECT_FILE_ERROR("config_keys:\n  - A\n  - name: A\n", 6,
                      "config_keys[1].name: config key 'A' is declared twice (also at line 5)");
    EXPECT_FILE_ERROR("config_keys:\n  - name: A\n    pattern: x\n    values: [x]\n", 7,
                      "config_keys[0].values: give either pattern or values for 'A', not both");
    EXPECT_FILE_ERROR("config_keys:\n  - name: A\n    max_length: 5000\n", 6,
                      "config_keys[0].max_length: must be between 1 and 4096, got 5000");
    EXPECT_FILE_ERROR("config_keys:\n  - name: A\n    max_length: 0\n", 6,
                      "config_keys[0].max_length: must be between 1 and 4096, got 0");
    EXPECT_FILE_ERROR("config_keys:\n  - name: A\n    max_length: 2\n    values: [abc]\n", 7,
                      "config_keys[0].values[0]: longer than max_length (2)");
    EXPECT_FILE_ERROR("config_keys:\n  - name: A\n    values: [a, a]\n", 6,
                      "config_keys[0].values[1]: 'a' is listed twice");
    EXPECT_EQ(error_of("config_keys:\n  - name: A\n    values: []\n").line(), 6);
    EXPECT_FILE_ERROR("config_keys:\n  - name: A\n    patern: x\n", 6,
                      "unknown key 'patern' in config_keys[0] (known: name, pattern, values, "
                      "max_length)");
    EXPECT_EQ(error_of("config_keys:\n  - [A]\n").line(), 5);
    EXPECT_EQ(error_of("config_keys: A\n").line(), 4);
}

// ---- a request's config against the manifest ------------------------------------

class RequestConfigTest : public ConfigKeysTest {
protected:
    void SetUp() override {
        ConfigKeysTest::SetUp();
        declared = parse(
            "config_keys:\n"
            "  - name: BACKEND_URL\n"
            "    pattern: \"https://[a-z0-9.-]+(:[0-9]+)?/.*\"\n"
            "    max_length: 64\n"
            "  - name: LOG_LEVEL\n"
            "    values: [debug, info, warn]\n"
            "  - FEATURE_*\n");
        undeclared = parse("");
        any = parse("accept_any_config: true\nconfig_keys:\n  - {name: LOG_LEVEL, values: [x]}\n");
    }
    Manifest declared, undeclared, any;
};

TEST_F(RequestConfigTest, DeclaredKeysAndValuesPass) {
    EXPECT_EQ(launcher::request_config_problem(declared, {}), "");
    EXPECT_EQ(launcher::request_config_problem(undeclared, {}), "") << "no config: nothing to do";
    EXPECT_EQ(launcher::request_config_problem(
                  declared, Config{{"BACKEND_URL", "https://db.example:5432/app"},
                                   {"LOG_LEVEL", "warn"},
                                   {"FEATURE_X", "anything at all"}}),
              "");
    EXPECT_EQ(launcher::request_config_problem(any, Config{{"WHATEVER", "1"}}), "");
}

TEST_F(RequestConfigTest, NeverAcceptedNamesAreRefusedWhateverTheManifest) {
    for (const Manifest* m : {&declared, &undeclared, &any}) {
        EXPECT_EQ(launcher::request_config_problem(*m, Config{{"LD_PRELOAD", "/tmp/x.so"}}),
                  "config key 'LD_PRELOAD' is never accepted from a request (loader variable)");
        EXPECT_EQ(launcher::request_config_problem(*m, Config{{"GCONV_PATH", "/tmp"}}),
                  "config key 'GCONV_PATH' is never accepted from a request (C library "
                  "variable)");
        EXPECT_EQ(launcher::request_config_problem(*m, Config{{"PATH", "/tmp"}}),
                  "config key 'PATH' is never accepted from a request (shell variable)");
        EXPECT_EQ(launcher::request_config_problem(*m, Config{{"GRPC_PORT", "1"}}),
                  "config key 'GRPC_PORT' is reserved: the launcher sets it");
    }
    // Whatever comes before it in the request (keys are sorted): the
    // forbidden name is what the refusal names.
    EXPECT_EQ(launcher::request_config_problem(
                  declared, Config{{"AAA_UNDECLARED", "1"}, {"LD_PRELOAD", "/tmp/x.so"}}),
              "config key 'LD_PRELOAD' is never accepted from a request (loader variable)");
}

TEST_F(RequestConfigTest, UndeclaredKeysAreRefused) {
    EXPECT_EQ(launcher::request_config_problem(declared, Config{{"OTHER", "1"}}),
              "config key 'OTHER' is not declared by pattern 'demo' (declared: BACKEND_URL, "
              "LOG_LEVEL, FEATURE_*)");
    EXPECT_EQ(launcher::request_config_problem(undeclared, Config{{"LOG_LEVEL", "debug"}}),
              "config key 'LOG_LEVEL' is not declared by pattern 'demo' (it declares no "
              "config_keys)");
}

TEST_F(RequestConfigTest, ValuesAreCheckedAndNeverEchoed) {
    const std::string secret = "s3cr3t-value";
    std::string problem = launcher::request_config_problem(
        declared, Config{{"BACKEND_URL", "http://" + secret + "/"}});
    EXPECT_EQ(problem, "config value of 'BACKEND_URL' does not match its declared pattern");
    problem = launcher::request_config_problem(
        declared, Config{{"BACKEND_URL", "https://a/" + std::string(60, 'x')}});
    EXPECT_EQ(problem,
              "config value of 'BACKEND_URL' is 70 bytes, longer than its declared max_length "
              "(64)");
    problem = launcher::request_config_problem(declared, Config{{"LOG_LEVEL", secret}});
    EXPECT_EQ(problem,
              "config value of 'LOG_LEVEL' is not one of its declared values (debug, info, warn)");
    EXPECT_EQ(problem.find(secret), std::string::npos);
    // accept_any_config still applies what is declared.
    EXPECT_EQ(launcher::request_config_problem(any, Config{{"LOG_LEVEL", "y"}}),
              "config value of 'LOG_LEVEL' is not one of its declared values (x)");
}

TEST_F(RequestConfigTest, TheEnvironmentNeverCarriesAForbiddenName) {
    // What a record written by an older launcher could bring back.
    launcher::IsolationKey key;
    key.level = launcher::Isolation::kNone;
    key.pattern = "demo";
    const auto env = launcher::pattern_environment(
        any, key, Config{{"LD_PRELOAD", "/tmp/x.so"}, {"OK", "1"}}, launcher::PatternEndpoints{});
    for (const std::string& entry : env)
        EXPECT_FALSE(entry.starts_with("LD_PRELOAD=")) << entry;
    EXPECT_NE(std::find(env.begin(), env.end(), "OK=1"), env.end());
}

}  // namespace
