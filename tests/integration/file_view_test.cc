// The default compartment, one mechanism per test, through sandbox::spawn on
// the real kernel: a shell runs with every namespace (mount, pid, ipc, uts,
// net, cgroup), the private file view, pattern-launcher-init as PID 1, an
// unprivileged uid and no capabilities, and prints what it could and could
// not do. Each assertion names something the host would allow without the
// mechanism (the uid may write the host's /tmp, sees the host's /run, ...).
//
// Errors are read from the shell's messages, which end in strerror():
// "cannot create /etc/x: Read-only file system" is EROFS. For a new file on a
// read-only mount the kernel checks the mount before permissions
// (lookup_open), and for O_TRUNC of an existing file before may_open
// (do_open), so EROFS is what an unprivileged uid sees there, while the same
// write on a writable mount fails with EACCES instead.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "sandbox/error.h"
#include "sandbox/init_reports.h"
#include "sandbox/landlock.h"
#include "sandbox/spawn.h"
#include "test_support.h"

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// An id of the launcher's default range, in no /etc/passwd.
constexpr uid_t kUid = 1879048200;

const std::string kReadOnly = std::strerror(EROFS);  // "Read-only file system"
const std::string kNoSpace = std::strerror(ENOSPC);  // "No space left on device"

// A host directory for one test, removed with everything in it.
class Scratch {
public:
    // mkdtemp(<parent>/pl-view.<pid>.XXXXXX)
    explicit Scratch(const fs::path& parent) {
        std::string tmpl =
            (parent / ("pl-view." + std::to_string(::getpid()) + ".XXXXXX")).string();
        if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp " + tmpl + " failed");
        path_ = tmpl;
        fs::permissions(path_, fs::perms(0755));
    }
    ~Scratch() {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    Scratch(const Scratch&) = delete;
    Scratch& operator=(const Scratch&) = delete;
    const fs::path& path() const { return path_; }
    std::string operator/(const std::string& name) const { return (path_ / name).string(); }

private:
    fs::path path_;
};

// Outside every tmpfs of the view (/tmp, /var/tmp, /dev/shm, /run, /dev):
// next to the test binary, so that a masked path is a real host path; /var/lib
// when the build tree itself is below one of them (a CI clone under /tmp).
fs::path host_dir_outside_tmp() {
    const fs::path here = fs::read_symlink("/proc/self/exe").parent_path();
    return sandbox::hidden_by_view(here.string()) ? fs::path("/var/lib") : here;
}

void write_file(const std::string& path, const std::string& text) {
    std::ofstream(path) << text;
}

std::string read_file(const std::string& path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

bool contains(const std::string& haystack, const std::string& needle) {
    return haystack.find(needle) != std::string::npos;
}

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);)
        lines.push_back(line);
    return lines;
}

// The lines after `begin` up to `end` (markers the scripts print).
std::vector<std::string> section(const std::string& output, const std::string& begin,
                                 const std::string& end) {
    std::vector<std::string> all = lines_of(output), out;
    auto from = std::find(all.begin(), all.end(), begin);
    auto to = std::find(from, all.end(), end);
    if (from != all.end()) out.assign(from + 1, to);
    return out;
}

struct MountEntry {
    std::string mount_point;
    std::set<std::string> options;  // per-mount options (field 6)
    std::string fstype;
};

// /proc/PID/mountinfo lines, as printed between "mountinfo" and "end".
std::vector<MountEntry> parse_mountinfo(const std::vector<std::string>& lines) {
    std::vector<MountEntry> mounts;
    for (const std::string& line : lines) {
        std::istringstream in(line);
        std::vector<std::string> fields;
        for (std::string field; in >> field;)
            fields.push_back(field);
        auto dash = std::find(fields.begin(), fields.end(), "-");
        if (fields.size() < 6 || dash == fields.end() || dash + 1 == fields.end()) continue;
        MountEntry entry;
        entry.mount_point = fields[4];
        std::istringstream options(fields[5]);
        for (std::string option; std::getline(options, option, ',');)
            entry.options.insert(option);
        entry.fstype = *(dash + 1);
        mounts.push_back(entry);
    }
    return mounts;
}

