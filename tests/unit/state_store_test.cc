#include "state/state_store.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "sandbox/error.h"

namespace {

namespace fs = std::filesystem;
using launcher::ProcessRecord;
using launcher::StateStore;

// A fresh directory under /tmp for one test, removed afterwards.
class StateStoreTest : public ::testing::Test {
protected:
    void SetUp() override {
        std::string tmpl = (fs::temp_directory_path() / "pl-state-test.XXXXXX").string();
        ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
        root_ = tmpl;
        dir_ = root_ / "run" / "state";
    }
    void TearDown() override {
        std::error_code ec;
        fs::remove_all(root_, ec);
    }

    static void write(const fs::path& path, const std::string& text) {
        std::ofstream out(path, std::ios::binary);
        out << text;
    }
    static std::string read(const fs::path& path) {
        std::ifstream in(path, std::ios::binary);
        std::stringstream text;
        text << in.rdbuf();
        return text.str();
    }
    // The names in the state directory, sorted.
    std::vector<std::string> listing() const {
        std::vector<std::string> names;
        for (const auto& entry : fs::directory_iterator(dir_)) {
            names.push_back(entry.path().filename().string());
        }
        std::sort(names.begin(), names.end());
        return names;
    }

    fs::path root_;
    fs::path dir_;
};

ProcessRecord sample(const std::string& process_id = "ns:tenant-a:echo") {
    ProcessRecord r;
    r.process_id = process_id;
    r.pattern = "echo";
    r.isolation = "namespace";
    r.namespace_id = "tenant-a";
    r.pid = 4242;
    r.cgroup = "/sys/fs/cgroup/pattern-launcher/ns:tenant-a/ns:tenant-a:echo";
    r.address = "127.0.0.1:20000";
    r.grpc_port = 20000;
    r.health_port = 20001;
    r.notify_socket = "/run/pattern-launcher/notify/ns:tenant-a:echo.sock";
    r.started_at_unix_ms = 1700000000123;
    r.restart_count = 2;
    r.limits_enforced = false;
    r.grace_period_ms = 10000;
    r.config = {{"LOG_LEVEL", "debug"}, {"DSN", "postgres://u:p@h/db?x=1"}};
    return r;
}

void expect_same(const ProcessRecord& a, const ProcessRecord& b) {
    EXPECT_EQ(a.process_id, b.process_id);
    EXPECT_EQ(a.pattern, b.pattern);
    EXPECT_EQ(a.isolation, b.isolation);
    EXPECT_EQ(a.namespace_id, b.namespace_id);
    EXPECT_EQ(a.session_id, b.session_id);
    EXPECT_EQ(a.pid, b.pid);
    EXPECT_EQ(a.cgroup, b.cgroup);
    EXPECT_EQ(a.address, b.address);
    EXPECT_EQ(a.grpc_port, b.grpc_port);
    EXPECT_EQ(a.health_port, b.health_port);
    EXPECT_EQ(a.notify_socket, b.notify_socket);
    EXPECT_EQ(a.started_at_unix_ms, b.started_at_unix_ms);
    EXPECT_EQ(a.restart_count, b.restart_count);
    EXPECT_EQ(a.limits_enforced, b.limits_enforced);
    EXPECT_EQ(a.grace_period_ms, b.grace_period_ms);
    EXPECT_EQ(a.identity, b.identity);
    EXPECT_EQ(a.config, b.config);
}

// The message of the std::invalid_argument that deserialize(text) throws.
std::string parse_error(const std::string& text) {
    try {
        (void)launcher::deserialize(text);
    } catch (const std::invalid_argument& e) {
        return e.what();
    }
    ADD_FAILURE() << "no error for:\n" << text;
    return "";
}

TEST(StateStoreFormat, SerializesEveryFieldInOrder) {
    ProcessRecord r = sample();
    r.config = {{"A", "x=y"}};
    EXPECT_EQ(launcher::serialize(r),
              "pattern-launcher-state 1\n"
              "process_id=ns:tenant-a:echo\n"
              "pattern=echo\n"
              "isolation=namespace\n"
              "namespace_id=tenant-a\n"
              "session_id=\n"
              "pid=4242\n"
              "cgroup=/sys/fs/cgroup/pattern-launcher/ns:tenant-a/ns:tenant-a:echo\n"
              "address=127.0.0.1:20000\n"
              "grpc_port=20000\n"
              "health_port=20001\n"
              "notify_socket=/run/pattern-launcher/notify/ns:tenant-a:echo.sock\n"
              "started_at_unix_ms=1700000000123\n"
              "restart_count=2\n"
              "limits_enforced=false\n"
              "grace_period_ms=10000\n"
              "config.A=x=y\n"
              "end\n");
}

TEST(StateStoreFormat, AwkwardValuesRoundTrip) {
    ProcessRecord r = sample();
    r.session_id = "";
    r.pattern = "line1\nline2";
    r.address = "back\\slash \\n not a newline";
    r.notify_socket = "a=b=c";
    r.namespace_id = "tenant-ü-日本語-🙂";
    r.cgroup = std::string("ctl\x01\x1f\t\r\x7f", 8) + std::string(1, '\0') + "end";
    r.started_at_unix_ms = -5;
    r.config = {
        {"", "empty name"},
        {"EMPTY", ""},
        {"NL", "\n"},
        {"BS", "\\"},
        {"EQ=IN=NAME", "="},
        {"name\nwith newline", "v\\x41"},
        {"UNICODE", "héllo wörld ✓"},
        {"TRAILING_BACKSLASH", "ends with \\"},
        {"end", "end"},
    };
    const std::string text = launcher::serialize(r);
    // One record line per field: nothing in a value can start a new line.
    EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1 + 15 + 9 + 1) << text;
    expect_same(launcher::deserialize(text), r);
}

