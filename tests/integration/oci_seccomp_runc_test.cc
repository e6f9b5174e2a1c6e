// The exported OCI seccomp profile means what our compiled one means, on the
// real kernel: pl-seccomp-probe (tests/fixtures/seccomp_probe.cc) runs under
// Debian's runc with the exported JSON as `linux.seccomp`, and under
// sandbox::spawn with compile_seccomp_profile's program, and every probe line
// must agree, except for the two differences docs/seccomp.md names (which
// are asserted as what they are). Both run as root with the test's capabilities
// and in the same kinds of namespaces, so that the filter is the only thing
// that refuses; a run without any filter in each shows that the calls a
// profile denies do reach the kernel otherwise.
//
// The runc container is the test's own: a bundle and a state directory
// (`runc --root`) in a temporary directory, the host's /usr bound read-only,
// a cgroup named after the test's pid that `runc delete` removes (checked).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "../fixtures/seccomp_probe_expected.h"
#include "export/oci_seccomp.h"
#include "sandbox/capabilities.h"
#include "sandbox/seccomp.h"
#include "sandbox/spawn.h"
#include "sandbox/unique_fd.h"
#include "test_support.h"

namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;
using Outcomes = std::map<std::string, std::string>;  // probe name -> outcome

// What each profile must give, per probe: plprobe::kExpected
// (tests/fixtures/seccomp_probe_expected.h, shared with the crun test in the VM).
using plprobe::Expected;
using plprobe::kExpected;
using plprobe::kPass;

// Where runc gives another outcome than our filter, on purpose documented
// in docs/seccomp.md ("Exported as OCI JSON"): the runtimes leave
// libseccomp's bad-architecture action, KILL_THREAD, where ours is
// KILL_PROCESS; and runc's ENOSYS stub answers ENOSYS for syscalls numbered
// above every one the profile names when the default action is `kill` or an
// errno other than ENOSYS (mixed: EPERM).
struct RuncDifference {
    const char* profile;
    const char* probe;
    const char* runc;
};
constexpr RuncDifference kRuncDifferences[] = {
#if defined(__x86_64__)
    {"default", "i386_getpid_in_thread", "thread-killed"},
    {"strict", "i386_getpid_in_thread", "thread-killed"},
#endif
    {"mixed", "nr451_cachestat", "ENOSYS"},
};

// Every action kind, a default errno other than ENOSYS, a condition whose
// action is the default (strict's clone line: only its `else` is a rule) and
// one on unshare: strict's allow-list (what runc's own init and the probe
// need) under another default, and rules for probes.
std::string mixed_profile_text() {
    std::string text = "default errno EPERM\n";
    std::istringstream strict(std::string(sandbox::builtin_profile_text("strict")));
    std::string line;
    while (std::getline(strict, line)) {
        if (line.rfind("default ", 0) == 0) continue;
        text += line + "\n";  // its clone line: `errno EPERM: clone if ... else allow`
    }
    text +=
        "errno EINVAL: unshare if flags & CLONE_NEWUSER else allow\n"
        "log: getcpu\n"
        "kill: kcmp\n"
        "errno EACCES: mkdir\n";
    return text;
}

sandbox::SeccompProfile profile_named(const std::string& name) {
    if (name == "mixed") return sandbox::parse_seccomp_profile(mixed_profile_text(), "mixed");
    return sandbox::parse_seccomp_profile(sandbox::builtin_profile_text(name), "builtin:" + name);
}

// ---------------------------------------------------------------------------
// Running commands and the probe.

std::optional<std::string> find_runc() {
    for (const char* path : {"/usr/sbin/runc", "/usr/bin/runc", "/usr/local/sbin/runc"}) {
        if (access(path, X_OK) == 0) return path;
    }
    return std::nullopt;
}

struct CommandResult {
    int status = -1;  // waitpid's
    bool timed_out = false;
    std::string out;
    std::string err;
    std::string describe() const {
        std::ostringstream s;
        s << "status " << status << (timed_out ? " (timed out)" : "") << "\nstdout:\n"
          << out << "\nstderr:\n"
          << err;
        return s.str();
    }
    bool success() const { return !timed_out && WIFEXITED(status) && WEXITSTATUS(status) == 0; }
};