// The topmost (last) mount at `point` in `mounts` (which must outlive the
// result), or nullptr.
const MountEntry* mount_at(const std::vector<MountEntry>& mounts, const std::string& point) {
    const MountEntry* found = nullptr;
    for (const MountEntry& m : mounts) {
        if (m.mount_point == point) found = &m;
    }
    return found;
}
// A temporary list would leave the result dangling (ASan found two).
const MountEntry* mount_at(std::vector<MountEntry>&& mounts, const std::string& point) = delete;

std::string options_of(const MountEntry& m) {
    std::string s;
    for (const std::string& o : m.options)
        s += (s.empty() ? "" : ",") + o;
    return s;
}

class FileViewTest : public ::testing::Test {
protected:
    FileViewTest() : group_(tree_.tree().create_group("view")) {}

    // /bin/sh -c `script` in the default compartment, in the test's cgroup,
    // stderr folded into stdout. The script's refused attempts are its
    // expected output, so it ends with success unless it exits itself.
    sandbox::SpawnSpec compartment(const std::string& script) {
        sandbox::SpawnSpec spec;
        spec.executable = "/bin/sh";
        spec.argv = {"sh", "-c", "exec 2>&1\n" + script + "exit 0\n"};
        spec.environment = {"PATH=/usr/bin:/bin"};
        spec.cgroup_fd = group_.dir_fd();
        spec.namespaces = {
            .mount = true, .pid = true, .ipc = true, .uts = true, .net = true, .cgroup = true};
        spec.view.enabled = true;
        pltest::use_init(spec);
        spec.credentials = sandbox::Credentials{kUid, kUid, {}};
        spec.capabilities = 0;
        return spec;
    }

    pltest::Captured run(const sandbox::SpawnSpec& spec) {
        pltest::Captured result = pltest::run_captured(spec);
        EXPECT_TRUE(result.status.success()) << result.status.describe() << "\n" << result.output;
        return result;
    }
    std::string run(const std::string& script) { return run(compartment(script)).output; }

    pltest::TestTree tree_;
    sandbox::Cgroup group_;
};

// ---------------------------------------------------------------------------
// Read-only host

TEST_F(FileViewTest, HostIsReadOnlyNosuidNodevRecursively) {
    const std::string out =
        run("for p in /etc/x /usr/x /var/x /x /usr/lib/x /sys/x; do (echo x > $p); done\n"
            "echo mountinfo; cat /proc/self/mountinfo; echo end\n");
    for (const char* path : {"/etc/x", "/usr/x", "/var/x", "/x", "/usr/lib/x", "/sys/x"}) {
        EXPECT_TRUE(contains(out, std::string("cannot create ") + path + ": " + kReadOnly))
            << path << ":\n"
            << out;
        EXPECT_FALSE(fs::exists(path)) << path << " reached the host";
    }

    const std::vector<MountEntry> mounts = parse_mountinfo(section(out, "mountinfo", "end"));
    const MountEntry* root = mount_at(mounts, "/");
    ASSERT_NE(root, nullptr) << out;
    for (const char* option : {"ro", "nosuid", "nodev"})
        EXPECT_TRUE(root->options.count(option)) << "/ is " << options_of(*root);

    // Every host mount below / too (mount_setattr AT_RECURSIVE), such as this
    // host's /sys and /sys/fs/cgroup/* (hidden under the view's own, but
    // still there). Writable are only the view's own file systems.
    auto view_writable = [](const std::string& point) {
        return point == "/tmp" || point == "/var/tmp" || point == "/dev/shm" ||
               point == "/dev/pts" || point == "/proc" || point.starts_with("/dev/") ||
               point.starts_with("/proc/");  // device nodes and /proc masks bound from /dev/null
    };
    int host_mounts = 0;
    for (const MountEntry& m : mounts) {
        if (view_writable(m.mount_point)) continue;
        ++host_mounts;
        EXPECT_TRUE(m.options.count("ro")) << m.mount_point << " is " << options_of(m);
        EXPECT_TRUE(m.options.count("nosuid")) << m.mount_point << " is " << options_of(m);
    }
    EXPECT_GE(host_mounts, 3) << out;
    const MountEntry* sys = mount_at(mounts, "/sys");
    ASSERT_NE(sys, nullptr) << out;
    EXPECT_TRUE(sys->options.count("ro")) << "/sys is " << options_of(*sys);
}

