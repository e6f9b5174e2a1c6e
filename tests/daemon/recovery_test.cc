// The launcher is SIGKILLed and started again: every key it accepted is
// settled (its live process adopted, or started again, or its stop
// finished), nothing else in its subtree survives, nothing outside it is
// touched. State records are edited through the launcher's own StateStore
// (state_records.h) while the daemon is down.
#include <google/protobuf/unknown_field_set.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <iterator>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include "state/record_file.h"
#include "state_records.h"
#include "test_daemon.h"

namespace {

using namespace pltest;
using namespace std::chrono_literals;
namespace fs = std::filesystem;
namespace rec = pattern_launcher::state;

constexpr int kPatterns = 50;

std::map<std::string, int> launch_many(TestDaemon& d, int count) {
    std::map<std::string, int> pids;
    for (int i = 0; i < count; ++i) {
        pb::LaunchResponse r;
        const char* pattern = i % 2 ? "echo" : "sleeper";
        EXPECT_TRUE(
            d.launch(pattern, pb::ISOLATION_NAMESPACE, "t" + std::to_string(i), "", &r).ok())
            << d.log();
        pids[r.process_id()] = r.pid();
    }
    return pids;
}

void add_patterns(TestDaemon& d) {
    d.add_pattern("echo", echo_manifest("notify"), PL_ECHO);
    d.add_pattern("sleeper", misbehave_manifest("sleep"));
}

// Polls the key's status until `done` holds (or `limit` passes).
pb::PatternInfo wait_for(TestDaemon& d, const std::string& id,
                         const std::function<bool(const pb::PatternInfo&)>& done,
                         std::chrono::seconds limit = 20s) {
    pb::PatternInfo info;
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
        info = d.status(id);
        if (done(info)) return info;
        std::this_thread::sleep_for(10ms);
    }
    ADD_FAILURE() << "timed out waiting on " << id << "; last state " << info.state() << "\n"
                  << d.log();
    return info;
}

// Running again, in a process other than `old_pid`.
bool running_anew(const pb::PatternInfo& info, pid_t old_pid) {
    return info.state() == pb::STATE_RUNNING && info.pid() != 0 && info.pid() != old_pid;
}

// Whether the daemon knows `id` (GetProcessStatus answers OK with
// not_found for a key it does not know, as the Go launcher did).
bool known(TestDaemon& d, const std::string& id) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 10s);
    pb::GetProcessStatusRequest req;
    req.set_process_id(id);
    pb::GetProcessStatusResponse resp;
    const grpc::Status status = d.api().GetProcessStatus(&ctx, req, &resp);
    EXPECT_TRUE(status.ok()) << id << ": " << status.error_message();
    return status.ok() && !resp.not_found();
}

// Whether one line of `log` contains every one of `parts`.
bool has_line(const std::string& log, std::initializer_list<std::string> parts) {
    std::istringstream in(log);
    for (std::string line; std::getline(in, line);) {
        bool all = true;
        for (const std::string& part : parts)
            all = all && line.find(part) != std::string::npos;
        if (all) return true;
    }
    return false;
}

// How the restart settled `id`, from "recovered <id>: <how>" (ProcessInfo's
// recovery is not on the wire).
std::string recovered_as(const std::string& log, const std::string& id) {
    const std::string marker = "recovered " + id + ": ";
    const std::size_t at = log.rfind(marker);
    if (at == std::string::npos) return "";
    const std::size_t begin = at + marker.size();
    return log.substr(begin, log.find('\n', begin) - begin);
}

// The directories named run.N (one per live incarnation) below `root`.
int leaves_below(const std::string& root) {
    int count = 0;
    for (const std::string& dir : cgroups_below(root))
        count += fs::path(dir).filename().string().starts_with("run.") ? 1 : 0;
    return count;
}

// Every record in `dir`, decoded, for failure messages.
std::string describe_records(const std::string& dir) {
    std::string out;
    for (const auto& entry : fs::directory_iterator(dir)) {
        if (!entry.is_regular_file()) continue;
        std::ifstream in(entry.path(), std::ios::binary);
        const std::string bytes{std::istreambuf_iterator<char>(in),
                                std::istreambuf_iterator<char>()};
        KeyRecord record;
        std::string problem;
        out += entry.path().filename().string() + ": ";
        out += launcher::record_file::decode(bytes, record, problem) ? record.ShortDebugString()
                                                                     : problem;
        out += "\n";
    }
    return out;
}

// Whether `path` is gone, or goes within `limit`.
bool gone_within(const std::string& path, std::chrono::seconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (fs::exists(path)) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(20ms);
    }
    return true;
}

// Waits (up to 10 s) until `pid` ignores SIGTERM (SigIgn in /proc/PID/status).
bool ignores_sigterm(pid_t pid) {
    for (int i = 0; i < 1000; ++i) {
        std::ifstream in("/proc/" + std::to_string(pid) + "/status");
        for (std::string line; std::getline(in, line);) {
            if (!line.starts_with("SigIgn:")) continue;
            const unsigned long long mask = std::stoull(line.substr(7), nullptr, 16);
            if (mask & (1ULL << (SIGTERM - 1))) return true;
        }
        std::this_thread::sleep_for(10ms);
    }
    return false;
}

