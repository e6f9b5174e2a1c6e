// The OCI export of seccomp profiles: the JSON's structure for the built-in
// profiles and each kind of rule, its determinism, and what it means: loaded
// the way runc loads it (libcontainer/seccomp/seccomp_linux.go, 1.1.5), it
// must give libseccomp the program compile_seccomp_profile gives. The kernel
// test with runc itself is tests/integration/oci_seccomp_runc_test.cc.
#include "export/oci_seccomp.h"

#include <errno.h>
#include <gtest/gtest.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cstdint>
#include <cstring>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "sandbox/error.h"
#include "sandbox/seccomp.h"
#include "sandbox/unique_fd.h"

namespace launcher {
namespace {

using Json = nlohmann::ordered_json;
using sandbox::SeccompActionKind;

constexpr std::uint64_t kNamespaceBits[] = {0x00020000, 0x02000000, 0x04000000, 0x08000000,
                                            0x10000000, 0x20000000, 0x40000000};
constexpr std::uint64_t kAllNamespaceBits = 0x7e020000;

sandbox::SeccompProfile builtin(const std::string& name) {
    return sandbox::parse_seccomp_profile(sandbox::builtin_profile_text(name), "builtin:" + name);
}

Json exported(std::string_view text) {
    return oci_seccomp_profile(sandbox::parse_seccomp_profile(text, "t.profile"));
}

// The rules of `json` for `name`.
std::vector<Json> rules_naming(const Json& json, const std::string& name) {
    std::vector<Json> found;
    for (const Json& rule : json["syscalls"]) {
        for (const Json& n : rule["names"]) {
            if (n == name) found.push_back(rule);
        }
    }
    return found;
}

// The names of the profile's unconditional rules with this action.
std::set<std::string> unconditional_names(const sandbox::SeccompProfile& profile,
                                          SeccompActionKind kind, int errno_value = 0) {
    std::set<std::string> names;
    for (const auto& rule : profile.rules) {
        if (!rule.condition && rule.action.kind == kind &&
            (kind != SeccompActionKind::kErrno || rule.action.errno_value == errno_value))
            names.insert(rule.syscall);
    }
    return names;
}

Json masked_eq(std::uint64_t mask, std::uint64_t datum) {
    return Json::array(
        {{{"index", 0}, {"value", mask}, {"valueTwo", datum}, {"op", "SCMP_CMP_MASKED_EQ"}}});
}

// The clone rules of the built-in profiles: one EPERM rule per namespace
// bit, `(flags & bit) == bit`, and none without args.
void expect_clone_bit_rules(const Json& json) {
    std::vector<Json> clone = rules_naming(json, "clone");
    std::set<std::uint64_t> bits;
    for (const Json& rule : clone) {
        ASSERT_TRUE(rule.contains("args")) << "an unconditional clone rule: " << rule.dump();
        ASSERT_EQ(rule["args"].size(), 1U) << rule.dump();
        const Json& arg = rule["args"][0];
        if (arg["valueTwo"] == 0) continue;  // strict's else rule
        EXPECT_EQ(rule["action"], "SCMP_ACT_ERRNO");
        EXPECT_EQ(rule["errnoRet"], EPERM);
        const auto value = arg["value"].get<std::uint64_t>();
        EXPECT_EQ(rule["args"], masked_eq(value, value)) << rule.dump();
        bits.insert(value);
    }
    EXPECT_EQ(bits, std::set<std::uint64_t>(std::begin(kNamespaceBits), std::end(kNamespaceBits)));
}

#if defined(__x86_64__)
TEST(OciSeccomp, ArchitectureIsTheNativeOne) {
    EXPECT_EQ(exported("default allow\n")["architectures"], Json::array({"SCMP_ARCH_X86_64"}));
}
#endif

TEST(OciSeccomp, DefaultProfile) {
    const auto profile = builtin("default");
    const Json json = oci_seccomp_profile(profile);
    EXPECT_EQ(json["defaultAction"], "SCMP_ACT_ALLOW");
    EXPECT_FALSE(json.contains("defaultErrnoRet"));
    ASSERT_EQ(json["architectures"].size(), 1U);

    // Every unconditional denial in one EPERM rule, clone3 in an ENOSYS one.
    bool saw_eperm = false, saw_enosys = false;
    for (const Json& rule : json["syscalls"]) {
        if (rule.contains("args")) continue;
        ASSERT_EQ(rule["action"], "SCMP_ACT_ERRNO") << rule.dump();
        const std::set<std::string> names = rule["names"].get<std::set<std::string>>();
        if (rule["errnoRet"] == EPERM) {
            saw_eperm = true;
            EXPECT_EQ(names, unconditional_names(profile, SeccompActionKind::kErrno, EPERM));
            EXPECT_TRUE(names.count("unshare") && names.count("mount") && names.count("keyctl"));
        } else {
            saw_enosys = true;
            EXPECT_EQ(rule["errnoRet"], ENOSYS);
            EXPECT_EQ(names, std::set<std::string>{"clone3"});
        }
    }
    EXPECT_TRUE(saw_eperm && saw_enosys);

    expect_clone_bit_rules(json);
    // No else: the other clone calls keep the default (allow), no rule.
    EXPECT_EQ(rules_naming(json, "clone").size(), std::size(kNamespaceBits));
}

TEST(OciSeccomp, StrictProfile) {
    const auto profile = builtin("strict");
    const Json json = oci_seccomp_profile(profile);
    EXPECT_EQ(json["defaultAction"], "SCMP_ACT_ERRNO");
    EXPECT_EQ(json["defaultErrnoRet"], ENOSYS);

    const Json& first = json["syscalls"][0];
    EXPECT_EQ(first["action"], "SCMP_ACT_ALLOW");
    EXPECT_FALSE(first.contains("args"));
    EXPECT_EQ(first["names"].get<std::set<std::string>>(),
              unconditional_names(profile, SeccompActionKind::kAllow));
    EXPECT_TRUE(rules_naming(json, "clone3").empty()) << "clone3 is left to the default, ENOSYS";

    expect_clone_bit_rules(json);
    // `else allow`: the calls with none of the bits.
    std::vector<Json> otherwise;
    for (const Json& rule : rules_naming(json, "clone")) {
        if (rule["args"][0]["valueTwo"] == 0) otherwise.push_back(rule);
    }
    ASSERT_EQ(otherwise.size(), 1U);
    EXPECT_EQ(otherwise[0], (Json{{"names", {"clone"}},
                                  {"action", "SCMP_ACT_ALLOW"},
                                  {"args", masked_eq(kAllNamespaceBits, 0)}}));
}

TEST(OciSeccomp, EachActionKind) {
    const Json json = exported(
        "default errno EACCES\n"
        "kill: ptrace\n"
        "errno ENOENT: openat\n"
        "log: write\n"
        "allow: read close\n"
        "errno EPERM: mount\n");
    const Json expected = Json::parse(R"({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 13,
        "architectures": [],
        "syscalls": [
            {"names": ["close", "read"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["write"], "action": "SCMP_ACT_LOG"},
            {"names": ["mount"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
            {"names": ["openat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 2},
            {"names": ["ptrace"], "action": "SCMP_ACT_KILL_PROCESS"}
        ]})");
    Json got = json;
    got["architectures"] = Json::array();
    EXPECT_EQ(got.dump(), expected.dump());
}

TEST(OciSeccomp, DefaultKillAndLog) {
    EXPECT_EQ(exported("default kill\n")["defaultAction"], "SCMP_ACT_KILL_PROCESS");
    EXPECT_EQ(exported("default log\n")["defaultAction"], "SCMP_ACT_LOG");
    EXPECT_FALSE(exported("default kill\n").contains("defaultErrnoRet"));
    EXPECT_EQ(exported("default kill\n")["syscalls"], Json::array());
}

TEST(OciSeccomp, ConditionWithoutElse) {
    const Json json = exported(
        "default allow\n"
        "errno EPERM: unshare if flags & CLONE_NEWNET|CLONE_NEWUSER\n");
    EXPECT_EQ(json["syscalls"], (Json{{{"names", {"unshare"}},
                                       {"action", "SCMP_ACT_ERRNO"},
                                       {"errnoRet", EPERM},
                                       {"args", masked_eq(0x10000000, 0x10000000)}},
                                      {{"names", {"unshare"}},
                                       {"action", "SCMP_ACT_ERRNO"},
                                       {"errnoRet", EPERM},
                                       {"args", masked_eq(0x40000000, 0x40000000)}}}));
}

TEST(OciSeccomp, ConditionWithElse) {
    const Json json = exported(
        "default kill\n"
        "errno EPERM: clone if flags & CLONE_NEWUSER else allow\n");
    EXPECT_EQ(json["syscalls"], (Json{{{"names", {"clone"}},
                                       {"action", "SCMP_ACT_ALLOW"},
                                       {"args", masked_eq(0x10000000, 0)}},
                                      {{"names", {"clone"}},
                                       {"action", "SCMP_ACT_ERRNO"},
                                       {"errnoRet", EPERM},
                                       {"args", masked_eq(0x10000000, 0x10000000)}}}));
}

TEST(OciSeccomp, ConditionWhoseActionIsTheDefaultKeepsOnlyTheElse) {
    // The calls with a bit already get the default; only the others need a rule.
    const Json json = exported(
        "default errno EPERM\n"
        "errno EPERM: clone if flags & CLONE_NEWNS|CLONE_NEWPID else allow\n");
    EXPECT_EQ(json["syscalls"], (Json{{{"names", {"clone"}},
                                       {"action", "SCMP_ACT_ALLOW"},
                                       {"args", masked_eq(0x20020000, 0)}}}));
}

TEST(OciSeccomp, ElseEqualToTheDefaultIsLeftOut) {
    const Json json = exported(
        "default errno ENOSYS\n"
        "errno EPERM: unshare if flags & CLONE_NEWUSER else errno ENOSYS\n");
    ASSERT_EQ(json["syscalls"].size(), 1U);
    EXPECT_EQ(json["syscalls"][0]["args"], masked_eq(0x10000000, 0x10000000));
}

TEST(OciSeccomp, RulesEqualToTheDefaultAreLeftOut) {
    EXPECT_EQ(exported("default allow\nallow: read write\n")["syscalls"], Json::array());
}

TEST(OciSeccomp, EqualConditionsOfTwoSyscallsShareARule) {
    const Json json = exported(
        "default allow\n"
        "errno EPERM: unshare if flags & CLONE_NEWUSER\n"
        "errno EPERM: clone if flags & CLONE_NEWUSER\n");
    ASSERT_EQ(json["syscalls"].size(), 1U);
    EXPECT_EQ(json["syscalls"][0]["names"], Json::array({"clone", "unshare"}));
}

TEST(OciSeccomp, SameBytesEveryTimeAndWhateverTheLineOrder) {
    for (const char* name : {"default", "strict"}) {
        EXPECT_EQ(oci_seccomp_json(builtin(name)), oci_seccomp_json(builtin(name))) << name;
    }
    const std::string a = oci_seccomp_json(
        sandbox::parse_seccomp_profile("default allow\n"
                                       "errno EPERM: mount unshare\n"
                                       "kill: ptrace\n"
                                       "errno EPERM: clone if flags & CLONE_NEWUSER|CLONE_NEWNS\n",
                                       "a"));
    const std::string b = oci_seccomp_json(
        sandbox::parse_seccomp_profile("default allow\n"
                                       "errno EPERM: clone if flags & CLONE_NEWNS|CLONE_NEWUSER\n"
                                       "kill: ptrace\n"
                                       "errno EPERM: unshare\n"
                                       "errno EPERM: mount\n",
                                       "b"));
    EXPECT_EQ(a, b);
}

TEST(OciSeccomp, FileText) {
    const std::string text = oci_seccomp_json(builtin("default"));
    EXPECT_EQ(text.rfind("{\n  \"defaultAction\": \"SCMP_ACT_ALLOW\",\n", 0), 0U) << text;
    ASSERT_FALSE(text.empty());
    EXPECT_EQ(text.back(), '\n');
    EXPECT_EQ(Json::parse(text), oci_seccomp_profile(builtin("default")));
    EXPECT_EQ(oci_seccomp_builtin_json("strict"), oci_seccomp_json(builtin("strict")));
}

TEST(OciSeccomp, UnknownBuiltinNamesTheKnownOnes) {
    try {
        oci_seccomp_builtin_json("nope");
        FAIL() << "no error";
    } catch (const sandbox::ConfigError& e) {
        EXPECT_NE(std::string(e.what()).find("default"), std::string::npos) << e.what();
    }
}

// ---------------------------------------------------------------------------
// What the JSON means to libseccomp.

struct CtxDeleter {
    void operator()(void* ctx) const noexcept { seccomp_release(ctx); }
};
using Ctx = std::unique_ptr<void, CtxDeleter>;

uint32_t action_value(const std::string& name, const Json& errno_ret) {
    if (name == "SCMP_ACT_ALLOW") return SCMP_ACT_ALLOW;
    if (name == "SCMP_ACT_LOG") return SCMP_ACT_LOG;
    if (name == "SCMP_ACT_KILL_PROCESS") return SCMP_ACT_KILL_PROCESS;
    if (name == "SCMP_ACT_ERRNO") return SCMP_ACT_ERRNO(errno_ret.get<uint32_t>());
    ADD_FAILURE() << "unexpected action " << name;
    return SCMP_ACT_KILL;
}

std::vector<unsigned char> export_bpf(void* ctx) {
    sandbox::UniqueFd memfd(memfd_create("oci-seccomp-test", MFD_CLOEXEC));
    EXPECT_TRUE(memfd);
    EXPECT_EQ(seccomp_export_bpf(ctx, memfd.get()), 0);
    struct stat st {};
    fstat(memfd.get(), &st);
    std::vector<unsigned char> bytes(static_cast<std::size_t>(st.st_size));
    EXPECT_EQ(pread(memfd.get(), bytes.data(), bytes.size(), 0),
              static_cast<ssize_t>(bytes.size()));
    return bytes;
}

// What runc 1.1.5's InitSeccomp does with the JSON (and crun 1.8's
// seccomp.c the same way): seccomp_init(defaultAction), each listed
// architecture added, per rule and name seccomp_rule_add with its args,
// rules equal to the default skipped. The bad-architecture action is set to
// ours, KILL_PROCESS, which the runtimes cannot be told (they keep
// libseccomp's KILL_THREAD): every other difference would show.
std::vector<unsigned char> load_like_runc(const Json& json) {
    const uint32_t default_action = action_value(json["defaultAction"].get<std::string>(),
                                                 json.value("defaultErrnoRet", Json(EPERM)));
    Ctx ctx(seccomp_init(default_action));
    EXPECT_EQ(seccomp_attr_set(ctx.get(), SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS), 0);
    for (const Json& arch : json["architectures"]) {
        std::string lower = arch.get<std::string>().substr(10);
        for (char& c : lower)
            c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        const int rc = seccomp_arch_add(ctx.get(), seccomp_arch_resolve_name(lower.c_str()));
        EXPECT_TRUE(rc == 0 || rc == -EEXIST) << rc;
    }
    for (const Json& rule : json["syscalls"]) {
        const uint32_t action =
            action_value(rule["action"].get<std::string>(), rule.value("errnoRet", Json(EPERM)));
        if (action == default_action) continue;
        std::vector<scmp_arg_cmp> args;
        for (const Json& arg : rule.value("args", Json::array())) {
            EXPECT_EQ(arg["op"], "SCMP_CMP_MASKED_EQ");
            args.push_back(scmp_arg_cmp{arg["index"].get<unsigned>(), SCMP_CMP_MASKED_EQ,
                                        arg["value"].get<std::uint64_t>(),
                                        arg["valueTwo"].get<std::uint64_t>()});
        }
        for (const Json& name : rule["names"]) {
            const int nr = seccomp_syscall_resolve_name(name.get<std::string>().c_str());
            EXPECT_NE(nr, __NR_SCMP_ERROR) << name;
            EXPECT_EQ(seccomp_rule_add_array(ctx.get(), action, nr,
                                             static_cast<unsigned>(args.size()), args.data()),
                      0)
                << name << " " << rule.dump();
        }
    }
    return export_bpf(ctx.get());
}

std::vector<unsigned char> ours(const sandbox::SeccompProfile& profile) {
    const sandbox::BpfProgram program = sandbox::compile_seccomp_profile(profile);
    const sock_fprog fprog = program.fprog();
    const auto* bytes = reinterpret_cast<const unsigned char*>(fprog.filter);
    return {bytes, bytes + fprog.len * sizeof(sock_filter)};
}

TEST(OciSeccompMeaning, LoadedLikeRuncItIsOurProgram) {
    for (const char* name : {"default", "strict"}) {
        SCOPED_TRACE(name);
        const auto profile = builtin(name);
        EXPECT_EQ(load_like_runc(oci_seccomp_profile(profile)), ours(profile));
    }
    for (const char* text : {
             "default kill\nallow: read write exit_group\nlog: getpid\nerrno EACCES: openat\n",
             "default errno EPERM\nerrno EPERM: clone if flags & CLONE_NEWNS else allow\n",
             "default log\nkill: unshare if flags & CLONE_NEWUSER|CLONE_NEWNET else errno "
             "EINVAL\n",
         }) {
        SCOPED_TRACE(text);
        const auto profile = sandbox::parse_seccomp_profile(text, "t.profile");
        EXPECT_EQ(load_like_runc(oci_seccomp_profile(profile)), ours(profile));
    }
}

TEST(OciSeccompMeaning, TheComparisonSeesAMissingCondition) {
    // The check above is not blind: clone rules without their args are
    // another program.
    const auto profile = builtin("default");
    Json json = oci_seccomp_profile(profile);
    for (Json& rule : json["syscalls"])
        rule.erase("args");
    EXPECT_NE(load_like_runc(json), ours(profile));
}

}  // namespace
}  // namespace launcher