TEST(StateStoreFormat, EscapesAreReadBack) {
    std::string text = launcher::serialize(sample());
    const std::string from = "pattern=echo\n";
    text.replace(text.find(from), from.size(), "pattern=e\\x63\\X\n");
    EXPECT_EQ(parse_error(text), "line 3: unknown escape sequence '\\X'");
    text = launcher::serialize(sample());
    text.replace(text.find(from), from.size(), "pattern=\\x65\\x4A\\\\o\n");
    EXPECT_EQ(launcher::deserialize(text).pattern, "eJ\\o");
    text = launcher::serialize(sample());
    text.replace(text.find(from), from.size(), "pattern=ech\\x6\n");
    EXPECT_EQ(parse_error(text), "line 3: '\\x' must be followed by two hex digits");
    text = launcher::serialize(sample());
    text.replace(text.find(from), from.size(), "pattern=echo\\\n");
    EXPECT_EQ(parse_error(text), "line 3: unfinished escape sequence at the end of the line");
}

TEST(StateStoreFormat, RejectsWithLineAndReason) {
    const std::string good = launcher::serialize(sample());
    auto with = [&](const std::string& from, const std::string& to) {
        std::string text = good;
        const std::size_t at = text.find(from);
        EXPECT_NE(at, std::string::npos) << from;
        text.replace(at, from.size(), to);
        return text;
    };
    EXPECT_EQ(parse_error(with("pid=4242\n", "pid=42a\n")),
              "line 7: pid: expected an integer, got '42a'");
    EXPECT_EQ(parse_error(with("pid=4242\n", "pid=\n")),
              "line 7: pid: expected an integer, got ''");
    EXPECT_EQ(parse_error(with("pid=4242\n", "pid=+4\n")),
              "line 7: pid: expected an integer, got '+4'");
    EXPECT_EQ(parse_error(with("pid=4242\n", "pid= 4\n")),
              "line 7: pid: expected an integer, got ' 4'");
    EXPECT_EQ(parse_error(with("pid=4242\n", "pid=0\n")),
              "line 7: pid: 0 is out of range (1..2147483647)");
    EXPECT_EQ(parse_error(with("pid=4242\n", "pid=-1\n")),
              "line 7: pid: -1 is out of range (1..2147483647)");
    EXPECT_EQ(parse_error(with("pid=4242\n", "pid=99999999999999999999\n")),
              "line 7: pid: expected an integer, got '99999999999999999999'");
    EXPECT_EQ(parse_error(with("grpc_port=20000\n", "grpc_port=65536\n")),
              "line 10: grpc_port: 65536 is out of range (0..65535)");
    EXPECT_EQ(parse_error(with("restart_count=2\n", "restart_count=-2\n")),
              "line 14: restart_count: -2 is out of range (0..2147483647)");
    EXPECT_EQ(parse_error(with("limits_enforced=false\n", "limits_enforced=0\n")),
              "line 15: limits_enforced: expected true or false, got '0'");
    EXPECT_EQ(parse_error(with("isolation=namespace\n", "isolation=full\n")),
              "line 4: isolation: unknown level 'full' (known: none, namespace, session)");
    EXPECT_EQ(parse_error(with("process_id=ns:tenant-a:echo\n", "process_id=\n")),
              "line 2: process_id: must not be empty");
    EXPECT_EQ(parse_error(with("pattern=echo\n", "pattern=echo\ncolor=blue\n")),
              "line 4: unknown key 'color'");
    EXPECT_EQ(parse_error(with("pattern=echo\n", "pattern=echo\npattern=other\n")),
              "line 4: duplicate key 'pattern' (first at line 3)");
    EXPECT_EQ(parse_error(with("config.DSN=", "config.LOG_LEVEL=x\nconfig.DSN=")),
              "line 19: duplicate key 'config.LOG_LEVEL' (first at line 17)");
    // The same name, escaped differently, is still the same key.
    EXPECT_EQ(parse_error(with("config.DSN=", "config.\\x44SN=x\nconfig.DSN=")),
              "line 18: duplicate key 'config.DSN' (first at line 17)");
    EXPECT_EQ(parse_error(with("pattern=echo\n", "pattern echo\n")),
              "line 3: expected key=value, got 'pattern echo'");
    EXPECT_EQ(parse_error(with("pattern=echo\n", "\n")), "line 3: expected key=value, got ''");
    EXPECT_EQ(parse_error(with("end\n", "end\nend\n")), "line 20: content after 'end'");
    EXPECT_EQ(parse_error(with("end\n", "")), "line 18: missing 'end' (the file is truncated)");
    EXPECT_EQ(parse_error(with("end\n", "end")),
              "line 19: unterminated last line (the file is truncated)");
    EXPECT_EQ(parse_error(with("pid=4242\n", "")), "line 18: missing required key 'pid'");
    EXPECT_EQ(parse_error(with("cgroup=", "address=")),
              "line 9: duplicate key 'address' (first at line 8)");
}