// The daemon's tenant cgroups, space-separated, once there are none or
// `limit` has passed (their removal follows the kill asynchronously).
std::string tenant_cgroups_after(TestDaemon& d, std::chrono::seconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    std::vector<std::string> left = d.tenant_cgroups();
    while (!left.empty() && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(20ms);
        left = d.tenant_cgroups();
    }
    std::string names;
    for (const std::string& dir : left)
        names += (names.empty() ? "" : " ") + dir;
    return names;
}

// The names in `dir`, space-separated, once it is empty or 5 s have passed
// (a terminate is answered just before its record is removed).
std::string records_left(const std::string& dir) {
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    for (;;) {
        std::string names;
        for (const auto& entry : fs::directory_iterator(dir))
            names += (names.empty() ? "" : " ") + entry.path().filename().string();
        if (names.empty() || std::chrono::steady_clock::now() > deadline) return names;
        std::this_thread::sleep_for(10ms);
    }
}

TEST(Recovery, FiftyPatternsAreAdoptedWithTheirPidsAfterASigkill) {
    TestDaemon d;
    add_patterns(d);
    d.start();
    std::map<std::string, int> before = launch_many(d, kPatterns);
    ASSERT_EQ(before.size(), static_cast<std::size_t>(kPatterns));
    std::map<std::string, std::string> addresses;
    const pb::ListPatternsResponse listed = d.list();
    for (const auto& p : listed.patterns())
        addresses[p.process_id()] = p.address();

    d.kill_hard();
    for (const auto& [id, pid] : before)
        ASSERT_TRUE(process_alive(pid)) << id << " died with the launcher";
    d.start();

    pb::ListPatternsResponse after = d.list();
    ASSERT_EQ(after.total_count(), kPatterns) << d.log();
    for (const auto& p : after.patterns()) {
        EXPECT_EQ(p.pid(), before[p.process_id()]) << p.process_id();
        EXPECT_EQ(p.address(), addresses[p.process_id()]) << p.process_id();
        EXPECT_EQ(p.state(), pb::STATE_RUNNING);
    }
    const std::string log = d.log();
    EXPECT_NE(log.find("recovery: adopted 50, started again 0"), std::string::npos) << log;
    EXPECT_EQ(recovered_as(log, "ns:t1:echo"), "adopted") << log;
    EXPECT_EQ(recovered_as(log, "ns:t0:sleeper"), "adopted") << log;

    // Adopted processes are fully managed: reuse, terminate, and relaunch.
    pb::LaunchResponse again;
    ASSERT_TRUE(d.launch("echo", pb::ISOLATION_NAMESPACE, "t1", "", &again).ok());
    EXPECT_TRUE(again.reused());
    EXPECT_EQ(again.pid(), before["ns:t1:echo"]);
    for (const auto& [id, pid] : before) {
        pb::TerminateResponse t;
        ASSERT_TRUE(d.terminate(id, &t).ok()) << id;
        EXPECT_FALSE(process_alive(pid)) << id;
    }
    EXPECT_TRUE(d.tenant_cgroups().empty());
    EXPECT_EQ(records_left(d.state_dir()), "") << "a terminated key leaves no record\n"
                                               << describe_records(d.state_dir()) << d.log();
}

TEST(Recovery, AnAdoptedPatternThatCrashesIsRestartedOnItsOldAddress) {
    TestDaemon d;
    d.add_pattern("echo", echo_manifest("http"), PL_ECHO);
    d.start();
    pb::LaunchResponse r;
    ASSERT_TRUE(d.launch("echo", pb::ISOLATION_NAMESPACE, "a", "", &r).ok());
    d.kill_hard();
    d.start();
    ::kill(r.pid(), SIGKILL);
    const pb::PatternInfo back = wait_for(
        d, r.process_id(), [&](const pb::PatternInfo& i) { return running_anew(i, r.pid()); });
    EXPECT_EQ(back.state(), pb::STATE_RUNNING) << d.log();
    EXPECT_NE(back.pid(), r.pid());
    EXPECT_EQ(back.address(), r.address());
    EXPECT_EQ(back.restart_count(), 1);
    EXPECT_EQ(roundtrip(back.address(), "after the crash"), "after the crash");
}

