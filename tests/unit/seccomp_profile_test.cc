#include <errno.h>
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sandbox/error.h"
#include "sandbox/seccomp.h"

namespace sandbox {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// what() of the ProfileError that parsing `text` raises, or "" if none.
std::string parse_error(std::string_view text, std::string_view source = "t.profile") {
    try {
        parse_seccomp_profile(text, source);
    } catch (const ProfileError& e) {
        return e.what();
    }
    return "";
}

SeccompAction errno_action(int value) {
    return {SeccompActionKind::kErrno, value};
}

constexpr SeccompAction kAllow{SeccompActionKind::kAllow, 0};

// ---------------------------------------------------------------------------
// Parser

TEST(SeccompParse, DefaultAndRules) {
    const auto p = parse_seccomp_profile(
        "default errno EPERM\n"
        "allow: read write\n"
        "kill: ptrace\n"
        "log: mkdirat\n"
        "errno EACCES: openat\n",
        "my.profile");
    EXPECT_EQ(p.source, "my.profile");
    EXPECT_EQ(p.default_action, errno_action(EPERM));
    ASSERT_EQ(p.rules.size(), 5u);
    EXPECT_EQ(p.rules[0].syscall, "read");
    EXPECT_EQ(p.rules[0].action, kAllow);
    EXPECT_EQ(p.rules[0].line, 2);
    EXPECT_EQ(p.rules[1].syscall, "write");
    EXPECT_EQ(p.rules[1].line, 2);
    EXPECT_EQ(p.rules[2].syscall, "ptrace");
    EXPECT_EQ(p.rules[2].action.kind, SeccompActionKind::kKillProcess);
    EXPECT_EQ(p.rules[3].action.kind, SeccompActionKind::kLog);
    EXPECT_EQ(p.rules[4].syscall, "openat");
    EXPECT_EQ(p.rules[4].action, errno_action(EACCES));
    EXPECT_EQ(p.rules[4].line, 5);
}

TEST(SeccompParse, CommentsAndWhitespace) {
    const auto p = parse_seccomp_profile(
        "# leading comment\n"
        "\n"
        "   \t\n"
        "  default   allow   # trailing comment\r\n"
        "errno   ENOSYS :  clone3\t # why\n"
        "allow:read   write#no space before the comment\n"
        "  # errno EPERM: ptrace  (commented out)\n"
        "errno EPERM:",  // no final newline, no names
        "ws");
    EXPECT_EQ(p.default_action, kAllow);
    ASSERT_EQ(p.rules.size(), 3u);
    EXPECT_EQ(p.rules[0].syscall, "clone3");
    EXPECT_EQ(p.rules[0].action, errno_action(ENOSYS));
    EXPECT_EQ(p.rules[0].line, 5);
    EXPECT_EQ(p.rules[1].syscall, "read");
    EXPECT_EQ(p.rules[2].syscall, "write");
    EXPECT_EQ(p.rules[2].line, 6);
}

TEST(SeccompParse, EmptyRuleListIsFine) {
    const auto p = parse_seccomp_profile("default kill\n", "empty");
    EXPECT_EQ(p.default_action.kind, SeccompActionKind::kKillProcess);
    EXPECT_TRUE(p.rules.empty());
}

TEST(SeccompParse, RepeatingASyscallWithTheSameActionKeepsTheFirst) {
    const auto p =
        parse_seccomp_profile("default allow\nerrno EPERM: ptrace bpf\nerrno EPERM: ptrace\n", "t");
    ASSERT_EQ(p.rules.size(), 2u);
    EXPECT_EQ(p.rules[0].syscall, "ptrace");
    EXPECT_EQ(p.rules[0].line, 2);
}

TEST(SeccompParse, ErrnoNames) {
    const std::pair<const char*, int> names[] = {
        {"EPERM", EPERM},     {"EACCES", EACCES},
        {"ENOSYS", ENOSYS},   {"EINVAL", EINVAL},
        {"ENOENT", ENOENT},   {"EOPNOTSUPP", EOPNOTSUPP},
        {"ENOTSUP", ENOTSUP}, {"EAGAIN", EAGAIN},
        {"EBUSY", EBUSY},     {"EFAULT", EFAULT},
        {"ENOMEM", ENOMEM},   {"ENODEV", ENODEV},
        {"EROFS", EROFS},     {"ENOTTY", ENOTTY},
        {"EIO", EIO},         {"EAFNOSUPPORT", EAFNOSUPPORT},
    };
    for (const auto& [name, value] : names) {
        const auto p = parse_seccomp_profile(std::string("default errno ") + name + "\n", "t");
        EXPECT_EQ(p.default_action, errno_action(value)) << name;
    }
}

TEST(SeccompParse, UnknownSyscall) {
    EXPECT_EQ(parse_error("default allow\n\nerrno EPERM: ptrace foo bpf\n"),
              "t.profile:3: unknown syscall 'foo'");
}

TEST(SeccompParse, UnknownAction) {
    EXPECT_THAT(parse_error("default allow\ndeny: ptrace\n"),
                StartsWith("t.profile:2: unknown action 'deny'"));
    EXPECT_THAT(parse_error("default deny\n"), StartsWith("t.profile:1: unknown action 'deny'"));
    EXPECT_THAT(parse_error("default\n"), StartsWith("t.profile:1: missing action"));
    EXPECT_THAT(parse_error("default allow\n: ptrace\n"),
                StartsWith("t.profile:2: missing action"));
}

TEST(SeccompParse, BadErrnoName) {
    EXPECT_EQ(parse_error("default allow\nerrno EFOO: ptrace\n"),
              "t.profile:2: unknown errno name 'EFOO'");
    // Names are case-sensitive, numbers are not names.
    EXPECT_EQ(parse_error("default errno eperm\n"), "t.profile:1: unknown errno name 'eperm'");
    EXPECT_EQ(parse_error("default errno 1\n"), "t.profile:1: unknown errno name '1'");
    EXPECT_THAT(parse_error("default allow\nerrno: ptrace\n"),
                StartsWith("t.profile:2: 'errno' needs an errno name"));
}

TEST(SeccompParse, TrailingWordsAfterAction) {
    EXPECT_EQ(parse_error("default allow extra\n"),
              "t.profile:1: unexpected 'extra' after action 'allow'");
    EXPECT_EQ(parse_error("default allow\nerrno EPERM EACCES: ptrace\n"),
              "t.profile:2: unexpected 'EACCES' after action 'errno EPERM'");
}

TEST(SeccompParse, MalformedLines) {
    EXPECT_THAT(parse_error("default allow\nread write\n"),
                StartsWith("t.profile:2: expected 'default <action>' or '<action>: syscall ...'"));
    EXPECT_THAT(parse_error("default: allow\n"), StartsWith("t.profile:1: 'default' takes no ':'"));
    EXPECT_EQ(parse_error("default allow\nallow: read: write\n"),
              "t.profile:2: more than one ':' on the line");
}

TEST(SeccompParse, MissingDefault) {
    EXPECT_EQ(parse_error("allow: read\n", "builtin:x"), "builtin:x: no 'default' line");
    EXPECT_EQ(parse_error(""), "t.profile: no 'default' line");
    EXPECT_EQ(parse_error("# only a comment\n"), "t.profile: no 'default' line");
}

TEST(SeccompParse, DuplicateDefault) {
    EXPECT_EQ(parse_error("default allow\nallow: read\ndefault allow\n"),
              "t.profile:3: duplicate 'default' (first on line 1)");
}

TEST(SeccompParse, SameSyscallWithTwoActionsNamesBothLines) {
    EXPECT_EQ(parse_error("default allow\n"
                          "errno EPERM: bpf ptrace\n"
                          "\n"
                          "kill: ptrace\n"),
              "t.profile:4: syscall 'ptrace' is 'kill' here but 'errno EPERM' on line 2");
    EXPECT_EQ(parse_error("default allow\nerrno EPERM: ptrace\nerrno EACCES: ptrace\n"),
              "t.profile:3: syscall 'ptrace' is 'errno EACCES' here but 'errno EPERM' on line 2");
}

// ---------------------------------------------------------------------------
// Conditions on clone's and unshare's flags

constexpr std::uint64_t kAllNamespaceFlagsButTime = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC |
                                                    CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET |
                                                    CLONE_NEWCGROUP;

TEST(SeccompParse, FlagsCondition) {
    const auto p = parse_seccomp_profile(
        "default allow\n"
        "errno EPERM: clone if flags & CLONE_NEWUSER|CLONE_NEWNS\n",
        "t");
    ASSERT_EQ(p.rules.size(), 1u);
    const SeccompRule& rule = p.rules[0];
    EXPECT_EQ(rule.syscall, "clone");
    EXPECT_EQ(rule.action, errno_action(EPERM));
    EXPECT_EQ(rule.line, 2);
    ASSERT_TRUE(rule.condition.has_value());
    EXPECT_EQ(rule.condition->flag_names,
              (std::vector<std::string>{"CLONE_NEWUSER", "CLONE_NEWNS"}));
    EXPECT_EQ(rule.condition->any_of, static_cast<std::uint64_t>(CLONE_NEWUSER | CLONE_NEWNS));
    EXPECT_FALSE(rule.condition->otherwise.has_value());
}

TEST(SeccompParse, FlagsConditionSpacingElseAndUnshare) {
    const auto p = parse_seccomp_profile(
        "default errno ENOSYS\n"
        "errno EPERM: clone if flags&CLONE_NEWPID | CLONE_NEWNET\telse allow  # comment\n"
        "kill:unshare if flags & CLONE_NEWTIME|CLONE_NEWIPC else errno EACCES\n",
        "t");
    ASSERT_EQ(p.rules.size(), 2u);
    ASSERT_TRUE(p.rules[0].condition.has_value());
    EXPECT_EQ(p.rules[0].condition->any_of,
              static_cast<std::uint64_t>(CLONE_NEWPID | CLONE_NEWNET));
    EXPECT_EQ(p.rules[0].condition->otherwise, kAllow);
    EXPECT_EQ(p.rules[1].syscall, "unshare");
    EXPECT_EQ(p.rules[1].action.kind, SeccompActionKind::kKillProcess);
    ASSERT_TRUE(p.rules[1].condition.has_value());
    // CLONE_NEWTIME (0x80) is a flag of unshare (and clone3), not of clone.
    EXPECT_EQ(p.rules[1].condition->any_of, static_cast<std::uint64_t>(0x80 | CLONE_NEWIPC));
    EXPECT_EQ(p.rules[1].condition->otherwise, errno_action(EACCES));
    EXPECT_EQ(p.rules[1].line, 3);
}

TEST(SeccompParse, FlagsConditionErrors) {
    auto error_of = [](std::string_view rule_line) {
        return parse_error("default allow\n" + std::string(rule_line) + "\n");
    };
    EXPECT_EQ(error_of("errno EPERM: openat if flags & CLONE_NEWNS"),
              "t.profile:2: a condition can only test the flags of clone or unshare, not 'openat'");
    EXPECT_EQ(error_of("errno EPERM: clonex if flags & CLONE_NEWNS"),
              "t.profile:2: unknown syscall 'clonex'");
    EXPECT_THAT(error_of("errno EPERM: clone if flags & CLONE_NEWFOO"),
                StartsWith("t.profile:2: unknown flag 'CLONE_NEWFOO' (known: CLONE_NEWNS, "));
    // Only namespace flags, and names are case-sensitive.
    EXPECT_THAT(error_of("errno EPERM: clone if flags & CLONE_VM"),
                StartsWith("t.profile:2: unknown flag 'CLONE_VM'"));
    EXPECT_THAT(error_of("errno EPERM: clone if flags & clone_newns"),
                StartsWith("t.profile:2: unknown flag 'clone_newns'"));
    EXPECT_EQ(error_of("errno EPERM: clone if flags &"),
              "t.profile:2: empty flag list after 'flags &'");
    EXPECT_EQ(error_of("errno EPERM: clone if flags & else allow"),
              "t.profile:2: empty flag list after 'flags &'");
    EXPECT_EQ(error_of("errno EPERM: clone if flags & |CLONE_NEWNS"),
              "t.profile:2: empty flag list after 'flags &'");
    EXPECT_EQ(error_of("errno EPERM: clone if flags & CLONE_NEWNS|"),
              "t.profile:2: '|' must be followed by a flag name");
    EXPECT_EQ(error_of("errno EPERM: clone if flags & CLONE_NEWNS||CLONE_NEWPID"),
              "t.profile:2: '|' must be followed by a flag name");
    EXPECT_THAT(error_of("errno EPERM: clone if flags & CLONE_NEWNS CLONE_NEWPID"),
                StartsWith("t.profile:2: unexpected 'CLONE_NEWPID' after the flag list"));
    EXPECT_EQ(error_of("errno EPERM: clone if flags & CLONE_NEWNS, CLONE_NEWPID"),
              "t.profile:2: unexpected ',' in the condition");
    EXPECT_EQ(error_of("errno EPERM: clone if flags & CLONE_NEWNS|CLONE_NEWPID|CLONE_NEWNS"),
              "t.profile:2: flag 'CLONE_NEWNS' named twice");
    EXPECT_THAT(error_of("errno EPERM: clone if flags & CLONE_NEWNS|CLONE_NEWTIME"),
                StartsWith("t.profile:2: CLONE_NEWTIME cannot be tested on clone"));
    EXPECT_THAT(error_of("errno EPERM: clone if"),
                StartsWith("t.profile:2: 'if' needs a condition"));
    EXPECT_THAT(error_of("errno EPERM: clone if arg0 & CLONE_NEWNS"),
                StartsWith("t.profile:2: unknown argument 'arg0'"));
    EXPECT_EQ(error_of("errno EPERM: clone if flags CLONE_NEWNS"),
              "t.profile:2: expected '&' after 'flags'");
    EXPECT_EQ(error_of("errno EPERM: clone if flags | CLONE_NEWNS"),
              "t.profile:2: expected '&' after 'flags'");
    EXPECT_THAT(error_of("errno EPERM: if flags & CLONE_NEWNS"),
                StartsWith("t.profile:2: 'if' needs a syscall before it"));
    EXPECT_EQ(error_of("errno EPERM: clone unshare if flags & CLONE_NEWNS"),
              "t.profile:2: a condition applies to one syscall: give 'unshare' a line of its own");
    EXPECT_THAT(error_of("errno EPERM: clone if flags & CLONE_NEWNS else"),
                StartsWith("t.profile:2: 'else' needs an action"));
    EXPECT_THAT(error_of("errno EPERM: clone if flags & CLONE_NEWNS else deny"),
                StartsWith("t.profile:2: unknown action 'deny'"));
    EXPECT_EQ(error_of("errno EPERM: clone if flags & CLONE_NEWNS else allow log"),
              "t.profile:2: unexpected 'log' after action 'allow'");
    EXPECT_EQ(error_of("errno EPERM: clone if flags & CLONE_NEWNS else errno EPERM"),
              "t.profile:2: 'else errno EPERM' is the rule's own action: drop the condition");
}

TEST(SeccompParse, ConditionalAndUnconditionalMustAgree) {
    // Different actions: which one a call gets would depend on precedence.
    EXPECT_EQ(parse_error("default allow\nerrno EACCES: clone\n"
                          "errno EPERM: clone if flags & CLONE_NEWUSER\n"),
              "t.profile:3: syscall 'clone' is 'errno EPERM if flags & CLONE_NEWUSER' here but "
              "'errno EACCES' on line 2");
    EXPECT_EQ(parse_error("default errno ENOSYS\nerrno EPERM: clone if flags & CLONE_NEWUSER\n"
                          "\nallow: clone\n"),
              "t.profile:4: syscall 'clone' is 'allow' here but 'errno EPERM if flags & "
              "CLONE_NEWUSER' on line 2");
    // An `else` already says what the other calls get.
    EXPECT_EQ(parse_error("default errno ENOSYS\nerrno EPERM: clone\n"
                          "errno EPERM: clone if flags & CLONE_NEWUSER else allow\n"),
              "t.profile:3: syscall 'clone' is 'errno EPERM if flags & CLONE_NEWUSER else allow' "
              "here but 'errno EPERM' on line 2");
    // One conditional line per syscall.
    EXPECT_EQ(parse_error("default allow\nerrno EPERM: clone if flags & CLONE_NEWUSER\n"
                          "errno EPERM: clone if flags & CLONE_NEWNS\n"),
              "t.profile:3: syscall 'clone' already has a condition on line 2 (list every flag on "
              "that line)");
}

TEST(SeccompParse, AgreeingUnconditionalRuleCoversTheCondition) {
    for (const char* text : {"default allow\nerrno EPERM: unshare\n"
                             "errno EPERM: unshare if flags & CLONE_NEWUSER\n",
                             "default allow\nerrno EPERM: unshare if flags & CLONE_NEWUSER\n"
                             "errno EPERM: unshare\n"}) {
        SCOPED_TRACE(text);
        const auto p = parse_seccomp_profile(text, "t");
        ASSERT_EQ(p.rules.size(), 1u);
        EXPECT_EQ(p.rules[0].syscall, "unshare");
        EXPECT_EQ(p.rules[0].action, errno_action(EPERM));
        EXPECT_FALSE(p.rules[0].condition.has_value());
    }
}

// ---------------------------------------------------------------------------
// Compiler and built-in profiles

TEST(SeccompCompile, BuiltinProfilesCompile) {
    for (const std::string& name : builtin_profile_names()) {
        SCOPED_TRACE(name);
        const BpfProgram program = compile_builtin_profile(name);
        EXPECT_FALSE(program.empty());
        EXPECT_LE(program.size(), static_cast<std::size_t>(BPF_MAXINSNS));
        const sock_fprog fprog = program.fprog();
        EXPECT_EQ(fprog.len, program.size());
        EXPECT_NE(fprog.filter, nullptr);
    }
}

TEST(SeccompCompile, BuiltinNames) {
    const auto names = builtin_profile_names();
    EXPECT_THAT(names, Contains("default"));
    EXPECT_THAT(names, Contains("strict"));
    EXPECT_THAT(std::string(builtin_profile_text("default")), HasSubstr("default allow"));
}

TEST(SeccompCompile, UnknownBuiltinListsKnownOnes) {
    try {
        builtin_profile_text("nope");
        FAIL() << "expected ConfigError";
    } catch (const ConfigError& e) {
        EXPECT_THAT(e.what(), StartsWith("unknown seccomp profile 'nope' (known: "));
        EXPECT_THAT(e.what(), HasSubstr("default"));
        EXPECT_THAT(e.what(), HasSubstr("strict"));
    }
    EXPECT_THROW(compile_builtin_profile("nope"), ConfigError);
}

TEST(SeccompCompile, DefaultProfileChoices) {
    const auto p = parse_seccomp_profile(builtin_profile_text("default"), "builtin:default");
    EXPECT_EQ(p.default_action, kAllow);
    auto action_of = [&](std::string_view name) {
        for (const auto& rule : p.rules) {
            if (rule.syscall == name) return rule.action;
        }
        return p.default_action;
    };
    EXPECT_EQ(action_of("init_module"), errno_action(EPERM));
    EXPECT_EQ(action_of("unshare"), errno_action(EPERM));
    EXPECT_EQ(action_of("clone3"), errno_action(ENOSYS));
    // clone: EPERM with any namespace flag, the default (allow) otherwise.
    EXPECT_EQ(action_of("clone"), errno_action(EPERM));
    for (const auto& rule : p.rules) {
        if (rule.syscall != "clone") {
            EXPECT_FALSE(rule.condition.has_value()) << rule.syscall;
            continue;
        }
        ASSERT_TRUE(rule.condition.has_value());
        EXPECT_EQ(rule.condition->any_of, kAllNamespaceFlagsButTime);
        EXPECT_FALSE(rule.condition->otherwise.has_value());
    }
}

TEST(SeccompCompile, StrictProfileChoices) {
    const auto p = parse_seccomp_profile(builtin_profile_text("strict"), "builtin:strict");
    EXPECT_EQ(p.default_action, errno_action(ENOSYS));
    bool found = false;
    for (const auto& rule : p.rules) {
        if (rule.syscall != "clone") continue;
        found = true;
        EXPECT_EQ(rule.action, errno_action(EPERM));
        ASSERT_TRUE(rule.condition.has_value());
        EXPECT_EQ(rule.condition->any_of, kAllNamespaceFlagsButTime);
        // The other clone calls (threads, fork) must not get the ENOSYS default.
        EXPECT_EQ(rule.condition->otherwise, kAllow);
    }
    EXPECT_TRUE(found);
}

TEST(SeccompCompile, RuleEqualToDefaultIsSkipped) {
    // libseccomp refuses such a rule with EACCES; the compiler must drop it.
    const auto p = parse_seccomp_profile("default allow\nallow: read\nerrno EPERM: bpf\n", "t");
    EXPECT_FALSE(compile_seccomp_profile(p).empty());
}

TEST(SeccompCompile, EmptyRuleList) {
    EXPECT_FALSE(compile_seccomp_profile(parse_seccomp_profile("default allow\n", "t")).empty());
}

TEST(SeccompCompile, SyscallMissingOnNativeArchIsAccepted) {
    // "umount" and "stime" exist on i386 but not on x86_64 (and "open" is
    // absent on aarch64): known names, nothing to filter here.
    const auto p =
        parse_seccomp_profile("default allow\nerrno EPERM: umount stime open bpf\n", "t");
    EXPECT_FALSE(compile_seccomp_profile(p).empty());
}

TEST(SeccompCompile, EmptyProgramHasZeroLength) {
    const BpfProgram program;
    EXPECT_TRUE(program.empty());
    EXPECT_EQ(program.fprog().len, 0);
}

// ---------------------------------------------------------------------------
// Behaviour: install a compiled program in a forked child.

constexpr int kSetupFailed = 250;

// Encodes a raw syscall result as an exit code: 0 for success, errno otherwise.
int result_code(long rc) {
    return rc == -1 ? errno : 0;
}

// Forks; the child installs `program` and exits with body()'s value. Only raw
// syscalls and _exit in the child. Returns the wait status.
int run_filtered(const BpfProgram& program, int (*body)()) {
    const sock_fprog fprog = program.fprog();
    const pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        const rlimit no_core{0, 0};
        setrlimit(RLIMIT_CORE, &no_core);  // SIGSYS would dump core otherwise
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) _exit(kSetupFailed);
        if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fprog) != 0) _exit(kSetupFailed);
        // exit_group itself, not _exit(): under ASan, _exit() is intercepted
        // and tears down the thread (sigaltstack, gettid, mmap), which a
        // filter that allows little more than exit refuses; ASan then exits 1.
        const int code = body();
        syscall(SYS_exit_group, code);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) return -1;
    }
    return status;
}