TEST(StateStoreFormat, EveryRequiredKeyIsRequired) {
    for (const std::string key :
         {"process_id", "pattern", "isolation", "pid", "cgroup", "grpc_port"}) {
        std::string text = launcher::serialize(sample());
        const std::size_t at = text.find("\n" + key + "=") + 1;
        text.erase(at, text.find('\n', at) + 1 - at);
        EXPECT_EQ(parse_error(text), "line 18: missing required key '" + key + "'");
    }
    // The optional ones take their defaults.
    const ProcessRecord r = launcher::deserialize(
        "pattern-launcher-state 1\nprocess_id=shared:echo\npattern=echo\nisolation=none\n"
        "pid=7\ncgroup=/sys/fs/cgroup/pl/shared:echo\ngrpc_port=20005\nend\n");
    EXPECT_EQ(r.process_id, "shared:echo");
    EXPECT_EQ(r.pid, 7);
    EXPECT_EQ(r.grpc_port, 20005);
    EXPECT_EQ(r.health_port, 0);
    EXPECT_TRUE(r.limits_enforced);
    EXPECT_TRUE(r.config.empty());
}

// `identity` is optional: written only when the key has one, so a record of
// the launcher before identities (no such line) loads, with identity 0.
TEST(StateStoreFormat, IdentityIsAnOptionalLine) {
    ProcessRecord r = sample();
    r.config = {{"A", "x"}};
    const std::string without = launcher::serialize(r);
    EXPECT_EQ(without.find("identity"), std::string::npos) << without;
    EXPECT_EQ(launcher::deserialize(without).identity, 0u);

    r.identity = 1879048193;
    const std::string with = launcher::serialize(r);
    EXPECT_NE(with.find("grace_period_ms=10000\nidentity=1879048193\nconfig.A=x\nend\n"),
              std::string::npos)
        << with;
    expect_same(launcher::deserialize(with), r);
    r.identity = 4294967294u;  // the largest valid id
    expect_same(launcher::deserialize(launcher::serialize(r)), r);

    // A record as the previous version wrote it, verbatim.
    const ProcessRecord old = launcher::deserialize(
        "pattern-launcher-state 1\n"
        "process_id=ns:tenant-a:echo\npattern=echo\nisolation=namespace\n"
        "namespace_id=tenant-a\nsession_id=\npid=4242\n"
        "cgroup=/sys/fs/cgroup/pattern-launcher/ns:tenant-a/ns:tenant-a:echo\n"
        "address=127.0.0.1:20000\ngrpc_port=20000\nhealth_port=20001\n"
        "notify_socket=\nstarted_at_unix_ms=1700000000123\nrestart_count=2\n"
        "limits_enforced=true\ngrace_period_ms=10000\nconfig.A=x\nend\n");
    EXPECT_EQ(old.identity, 0u);
    EXPECT_EQ(old.pid, 4242);

    auto with_identity = [&](const std::string& value) {
        std::string text = without;
        text.insert(text.find("config.A="), "identity=" + value + "\n");
        return text;
    };
    EXPECT_EQ(launcher::deserialize(with_identity("65536")).identity, 65536u);
    EXPECT_EQ(parse_error(with_identity("0")),
              "line 17: identity: 0 is out of range (1..4294967294)");
    EXPECT_EQ(parse_error(with_identity("4294967295")),
              "line 17: identity: 4294967295 is out of range (1..4294967294)");
    EXPECT_EQ(parse_error(with_identity("-1")),
              "line 17: identity: -1 is out of range (1..4294967294)");
    EXPECT_EQ(parse_error(with_identity("uid")),
              "line 17: identity: expected an integer, got 'uid'");
    EXPECT_EQ(parse_error(with_identity("1\nidentity=2")),
              "line 18: duplicate key 'identity' (first at line 17)");
}