// orphan_policy: kill ends the processes a previous launcher left, not the
// keys: each is started again where it was, and no old incarnation stays.
TEST(Recovery, OrphanPolicyKillStartsEveryKeyAgainInACleanTree) {
    TestDaemon d;
    add_patterns(d);
    d.start();
    std::map<std::string, int> before = launch_many(d, kPatterns);
    ASSERT_EQ(before.size(), static_cast<std::size_t>(kPatterns));
    std::map<std::string, std::string> addresses;
    const pb::ListPatternsResponse listed = d.list();
    for (const auto& p : listed.patterns())
        addresses[p.process_id()] = p.address();
    d.kill_hard();
    d.add_config("orphan_policy: kill");
    d.start();

    pb::ListPatternsResponse after;
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    for (;;) {
        after = d.list();
        int running = 0;
        for (const auto& p : after.patterns())
            running += running_anew(p, before[p.process_id()]) ? 1 : 0;
        if (running == kPatterns || std::chrono::steady_clock::now() > deadline) break;
        std::this_thread::sleep_for(20ms);
    }
    ASSERT_EQ(after.total_count(), kPatterns) << "the keys were lost\n" << d.log();
    for (const auto& p : after.patterns()) {
        EXPECT_TRUE(running_anew(p, before[p.process_id()]))
            << p.process_id() << " state " << p.state() << " pid " << p.pid();
        EXPECT_EQ(p.address(), addresses[p.process_id()]) << p.process_id();
        EXPECT_TRUE(process_alive(p.pid())) << p.process_id();
    }
    // Each key was started again once (one restart, not two).
    std::string miscounted;
    for (const auto& p : after.patterns()) {
        if (p.restart_count() != 1)
            miscounted += " " + p.process_id() + "=" + std::to_string(p.restart_count());
    }
    EXPECT_EQ(miscounted, "") << "restart_count other than 1";
    for (const auto& [id, pid] : before)
        EXPECT_FALSE(process_alive(pid)) << id << ": its old process survived";
    EXPECT_EQ(leaves_below(d.cgroup_root()), kPatterns)
        << "one leaf per key: the old incarnations' leaves are gone";
    const std::string log = d.log();
    EXPECT_EQ(recovered_as(log, "ns:t0:sleeper"), "started again (orphan_policy is kill)") << log;
    EXPECT_EQ(recovered_as(log, "ns:t1:echo"), "started again (orphan_policy is kill)") << log;
    EXPECT_EQ(roundtrip(addresses["ns:t1:echo"], "same address"), "same address");

    for (const auto& [id, pid] : before) {
        pb::TerminateResponse t;
        ASSERT_TRUE(d.terminate(id, &t).ok()) << id;
    }
    EXPECT_TRUE(d.tenant_cgroups().empty());
    EXPECT_EQ(records_left(d.state_dir()), "") << "a terminated key leaves no record\n"
                                               << describe_records(d.state_dir()) << d.log();
}