// ---------------------------------------------------------------------------
// Private temporary directories

TEST_F(FileViewTest, TempDirectoriesArePrivate) {
    const std::string name = "pl-view-inside." + std::to_string(::getpid());
    const std::vector<std::string> dirs = {"/tmp", "/var/tmp", "/dev/shm"};
    // Removes what would reach the host if the view shared its temp dirs.
    struct Cleanup {
        std::vector<std::string> paths;
        ~Cleanup() {
            for (const std::string& path : paths)
                ::unlink(path.c_str());
        }
    } cleanup;
    for (const std::string& dir : dirs)
        cleanup.paths.push_back(dir + "/" + name);
    Scratch host("/tmp");
    const std::string host_file = host / "file";
    write_file(host_file, "host\n");

    const std::string out =
        run("for d in /tmp /var/tmp /dev/shm; do\n"
            "  echo inside > $d/" +
            name +
            " && echo \"created in $d\"\n"
            "done\n"
            "test -e " +
            host_file +
            " && echo 'host file visible'\n"
            "echo listing; ls -A /tmp; echo end\n");
    for (const std::string& dir : dirs) {
        EXPECT_TRUE(contains(out, "created in " + dir)) << out;
        EXPECT_FALSE(fs::exists(dir + "/" + name)) << dir << " is the host's";
    }
    EXPECT_FALSE(contains(out, "host file visible")) << out;
    EXPECT_EQ(section(out, "listing", "end"), std::vector<std::string>{name}) << out;
}

TEST_F(FileViewTest, TempDirectoriesAreSizeCapped) {
    auto spec = compartment(
        "for d in /tmp /var/tmp /dev/shm; do\n"
        "  head -c 524288 /dev/zero > $d/half && echo \"half fits in $d\"\n"
        "  rm -f $d/half\n"
        "  head -c 2097152 /dev/zero > $d/big || echo \"too big for $d\"\n"
        "done\n");
    spec.view.tmpfs_bytes = 1 << 20;
    const std::string out = run(spec).output;
    for (const char* d : {"/tmp", "/var/tmp", "/dev/shm"}) {
        const std::string dir = d;
        EXPECT_TRUE(contains(out, "half fits in " + dir)) << out;
        EXPECT_TRUE(contains(out, "too big for " + dir)) << out;
    }
    EXPECT_TRUE(contains(out, kNoSpace)) << out;
}

// ---------------------------------------------------------------------------
// /dev

TEST_F(FileViewTest, DevIsMinimalAndReadOnly) {
    const std::string out =
        run("echo listing; ls -A /dev; echo end\n"
            "echo pts-listing; ls -A /dev/pts; echo end\n"
            "echo discarded > /dev/null && echo 'null works'\n"
            "echo \"zero gives $(head -c 5 /dev/zero | wc -c)\"\n"
            "echo \"urandom gives $(head -c 7 /dev/urandom | wc -c)\"\n"
            "(echo x > /dev/x)\n"
            "(echo x > /dev/pts/x)\n"
            "test -e /dev/kmsg && echo 'kmsg visible'\n");
    EXPECT_EQ(section(out, "listing", "end"),
              (std::vector<std::string>{"fd", "full", "null", "ptmx", "pts", "random", "shm",
                                        "stderr", "stdin", "stdout", "tty", "urandom", "zero"}))
        << out;
    EXPECT_EQ(section(out, "pts-listing", "end"), std::vector<std::string>{"ptmx"})
        << "a new devpts instance, without the host's terminals:\n"
        << out;
    EXPECT_TRUE(contains(out, "null works")) << out;
    EXPECT_TRUE(contains(out, "zero gives 5")) << out;
    EXPECT_TRUE(contains(out, "urandom gives 7")) << out;
    EXPECT_TRUE(contains(out, "cannot create /dev/x: " + kReadOnly)) << out;
    EXPECT_FALSE(contains(out, "kmsg visible")) << out;
}