// What a child's body exited with; -1000 - signal if it was killed.
int outcome(int status) {
    if (status == -1) return -1;
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return -1000 - WTERMSIG(status);
    return -2;
}

constexpr int killed_by(int sig) {
    return -1000 - sig;
}

int call_getpid() {
    return syscall(SYS_getpid) > 0 ? 0 : 1;
}
int call_init_module() {
    return result_code(syscall(SYS_init_module, nullptr, 0, ""));
}
int call_unshare_nothing() {
    return result_code(syscall(SYS_unshare, 0));
}
int call_clone3() {
    return result_code(syscall(SYS_clone3, nullptr, 0));
}
// unshare with flags the filters below refuse before the kernel sees them
// (a refused call creates nothing); bit 32 is outside what unshare accepts.
int call_unshare_newuser() {
    return result_code(syscall(SYS_unshare, CLONE_NEWUSER));
}
int call_unshare_newipc_newuts() {
    return result_code(syscall(SYS_unshare, CLONE_NEWIPC | CLONE_NEWUTS));
}
int call_unshare_newuser_high_bit() {
    return result_code(syscall(SYS_unshare, CLONE_NEWUSER | (1UL << 32)));
}
int call_mkdirat() {
    return result_code(syscall(SYS_mkdirat, AT_FDCWD, "/nonexistent-pl-test/dir", 0700));
}
int call_getppid() {
    return result_code(syscall(SYS_getppid));
}
int exec_true() {
    char path[] = "/bin/true";
    char* const argv[] = {path, nullptr};
    char* const envp[] = {nullptr};
    execve(path, argv, envp);
    return 100 + errno;
}
#if defined(__x86_64__)
// An x32 system call: the native number with bit 30 set.
int call_x32_getpid() {
    return result_code(syscall(0x40000000L | SYS_getpid));
}
#endif