// Cuts the file of `process_id`'s record in half (the daemon is down).
void truncate_record(TestDaemon& d, const std::string& process_id) {
    const fs::path file = record_file_of(d.state_dir(), process_id);
    std::string bytes;
    {
        std::ifstream in(file, std::ios::binary);
        ASSERT_TRUE(in.good()) << file;
        bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    ASSERT_GT(bytes.size(), 20u) << file;
    std::ofstream(file, std::ios::binary | std::ios::trunc) << bytes.substr(0, bytes.size() / 2);
}

// A record cut short is not trusted: it is moved aside and said so, and its
// group is judged by what the cgroup, the pid and the ids vouch for. "bad"
// passes those checks and is adopted; "intruded" holds a process that the
// launcher did not start (two roots in its leaf), so without a record
// nothing vouches for it and it is killed. The other keys are not disturbed.
TEST(Recovery, ACorruptStateRecordIsSetAsideAndItsGroupJudgedWithoutIt) {
    TestDaemon d;
    add_patterns(d);
    d.start();
    pb::LaunchResponse good, bad, intruded;
    ASSERT_TRUE(d.launch("sleeper", pb::ISOLATION_NAMESPACE, "good", "", &good).ok());
    ASSERT_TRUE(d.launch("sleeper", pb::ISOLATION_NAMESPACE, "bad", "", &bad).ok());
    ASSERT_TRUE(d.launch("sleeper", pb::ISOLATION_NAMESPACE, "intruded", "", &intruded).ok());
    const std::optional<KeyRecord> intruded_record =
        read_record(d.state_dir(), intruded.process_id());
    ASSERT_TRUE(intruded_record);
    const std::string intruded_group = intruded_record->cgroup();
    const std::string intruded_leaf =
        intruded_group + "/run." + std::to_string(intruded_record->incarnation());
    d.kill_hard();
    truncate_record(d, bad.process_id());
    truncate_record(d, intruded.process_id());
    // A stranger (a child of the test) joins the intruded key's leaf.
    char* argv[] = {const_cast<char*>(PL_MISBEHAVE), const_cast<char*>("sleep"), nullptr};
    pid_t stranger = 0;
    char* no_env[] = {nullptr};
    ASSERT_EQ(::posix_spawn(&stranger, PL_MISBEHAVE, nullptr, nullptr, argv, no_env), 0);
    std::ofstream(intruded_leaf + "/cgroup.procs") << stranger << std::endl;
    ASSERT_EQ(cgroup_of(stranger), intruded_leaf);

    d.start();
    const std::string log = d.log();
    for (const pb::LaunchResponse* key : {&bad, &intruded}) {
        const fs::path file = record_file_of(d.state_dir(), key->process_id());
        EXPECT_TRUE(has_line(log, {"state record " + file.string() + " cannot be read (truncated",
                                   "moved to " + d.state_dir() + "/set-aside/"}))
            << log;
    }
    int kept = 0;
    for ([[maybe_unused]] const auto& entry : fs::directory_iterator(d.state_dir() + "/set-aside"))
        ++kept;
    EXPECT_EQ(kept, 2) << "the unreadable records are kept for a human";

    EXPECT_EQ(d.status(good.process_id()).pid(), good.pid()) << "the good key is untouched";
    EXPECT_EQ(recovered_as(log, good.process_id()), "adopted") << log;

    // Nothing but the record is wrong: the checks vouch for the process.
    EXPECT_TRUE(process_alive(bad.pid())) << log;
    const pb::PatternInfo adopted = d.status(bad.process_id());
    EXPECT_EQ(adopted.pid(), bad.pid()) << log;
    EXPECT_EQ(adopted.address(), bad.address()) << log;
    EXPECT_TRUE(recovered_as(log, bad.process_id()).starts_with("adopted")) << log;
    const std::optional<KeyRecord> rewritten = read_record(d.state_dir(), bad.process_id());
    ASSERT_TRUE(rewritten) << "the adopted key has a record again";
    EXPECT_EQ(rewritten->pid(), bad.pid());

    // Two roots in the leaf: nothing vouches for the group.
    EXPECT_NE(
        log.find("killing the processes in " + intruded_group + ": no state record describes it"),
        std::string::npos)
        << log;
    EXPECT_FALSE(process_alive(intruded.pid()));
    EXPECT_EQ(::waitpid(stranger, nullptr, 0), stranger);
    EXPECT_FALSE(known(d, intruded.process_id()))
        << d.status(intruded.process_id()).DebugString() << log;
    EXPECT_TRUE(gone_within(intruded_group, 10s)) << d.log();
    EXPECT_FALSE(fs::exists(record_file_of(d.state_dir(), intruded.process_id())));
    EXPECT_EQ(d.list().total_count(), 2) << log;
}

TEST(Recovery, AMissingStateDirectoryMeansEverythingIsKilled) {
    TestDaemon d;
    add_patterns(d);
    d.start();
    pb::LaunchResponse r;
    ASSERT_TRUE(d.launch("sleeper", pb::ISOLATION_NONE, "", "", &r).ok());
    const std::optional<KeyRecord> record = read_record(d.state_dir(), r.process_id());
    ASSERT_TRUE(record && !record->cgroup().empty());
    d.kill_hard();
    fs::remove_all(d.state_dir());
    d.start();
    EXPECT_FALSE(process_alive(r.pid()));
    EXPECT_EQ(d.list().total_count(), 0);
    EXPECT_NE(d.log().find("killing the processes in " + record->cgroup() +
                           ": no state record describes it"),
              std::string::npos)
        << d.log();
    EXPECT_EQ(tenant_cgroups_after(d, 10s), "") << d.log();
}

// The periodic reconciliation lists the subtree only when link counts say a
// group may be there that no key owns: groups made by hand, directly under
// the root and inside a namespace's group, are still found and removed, and
// the keys' own groups are left alone.
TEST(Recovery, GroupsMadeByHandWhileRunningAreRemovedByTheResync) {
    TestDaemon d;
    add_patterns(d);
    d.add_config("process_manager: {resync_interval: 200ms}");
    d.start();
    pb::LaunchResponse plain, tenant;
    ASSERT_TRUE(d.launch("sleeper", pb::ISOLATION_NONE, "", "", &plain).ok());
    ASSERT_TRUE(d.launch("sleeper", pb::ISOLATION_NAMESPACE, "t1", "", &tenant).ok());
    const std::optional<KeyRecord> plain_record = read_record(d.state_dir(), plain.process_id());
    const std::optional<KeyRecord> tenant_record = read_record(d.state_dir(), tenant.process_id());
    ASSERT_TRUE(plain_record && tenant_record);
    const std::string top = d.cgroup_root() + "/stray-top";
    const std::string inner = d.cgroup_root() + "/ns:t1/stray-inner";
    ASSERT_TRUE(fs::create_directory(top));
    ASSERT_TRUE(fs::create_directory(inner));
    EXPECT_TRUE(gone_within(top, 10s)) << d.log();
    EXPECT_TRUE(gone_within(inner, 10s)) << d.log();
    EXPECT_TRUE(fs::exists(plain_record->cgroup()));
    EXPECT_TRUE(fs::exists(tenant_record->cgroup()));
    EXPECT_TRUE(process_alive(plain.pid()));
    EXPECT_TRUE(process_alive(tenant.pid()));
    EXPECT_EQ(d.list().total_count(), 2);
}

TEST(Recovery, ProcessesOutsideTheSubtreeAreNeverTouched) {
    // An unrelated process that looks like a pattern (the Go launcher killed
    // such processes by scanning /proc for PATTERN_NAME).
    std::vector<std::string> env_strings = {"PATTERN_NAME=sleeper", "PROCESS_ID=ns:t0:sleeper",
                                            "MISBEHAVE_MODE=sleep"};
    std::vector<char*> envp;
    for (auto& e : env_strings)
        envp.push_back(e.data());
    envp.push_back(nullptr);
    char* argv[] = {const_cast<char*>(PL_MISBEHAVE), nullptr};
    pid_t stranger = 0;
    ASSERT_EQ(::posix_spawn(&stranger, PL_MISBEHAVE, nullptr, nullptr, argv, envp.data()), 0);

    TestDaemon d;
    add_patterns(d);
    d.start();
    launch_many(d, 4);
    d.kill_hard();
    d.start();
    d.stop();
    EXPECT_TRUE(process_alive(stranger));
    ::kill(stranger, SIGKILL);
    ::waitpid(stranger, nullptr, 0);
}

// ---- records of other launcher versions, keys between processes ----------------

bool has_unknown_varint(const KeyRecord& record, int number, std::uint64_t value) {
    const auto& unknown = record.GetReflection()->GetUnknownFields(record);
    for (int i = 0; i < unknown.field_count(); ++i) {
        const auto& field = unknown.field(i);
        if (field.number() == number &&
            field.type() == google::protobuf::UnknownField::TYPE_VARINT && field.varint() == value)
            return true;
    }
    return false;
}

// A rollback: the record was written by a newer launcher, with a field this
// one does not know. The key is adopted, and the field survives this
// launcher's rewrites of the record (the newer one will want it back).
TEST(Recovery, ARecordFromANewerLauncherIsAdoptedAndItsUnknownFieldKept) {
    TestDaemon d;
    add_patterns(d);
    d.start();
    pb::LaunchResponse r;
    ASSERT_TRUE(d.launch("sleeper", pb::ISOLATION_NAMESPACE, "a", "", &r).ok()) << d.log();
    d.kill_hard();
    ASSERT_TRUE(edit_record(d.state_dir(), r.process_id(), [](KeyRecord& k) {
        k.GetReflection()->MutableUnknownFields(&k)->AddVarint(999, 1);
    }));
    {
        const std::optional<KeyRecord> edited = read_record(d.state_dir(), r.process_id());
        ASSERT_TRUE(edited && has_unknown_varint(*edited, 999, 1)) << "the test wrote no field 999";
    }

    d.start();
    EXPECT_EQ(d.status(r.process_id()).pid(), r.pid()) << d.log();
    EXPECT_EQ(recovered_as(d.log(), r.process_id()), "adopted") << d.log();
    const std::optional<KeyRecord> rewritten = read_record(d.state_dir(), r.process_id());
    ASSERT_TRUE(rewritten);
    EXPECT_EQ(rewritten->recovery(), "adopted") << "the adoption rewrote the record";
    EXPECT_TRUE(has_unknown_varint(*rewritten, 999, 1)) << rewritten->DebugString();

    d.kill_hard();
    d.start();
    EXPECT_EQ(d.status(r.process_id()).pid(), r.pid()) << d.log();
    const std::optional<KeyRecord> again = read_record(d.state_dir(), r.process_id());
    ASSERT_TRUE(again);
    EXPECT_TRUE(has_unknown_varint(*again, 999, 1)) << again->DebugString();
}

// The restart delays logged as "<id>: restarting in D ms (N consecutive
// failures)", in order.
std::vector<int> logged_backoffs(const std::string& log, const std::string& id) {
    std::vector<int> out;
    const std::regex line(std::regex_replace(id, std::regex(R"([.^$|()\[\]{}*+?\\])"), R"(\$&)") +
                          R"(: restarting in (\d+) ms)");
    for (auto it = std::sregex_iterator(log.begin(), log.end(), line); it != std::sregex_iterator();
         ++it)
        out.push_back(std::stoi((*it)[1]));
    return out;
}

// A key between two incarnations has no process for a restart to find; it
// is still owed one.
TEST(Recovery, AKeyInBackoffWhenTheLauncherDiesComesBack) {
    TestDaemon d;
    // Back-off doubles from 100 ms: the fifth restart waits 1.6 s (±20 %).
    d.add_config("process_manager: {circuit_breaker_threshold: 20, backoff_period: 60s}");
    d.add_pattern("crasher", misbehave_manifest("crash-after-ms", "300"));
    d.start();
    pb::LaunchResponse r;
    ASSERT_TRUE(d.launch("crasher", pb::ISOLATION_NAMESPACE, "a", "", &r).ok()) << d.log();
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    for (;;) {
        const std::vector<int> delays = logged_backoffs(d.log(), r.process_id());
        if (!delays.empty() && delays.back() >= 1000) break;
        ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "no long back-off\n" << d.log();
        std::this_thread::sleep_for(5ms);
    }
    d.kill_hard();
    const std::optional<KeyRecord> record = read_record(d.state_dir(), r.process_id());
    ASSERT_TRUE(record) << "the key in back-off has no record";
    ASSERT_EQ(record->phase(), rec::PHASE_BACKOFF) << record->DebugString();
    EXPECT_EQ(record->desired(), rec::DESIRED_RUNNING);
    EXPECT_EQ(record->pid(), 0);
    EXPECT_GT(record->backoff_until_unix_ms(), 0);
    ASSERT_GE(record->restart_count(), 4);

    d.start();
    ASSERT_TRUE(known(d, r.process_id())) << "the key was lost\n" << d.log();
    EXPECT_TRUE(recovered_as(d.log(), r.process_id()).starts_with("started again")) << d.log();
    const pb::PatternInfo back = wait_for(
        d, r.process_id(), [&](const pb::PatternInfo& i) { return running_anew(i, r.pid()); });
    EXPECT_EQ(back.address(), r.address());
    EXPECT_GE(back.restart_count(), record->restart_count() + 1) << "restart counters continue";
    EXPECT_GE(back.error_count(), record->error_count());
}

// A terminate under way when the launcher dies (a pattern that ignores
// SIGTERM, a long grace period) is not forgotten half-done: the next
// launcher finishes it and forgets the key.
TEST(Recovery, ATerminateInProgressWhenTheLauncherDiesIsFinished) {
    TestDaemon d;
    d.add_pattern("stubborn", misbehave_manifest("ignore-sigterm", "", "grace_period: 60s\n"));
    d.start();
    pb::LaunchResponse r;
    ASSERT_TRUE(d.launch("stubborn", pb::ISOLATION_NAMESPACE, "a", "", &r).ok()) << d.log();
    const std::string id = r.process_id();
    // READY=1 comes before the fixture ignores SIGTERM: wait for the latter.
    ASSERT_TRUE(ignores_sigterm(pattern_pid(r.pid()))) << d.log();

    std::shared_ptr<pb::PatternLauncher::Stub> stub = d.connect();
    std::thread terminating([stub, id] {
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + 90s);
        pb::TerminateRequest req;
        req.set_process_id(id);
        req.set_grace_period_secs(60);
        pb::TerminateResponse resp;
        // Ends when the daemon is killed (UNAVAILABLE); its outcome is not the point.
        (void)stub->TerminatePattern(&ctx, req, &resp);
    });
    bool stopping = false;
    for (int i = 0; i < 2000 && !stopping; ++i) {
        const std::optional<KeyRecord> record = read_record(d.state_dir(), id);
        stopping = record && record->desired() == rec::DESIRED_STOPPED;
        if (!stopping) std::this_thread::sleep_for(10ms);
    }
    d.kill_hard();
    terminating.join();
    ASSERT_TRUE(stopping) << "the terminate was never recorded\n" << d.log();
    ASSERT_TRUE(process_alive(r.pid())) << "SIGTERM is ignored: the grace period was running";

    const auto begin = std::chrono::steady_clock::now();
    d.start();
    bool found = true;
    while (found && std::chrono::steady_clock::now() - begin < 20s) {
        found = known(d, id);
        if (found) std::this_thread::sleep_for(10ms);
    }
    EXPECT_FALSE(found) << d.status(id).DebugString() << describe_records(d.state_dir()) << d.log();
    EXPECT_LT(std::chrono::steady_clock::now() - begin, 30s)
        << "finishing the stop waited out the 60 s grace again";
    EXPECT_EQ(recovered_as(d.log(), id), "stop finished") << d.log();
    EXPECT_FALSE(process_alive(r.pid()));
    EXPECT_TRUE(d.tenant_cgroups().empty());
    EXPECT_FALSE(fs::exists(record_file_of(d.state_dir(), id))) << "the record is forgotten";
    EXPECT_EQ(d.list().total_count(), 0);
}