// argv[0] is an absolute path; stdin is /dev/null; killed after the timeout.
CommandResult run_command(const std::vector<std::string>& argv, int timeout_ms = 60000) {
    CommandResult result;
    int out_pipe[2], err_pipe[2];
    if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0) {
        result.err = std::string("pipe2: ") + std::strerror(errno);
        return result;
    }
    sandbox::UniqueFd out_read(out_pipe[0]), out_write(out_pipe[1]);
    sandbox::UniqueFd err_read(err_pipe[0]), err_write(err_pipe[1]);
    std::vector<char*> args;
    for (const std::string& a : argv)
        args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    const pid_t pid = fork();
    if (pid < 0) {
        result.err = std::string("fork: ") + std::strerror(errno);
        return result;
    }
    if (pid == 0) {
        const int null = open("/dev/null", O_RDONLY);
        dup2(null, STDIN_FILENO);
        dup2(out_write.get(), STDOUT_FILENO);
        dup2(err_write.get(), STDERR_FILENO);
        execv(args[0], args.data());
        _exit(127);
    }
    out_write.reset();
    err_write.reset();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    bool out_open = true, err_open = true;
    while (out_open || err_open) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                              deadline - std::chrono::steady_clock::now())
                              .count();
        if (left <= 0) {
            result.timed_out = true;
            kill(pid, SIGKILL);
            break;
        }
        pollfd fds[2] = {{out_open ? out_read.get() : -1, POLLIN, 0},
                         {err_open ? err_read.get() : -1, POLLIN, 0}};
        if (poll(fds, 2, static_cast<int>(left)) < 0) {
            if (errno == EINTR) continue;
            break;
        }
        for (int i = 0; i < 2; ++i) {
            if (fds[i].fd < 0 || fds[i].revents == 0) continue;
            char buf[4096];
            const ssize_t n = read(fds[i].fd, buf, sizeof buf);
            if (n <= 0) {
                (i == 0 ? out_open : err_open) = false;
                continue;
            }
            (i == 0 ? result.out : result.err).append(buf, static_cast<std::size_t>(n));
        }
    }
    while (waitpid(pid, &result.status, 0) < 0 && errno == EINTR) {
    }
    return result;
}

// "probe <name> <outcome>" lines; "done" is there once the probe finished.
Outcomes parse_probe(const std::string& output) {
    Outcomes outcomes;
    std::istringstream in(output);
    std::string word, name, outcome;
    while (in >> word) {
        if (word != "probe" || !(in >> name)) continue;
        if (name == "done") {
            outcomes["done"] = "yes";
            continue;
        }
        std::getline(in, outcome);
        outcomes[name] = outcome.substr(outcome.find_first_not_of(' '));
    }
    return outcomes;
}

// Every capability the test has (CapEff of /proc/self/status): a host may
// withhold some even from root, and neither spawn nor runc can grant more.
sandbox::CapabilityMask own_capabilities() {
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line)) {
        if (line.rfind("CapEff:", 0) == 0) return std::stoull(line.substr(7), nullptr, 16);
    }
    throw std::runtime_error("no CapEff line in /proc/self/status");
}

// The probe under sandbox::spawn: root with the test's capabilities, in new mount,
// pid (under pattern-launcher-init), ipc, uts and network namespaces, like
// the runc container.
Outcomes run_ours(const sandbox::BpfProgram* program, std::string* raw) {
    sandbox::SpawnSpec spec;
    spec.executable = PL_SECCOMP_PROBE;
    spec.argv = {"pl-seccomp-probe"};
    spec.environment = {"PATH=/usr/bin:/bin"};
    spec.namespaces = {.mount = true, .pid = true, .ipc = true, .uts = true, .net = true};
    pltest::use_init(spec);
    spec.capabilities = own_capabilities();
    spec.seccomp = program;
    const pltest::Captured run = pltest::run_captured(spec);
    *raw = run.output + "\n(" + run.status.describe() + ")";
    return parse_probe(run.output);
}

// A throwaway runc bundle and state directory; removes the container (and
// so its cgroup) and the directory when it goes.
class RuncSandbox {
public:
    explicit RuncSandbox(std::string runc) : runc_(std::move(runc)) {
        char dir[] = "/tmp/pl-oci-seccomp.XXXXXX";
        if (mkdtemp(dir) == nullptr) {
            throw std::runtime_error(std::string("mkdtemp /tmp/pl-oci-seccomp.XXXXXX: ") +
                                     std::strerror(errno));
        }
        dir_ = dir;
        static int counter = 0;
        id_ = "pl-oci-test-" + std::to_string(getpid()) + "-" + std::to_string(counter++);
        make_rootfs();
    }
    ~RuncSandbox() {
        remove_container();
        std::error_code ignored;
        fs::remove_all(dir_, ignored);
    }
    RuncSandbox(const RuncSandbox&) = delete;
    RuncSandbox& operator=(const RuncSandbox&) = delete;