// ---------------------------------------------------------------------------
// /run, masks and binds

TEST_F(FileViewTest, RunIsEmptyButForWhatIsBoundAndBindsKeepTheirMode) {
    Scratch scratch("/tmp");
    const std::string ro = scratch / "ro", rw = scratch / "rw";
    fs::create_directory(ro);
    write_file(ro + "/data", "host data\n");
    fs::create_directory(rw);
    ASSERT_EQ(::chown(rw.c_str(), kUid, kUid), 0) << std::strerror(errno);

    auto spec = compartment(
        "echo run; ls -A /run; echo end\n"
        "cat " +
        ro +
        "/data\n"
        "(echo x > " +
        ro +
        "/new)\n"
        "echo written > /run/pl-state/out && echo 'rw bind written'\n"
        "(echo x > /run/x)\n");
    // Back at the same path below the view's /tmp, and somewhere new in /run.
    spec.view.binds = {{ro, ro, false}, {rw, "/run/pl-state", true}};
    const std::string out = run(spec).output;

    EXPECT_EQ(section(out, "run", "end"), std::vector<std::string>{"pl-state"})
        << "the host's /run (" << pltest::list_dir("/run").size() << " entries) is masked:\n"
        << out;
    EXPECT_TRUE(contains(out, "host data")) << out;
    EXPECT_TRUE(contains(out, "cannot create " + ro + "/new: " + kReadOnly)) << out;
    EXPECT_FALSE(fs::exists(ro + "/new"));
    EXPECT_TRUE(contains(out, "rw bind written")) << out;
    EXPECT_EQ(read_file(rw + "/out"), "written\n");
    EXPECT_TRUE(contains(out, "cannot create /run/x: " + kReadOnly)) << out;
}

TEST_F(FileViewTest, MaskedPathsHideTheirContent) {
    Scratch scratch(host_dir_outside_tmp());
    const std::string dir = scratch / "secret-dir", file = scratch / "secret-file";
    fs::create_directory(dir);
    write_file(dir + "/key", "dir-secret\n");
    write_file(file, "file-secret\n");
    fs::permissions(dir + "/key", fs::perms(0644));
    fs::permissions(file, fs::perms(0644));

    auto spec = compartment("echo listing; ls -A " + dir +
                            " 2>/dev/null; echo end\n"
                            "test -e " +
                            dir +
                            "/key && echo 'key visible'\n"
                            "cat " +
                            dir + "/key " + file +
                            "\n"
                            "echo \"file has $(wc -c < " +
                            file +
                            ") bytes\"\n"
                            "echo \"unmasked neighbour: $(ls " +
                            scratch.path().string() +
                            ")\"\n"
                            "echo mountinfo; cat /proc/self/mountinfo; echo end\n");
    spec.view.masked = {dir, file, scratch / "not-there"};  // a missing path is skipped
    const std::string out = run(spec).output;

    EXPECT_FALSE(contains(out, "dir-secret")) << out;
    EXPECT_FALSE(contains(out, "file-secret")) << out;
    EXPECT_FALSE(contains(out, "key visible")) << out;
    EXPECT_TRUE(section(out, "listing", "end").empty()) << out;
    EXPECT_TRUE(contains(out, "file has 0 bytes")) << out;
    // The masks replace the paths, not their parent.
    EXPECT_TRUE(contains(out, "unmasked neighbour: secret-dir\nsecret-file")) << out;
    const auto mounts = parse_mountinfo(section(out, "mountinfo", "end"));
    const MountEntry* over_dir = mount_at(mounts, dir);
    ASSERT_NE(over_dir, nullptr) << out;
    EXPECT_EQ(over_dir->fstype, "tmpfs");
    EXPECT_TRUE(over_dir->options.count("ro")) << options_of(*over_dir);
}

