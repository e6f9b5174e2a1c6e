#include "sandbox/seccomp.h"

#include <errno.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <utility>

#include "sandbox/builtin_profiles.h"
#include "sandbox/error.h"
#include "sandbox/unique_fd.h"

namespace sandbox {

namespace {

// The errno names a profile may use. Kept to the values a denial plausibly
// returns; anything else is a typo and an error.
struct ErrnoName {
    std::string_view name;
    int value;
};
constexpr ErrnoName kErrnoNames[] = {
    {"EPERM", EPERM},
    {"ENOENT", ENOENT},
    {"ESRCH", ESRCH},
    {"EIO", EIO},
    {"ENXIO", ENXIO},
    {"EBADF", EBADF},
    {"EAGAIN", EAGAIN},
    {"ENOMEM", ENOMEM},
    {"EACCES", EACCES},
    {"EFAULT", EFAULT},
    {"EBUSY", EBUSY},
    {"EEXIST", EEXIST},
    {"EXDEV", EXDEV},
    {"ENODEV", ENODEV},
    {"ENOTDIR", ENOTDIR},
    {"EISDIR", EISDIR},
    {"EINVAL", EINVAL},
    {"EMFILE", EMFILE},
    {"ENOTTY", ENOTTY},
    {"ENOSPC", ENOSPC},
    {"EROFS", EROFS},
    {"ENOSYS", ENOSYS},
    {"ENOTSOCK", ENOTSOCK},
    {"EPROTONOSUPPORT", EPROTONOSUPPORT},
    {"EOPNOTSUPP", EOPNOTSUPP},
    {"ENOTSUP", ENOTSUP},
    {"EAFNOSUPPORT", EAFNOSUPPORT},
    {"ECONNREFUSED", ECONNREFUSED},
};

std::optional<int> errno_from_name(std::string_view name) {
    for (const auto& entry : kErrnoNames) {
        if (entry.name == name) return entry.value;
    }
    return std::nullopt;
}

std::string errno_name(int value) {
    // ENOTSUP == EOPNOTSUPP on Linux; the first match is the canonical name.
    for (const auto& entry : kErrnoNames) {
        if (entry.value == value) return std::string(entry.name);
    }
    return std::to_string(value);
}

std::string describe(const SeccompAction& action) {
    switch (action.kind) {
        case SeccompActionKind::kAllow:
            return "allow";
        case SeccompActionKind::kLog:
            return "log";
        case SeccompActionKind::kKillProcess:
            return "kill";
        case SeccompActionKind::kErrno:
            return "errno " + errno_name(action.errno_value);
    }
    return "?";
}

// The flags a condition may test: the namespace flags, which is what a
// condition is for. Values from <linux/sched.h>; glibc's <sched.h> must agree.
struct CloneFlagName {
    std::string_view name;
    std::uint64_t bit;
};
constexpr CloneFlagName kCloneFlags[] = {
    {"CLONE_NEWNS", 0x00020000},  {"CLONE_NEWCGROUP", 0x02000000}, {"CLONE_NEWUTS", 0x04000000},
    {"CLONE_NEWIPC", 0x08000000}, {"CLONE_NEWUSER", 0x10000000},   {"CLONE_NEWPID", 0x20000000},
    {"CLONE_NEWNET", 0x40000000}, {"CLONE_NEWTIME", 0x00000080},
};
static_assert(CLONE_NEWNS == 0x00020000 && CLONE_NEWCGROUP == 0x02000000 &&
              CLONE_NEWUTS == 0x04000000 && CLONE_NEWIPC == 0x08000000 &&
              CLONE_NEWUSER == 0x10000000 && CLONE_NEWPID == 0x20000000 &&
              CLONE_NEWNET == 0x40000000);
#ifdef CLONE_NEWTIME
static_assert(CLONE_NEWTIME == 0x00000080);
#endif
// clone(2)'s low byte is the exit signal (CSIGNAL), not flags: the kernel
// takes flags as lower_32_bits(arg) & ~CSIGNAL, so CLONE_NEWTIME (0x80) cannot
// be asked for through clone, only through clone3 and unshare.
constexpr std::uint64_t kCloneExitSignalMask = 0xff;

std::optional<std::uint64_t> clone_flag_from_name(std::string_view name) {
    for (const auto& entry : kCloneFlags) {
        if (entry.name == name) return entry.bit;
    }
    return std::nullopt;
}

std::string known_clone_flags() {
    std::string known;
    for (const auto& entry : kCloneFlags) {
        if (!known.empty()) known += ", ";
        known += entry.name;
    }
    return known;
}

// The syscalls whose argument 0 is a flags word a condition can test.
bool has_testable_flags(std::string_view syscall) {
    return syscall == "clone" || syscall == "unshare";
}

// " if flags & CLONE_NEWNS|CLONE_NEWUSER else allow", "" for none; for messages.
std::string describe(const std::optional<SeccompFlagsCondition>& condition) {
    if (!condition) return "";
    std::string text = " if flags & ";
    for (std::size_t i = 0; i < condition->flag_names.size(); ++i) {
        if (i != 0) text += "|";
        text += condition->flag_names[i];
    }
    if (condition->otherwise) text += " else " + describe(*condition->otherwise);
    return text;
}

// "errno EPERM if flags & CLONE_NEWUSER": what a line says about one syscall.
std::string describe(const SeccompRule& rule) {
    return describe(rule.action) + describe(rule.condition);
}

uint32_t to_libseccomp(const SeccompAction& action) {
    switch (action.kind) {
        case SeccompActionKind::kAllow:
            return SCMP_ACT_ALLOW;
        case SeccompActionKind::kLog:
            return SCMP_ACT_LOG;
        case SeccompActionKind::kKillProcess:
            return SCMP_ACT_KILL_PROCESS;
        case SeccompActionKind::kErrno:
            return SCMP_ACT_ERRNO(static_cast<uint32_t>(action.errno_value));
    }
    return SCMP_ACT_KILL_PROCESS;
}

constexpr std::string_view kSpace = " \t\r\v\f";

std::string_view trim(std::string_view s) {
    const auto first = s.find_first_not_of(kSpace);
    if (first == std::string_view::npos) return {};
    const auto last = s.find_last_not_of(kSpace);
    return s.substr(first, last - first + 1);
}

std::vector<std::string_view> split_words(std::string_view s) {
    std::vector<std::string_view> words;
    std::size_t pos = 0;
    while (true) {
        const auto start = s.find_first_not_of(kSpace, pos);
        if (start == std::string_view::npos) break;
        auto end = s.find_first_of(kSpace, start);
        if (end == std::string_view::npos) end = s.size();
        words.push_back(s.substr(start, end - start));
        pos = end;
    }
    return words;
}

// Builds "<source>:<line>: <message>" errors.
class LineErrors {
public:
    LineErrors(std::string_view source, int line) : source_(source), line_(line) {}
    [[noreturn]] void fail(const std::string& message) const {
        throw ProfileError(std::string(source_) + ":" + std::to_string(line_) + ": " + message);
    }

private:
    std::string_view source_;
    int line_;
};

// `words` is what precedes ':' on a rule line, or follows `default`.
SeccompAction parse_action(const std::vector<std::string_view>& words, const LineErrors& err) {
    if (words.empty()) err.fail("missing action (allow, log, kill or errno <NAME>)");
    const std::string_view verb = words[0];
    SeccompAction action;
    std::size_t used = 1;
    if (verb == "allow") {
        action.kind = SeccompActionKind::kAllow;
    } else if (verb == "log") {
        action.kind = SeccompActionKind::kLog;
    } else if (verb == "kill") {
        action.kind = SeccompActionKind::kKillProcess;
    } else if (verb == "errno") {
        if (words.size() < 2) err.fail("'errno' needs an errno name, e.g. 'errno EPERM'");
        const auto value = errno_from_name(words[1]);
        if (!value) err.fail("unknown errno name '" + std::string(words[1]) + "'");
        action.kind = SeccompActionKind::kErrno;
        action.errno_value = *value;
        used = 2;
    } else {
        err.fail("unknown action '" + std::string(verb) +
                 "' (expected allow, log, kill or errno <NAME>)");
    }
    if (words.size() > used) {
        err.fail("unexpected '" + std::string(words[used]) + "' after action '" + describe(action) +
                 "'");
    }
    return action;
}

bool is_word_char(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

// The words ([A-Za-z0-9_]+) and operators ('&', '|') of what follows `if`.
std::vector<std::string_view> condition_tokens(std::string_view text, const LineErrors& err) {
    std::vector<std::string_view> tokens;
    std::size_t i = 0;
    while (i < text.size()) {
        const char c = text[i];
        if (kSpace.find(c) != std::string_view::npos) {
            ++i;
        } else if (c == '&' || c == '|') {
            tokens.push_back(text.substr(i, 1));
            ++i;
        } else if (is_word_char(c)) {
            std::size_t end = i;
            while (end < text.size() && is_word_char(text[end]))
                ++end;
            tokens.push_back(text.substr(i, end - i));
            i = end;
        } else {
            err.fail("unexpected '" + std::string(1, c) + "' in the condition");
        }
    }
    return tokens;
}

// `text` follows `<action>: <syscall> if`; grammar:
//   flags & FLAG [| FLAG]... [else <action>]
SeccompFlagsCondition parse_condition(std::string_view syscall, std::string_view text,
                                      const SeccompAction& action, const LineErrors& err) {
    const std::vector<std::string_view> tokens = condition_tokens(text, err);
    if (tokens.empty()) err.fail("'if' needs a condition, e.g. 'if flags & CLONE_NEWUSER'");
    if (tokens[0] != "flags") {
        err.fail("unknown argument '" + std::string(tokens[0]) +
                 "' (a condition tests 'flags', e.g. 'if flags & CLONE_NEWUSER')");
    }
    if (tokens.size() < 2 || tokens[1] != "&") err.fail("expected '&' after 'flags'");

    SeccompFlagsCondition condition;
    std::size_t at = 2;
    while (true) {
        const std::string_view name = at < tokens.size() ? tokens[at] : std::string_view{};
        if (name.empty() || name == "&" || name == "|" || name == "else") {
            err.fail(condition.flag_names.empty() ? "empty flag list after 'flags &'"
                                                  : "'|' must be followed by a flag name");
        }
        const auto bit = clone_flag_from_name(name);
        if (!bit) {
            err.fail("unknown flag '" + std::string(name) + "' (known: " + known_clone_flags() +
                     ")");
        }
        if (syscall == "clone" && (*bit & kCloneExitSignalMask) != 0) {
            err.fail(std::string(name) +
                     " cannot be tested on clone: its bit is in clone's exit-signal byte, and "
                     "only clone3 and unshare can create that namespace");
        }
        if ((condition.any_of & *bit) != 0)
            err.fail("flag '" + std::string(name) + "' named twice");
        condition.flag_names.emplace_back(name);
        condition.any_of |= *bit;
        ++at;
        if (at < tokens.size() && tokens[at] == "|") {
            ++at;
            continue;
        }
        break;
    }

    if (at == tokens.size()) return condition;
    if (tokens[at] != "else") {
        err.fail("unexpected '" + std::string(tokens[at]) +
                 "' after the flag list (expected '|', 'else <action>' or the end of the line)");
    }
    ++at;
    if (at == tokens.size()) err.fail("'else' needs an action (allow, log, kill or errno <NAME>)");
    const std::vector<std::string_view> words(tokens.begin() + static_cast<std::ptrdiff_t>(at),
                                              tokens.end());
    const SeccompAction otherwise = parse_action(words, err);
    if (otherwise == action) {
        err.fail("'else " + describe(otherwise) + "' is the rule's own action: drop the condition");
    }
    condition.otherwise = otherwise;
    return condition;
}

// Deletes a libseccomp filter context.
struct ScmpCtxDeleter {
    void operator()(void* ctx) const noexcept { seccomp_release(ctx); }
};
using ScmpCtx = std::unique_ptr<void, ScmpCtxDeleter>;

void set_attr(const ScmpCtx& ctx, scmp_filter_attr attr, uint32_t value, std::string_view what,
              std::string_view source) {
    const int rc = seccomp_attr_set(ctx.get(), attr, value);
    if (rc < 0) {
        throw_sys_error(-rc, "seccomp_attr_set " + std::string(what) + " for", source);
    }
}

// What SCMP_A0(SCMP_CMP_MASKED_EQ, mask, value) builds: "(arg0 & mask) ==
// value". Written out because the macro is a C compound literal, which
// -Wpedantic rejects in C++.
scmp_arg_cmp arg0_masked_eq(std::uint64_t mask, std::uint64_t value) {
    return scmp_arg_cmp{0, SCMP_CMP_MASKED_EQ, mask, value};
}

void add_to_filter(const ScmpCtx& ctx, const SeccompAction& action, int nr,
                   const scmp_arg_cmp* condition, const std::string& where,
                   const std::string& rule_text) {
    const int rc = seccomp_rule_add_array(ctx.get(), to_libseccomp(action), nr,
                                          condition != nullptr ? 1U : 0U, condition);
    if (rc < 0) {
        throw ProfileError(where + "cannot add rule '" + rule_text + "': " + std::strerror(-rc) +
                           " (errno " + std::to_string(-rc) + ")");
    }
}

// One rule per flag bit, "(flags & bit) == bit", so that ANY of the bits
// selects the action (libseccomp ORs rules of one syscall and action), and
// for `else` one rule "(flags & all bits) == 0": the two sets of calls are
// disjoint, so no precedence between actions is involved.
void add_conditional_rules(const ScmpCtx& ctx, const SeccompProfile& profile,
                           const SeccompRule& rule, int nr, const std::string& where) {
    // clone's flags are argument 0 everywhere except s390 and s390x, whose
    // kernel (CONFIG_CLONE_BACKWARDS2 in kernel/fork.c) takes the stack
    // pointer first. Checked against kernel/fork.c for the default,
    // CLONE_BACKWARDS (i386, arm, ppc, ...) and CLONE_BACKWARDS3 (microblaze)
    // signatures; x86_64 and aarch64 use flags-first ones, and x86_64 is what
    // the tests run on. unshare's flags are argument 0 on every architecture.
    // Rather than test the stack pointer, refuse on s390.
    const uint32_t arch = seccomp_arch_native();
    if (rule.syscall == "clone" && (arch == SCMP_ARCH_S390 || arch == SCMP_ARCH_S390X)) {
        throw ProfileError(where +
                           "a condition on clone is not supported on s390/s390x (its flags are "
                           "argument 1 there)");
    }
    const SeccompFlagsCondition& condition = *rule.condition;
    const std::string text = describe(rule.action) + ": " + rule.syscall + describe(rule.condition);
    if (rule.action != profile.default_action) {
        for (int i = 0; i < 64; ++i) {
            const std::uint64_t bit = std::uint64_t{1} << i;
            if ((condition.any_of & bit) == 0) continue;
            const scmp_arg_cmp has_bit = arg0_masked_eq(bit, bit);
            add_to_filter(ctx, rule.action, nr, &has_bit, where, text);
        }
    }
    if (condition.otherwise && *condition.otherwise != profile.default_action) {
        const scmp_arg_cmp has_none = arg0_masked_eq(condition.any_of, 0);
        add_to_filter(ctx, *condition.otherwise, nr, &has_none, where, text);
    }
}

}  // namespace

sock_fprog BpfProgram::fprog() const noexcept {
    // A program longer than the kernel accepts cannot be described without
    // truncating it (len is 16 bits); hand out an empty one instead, which
    // seccomp(2) rejects with EINVAL rather than installing half a filter.
    if (instructions_.size() > BPF_MAXINSNS) return sock_fprog{0, nullptr};
    return sock_fprog{static_cast<unsigned short>(instructions_.size()),
                      const_cast<sock_filter*>(instructions_.data())};
}

SeccompProfile parse_seccomp_profile(std::string_view text, std::string_view source) {
    SeccompProfile profile;
    profile.source = std::string(source);
    int default_line = 0;
    // syscall name -> index into profile.rules, to catch conflicting actions.
    std::map<std::string, std::size_t, std::less<>> seen;
    // Keeps one rule per syscall; see the format comment in seccomp.h for
    // which combinations of lines are errors.
    auto add_rule = [&](SeccompRule rule, const LineErrors& err) {
        const auto it = seen.find(rule.syscall);
        if (it == seen.end()) {
            seen.emplace(rule.syscall, profile.rules.size());
            profile.rules.push_back(std::move(rule));
            return;
        }
        SeccompRule& first = profile.rules[it->second];
        if (rule.condition && first.condition) {
            err.fail("syscall '" + rule.syscall + "' already has a condition on line " +
                     std::to_string(first.line) + " (list every flag on that line)");
        }
        const SeccompRule* conditional = rule.condition    ? &rule
                                         : first.condition ? &first
                                                           : nullptr;
        const bool agree = rule.action == first.action &&
                           (conditional == nullptr || !conditional->condition->otherwise);
        if (!agree) {
            err.fail("syscall '" + rule.syscall + "' is '" + describe(rule) + "' here but '" +
                     describe(first) + "' on line " + std::to_string(first.line));
        }
        // Same action: a harmless repetition, or a condition that the
        // unconditional rule already covers (keep the unconditional one).
        if (first.condition) first = std::move(rule);
    };

    int line_no = 0;
    std::size_t pos = 0;
    while (pos <= text.size()) {
        auto end = text.find('\n', pos);
        if (end == std::string_view::npos) end = text.size();
        std::string_view line = text.substr(pos, end - pos);
        pos = end + 1;
        ++line_no;
        if (end == text.size() && line.empty()) break;

        if (const auto hash = line.find('#'); hash != std::string_view::npos) {
            line = line.substr(0, hash);
        }
        line = trim(line);
        if (line.empty()) continue;
        const LineErrors err(source, line_no);

        const auto colon = line.find(':');
        if (colon == std::string_view::npos) {
            auto words = split_words(line);
            if (words[0] != "default") {
                err.fail("expected 'default <action>' or '<action>: syscall ...', got '" +
                         std::string(line) + "'");
            }
            if (default_line != 0) {
                err.fail("duplicate 'default' (first on line " + std::to_string(default_line) +
                         ")");
            }
            words.erase(words.begin());
            profile.default_action = parse_action(words, err);
            default_line = line_no;
            continue;
        }

        const auto action_words = split_words(line.substr(0, colon));
        if (!action_words.empty() && action_words[0] == "default") {
            err.fail("'default' takes no ':' (write 'default <action>')");
        }
        const SeccompAction action = parse_action(action_words, err);
        const std::string_view rest = line.substr(colon + 1);
        if (rest.find(':') != std::string_view::npos) err.fail("more than one ':' on the line");

        const std::vector<std::string_view> words = split_words(rest);
        const auto if_word = std::find(words.begin(), words.end(), std::string_view("if"));
        if (if_word != words.end()) {
            if (if_word == words.begin()) {
                err.fail("'if' needs a syscall before it (clone or unshare)");
            }
            if (if_word - words.begin() > 1) {
                err.fail("a condition applies to one syscall: give '" + std::string(words[1]) +
                         "' a line of its own");
            }
        }
        for (auto name = words.begin(); name != if_word; ++name) {
            SeccompRule rule;
            rule.syscall = std::string(*name);
            rule.action = action;
            rule.line = line_no;
            // __NR_SCMP_ERROR means the name exists on no architecture; a
            // negative pseudo number (e.g. "open" on aarch64) is a syscall the
            // native architecture lacks, which libseccomp skips when adding.
            if (seccomp_syscall_resolve_name(rule.syscall.c_str()) == __NR_SCMP_ERROR) {
                err.fail("unknown syscall '" + rule.syscall + "'");
            }
            if (if_word != words.end()) {
                if (!has_testable_flags(rule.syscall)) {
                    err.fail("a condition can only test the flags of clone or unshare, not '" +
                             rule.syscall + "'");
                }
                const auto after_if = static_cast<std::size_t>(if_word->data() - rest.data()) + 2;
                rule.condition = parse_condition(rule.syscall, rest.substr(after_if), action, err);
            }
            add_rule(std::move(rule), err);
        }
    }

    if (default_line == 0) throw ProfileError(std::string(source) + ": no 'default' line");
    return profile;
}

BpfProgram compile_seccomp_profile(const SeccompProfile& profile) {
    const uint32_t default_action = to_libseccomp(profile.default_action);
    ScmpCtx ctx(seccomp_init(default_action));
    if (!ctx) {
        // seccomp_init fails for an action this kernel or libseccomp lacks
        // (e.g. `log` before Linux 4.14), or on ENOMEM.
        throw ProfileError(profile.source + ": libseccomp rejected default action '" +
                           describe(profile.default_action) + "'");
    }
    // Return kernel errnos rather than libseccomp's catch-all ECANCELED.
    set_attr(ctx, SCMP_FLTATR_API_SYSRAWRC, 1, "API_SYSRAWRC", profile.source);
    // The child sets no_new_privs itself right before seccomp(2); this is only
    // the program, never loaded here.
    set_attr(ctx, SCMP_FLTATR_CTL_NNP, 0, "CTL_NNP", profile.source);
    // A syscall made through another ABI (i386 via int $0x80, x32 numbers with
    // bit 30 set) would otherwise match none of the native-numbered rules:
    // kill the whole process instead of the default KILL_THREAD.
    set_attr(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS, "ACT_BADARCH", profile.source);

    for (const SeccompRule& rule : profile.rules) {
        const int nr = seccomp_syscall_resolve_name(rule.syscall.c_str());
        const auto where = profile.source + ":" + std::to_string(rule.line) + ": ";
        if (nr == __NR_SCMP_ERROR)
            throw ProfileError(where + "unknown syscall '" + rule.syscall + "'");
        if (rule.condition) {
            add_conditional_rules(ctx, profile, rule, nr, where);
            continue;
        }
        // libseccomp refuses (EACCES) a rule that repeats the default action;
        // the default already covers it.
        if (rule.action == profile.default_action) continue;
        add_to_filter(ctx, rule.action, nr, nullptr, where,
                      describe(rule.action) + ": " + rule.syscall);
    }

    UniqueFd memfd(memfd_create("seccomp-bpf", MFD_CLOEXEC));
    if (!memfd) throw_sys_error(errno, "memfd_create seccomp-bpf for", profile.source);
    if (const int rc = seccomp_export_bpf(ctx.get(), memfd.get()); rc < 0) {
        throw_sys_error(-rc, "seccomp_export_bpf", profile.source);
    }

    struct stat st {};
    if (fstat(memfd.get(), &st) != 0)
        throw_sys_error(errno, "fstat seccomp-bpf memfd for", profile.source);
    const auto bytes = static_cast<std::size_t>(st.st_size);
    if (bytes == 0 || bytes % sizeof(sock_filter) != 0) {
        throw ProfileError(profile.source + ": libseccomp exported " + std::to_string(bytes) +
                           " bytes, not a whole number of BPF instructions");
    }
    const std::size_t count = bytes / sizeof(sock_filter);
    if (count > BPF_MAXINSNS) {
        throw ProfileError(profile.source + ": filter has " + std::to_string(count) +
                           " BPF instructions, more than the kernel's limit of " +
                           std::to_string(BPF_MAXINSNS));
    }

    std::vector<sock_filter> instructions(count);
    auto* out = reinterpret_cast<char*>(instructions.data());
    std::size_t done = 0;
    while (done < bytes) {
        const ssize_t n = pread(memfd.get(), out + done, bytes - done, static_cast<off_t>(done));
        if (n < 0) {
            if (errno == EINTR) continue;
            throw_sys_error(errno, "read seccomp-bpf memfd for", profile.source);
        }
        if (n == 0) {
            throw ProfileError(profile.source + ": seccomp-bpf memfd ended after " +
                               std::to_string(done) + " of " + std::to_string(bytes) + " bytes");
        }
        done += static_cast<std::size_t>(n);
    }
    return BpfProgram(std::move(instructions));
}

std::vector<std::string> builtin_profile_names() {
    std::vector<std::string> names;
    names.reserve(detail::kBuiltinProfileCount);
    for (std::size_t i = 0; i < detail::kBuiltinProfileCount; ++i) {
        names.emplace_back(detail::kBuiltinProfiles[i].name);
    }
    return names;
}

std::string_view builtin_profile_text(std::string_view name) {
    for (std::size_t i = 0; i < detail::kBuiltinProfileCount; ++i) {
        if (detail::kBuiltinProfiles[i].name == name) return detail::kBuiltinProfiles[i].text;
    }
    std::string known;
    for (const auto& known_name : builtin_profile_names()) {
        if (!known.empty()) known += ", ";
        known += known_name;
    }
    throw ConfigError("unknown seccomp profile '" + std::string(name) + "' (known: " + known + ")");
}

BpfProgram compile_builtin_profile(std::string_view name) {
    const std::string_view text = builtin_profile_text(name);
    return compile_seccomp_profile(parse_seccomp_profile(text, "builtin:" + std::string(name)));
}

}  // namespace sandbox