// ---- identities (launcher.identity_range) ---------------------------------------

constexpr std::uint32_t kFirstId = 1879048192;  // the default identity_range
constexpr std::uint32_t kLastId = 1879113727;
// A pattern that names its user (a plain uid outside the range) takes no identity.
constexpr const char* kFixedUser = "sandbox:\n  user: \"65533\"\n";

// The identity the key's record names, 0 when none (or no record).
std::uint32_t recorded_identity(TestDaemon& d, const std::string& process_id) {
    const std::optional<KeyRecord> record = read_record(d.state_dir(), process_id);
    EXPECT_TRUE(record) << "no record of " << process_id;
    return record ? record->identity() : 0;
}

// Real and effective uid and gid, as "uid/euid/gid/egid".
std::string runs_as(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string out;
    for (std::string line; std::getline(in, line);) {
        if (!line.starts_with("Uid:") && !line.starts_with("Gid:")) continue;
        std::istringstream fields(line.substr(4));
        std::string real, effective;
        fields >> real >> effective;
        out += (out.empty() ? "" : "/") + real + "/" + effective;
    }
    return out;
}

std::string as(std::uint32_t id) {
    const std::string n = std::to_string(id);
    return n + "/" + n + "/" + n + "/" + n;
}

TEST(Identity, EveryKeyRunsAsItsOwnAndAFixedUserTakesNone) {
    TestDaemon d;
    add_patterns(d);
    d.add_pattern("fixed", misbehave_manifest("sleep", "", kFixedUser));
    d.start();
    std::set<std::uint32_t> seen;
    for (int i = 0; i < 4; ++i) {
        pb::LaunchResponse r;
        const std::string pattern = i % 2 ? "echo" : "sleeper";
        ASSERT_TRUE(
            d.launch(pattern, pb::ISOLATION_NAMESPACE, "t" + std::to_string(i), "", &r).ok())
            << d.log();
        const std::uint32_t id = recorded_identity(d, r.process_id());
        EXPECT_GE(id, kFirstId) << r.process_id();
        EXPECT_LE(id, kLastId) << r.process_id();
        EXPECT_TRUE(seen.insert(id).second) << "identity " << id << " given twice";
        EXPECT_EQ(runs_as(r.pid()), as(id)) << r.process_id();
    }
    pb::LaunchResponse fixed;
    ASSERT_TRUE(d.launch("fixed", pb::ISOLATION_NAMESPACE, "r", "", &fixed).ok()) << d.log();
    EXPECT_EQ(recorded_identity(d, fixed.process_id()), 0u);
    EXPECT_EQ(runs_as(fixed.pid()).substr(0, 12), "65533/65533/");
}