// Runs F in a second thread of the (filtered) child, to tell "kill the
// process" from "kill the thread": exits kThreadSurvived if F returned,
// kThreadVanished if only that thread died; a killed process exits neither.
constexpr int kThreadSurvived = 42;
constexpr int kThreadVanished = 43;
std::atomic<int> g_thread_done{0};
alignas(64) char g_thread_stack[256 * 1024];

template <int (*F)()>
int thread_entry(void*) {
    F();
    g_thread_done.store(1);
    syscall(SYS_exit, 0);  // ends this thread only
    return 0;
}

template <int (*F)()>
int in_second_thread() {
    constexpr int kFlags =
        CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM;
    if (clone(thread_entry<F>, g_thread_stack + sizeof g_thread_stack, kFlags, nullptr) < 0) {
        return kSetupFailed;
    }
    const timespec tick{0, 1'000'000};
    for (int i = 0; i < 2000 && g_thread_done.load() == 0; ++i)
        nanosleep(&tick, nullptr);
    return g_thread_done.load() != 0 ? kThreadSurvived : kThreadVanished;
}

TEST(SeccompBehaviour, NoFilterBaseline) {
    // The calls the filters must change do something else without them.
    const BpfProgram allow_all =
        compile_seccomp_profile(parse_seccomp_profile("default allow", "t"));
    EXPECT_EQ(outcome(run_filtered(allow_all, call_unshare_nothing)), 0);
    EXPECT_NE(outcome(run_filtered(allow_all, call_clone3)), ENOSYS);
    EXPECT_EQ(outcome(run_filtered(allow_all, call_getppid)), 0);
}