TEST_F(StateStoreTest, IdentitySurvivesSaveAndLoad) {
    StateStore store(dir_);
    ProcessRecord a = sample("ns:tenant-a:echo");
    a.identity = 1879048200;
    ProcessRecord b = sample("ns:tenant-a:other");
    b.identity = 0;
    store.save(a);
    store.save(b);
    const launcher::LoadedRecords loaded = store.load_all();
    EXPECT_TRUE(loaded.problems.empty());
    ASSERT_EQ(loaded.records.size(), 2u);
    expect_same(loaded.records[0], a);
    expect_same(loaded.records[1], b);
}

TEST(StateStoreFormat, WrongVersionAndGarbage) {
    std::string text = launcher::serialize(sample());
    text.replace(0, text.find('\n'), "pattern-launcher-state 2");
    EXPECT_EQ(parse_error(text), "line 1: unsupported version '2' (this launcher reads version 1)");
    EXPECT_EQ(parse_error("{\"pid\": 1}\n"),
              "line 1: not a pattern-launcher state file (expected 'pattern-launcher-state 1')");
    EXPECT_EQ(parse_error(""), "line 1: empty file (the file is truncated)");
    EXPECT_EQ(parse_error(std::string("\0\0\0\0", 4)),
              "line 1: not a pattern-launcher state file (expected 'pattern-launcher-state 1')");
    // Only a prefix of the header is a truncated file.
    EXPECT_EQ(parse_error("pattern-launcher-st"),
              "line 1: unterminated last line (the file is truncated)");
    EXPECT_EQ(parse_error("pattern-launcher-state 1"),
              "line 1: unterminated last line (the file is truncated)");
    EXPECT_EQ(parse_error("pattern-launcher-state 1\n"),
              "line 1: missing 'end' (the file is truncated)");
}