TEST(Identity, AnExhaustedRangeRefusesNewKeysUntilOneIsGone) {
    TestDaemon d;
    add_patterns(d);
    d.add_pattern("fixed", misbehave_manifest("sleep", "", kFixedUser));
    d.add_config("identity_range: 1879048192-1879048193");
    d.start();
    pb::LaunchResponse a, b, c;
    ASSERT_TRUE(d.launch("sleeper", pb::ISOLATION_NAMESPACE, "a", "", &a).ok()) << d.log();
    ASSERT_TRUE(d.launch("sleeper", pb::ISOLATION_NAMESPACE, "b", "", &b).ok()) << d.log();
    const std::uint32_t id_a = recorded_identity(d, a.process_id());
    const grpc::Status refused = d.launch("sleeper", pb::ISOLATION_NAMESPACE, "c", "", &c);
    EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
    EXPECT_NE(refused.error_message().find(
                  "no free identity in identity_range 1879048192-1879048193 (2 in use)"),
              std::string::npos)
        << refused.error_message();
    // A key that names its user needs no identity.
    pb::LaunchResponse fixed;
    EXPECT_TRUE(d.launch("fixed", pb::ISOLATION_NAMESPACE, "r", "", &fixed).ok()) << d.log();

    pb::TerminateResponse t;
    ASSERT_TRUE(d.terminate(a.process_id(), &t).ok());
    ASSERT_TRUE(d.launch("sleeper", pb::ISOLATION_NAMESPACE, "c", "", &c).ok()) << d.log();
    EXPECT_EQ(recorded_identity(d, c.process_id()), id_a);
    EXPECT_EQ(runs_as(c.pid()), as(id_a));
}