    // Runs the probe in a container with `seccomp` (null: no filter); the
    // container is deleted again before this returns.
    Outcomes run(const Json* seccomp, std::string* raw) {
        {
            std::ofstream config(dir_ + "/bundle/config.json");
            config << config_json(seccomp).dump(2) << "\n";
        }
        const CommandResult result = run_command(
            {runc_, "--root", dir_ + "/state", "run", "--bundle", dir_ + "/bundle", id_});
        *raw = result.describe();
        remove_container();
        return result.timed_out ? Outcomes{} : parse_probe(result.out);
    }

    // The cgroups runc made for the container that still exist.
    std::vector<std::string> leftover_cgroups() const {
        std::vector<std::string> left;
        std::error_code ec;
        for (const auto& hierarchy : fs::directory_iterator("/sys/fs/cgroup", ec)) {
            const fs::path group = hierarchy.path() / cgroup_name();
            if (fs::exists(group)) left.push_back(group.string());
        }
        if (fs::exists(fs::path("/sys/fs/cgroup") / cgroup_name()))
            left.push_back("/sys/fs/cgroup/" + cgroup_name());
        return left;
    }

private:
    std::string cgroup_name() const { return id_; }

    void remove_container() {
        // `runc run` deletes a container that ran to the end; this is for one
        // that did not (a timeout). An unknown id is fine.
        run_command({runc_, "--root", dir_ + "/state", "delete", "--force", id_}, 20000);
    }

    // The host's /usr read-only and the merged-/usr links, /proc and /dev
    // of the container's own, the probe's directory read-only.
    void make_rootfs() {
        const fs::path rootfs = dir_ + "/bundle/rootfs";
        fs::create_directories(rootfs);
        for (const char* dir : {"proc", "dev", "probe", "usr"})
            fs::create_directories(rootfs / dir);
        binds_.push_back("/usr");
        for (const char* top : {"bin", "sbin", "lib", "lib32", "lib64", "libx32"}) {
            const fs::path host = fs::path("/") / top;
            std::error_code ec;
            if (fs::is_symlink(host, ec)) {
                fs::create_symlink(fs::read_symlink(host), rootfs / top);
            } else if (fs::is_directory(host, ec)) {
                fs::create_directories(rootfs / top);
                binds_.push_back(host.string());
            }
        }
    }

    Json config_json(const Json* seccomp) const {
        Json caps = Json::array();
        std::istringstream names(sandbox::capability_names(own_capabilities()));
        std::string name;
        while (std::getline(names, name, ',')) {
            for (char& c : name)
                c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
            caps.push_back(name);
        }
        Json mounts = Json::array({
            {{"destination", "/proc"}, {"type", "proc"}, {"source", "proc"}},
            {{"destination", "/dev"},
             {"type", "tmpfs"},
             {"source", "tmpfs"},
             {"options", {"nosuid", "strictatime", "mode=755", "size=65536k"}}},
            {{"destination", "/probe"},
             {"type", "bind"},
             {"source", fs::path(PL_SECCOMP_PROBE).parent_path().string()},
             {"options", {"rbind", "ro"}}},
        });
        for (const std::string& bind : binds_) {
            mounts.push_back({{"destination", bind},
                              {"type", "bind"},
                              {"source", bind},
                              {"options", {"rbind", "ro"}}});
        }
        Json linux_section = {
            {"namespaces", Json::array({{{"type", "pid"}},
                                        {{"type", "ipc"}},
                                        {{"type", "uts"}},
                                        {{"type", "mount"}},
                                        {{"type", "network"}}})},
            {"cgroupsPath", "/" + cgroup_name()},
        };
        if (seccomp != nullptr) linux_section["seccomp"] = *seccomp;
        return Json{
            {"ociVersion", "1.0.2"},
            {"process",
             {{"terminal", false},
              {"user", {{"uid", 0}, {"gid", 0}}},
              {"args", {"/probe/" + fs::path(PL_SECCOMP_PROBE).filename().string()}},
              {"env", {"PATH=/usr/bin:/bin"}},
              {"cwd", "/"},
              {"capabilities", {{"bounding", caps}, {"effective", caps}, {"permitted", caps}}},
              {"noNewPrivileges", true}}},
            {"root", {{"path", dir_ + "/bundle/rootfs"}, {"readonly", true}}},
            {"hostname", "pl-oci-test"},
            {"mounts", mounts},
            {"linux", linux_section},
        };
    }