// Cutting a valid record anywhere never yields a record: every prefix is
// rejected, only the whole text loads.
TEST(StateStoreFormat, EveryTruncationIsDetected) {
    ProcessRecord r = sample();
    r.config["Z"] = "last";
    const std::string text = launcher::serialize(r);
    for (std::size_t size = 0; size < text.size(); ++size) {
        EXPECT_THROW((void)launcher::deserialize(text.substr(0, size)), std::invalid_argument)
            << "cut at " << size;
    }
    expect_same(launcher::deserialize(text), r);
}

TEST_F(StateStoreTest, CreatesThePrivateDirectory) {
    const StateStore store(dir_);
    EXPECT_EQ(store.dir(), dir_);
    struct stat st {};
    ASSERT_EQ(::stat(dir_.c_str(), &st), 0);
    EXPECT_TRUE(S_ISDIR(st.st_mode));
    EXPECT_EQ(st.st_mode & 0777, 0700u);
    // An existing directory is fine.
    StateStore again(dir_);
    EXPECT_TRUE(again.load_all().records.empty());
}

TEST_F(StateStoreTest, SaveThenLoadRoundTrips) {
    StateStore store(dir_);
    ProcessRecord r = sample();
    r.config["MULTI"] = "a\nb\\c=d é";
    store.save(r);
    EXPECT_EQ(listing(), std::vector<std::string>{"ns%3atenant-a%3aecho.state"});
    struct stat st {};
    ASSERT_EQ(::stat((dir_ / "ns%3atenant-a%3aecho.state").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);

    const launcher::LoadedRecords loaded = StateStore(dir_).load_all();
    EXPECT_TRUE(loaded.problems.empty());
    ASSERT_EQ(loaded.records.size(), 1u);
    expect_same(loaded.records[0], r);
}

TEST_F(StateStoreTest, FileNamesEncodeEveryOtherByte) {
    StateStore store(dir_);
    store.save(sample("ns:a:echo"));
    store.save(sample("session:s.1:x_y-z"));
    store.save(sample("UPPER/../%25 odd"));
    EXPECT_EQ(listing(),
              (std::vector<std::string>{"%55%50%50%45%52%2f..%2f%2525%20odd.state",
                                        "ns%3aa%3aecho.state", "session%3as.1%3ax_y-z.state"}));
    const launcher::LoadedRecords loaded = store.load_all();
    EXPECT_TRUE(loaded.problems.empty());
    ASSERT_EQ(loaded.records.size(), 3u);
    // Sorted by process id.
    EXPECT_EQ(loaded.records[0].process_id, "UPPER/../%25 odd");
    EXPECT_EQ(loaded.records[1].process_id, "ns:a:echo");
    EXPECT_EQ(loaded.records[2].process_id, "session:s.1:x_y-z");
}

TEST_F(StateStoreTest, SaveReplacesAtomically) {
    StateStore store(dir_);
    ProcessRecord r = sample();
    store.save(r);
    r.pid = 5151;
    r.restart_count = 3;
    r.config.erase("DSN");
    store.save(r);
    EXPECT_EQ(listing(), std::vector<std::string>{"ns%3atenant-a%3aecho.state"});
    const launcher::LoadedRecords loaded = store.load_all();
    ASSERT_EQ(loaded.records.size(), 1u);
    expect_same(loaded.records[0], r);
}

TEST_F(StateStoreTest, SaveReplacesAStaleTempFileOfItsOwnPid) {
    StateStore store(dir_);
    const fs::path stale = dir_ / ("ns%3atenant-a%3aecho.tmp." + std::to_string(::getpid()));
    write(stale, "half a record");
    store.save(sample());
    EXPECT_EQ(listing(), std::vector<std::string>{"ns%3atenant-a%3aecho.state"});
}

TEST_F(StateStoreTest, SaveRefusesARecordThatWouldNotLoad) {
    StateStore store(dir_);
    ProcessRecord r = sample();
    r.pid = 0;
    EXPECT_THROW(store.save(r), std::invalid_argument);
    r = sample("");
    EXPECT_THROW(store.save(r), std::invalid_argument);
    EXPECT_TRUE(listing().empty());
}

TEST_F(StateStoreTest, SaveFailureLeavesNoTempFileAndNamesThePath) {
    StateStore store(dir_);
    // The target is a non-empty directory: the rename fails.
    const fs::path target = dir_ / "ns%3atenant-a%3aecho.state";
    fs::create_directories(target / "inside");
    try {
        store.save(sample());
        FAIL() << "no error";
    } catch (const sandbox::SysError& e) {
        EXPECT_NE(std::string(e.what()).find(target.string()), std::string::npos) << e.what();
        EXPECT_TRUE(e.code() == EISDIR || e.code() == ENOTEMPTY || e.code() == EEXIST) << e.what();
    }
    EXPECT_EQ(listing(), std::vector<std::string>{"ns%3atenant-a%3aecho.state"});
    EXPECT_TRUE(fs::is_directory(target));
}

TEST_F(StateStoreTest, RemoveDeletesAndToleratesMissing) {
    StateStore store(dir_);
    store.save(sample("ns:a:one"));
    store.save(sample("ns:a:two"));
    store.remove("ns:a:one");
    store.remove("ns:a:one");
    store.remove("never:saved");
    const launcher::LoadedRecords loaded = store.load_all();
    EXPECT_TRUE(loaded.problems.empty());
    ASSERT_EQ(loaded.records.size(), 1u);
    EXPECT_EQ(loaded.records[0].process_id, "ns:a:two");
}

TEST_F(StateStoreTest, TruncatedFilesAreReportedAndDeleted) {
    StateStore store(dir_);
    const ProcessRecord r = sample();
    const std::string text = launcher::serialize(r);
    const fs::path file = dir_ / "ns%3atenant-a%3aecho.state";
    for (std::size_t size = 0; size < text.size(); ++size) {
        write(file, text.substr(0, size));
        const launcher::LoadedRecords loaded = store.load_all();
        EXPECT_TRUE(loaded.records.empty()) << "cut at " << size;
        ASSERT_EQ(loaded.problems.size(), 1u) << "cut at " << size;
        EXPECT_TRUE(loaded.problems[0].starts_with(file.string() + ": line "))
            << loaded.problems[0];
        EXPECT_FALSE(fs::exists(file)) << "cut at " << size;
    }
    write(file, text);
    const launcher::LoadedRecords loaded = store.load_all();
    EXPECT_TRUE(loaded.problems.empty());
    ASSERT_EQ(loaded.records.size(), 1u);
    expect_same(loaded.records[0], r);
}

TEST_F(StateStoreTest, GarbageWrongVersionAndMismatchedNamesAreDeleted) {
    StateStore store(dir_);
    store.save(sample("ns:a:good"));
    write(dir_ / "garbage.state",
          "\x7f"
          "ELF\x02\x01\x01");
    std::string v2 = launcher::serialize(sample("v2"));
    v2.replace(0, v2.find('\n'), "pattern-launcher-state 2");
    write(dir_ / "v2.state", v2);
    // A valid record in the wrong file: whose process is it?
    write(dir_ / "ns%3aa%3aother.state", launcher::serialize(sample("ns:a:good")));
    // Not the canonical encoding of its own id.
    write(dir_ / "NS%3Aa.state", launcher::serialize(sample("NS:a")));

    const launcher::LoadedRecords loaded = store.load_all();
    ASSERT_EQ(loaded.records.size(), 1u);
    EXPECT_EQ(loaded.records[0].process_id, "ns:a:good");
    const std::string d = dir_.string() + "/";
    EXPECT_EQ(loaded.problems,
              (std::vector<std::string>{
                  d + "NS%3Aa.state: process_id 'NS:a' belongs in %4e%53%3aa.state, not in this "
                      "file (deleted)",
                  d + "garbage.state: line 1: not a pattern-launcher state file (expected "
                      "'pattern-launcher-state 1') (deleted)",
                  d + "ns%3aa%3aother.state: process_id 'ns:a:good' belongs in "
                      "ns%3aa%3agood.state, not in this file (deleted)",
                  d + "v2.state: line 1: unsupported version '2' (this launcher reads version 1) "
                      "(deleted)"}));
    EXPECT_EQ(listing(), std::vector<std::string>{"ns%3aa%3agood.state"});
}

TEST_F(StateStoreTest, TempLeftoversAreDeletedSilentlyOtherFilesLeftAlone) {
    StateStore store(dir_);
    store.save(sample("ns:a:echo"));
    write(dir_ / "ns%3aa%3aecho.tmp.12345", "pattern-launcher-state 1\nprocess_id=ns:a:e");
    write(dir_ / "x.tmp.1", "");
    write(dir_ / "README", "hello");
    write(dir_ / "x.tmp.", "");
    fs::create_directory(dir_ / "subdir.state");
    fs::create_directory(dir_ / "sub");
    fs::create_symlink(dir_ / "ns%3aa%3aecho.state", dir_ / "link.state");

    const launcher::LoadedRecords loaded = store.load_all();
    ASSERT_EQ(loaded.records.size(), 1u);
    EXPECT_EQ(loaded.records[0].process_id, "ns:a:echo");
    std::vector<std::string> problems = loaded.problems;
    std::sort(problems.begin(), problems.end());
    const std::string d = dir_.string() + "/";
    EXPECT_EQ(problems, (std::vector<std::string>{
                            d + "README: not a state file (left in place)",
                            d + "link.state: not a regular file (left in place)",
                            d + "x.tmp.: not a state file (left in place)",
                        }));
    EXPECT_EQ(listing(), (std::vector<std::string>{"README", "link.state", "ns%3aa%3aecho.state",
                                                   "sub", "subdir.state", "x.tmp."}));
}

TEST_F(StateStoreTest, UnreadableDirectoryThrowsSysError) {
    StateStore store(dir_);
    fs::remove(dir_);
    write(dir_, "not a directory");
    try {
        (void)store.load_all();
        FAIL() << "no error";
    } catch (const sandbox::SysError& e) {
        EXPECT_EQ(e.code(), ENOTDIR) << e.what();
        EXPECT_NE(std::string(e.what()).find(dir_.string()), std::string::npos) << e.what();
    }
    try {
        store.save(sample());
        FAIL() << "no error";
    } catch (const sandbox::SysError& e) {
        EXPECT_EQ(e.code(), ENOTDIR) << e.what();
        EXPECT_NE(std::string(e.what()).find(dir_.string()), std::string::npos) << e.what();
    }
    // Creating a store where a file is in the way.
    try {
        const StateStore bad(dir_ / "state");
        FAIL() << "no error";
    } catch (const sandbox::SysError& e) {
        EXPECT_EQ(e.code(), ENOTDIR) << e.what();
    }
    try {
        const StateStore bad(dir_);
        FAIL() << "no error";
    } catch (const sandbox::SysError& e) {
        EXPECT_EQ(e.code(), ENOTDIR) << e.what();
    }
}

}  // namespace
