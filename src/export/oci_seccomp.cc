#include "export/oci_seccomp.h"

#include <seccomp.h>

#include <cctype>
#include <cstdint>
#include <map>
#include <set>
#include <tuple>
#include <utility>
#include <vector>

namespace launcher {

namespace {

using sandbox::SeccompAction;
using sandbox::SeccompActionKind;
using sandbox::SeccompProfile;
using sandbox::SeccompRule;

// The runtime-spec's names, in the order the spec lists them. Each is
// matched against libseccomp's token for the native architecture through
// seccomp_arch_resolve_name (lowercase, without the prefix), as crun reads
// them, so no token constant is written down twice.
constexpr std::string_view kOciArchitectures[] = {
    "SCMP_ARCH_X86",     "SCMP_ARCH_X86_64",   "SCMP_ARCH_X32",         "SCMP_ARCH_ARM",
    "SCMP_ARCH_AARCH64", "SCMP_ARCH_MIPS",     "SCMP_ARCH_MIPS64",      "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL",  "SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64",   "SCMP_ARCH_PPC64LE",  "SCMP_ARCH_S390",        "SCMP_ARCH_S390X",
    "SCMP_ARCH_PARISC",  "SCMP_ARCH_PARISC64", "SCMP_ARCH_RISCV64",
};

std::string native_architecture(const SeccompProfile& profile) {
    const uint32_t native = seccomp_arch_native();
    for (const std::string_view name : kOciArchitectures) {
        std::string lower(name.substr(std::string_view("SCMP_ARCH_").size()));
        for (char& c : lower)
            c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        if (seccomp_arch_resolve_name(lower.c_str()) == native) return std::string(name);
    }
    throw sandbox::ProfileError(profile.source + ": the native architecture (libseccomp token " +
                                std::to_string(native) + ") has no OCI runtime-spec name");
}

std::string_view action_name(const SeccompAction& action) {
    switch (action.kind) {
        case SeccompActionKind::kAllow:
            return "SCMP_ACT_ALLOW";
        case SeccompActionKind::kLog:
            return "SCMP_ACT_LOG";
        case SeccompActionKind::kKillProcess:
            // Not SCMP_ACT_KILL: runc and crun read that as KILL_THREAD.
            return "SCMP_ACT_KILL_PROCESS";
        case SeccompActionKind::kErrno:
            return "SCMP_ACT_ERRNO";
    }
    return "SCMP_ACT_KILL_PROCESS";
}

// "(arg0 & mask) == datum": the runtime-spec's `value` is the mask and
// `valueTwo` the datum for SCMP_CMP_MASKED_EQ, as in libseccomp's SCMP_A0.
struct MaskedEq {
    std::uint64_t mask = 0;
    std::uint64_t datum = 0;
    auto operator<=>(const MaskedEq&) const = default;
};

// What one OCI rule says apart from its names; rules with equal keys share
// one entry. The order of the members is the order of the output.
struct RuleKey {
    bool has_args = false;
    int action_rank = 0;  // allow, log, errno, kill
    int errno_value = 0;
    std::vector<MaskedEq> args;  // all on argument 0, ANDed (at most one here)
    auto operator<=>(const RuleKey&) const = default;
};

int action_rank(const SeccompAction& action) {
    switch (action.kind) {
        case SeccompActionKind::kAllow:
            return 0;
        case SeccompActionKind::kLog:
            return 1;
        case SeccompActionKind::kErrno:
            return 2;
        case SeccompActionKind::kKillProcess:
            return 3;
    }
    return 3;
}

RuleKey key_for(const SeccompAction& action, std::vector<MaskedEq> args) {
    RuleKey key;
    key.has_args = !args.empty();
    key.action_rank = action_rank(action);
    key.errno_value = action.kind == SeccompActionKind::kErrno ? action.errno_value : 0;
    key.args = std::move(args);
    return key;
}

struct RuleGroup {
    SeccompAction action;
    std::set<std::string> names;
};
using RuleGroups = std::map<RuleKey, RuleGroup>;

void add(RuleGroups& groups, const std::string& name, const SeccompAction& action,
         std::vector<MaskedEq> args) {
    RuleGroup& group = groups[key_for(action, std::move(args))];
    group.action = action;
    group.names.insert(name);
}

// The same rules add_conditional_rules (sandbox/seccomp.cc) gives libseccomp:
// one per flag bit, so that ANY bit selects the action (separate rules for one
// syscall are ORed; args within one rule are ANDed, so the bits cannot share
// a rule), and for `else` one that matches calls with none of the bits. The
// two sets of calls are disjoint, so no precedence between actions matters.
void add_conditional(RuleGroups& groups, const SeccompProfile& profile, const SeccompRule& rule) {
    const uint32_t arch = seccomp_arch_native();
    if (rule.syscall == "clone" && (arch == SCMP_ARCH_S390 || arch == SCMP_ARCH_S390X)) {
        throw sandbox::ProfileError(profile.source + ":" + std::to_string(rule.line) +
                                    ": a condition on clone is not supported on s390/s390x (its "
                                    "flags are argument 1 there)");
    }
    const sandbox::SeccompFlagsCondition& condition = *rule.condition;
    if (rule.action != profile.default_action) {
        for (int i = 0; i < 64; ++i) {
            const std::uint64_t bit = std::uint64_t{1} << i;
            if ((condition.any_of & bit) != 0) add(groups, rule.syscall, rule.action, {{bit, bit}});
        }
    }
    if (condition.otherwise && *condition.otherwise != profile.default_action) {
        add(groups, rule.syscall, *condition.otherwise, {{condition.any_of, 0}});
    }
}

nlohmann::ordered_json rule_json(const RuleKey& key, const RuleGroup& group) {
    nlohmann::ordered_json rule;
    rule["names"] = group.names;  // std::set: sorted
    rule["action"] = action_name(group.action);
    if (group.action.kind == SeccompActionKind::kErrno) rule["errnoRet"] = group.action.errno_value;
    if (key.has_args) {
        nlohmann::ordered_json args = nlohmann::ordered_json::array();
        for (const MaskedEq& arg : key.args) {
            args.push_back({{"index", 0},
                            {"value", arg.mask},
                            {"valueTwo", arg.datum},
                            {"op", "SCMP_CMP_MASKED_EQ"}});
        }
        rule["args"] = std::move(args);
    }
    return rule;
}

}  // namespace

nlohmann::ordered_json oci_seccomp_profile(const SeccompProfile& profile) {
    RuleGroups groups;
    for (const SeccompRule& rule : profile.rules) {
        if (rule.condition) {
            add_conditional(groups, profile, rule);
        } else if (rule.action != profile.default_action) {
            // runc and crun skip such a rule too; libseccomp would refuse it.
            add(groups, rule.syscall, rule.action, {});
        }
    }

    nlohmann::ordered_json out;
    out["defaultAction"] = action_name(profile.default_action);
    if (profile.default_action.kind == SeccompActionKind::kErrno) {
        out["defaultErrnoRet"] = profile.default_action.errno_value;
    }
    out["architectures"] = nlohmann::ordered_json::array({native_architecture(profile)});
    nlohmann::ordered_json syscalls = nlohmann::ordered_json::array();
    for (const auto& [key, group] : groups)
        syscalls.push_back(rule_json(key, group));
    out["syscalls"] = std::move(syscalls);
    return out;
}

std::string oci_seccomp_json(const SeccompProfile& profile) {
    return oci_seccomp_profile(profile).dump(2) + "\n";
}

std::string oci_seccomp_builtin_json(std::string_view name) {
    const std::string_view text = sandbox::builtin_profile_text(name);
    return oci_seccomp_json(sandbox::parse_seccomp_profile(text, "builtin:" + std::string(name)));
}

}  // namespace launcher