TEST(SeccompBehaviour, DefaultProfile) {
    const BpfProgram program = compile_builtin_profile("default");
    EXPECT_EQ(outcome(run_filtered(program, call_getpid)), 0);
    EXPECT_EQ(outcome(run_filtered(program, call_init_module)), EPERM);
    EXPECT_EQ(outcome(run_filtered(program, call_unshare_nothing)), EPERM);
    EXPECT_EQ(outcome(run_filtered(program, call_clone3)), ENOSYS);
    EXPECT_EQ(outcome(run_filtered(program, exec_true)), 0);
}

TEST(SeccompBehaviour, StrictProfile) {
    const BpfProgram program = compile_builtin_profile("strict");
    EXPECT_EQ(outcome(run_filtered(program, call_getpid)), 0);
    EXPECT_EQ(outcome(run_filtered(program, call_mkdirat)), ENOSYS);
    EXPECT_EQ(outcome(run_filtered(program, call_unshare_nothing)), ENOSYS);
    EXPECT_EQ(outcome(run_filtered(program, call_clone3)), ENOSYS);
    // A dynamically linked program starts under it.
    EXPECT_EQ(outcome(run_filtered(program, exec_true)), 0);
}

TEST(SeccompBehaviour, ActionsMapToTheKernel) {
    auto compile = [](std::string_view text) {
        return compile_seccomp_profile(parse_seccomp_profile(text, "t"));
    };
    EXPECT_EQ(outcome(run_filtered(compile("default allow\nerrno EACCES: getppid"), call_getppid)),
              EACCES);
    // `kill` is the whole process, even when another thread makes the call.
    const BpfProgram kill_getppid = compile("default allow\nkill: getppid");
    EXPECT_EQ(outcome(run_filtered(kill_getppid, call_getppid)), killed_by(SIGSYS));
    EXPECT_EQ(outcome(run_filtered(kill_getppid, in_second_thread<call_getppid>)),
              killed_by(SIGSYS));
    EXPECT_EQ(outcome(run_filtered(kill_getppid, in_second_thread<call_getpid>)), kThreadSurvived);
    // The default errno: strict's allow-list (what even a sanitizer runtime
    // needs to exit) with another default.
    std::string text(builtin_profile_text("strict"));
    const auto at = text.find("default errno ENOSYS");
    ASSERT_NE(at, std::string::npos);
    text.replace(at, std::string_view("default errno ENOSYS").size(), "default errno EROFS");
    EXPECT_EQ(outcome(run_filtered(compile(text), call_mkdirat)), EROFS);
}

