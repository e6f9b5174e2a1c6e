#include "sandbox/seccomp.h"

#include <errno.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

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
        const std::string_view names = line.substr(colon + 1);
        if (names.find(':') != std::string_view::npos) err.fail("more than one ':' on the line");

        for (const std::string_view name : split_words(names)) {
            const std::string syscall(name);
            // __NR_SCMP_ERROR means the name exists on no architecture; a
            // negative pseudo number (e.g. "open" on aarch64) is a syscall the
            // native architecture lacks, which libseccomp skips when adding.
            if (seccomp_syscall_resolve_name(syscall.c_str()) == __NR_SCMP_ERROR) {
                err.fail("unknown syscall '" + syscall + "'");
            }
            if (const auto it = seen.find(syscall); it != seen.end()) {
                const SeccompRule& first = profile.rules[it->second];
                if (first.action != action) {
                    err.fail("syscall '" + syscall + "' is '" + describe(action) + "' here but '" +
                             describe(first.action) + "' on line " + std::to_string(first.line));
                }
                continue;  // same action again: harmless repetition
            }
            seen.emplace(syscall, profile.rules.size());
            profile.rules.push_back(SeccompRule{syscall, action, line_no});
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
        // libseccomp refuses (EACCES) a rule that repeats the default action;
        // the default already covers it.
        if (rule.action == profile.default_action) continue;
        const int nr = seccomp_syscall_resolve_name(rule.syscall.c_str());
        const auto where = profile.source + ":" + std::to_string(rule.line) + ": ";
        if (nr == __NR_SCMP_ERROR)
            throw ProfileError(where + "unknown syscall '" + rule.syscall + "'");
        const int rc = seccomp_rule_add(ctx.get(), to_libseccomp(rule.action), nr, 0);
        if (rc < 0) {
            throw ProfileError(where + "cannot add rule '" + describe(rule.action) + ": " +
                               rule.syscall + "': " + std::strerror(-rc) + " (errno " +
                               std::to_string(-rc) + ")");
        }
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