// ---------------------------------------------------------------------------
// /proc

TEST_F(FileViewTest, ProcIsTheNamespacesOwnWithMasks) {
    const std::string out =
        run("echo pids; for p in /proc/[0-9]*; do echo ${p#/proc/}; done; echo end\n"
            "echo \"self $$ parent $PPID\"\n"
            "echo \"init: $(tr '\\0' '\\n' < /proc/1/cmdline | head -n 1)\"\n"
            "test -e /proc/" +
            std::to_string(::getpid()) +
            "/status && echo 'test visible'\n"
            "for f in /proc/keys /proc/timer_list /proc/sched_debug /proc/kcore; do\n"
            "  test -e $f && echo \"$f: $(stat -c %F $f), $(cat $f | wc -c) bytes\"\n"
            "done\n"
            "(echo pwned > /proc/sys/kernel/hostname)\n"
            "(echo 1 > /proc/sysrq-trigger) && echo 'sysrq written'\n"
            "echo mountinfo; cat /proc/self/mountinfo; echo end\n");
    EXPECT_EQ(section(out, "pids", "end"), (std::vector<std::string>{"1", "2"}))
        << "only the init and the shell:\n"
        << out;
    EXPECT_TRUE(contains(out, "self 2 parent 1")) << out;
    EXPECT_TRUE(contains(out, "init: pattern-launcher-init\n")) << out;
    EXPECT_FALSE(contains(out, "test visible")) << out;
    // Masked by /dev/null: a character device, empty. The host's are
    // regular files, and /proc/timer_list is never empty there.
    for (const char* masked : {"/proc/keys", "/proc/timer_list"}) {
        EXPECT_TRUE(contains(out, std::string(masked) + ": character special file, 0 bytes"))
            << masked << ":\n"
            << out;
    }
    EXPECT_TRUE(contains(out, "cannot create /proc/sys/kernel/hostname: " + kReadOnly)) << out;
    const auto mounts = parse_mountinfo(section(out, "mountinfo", "end"));
    const MountEntry* sys = mount_at(mounts, "/proc/sys");
    ASSERT_NE(sys, nullptr) << out;
    EXPECT_TRUE(sys->options.count("ro")) << options_of(*sys);
    EXPECT_EQ(read_file("/proc/sys/kernel/hostname").find("pwned"), std::string::npos);
}

// ---------------------------------------------------------------------------
// cgroup namespace

TEST_F(FileViewTest, CgroupNamespaceShowsOnlyTheChildsOwnCgroupReadOnly) {
    const std::string out =
        run("grep '^0::' /proc/self/cgroup\n"
            "echo procs; cat /sys/fs/cgroup/cgroup.procs; echo end\n"
            "test -e /sys/fs/cgroup/cgroup.controllers && echo 'cgroupfs'\n"
            "(mkdir /sys/fs/cgroup/escape) || echo 'mkdir refused'\n"
            "(echo $$ > /sys/fs/cgroup/cgroup.procs)\n");
    EXPECT_TRUE(contains(out, "0::/\n")) << "host path " << tree_.relative(group_.path()) << ":\n"
                                         << out;
    EXPECT_TRUE(contains(out, "cgroupfs")) << "the host's /sys/fs/cgroup here is a tmpfs:\n" << out;
    // The init, the shell and the cat: nothing of the host (whose pids would
    // show as 0 or large numbers) and nothing of other groups.
    const std::vector<std::string> procs = section(out, "procs", "end");
    EXPECT_EQ(std::count(procs.begin(), procs.end(), "1"), 1) << out;
    EXPECT_EQ(std::count(procs.begin(), procs.end(), "2"), 1) << out;
    for (const std::string& pid : procs)
        EXPECT_TRUE(pid.size() == 1 && pid != "0") << pid << " in\n" << out;
    EXPECT_TRUE(
        contains(out, "mkdir: cannot create directory '/sys/fs/cgroup/escape': " + kReadOnly))
        << out;
    EXPECT_TRUE(contains(out, "cannot create /sys/fs/cgroup/cgroup.procs: " + kReadOnly)) << out;
    EXPECT_FALSE(fs::exists(group_.path() + "/escape"));
}