TEST(SeccompBehaviour, FlagsConditionSelectsByAnyBit) {
    auto compile = [](std::string_view text) {
        return compile_seccomp_profile(parse_seccomp_profile(text, "t"));
    };
    // Any of the bits gets the action; the other calls the default.
    const BpfProgram any_bit = compile(
        "default allow\nerrno EACCES: unshare if flags & CLONE_NEWUSER|CLONE_NEWIPC|CLONE_NEWNET");
    EXPECT_EQ(outcome(run_filtered(any_bit, call_unshare_newuser)), EACCES);
    EXPECT_EQ(outcome(run_filtered(any_bit, call_unshare_newipc_newuts)), EACCES);
    EXPECT_EQ(outcome(run_filtered(any_bit, call_unshare_newuser_high_bit)), EACCES);
    EXPECT_EQ(outcome(run_filtered(any_bit, call_unshare_nothing)), 0);
    // `else`: the calls with none of the bits get that instead of the default.
    const BpfProgram with_else =
        compile("default allow\nerrno EACCES: unshare if flags & CLONE_NEWUSER else errno EXDEV");
    EXPECT_EQ(outcome(run_filtered(with_else, call_unshare_newuser)), EACCES);
    EXPECT_EQ(outcome(run_filtered(with_else, call_unshare_newipc_newuts)), EXDEV);
    EXPECT_EQ(outcome(run_filtered(with_else, call_unshare_nothing)), EXDEV);
    // The condition's action equal to the default: only the `else` is compiled.
    const BpfProgram else_only = compile(
        "default errno EACCES\nallow: exit_group exit\n"
        "errno EACCES: unshare if flags & CLONE_NEWUSER else errno EXDEV");
    EXPECT_EQ(outcome(run_filtered(else_only, call_unshare_newuser)), EACCES);
    EXPECT_EQ(outcome(run_filtered(else_only, call_unshare_nothing)), EXDEV);
}

#if defined(__x86_64__)
TEST(SeccompBehaviour, ForeignAbiKillsTheProcess) {
    // x32 numbers are not in the native table; they must not slip past the
    // rules (SCMP_FLTATR_ACT_BADARCH is KILL_PROCESS).
    for (const char* name : {"default", "strict"}) {
        SCOPED_TRACE(name);
        const BpfProgram program = compile_builtin_profile(name);
        EXPECT_EQ(outcome(run_filtered(program, call_x32_getpid)), killed_by(SIGSYS));
        // Not just the calling thread (libseccomp's default is KILL_THREAD).
        EXPECT_EQ(outcome(run_filtered(program, in_second_thread<call_x32_getpid>)),
                  killed_by(SIGSYS));
    }
}
#endif

}  // namespace
}  // namespace sandbox