    std::string runc_;
    std::string dir_;
    std::string id_;
    std::vector<std::string> binds_;
};

const char* expected_for(const Expected& e, const std::string& profile) {
    if (profile == "default") return e.default_profile;
    if (profile == "strict") return e.strict_profile;
    return e.mixed_profile;
}

std::optional<std::string> runc_difference(const std::string& profile, const std::string& probe) {
    for (const RuncDifference& d : kRuncDifferences) {
        if (profile == d.profile && probe == d.probe) return d.runc;
    }
    return std::nullopt;
}

// Probes under runc and under spawn, without a filter and with `name`'s.
void check_profile(const std::string& name) {
    const std::optional<std::string> runc = find_runc();
    if (!runc) GTEST_SKIP() << "runc is not installed (apt-get install runc)";

    const sandbox::SeccompProfile profile = profile_named(name);
    // The file text the exporter writes, read back as a runtime would.
    const Json exported = Json::parse(launcher::oci_seccomp_json(profile));
    const sandbox::BpfProgram program = sandbox::compile_seccomp_profile(profile);

    RuncSandbox box(*runc);
    std::string raw_runc_none, raw_runc, raw_ours_none, raw_ours;
    const Outcomes runc_none = box.run(nullptr, &raw_runc_none);
    const Outcomes runc_filtered = box.run(&exported, &raw_runc);
    const Outcomes ours_none = run_ours(nullptr, &raw_ours_none);
    const Outcomes ours_filtered = run_ours(&program, &raw_ours);
    const std::vector<std::string> leftover = box.leftover_cgroups();
    EXPECT_TRUE(leftover.empty()) << "runc left its cgroup behind: " << leftover.front();

    ASSERT_EQ(runc_none.count("done"), 1U) << "runc without a filter:\n" << raw_runc_none;
    ASSERT_EQ(runc_filtered.count("done"), 1U) << "runc with " << name << ":\n"
                                               << raw_runc << "\nprofile:\n"
                                               << exported.dump(2);
    ASSERT_EQ(ours_none.count("done"), 1U) << "spawn without a filter:\n" << raw_ours_none;
    ASSERT_EQ(ours_filtered.count("done"), 1U) << "spawn with " << name << ":\n" << raw_ours;
    EXPECT_EQ(runc_none, ours_none) << "the two environments differ before any filter";

    for (const Expected& e : kExpected) {
        SCOPED_TRACE(std::string("probe ") + e.probe);
        ASSERT_EQ(ours_none.count(e.probe), 1U) << "no line for " << e.probe;
        const std::string unfiltered = ours_none.at(e.probe);
        const std::string expected = expected_for(e, name);
        const std::string& ours = ours_filtered.at(e.probe);
        if (expected == kPass) {
            EXPECT_EQ(ours, unfiltered) << "allowed by " << name << ", so as without a filter";
        } else {
            EXPECT_EQ(ours, expected) << name << "'s answer";
            EXPECT_NE(unfiltered, expected) << "the kernel itself answers " << unfiltered
                                            << ": the probe does not show the filter";
        }
        ASSERT_EQ(runc_filtered.count(e.probe), 1U) << raw_runc;
        const std::string& in_runc = runc_filtered.at(e.probe);
        if (const auto different = runc_difference(name, e.probe)) {
            EXPECT_EQ(in_runc, *different) << "the documented difference (docs/seccomp.md)";
        } else {
            EXPECT_EQ(in_runc, ours) << "runc with the exported profile against ours";
        }
    }
}

TEST(OciSeccompRunc, DefaultProfileMeansTheSameUnderRunc) {
    check_profile("default");
}

TEST(OciSeccompRunc, StrictProfileMeansTheSameUnderRunc) {
    check_profile("strict");
}

TEST(OciSeccompRunc, EveryActionKindMeansTheSameUnderRunc) {
    check_profile("mixed");
}

}  // namespace