TEST(Recovery, AdoptedKeysKeepTheirIdentitiesAndNewKeysGetOthers) {
    TestDaemon d;
    add_patterns(d);
    d.start();
    pb::LaunchResponse a, b;
    ASSERT_TRUE(d.launch("sleeper", pb::ISOLATION_NAMESPACE, "a", "", &a).ok()) << d.log();
    ASSERT_TRUE(d.launch("sleeper", pb::ISOLATION_NAMESPACE, "b", "", &b).ok()) << d.log();
    const std::uint32_t id_a = recorded_identity(d, a.process_id());
    const std::uint32_t id_b = recorded_identity(d, b.process_id());
    d.kill_hard();
    d.start();
    ASSERT_EQ(d.list().total_count(), 2) << d.log();
    EXPECT_EQ(recorded_identity(d, a.process_id()), id_a);
    EXPECT_EQ(recorded_identity(d, b.process_id()), id_b);

    // Held by the adopted keys: a new key gets another id.
    pb::LaunchResponse c;
    ASSERT_TRUE(d.launch("sleeper", pb::ISOLATION_NAMESPACE, "c", "", &c).ok()) << d.log();
    const std::uint32_t id_c = recorded_identity(d, c.process_id());
    EXPECT_NE(id_c, id_a);
    EXPECT_NE(id_c, id_b);

    // An adopted key's restarted process runs as the same identity.
    ::kill(a.pid(), SIGKILL);
    const pb::PatternInfo back = wait_for(
        d, a.process_id(), [&](const pb::PatternInfo& i) { return running_anew(i, a.pid()); });
    ASSERT_EQ(back.state(), pb::STATE_RUNNING) << d.log();
    EXPECT_EQ(runs_as(back.pid()), as(id_a));
    EXPECT_EQ(recorded_identity(d, a.process_id()), id_a);
}