// ---------------------------------------------------------------------------
// The init

TEST_F(FileViewTest, InitReportsThePatternsExitCode) {
    sandbox::InitReports reports;
    auto spec = compartment("exit 7\n");
    spec.init.status_fd = reports.sender_fd();
    pltest::Running running = pltest::start_captured(spec);
    const pid_t init = running.process.pid();
    const sandbox::ExitStatus own = sandbox::decode_exit(running.process.reap());
    EXPECT_EQ(own.kind, sandbox::ExitStatus::Kind::kExited);
    EXPECT_EQ(own.code, 7);
    const std::optional<siginfo_t> report = reports.take(init);
    ASSERT_TRUE(report.has_value()) << "no exit report from init " << init;
    const sandbox::ExitStatus pattern = sandbox::decode_exit(*report);
    EXPECT_EQ(pattern.kind, sandbox::ExitStatus::Kind::kExited);
    EXPECT_EQ(pattern.code, 7);
    EXPECT_FALSE(reports.take(init).has_value()) << "one report per init";
}

TEST_F(FileViewTest, SigtermToTheInitStopsAPatternThatDoesNotHandleIt) {
    sandbox::InitReports reports;
    // sleep as PID 1 would ignore SIGTERM (no handler); as the init's child it dies of it.
    auto spec = compartment("echo started; exec sleep 100\n");
    spec.init.status_fd = reports.sender_fd();
    pltest::Running running = pltest::start_captured(spec);
    ASSERT_TRUE(contains(running.read_until("started"), "started"));
    const pid_t init = running.process.pid();
    const auto start = std::chrono::steady_clock::now();
    ASSERT_TRUE(running.process.send_signal(SIGTERM));
    ASSERT_TRUE(running.process.wait_exit(2s)) << "SIGTERM did not stop the pattern";
    EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
    const sandbox::ExitStatus own = sandbox::decode_exit(running.process.reap());
    // PID 1 cannot die of a signal it sends itself: it exits with 128 + 15.
    EXPECT_EQ(own.kind, sandbox::ExitStatus::Kind::kExited) << own.describe();
    EXPECT_EQ(own.code, 128 + SIGTERM) << own.describe();
    const std::optional<siginfo_t> report = reports.take(init);
    ASSERT_TRUE(report.has_value());
    const sandbox::ExitStatus pattern = sandbox::decode_exit(*report);
    EXPECT_EQ(pattern.kind, sandbox::ExitStatus::Kind::kKilled) << pattern.describe();
    EXPECT_EQ(pattern.signal, SIGTERM) << pattern.describe();
}

TEST_F(FileViewTest, ListenPidIsThePatternsOwnPid) {
    pltest::Listener listener = pltest::listen_tcp();
    auto spec = compartment("echo \"LISTEN_PID=$LISTEN_PID pid=$$ fds=$LISTEN_FDS\"\n");
    spec.passed_fds = {{listener.fd.get(), "grpc"}};
    const std::string out = run(spec).output;
    // The shell is the init's child, pid 2 in the namespace; spawn() wrote the
    // init's pid (1) and the init rewrote it for the pattern.
    EXPECT_TRUE(contains(out, "LISTEN_PID=2 pid=2 fds=1")) << out;
}

// ---------------------------------------------------------------------------
// Failures

bool no_children_left() {
    siginfo_t info{};
    return ::waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) == -1 && errno == ECHILD;
}