// A process is adopted only as the identity its record names: one that runs
// as another (a claims b's identity) or as one of the range when its record
// names none (c) is killed, and its key started again under an identity of
// its own; the key whose identity was claimed keeps its process.
TEST(Recovery, AProcessThatDoesNotRunAsItsRecordedIdentityIsNotAdopted) {
    TestDaemon d;
    add_patterns(d);
    d.start();
    pb::LaunchResponse a, b, c;
    ASSERT_TRUE(d.launch("sleeper", pb::ISOLATION_NAMESPACE, "a", "", &a).ok()) << d.log();
    ASSERT_TRUE(d.launch("sleeper", pb::ISOLATION_NAMESPACE, "b", "", &b).ok()) << d.log();
    ASSERT_TRUE(d.launch("sleeper", pb::ISOLATION_NAMESPACE, "c", "", &c).ok()) << d.log();
    const std::uint32_t id_a = recorded_identity(d, a.process_id());
    const std::uint32_t id_b = recorded_identity(d, b.process_id());
    const std::uint32_t id_c = recorded_identity(d, c.process_id());
    d.kill_hard();
    ASSERT_TRUE(
        edit_record(d.state_dir(), a.process_id(), [&](KeyRecord& r) { r.set_identity(id_b); }));
    ASSERT_TRUE(
        edit_record(d.state_dir(), c.process_id(), [](KeyRecord& r) { r.set_identity(0); }));
    d.start();

    const std::string log = d.log();
    EXPECT_TRUE(
        has_line(log, {"ns:a:sleeper", "runs as uid " + std::to_string(id_a) + " (effective " +
                                           std::to_string(id_a) + "), not as its identity " +
                                           std::to_string(id_b)}))
        << log;
    EXPECT_TRUE(has_line(log, {"ns:c:sleeper", "runs as uid " + std::to_string(id_c) +
                                                   " (effective " + std::to_string(id_c) +
                                                   ") from identity_range, but its state "
                                                   "record names no identity"}))
        << log;
    EXPECT_FALSE(process_alive(a.pid()));
    EXPECT_FALSE(process_alive(c.pid()));
    EXPECT_TRUE(process_alive(b.pid()));
    EXPECT_EQ(d.status(b.process_id()).pid(), b.pid()) << "b's identity was claimed, not lost\n"
                                                       << log;
    EXPECT_EQ(recovered_as(log, b.process_id()), "adopted") << log;
    EXPECT_EQ(recorded_identity(d, b.process_id()), id_b);

    std::set<std::uint32_t> identities{id_b};
    for (const pb::LaunchResponse* key : {&a, &c}) {
        const pb::PatternInfo back = wait_for(d, key->process_id(), [&](const pb::PatternInfo& i) {
            return running_anew(i, key->pid());
        });
        const std::uint32_t identity = recorded_identity(d, key->process_id());
        EXPECT_GE(identity, kFirstId) << key->process_id();
        EXPECT_LE(identity, kLastId) << key->process_id();
        EXPECT_TRUE(identities.insert(identity).second)
            << key->process_id() << " shares identity " << identity;
        EXPECT_EQ(runs_as(back.pid()), as(identity)) << key->process_id();
        EXPECT_EQ(back.address(), key->address()) << key->process_id();
    }
    EXPECT_EQ(d.list().total_count(), 3);
}

TEST(Recovery, AnIdentityOutsideTheNewRangeIsNotAdoptedAndTheKeyStartsInTheNewOne) {
    TestDaemon d;
    add_patterns(d);
    d.start();
    pb::LaunchResponse a;
    ASSERT_TRUE(d.launch("sleeper", pb::ISOLATION_NAMESPACE, "a", "", &a).ok()) << d.log();
    const std::uint32_t id_a = recorded_identity(d, a.process_id());
    d.kill_hard();
    d.add_config("identity_range: 1879113728-1879179263");
    d.start();
    EXPECT_TRUE(has_line(d.log(), {"ns:a:sleeper", "identity " + std::to_string(id_a) +
                                                       " is outside identity_range "
                                                       "1879113728-1879179263"}))
        << d.log();
    EXPECT_FALSE(process_alive(a.pid()));
    const pb::PatternInfo back = wait_for(
        d, a.process_id(), [&](const pb::PatternInfo& i) { return running_anew(i, a.pid()); });
    const std::uint32_t identity = recorded_identity(d, a.process_id());
    EXPECT_GE(identity, 1879113728u);
    EXPECT_LE(identity, 1879179263u);
    EXPECT_EQ(runs_as(back.pid()), as(identity));
    EXPECT_EQ(d.list().total_count(), 1);
}

TEST(Shutdown, SigtermWithTwentyPatternsLeavesNothing) {
    TestDaemon d;
    add_patterns(d);
    d.start();
    std::map<std::string, int> pids = launch_many(d, 20);
    std::string root = d.cgroup_root();
    EXPECT_EQ(d.stop(), 0) << d.log();
    for (const auto& [id, pid] : pids)
        EXPECT_FALSE(process_alive(pid)) << id;
    EXPECT_FALSE(fs::exists(root));
}

}  // namespace