TEST_F(FileViewTest, MissingBindSourceIsAConfigErrorNamingThePath) {
    const std::string missing = "/tmp/pl-view-missing." + std::to_string(::getpid());
    auto spec = compartment("true\n");
    spec.view.binds = {{missing, "/run/missing", false}};
    try {
        sandbox::spawn(spec);
        FAIL() << "a bind of a missing source must be refused";
    } catch (const sandbox::ConfigError& e) {
        EXPECT_TRUE(contains(e.what(), missing)) << e.what();
    } catch (const std::exception& e) {
        FAIL() << "not a ConfigError: " << e.what();
    }
    EXPECT_TRUE(no_children_left());
}

TEST_F(FileViewTest, BindTargetMissingOnTheReadOnlyHostIsAConfigError) {
    Scratch scratch("/tmp");
    auto spec = compartment("true\n");
    spec.view.binds = {{scratch.path().string(), "/etc/pl-view-nowhere", false}};
    try {
        sandbox::spawn(spec);
        FAIL() << "a bind target that cannot be created must be refused";
    } catch (const sandbox::ConfigError& e) {
        EXPECT_TRUE(contains(e.what(), "/etc/pl-view-nowhere")) << e.what();
    } catch (const std::exception& e) {
        FAIL() << "not a ConfigError: " << e.what();
    }
    EXPECT_TRUE(no_children_left());
}

TEST_F(FileViewTest, FailedMountOpIsASpawnErrorNamingTheOp) {
    // Passes compile_view (the target exists on the host) but a directory
    // cannot be moved onto a file: the child's move_mount fails.
    Scratch scratch("/tmp");
    ASSERT_TRUE(fs::is_regular_file("/etc/hostname"));
    auto spec = compartment("true\n");
    spec.view.binds = {{scratch.path().string(), "/etc/hostname", false}};
    try {
        sandbox::spawn(spec);
        FAIL() << "binding a directory onto a file must fail";
    } catch (const sandbox::SpawnError& e) {
        EXPECT_EQ(e.step(), sandbox::ChildStep::kFileView) << e.what();
        EXPECT_TRUE(contains(e.what(), "bind " + scratch.path().string() + " onto /etc/hostname"))
            << e.what();
    }
    EXPECT_TRUE(no_children_left()) << "the failed child (the init) must be reaped";
    EXPECT_FALSE(group_.populated());
}

// ---------------------------------------------------------------------------
// Landlock

// Without a pid namespace (in one, the host's pids are not visible at all):
// a root child without CAP_KILL may signal a process of the same uid, unless
// its Landlock domain scopes signals.
TEST(LandlockInSpawn, ScopedChildCannotSignalAProcessOutsideItsDomain) {
    sandbox::LandlockPlan plan = sandbox::make_landlock_ruleset();
    if (!plan.active() || !plan.scopes.signal) {
        GTEST_SKIP() << "no Landlock signal scoping here (" << plan.describe()
                     << "; runs in the VM suite)";
    }
    pltest::TestTree tree;
    sandbox::Cgroup group = tree.tree().create_group("landlock");
    auto victim_spec = pltest::misbehave({"sleep"});
    victim_spec.cgroup_fd = group.dir_fd();
    sandbox::SpawnResult victim = sandbox::spawn(victim_spec);

    auto attacker = [&](int ruleset_fd) {
        sandbox::SpawnSpec spec;
        spec.executable = "/bin/sh";
        spec.argv = {"sh", "-c",
                     "exec 2>&1; kill -0 " + std::to_string(victim.process.pid()) +
                         " && echo 'signal delivered'"};
        spec.environment = {"PATH=/usr/bin:/bin"};
        spec.cgroup_fd = group.dir_fd();
        spec.landlock_ruleset_fd = ruleset_fd;
        return pltest::run_captured(spec).output;
    };
    const std::string unscoped = attacker(-1);
    const std::string scoped = attacker(plan.ruleset.get());
    EXPECT_TRUE(contains(unscoped, "signal delivered")) << unscoped;
    EXPECT_FALSE(contains(scoped, "signal delivered")) << scoped;
    EXPECT_TRUE(contains(scoped, std::strerror(EPERM))) << scoped;
    EXPECT_FALSE(victim.process.has_exited());
}

}  // namespace
