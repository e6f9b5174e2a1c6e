#include "state/state_store.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/unknown_field_set.h>
#include <google/protobuf/util/message_differencer.h>
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
#include "state/record_file.h"

namespace {

namespace fs = std::filesystem;
namespace pls = pattern_launcher::state;
using google::protobuf::util::MessageDifferencer;
using launcher::KeyRecord;
using launcher::LoadedRecords;
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

    static void write(const fs::path& path, const std::string& bytes) {
        std::ofstream out(path, std::ios::binary | std::ios::trunc);
        out << bytes;
    }
    static std::string read(const fs::path& path) {
        std::ifstream in(path, std::ios::binary);
        std::stringstream bytes;
        bytes << in.rdbuf();
        return bytes.str();
    }
    static std::vector<std::string> names_in(const fs::path& dir) {
        std::vector<std::string> names;
        for (const auto& entry : fs::directory_iterator(dir)) {
            names.push_back(entry.path().filename().string());
        }
        std::sort(names.begin(), names.end());
        return names;
    }
    // The names in the state directory, sorted.
    std::vector<std::string> listing() const { return names_in(dir_); }
    fs::path aside_dir() const { return dir_ / "set-aside"; }

    fs::path root_;
    fs::path dir_;
};

// A record with every field set to something other than its default.
KeyRecord sample(const std::string& process_id = "ns:tenant-a:echo") {
    KeyRecord r;
    r.set_process_id(process_id);
    r.set_pattern("echo");
    r.set_isolation("namespace");
    r.set_namespace_id("tenant-a");
    r.set_session_id("s-1");
    (*r.mutable_config())["LOG_LEVEL"] = "debug";
    (*r.mutable_config())["DSN"] = "postgres://u:p@h/db?x=1";
    (*r.mutable_config())["MULTI"] = std::string("a\nb\\c=d é\0z", 12);
    r.set_grace_period_ms(10000);
    r.set_accepted_at_unix_ms(1700000000001);
    r.set_desired(pls::DESIRED_STOPPED);
    r.set_phase(pls::PHASE_BACKOFF);
    r.set_identity(4294967294u);
    r.set_grpc_port(20000);
    r.set_health_port(20001);
    r.set_cgroup("/sys/fs/cgroup/pattern-launcher/ns:tenant-a/ns:tenant-a:echo");
    r.set_limits_enforced(true);
    r.set_egress_slot(4095);
    r.set_pid(2147483647);
    r.set_incarnation(7);
    r.set_started_at_unix_ms(1700000000123);
    r.set_running_since_unix_ms(1700000000456);
    r.set_restart_count(6);
    r.set_error_count(3);
    r.set_consecutive_failures(2);
    r.set_ever_running(true);
    r.set_last_error("exited with status 1");
    r.set_exit_cause("killed by signal 9");
    r.set_backoff_until_unix_ms(-1);  // int64 edge: negative survives too
    r.set_recovery("adopted pid 2147483647");
    r.set_pool_slot("0a1b2c3d");
    return r;
}

::testing::AssertionResult same(const KeyRecord& a, const KeyRecord& b) {
    std::string diff;
    MessageDifferencer differencer;
    differencer.ReportDifferencesToString(&diff);
    if (differencer.Compare(a, b)) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << diff;
}

// The serialised bytes of a record that a newer launcher wrote: `known`
// plus field 999 (varint 42) and field 1000 (bytes "future").
std::string with_unknown_fields(const KeyRecord& known) {
    std::string message = known.SerializeAsString();
    message += "\xb8\x3e";  // tag: field 999, wire type 0 (varint)
    message += '\x2a';      // 42
    message += "\xc2\x3e";  // tag: field 1000, wire type 2 (length-delimited)
    message += '\x06';
    message += "future";
    return message;
}

void expect_unknown_fields_of_newer_version(const KeyRecord& r) {
    const google::protobuf::UnknownFieldSet& unknown = r.GetReflection()->GetUnknownFields(r);
    ASSERT_EQ(unknown.field_count(), 2);
    EXPECT_EQ(unknown.field(0).number(), 999);
    EXPECT_EQ(unknown.field(0).varint(), 42u);
    EXPECT_EQ(unknown.field(1).number(), 1000);
    EXPECT_EQ(unknown.field(1).length_delimited(), "future");
}

TEST(StateStoreSample, SetsEveryField) {
    // If this fails, a field was added to state.proto: set it in sample() so
    // that the round trip covers it.
    const KeyRecord r = sample();
    std::vector<const google::protobuf::FieldDescriptor*> set;
    r.GetReflection()->ListFields(r, &set);
    EXPECT_EQ(static_cast<int>(set.size()), KeyRecord::descriptor()->field_count());
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
    const LoadedRecords loaded = again.load_all();
    EXPECT_TRUE(loaded.records.empty());
    EXPECT_TRUE(loaded.set_aside.empty());
}

TEST_F(StateStoreTest, SaveThenLoadRoundTripsEveryField) {
    StateStore store(dir_);
    const KeyRecord r = sample();
    store.save(r);
    EXPECT_EQ(listing(), std::vector<std::string>{"ns%3atenant-a%3aecho.state"});
    const fs::path file = dir_ / "ns%3atenant-a%3aecho.state";
    struct stat st {};
    ASSERT_EQ(::stat(file.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    const std::string bytes = read(file);
    EXPECT_TRUE(bytes.starts_with(std::string("\x89PLSTATE", 8)));
    EXPECT_EQ(bytes.size(), 12 + r.ByteSizeLong());

    const LoadedRecords loaded = StateStore(dir_).load_all();
    EXPECT_TRUE(loaded.set_aside.empty());
    ASSERT_EQ(loaded.records.size(), 1u);
    EXPECT_TRUE(same(loaded.records[0], r));
}

TEST_F(StateStoreTest, DefaultsRoundTrip) {
    StateStore store(dir_);
    KeyRecord r;
    r.set_process_id("shared:echo");
    store.save(r);
    const LoadedRecords loaded = store.load_all();
    ASSERT_EQ(loaded.records.size(), 1u);
    EXPECT_TRUE(same(loaded.records[0], r));
}

TEST_F(StateStoreTest, FileNamesEncodeEveryOtherByte) {
    StateStore store(dir_);
    store.save(sample("ns:a:echo"));
    store.save(sample("session:s.1:x_y-z"));
    store.save(sample("UPPER/../%25 odd"));
    EXPECT_EQ(listing(),
              (std::vector<std::string>{"%55%50%50%45%52%2f..%2f%2525%20odd.state",
                                        "ns%3aa%3aecho.state", "session%3as.1%3ax_y-z.state"}));
    EXPECT_EQ(store.file_for("ns:a:echo"), dir_ / "ns%3aa%3aecho.state");
    const LoadedRecords loaded = store.load_all();
    EXPECT_TRUE(loaded.set_aside.empty());
    ASSERT_EQ(loaded.records.size(), 3u);
    // Sorted by process id.
    EXPECT_EQ(loaded.records[0].process_id(), "UPPER/../%25 odd");
    EXPECT_EQ(loaded.records[1].process_id(), "ns:a:echo");
    EXPECT_EQ(loaded.records[2].process_id(), "session:s.1:x_y-z");
}

TEST_F(StateStoreTest, SaveReplacesAtomically) {
    StateStore store(dir_);
    KeyRecord r = sample();
    store.save(r);
    r.set_pid(5151);
    r.set_phase(pls::PHASE_RUNNING);
    r.mutable_config()->erase("DSN");
    r.clear_last_error();
    store.save(r);
    EXPECT_EQ(listing(), std::vector<std::string>{"ns%3atenant-a%3aecho.state"});
    const LoadedRecords loaded = store.load_all();
    ASSERT_EQ(loaded.records.size(), 1u);
    EXPECT_TRUE(same(loaded.records[0], r));
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
    EXPECT_THROW(store.save(sample("")), std::invalid_argument);
    // proto3 refuses a string that is not UTF-8 when parsing, not when
    // serialising: without the check the key would be lost at the next start.
    KeyRecord r = sample();
    (*r.mutable_config())["BINARY"] = "\xff\xfe";
    try {
        store.save(r);
        FAIL() << "no error";
    } catch (const std::invalid_argument& e) {
        EXPECT_STREQ(e.what(),
                     "the record of 'ns:tenant-a:echo' would not load back: its config.value is "
                     "not UTF-8");
    }
    r = sample();
    r.set_last_error("cut \xe2\x82");
    EXPECT_THROW(store.save(r), std::invalid_argument);
    EXPECT_TRUE(listing().empty());
}

// The store's own UTF-8 check (which spares protobuf's stderr complaint and
// names the field) refuses exactly what protobuf's parser refuses.
TEST(StateRecordFile, Utf8CheckAgreesWithProtobuf) {
    const std::vector<std::string> texts = {
        "plain ascii",      "é",    "日本語", "🙂", std::string("nul\0inside", 11),
        "\xef\xbf\xbf",      // U+FFFF
        "\xf4\x8f\xbf\xbf",  // U+10FFFF, the largest
        "\xed\x9f\xbf",      // U+D7FF, just below the surrogates
        "\xee\x80\x80",      // U+E000, just above them
        "\xc0\x80",          // overlong NUL
        "\xc1\xbf",          // overlong
        "\xe0\x80\xaf",      // overlong
        "\xf0\x80\x80\xaf",  // overlong
        "\xed\xa0\x80",      // a surrogate
        "\xf4\x90\x80\x80",  // above U+10FFFF
        "\xf5\x80\x80\x80", "\xff", "\x80",   "\xc3", "\xe6\x97",
        "\xf0\x9f\x99",
        "\xc3\x28",  // a continuation byte missing
    };
    for (const std::string& text : texts) {
        KeyRecord r;
        r.set_process_id("shared:echo");
        (*r.mutable_config())["K"] = text;
        KeyRecord parsed;
        const bool protobuf_accepts = parsed.ParseFromString(r.SerializeAsString());
        bool store_accepts = true;
        try {
            (void)launcher::record_file::encode(r);
        } catch (const std::invalid_argument&) {
            store_accepts = false;
        }
        EXPECT_EQ(store_accepts, protobuf_accepts) << ::testing::PrintToString(text);
    }
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
    const LoadedRecords loaded = store.load_all();
    EXPECT_TRUE(loaded.set_aside.empty());
    ASSERT_EQ(loaded.records.size(), 1u);
    EXPECT_EQ(loaded.records[0].process_id(), "ns:a:two");
    EXPECT_EQ(listing(), std::vector<std::string>{"ns%3aa%3atwo.state"});
}

// A rollback: the record of a newer launcher, with fields and an enum value
// this one does not know, is loaded (not set aside), and saving it again
// keeps what it does not know.
TEST_F(StateStoreTest, ANewerVersionsRecordLoadsAndKeepsItsUnknownFields) {
    StateStore store(dir_);
    KeyRecord newer = sample();
    newer.set_phase(static_cast<pls::Phase>(42));  // a phase added later
    const fs::path file = dir_ / "ns%3atenant-a%3aecho.state";
    write(file, launcher::record_file::frame(with_unknown_fields(newer)));

    LoadedRecords loaded = store.load_all();
    EXPECT_TRUE(loaded.set_aside.empty());
    ASSERT_EQ(loaded.records.size(), 1u);
    KeyRecord& r = loaded.records[0];
    EXPECT_EQ(r.pid(), newer.pid());
    EXPECT_EQ(r.config().at("DSN"), "postgres://u:p@h/db?x=1");
    EXPECT_EQ(static_cast<int>(r.phase()), 42);
    expect_unknown_fields_of_newer_version(r);

    // This launcher changes what it knows and saves: the rest is kept.
    r.set_pid(777);
    store.save(r);
    const std::string bytes = read(file);
    EXPECT_NE(bytes.find("future"), std::string::npos);
    KeyRecord reread;
    std::string problem;
    ASSERT_TRUE(launcher::record_file::decode(bytes, reread, problem)) << problem;
    EXPECT_EQ(reread.pid(), 777);
    EXPECT_EQ(static_cast<int>(reread.phase()), 42);
    expect_unknown_fields_of_newer_version(reread);

    loaded = store.load_all();
    ASSERT_EQ(loaded.records.size(), 1u);
    EXPECT_TRUE(same(loaded.records[0], reread));
}

// Cutting a valid file anywhere never yields a record: every prefix is set
// aside, with its bytes, and only the whole file loads.
TEST_F(StateStoreTest, TruncatedFilesAreSetAsideNeverDeleted) {
    StateStore store(dir_);
    const KeyRecord r = sample();
    const std::string bytes = launcher::record_file::encode(r);
    const fs::path file = dir_ / "ns%3atenant-a%3aecho.state";
    for (std::size_t size = 0; size < bytes.size(); ++size) {
        write(file, bytes.substr(0, size));
        const LoadedRecords loaded = store.load_all();
        EXPECT_TRUE(loaded.records.empty()) << "cut at " << size;
        ASSERT_EQ(loaded.set_aside.size(), 1u) << "cut at " << size;
        const launcher::SetAsideRecord& aside = loaded.set_aside[0];
        EXPECT_EQ(aside.file, file);
        EXPECT_EQ(aside.moved_to.parent_path(), aside_dir());
        EXPECT_TRUE(aside.moved_to.filename().string().starts_with("ns%3atenant-a%3aecho.state."))
            << aside.moved_to;
        EXPECT_EQ(read(aside.moved_to), bytes.substr(0, size)) << "cut at " << size;
        EXPECT_FALSE(fs::exists(file)) << "cut at " << size;
        if (size == 0) {
            EXPECT_EQ(aside.reason, "empty file (truncated)");
        } else if (size < 12) {
            EXPECT_EQ(aside.reason,
                      "truncated inside the header (" + std::to_string(size) + " of 12 bytes)");
        } else {
            EXPECT_EQ(aside.reason,
                      "truncated: the header announces " + std::to_string(bytes.size() - 12) +
                          " bytes of record, the file holds " + std::to_string(size - 12));
        }
    }
    // Many were set aside within one millisecond: none overwrote another.
    EXPECT_EQ(names_in(aside_dir()).size(), bytes.size());
    struct stat st {};
    ASSERT_EQ(::stat(aside_dir().c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700u);

    write(file, bytes);
    const LoadedRecords loaded = store.load_all();
    EXPECT_TRUE(loaded.set_aside.empty());
    ASSERT_EQ(loaded.records.size(), 1u);
    EXPECT_TRUE(same(loaded.records[0], r));
}

TEST_F(StateStoreTest, GarbageAndMismatchedNamesAreSetAsideWithTheirReasons) {
    StateStore store(dir_);
    store.save(sample("ns:a:good"));
    const std::string good = launcher::record_file::encode(sample("ns:a:good"));
    std::vector<std::pair<std::string, std::string>> files = {
        {"elf.state", std::string("\x7f"
                                  "ELF\x02\x01\x01\0",
                                  8)},
        // Parses as a KeyRecord with process_id "elf" (protobuf is lenient):
        // without the magic it is not taken for one.
        {"bare.state", std::string("\x0a\x03"
                                   "elf")},
        {"trailing.state", good + "xyz"},
        {"huge.state", std::string("\x89PLSTATE\xff\xff\xff\x7f", 12)},
        {"malformed.state", launcher::record_file::frame("\x0a\x7f"
                                                         "short")},
        {"nobody.state", launcher::record_file::encode(KeyRecord())},
        // A valid record in the wrong file: whose process is it?
        {"ns%3aa%3aother.state", good},
        // Not the canonical encoding of its own id.
        {"NS%3Aa.state", launcher::record_file::encode(sample("NS:a"))},
    };
    for (const auto& [name, bytes] : files)
        write(dir_ / name, bytes);
    fs::create_symlink(dir_ / "ns%3aa%3agood.state", dir_ / "link.state");

    const LoadedRecords loaded = store.load_all();
    ASSERT_EQ(loaded.records.size(), 1u);
    EXPECT_EQ(loaded.records[0].process_id(), "ns:a:good");
    std::vector<std::string> reasons;
    for (const launcher::SetAsideRecord& aside : loaded.set_aside) {
        reasons.push_back(aside.file.filename().string() + ": " + aside.reason);
        EXPECT_EQ(aside.moved_to.parent_path(), aside_dir()) << aside.reason;
        EXPECT_TRUE(fs::is_symlink(aside.moved_to) || fs::is_regular_file(aside.moved_to))
            << aside.moved_to;
    }
    std::sort(reasons.begin(), reasons.end());
    const std::string not_ours =
        "not a pattern-launcher state file (it begins with neither the \\x89PLSTATE magic nor "
        "the previous format's 'pattern-launcher-state 1')";
    EXPECT_EQ(reasons,
              (std::vector<std::string>{
                  "NS%3Aa.state: process_id 'NS:a' belongs in %4e%53%3aa.state, not in this file",
                  "bare.state: " + not_ours, "elf.state: " + not_ours,
                  "huge.state: the header announces 2147483647 bytes of record, more than a "
                  "state file may hold",
                  "link.state: not a regular file",
                  "malformed.state: not a valid KeyRecord message (malformed protobuf, or a "
                  "string that is not UTF-8)",
                  "nobody.state: the record has no process_id",
                  "ns%3aa%3aother.state: process_id 'ns:a:good' belongs in ns%3aa%3agood.state, "
                  "not in this file",
                  "trailing.state: 3 bytes after the record (the header announces " +
                      std::to_string(good.size() - 12) + ")"}));
    EXPECT_EQ(listing(), (std::vector<std::string>{"ns%3aa%3agood.state", "set-aside"}));
    // Nothing was deleted: every file is in set-aside/ with its bytes.
    EXPECT_EQ(names_in(aside_dir()).size(), files.size() + 1);
    for (const launcher::SetAsideRecord& aside : loaded.set_aside) {
        for (const auto& [name, bytes] : files) {
            if (aside.file.filename() == name) {
                EXPECT_EQ(read(aside.moved_to), bytes) << name;
            }
        }
    }
    // The next start finds only the good record.
    const LoadedRecords again = store.load_all();
    EXPECT_TRUE(again.set_aside.empty());
    EXPECT_EQ(again.records.size(), 1u);
}

TEST_F(StateStoreTest, TempLeftoversAreRemovedOtherFilesLeftAlone) {
    StateStore store(dir_);
    store.save(sample("ns:a:echo"));
    write(dir_ / "ns%3aa%3aecho.tmp.12345", "\x89PLSTATE\x10");
    write(dir_ / "x.tmp.1", "");
    write(dir_ / "README", "hello");
    write(dir_ / "x.tmp.", "");
    fs::create_directory(dir_ / "sub");

    const LoadedRecords loaded = store.load_all();
    ASSERT_EQ(loaded.records.size(), 1u);
    EXPECT_EQ(loaded.records[0].process_id(), "ns:a:echo");
    std::vector<std::string> reasons;
    for (const launcher::SetAsideRecord& aside : loaded.set_aside) {
        EXPECT_TRUE(aside.moved_to.empty());
        reasons.push_back(aside.file.filename().string() + ": " + aside.reason);
    }
    std::sort(reasons.begin(), reasons.end());
    EXPECT_EQ(reasons, (std::vector<std::string>{"README: not a state file (left in place)",
                                                 "x.tmp.: not a state file (left in place)"}));
    EXPECT_EQ(listing(),
              (std::vector<std::string>{"README", "ns%3aa%3aecho.state", "sub", "x.tmp."}));
}

// What the launcher before issue 11 wrote for a healthy key, verbatim.
const std::string kOldRecord =
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
    "notify_socket=/run/pattern-launcher/notify/77.1.sock\n"
    "started_at_unix_ms=1700000000123\n"
    "restart_count=2\n"
    "limits_enforced=false\n"
    "grace_period_ms=10000\n"
    "identity=1879048193\n"
    "config.DSN=postgres://u:p@h/db?x=1\n"
    "config.MULTI=a\\nb\\\\c\n"
    "end\n";

TEST_F(StateStoreTest, AnOldFormatRecordIsConvertedAndRewritten) {
    StateStore store(dir_);
    const fs::path file = dir_ / "ns%3atenant-a%3aecho.state";
    write(file, kOldRecord);

    KeyRecord expected;
    expected.set_process_id("ns:tenant-a:echo");
    expected.set_pattern("echo");
    expected.set_isolation("namespace");
    expected.set_namespace_id("tenant-a");
    (*expected.mutable_config())["DSN"] = "postgres://u:p@h/db?x=1";
    (*expected.mutable_config())["MULTI"] = "a\nb\\c";
    expected.set_grace_period_ms(10000);
    expected.set_accepted_at_unix_ms(1700000000123);
    expected.set_desired(pls::DESIRED_RUNNING);
    expected.set_phase(pls::PHASE_RUNNING);
    expected.set_identity(1879048193);
    expected.set_grpc_port(20000);
    expected.set_health_port(20001);
    expected.set_cgroup("/sys/fs/cgroup/pattern-launcher/ns:tenant-a/ns:tenant-a:echo");
    expected.set_limits_enforced(false);
    expected.set_pid(4242);
    expected.set_incarnation(2);  // its leaf was run.2
    expected.set_started_at_unix_ms(1700000000123);
    expected.set_running_since_unix_ms(1700000000123);
    expected.set_restart_count(2);
    expected.set_ever_running(true);

    LoadedRecords loaded = store.load_all();
    EXPECT_TRUE(loaded.set_aside.empty());
    ASSERT_EQ(loaded.records.size(), 1u);
    EXPECT_TRUE(same(loaded.records[0], expected));

    // Rewritten once, in the new format; the next load reads that.
    EXPECT_TRUE(read(file).starts_with(std::string("\x89PLSTATE", 8)));
    EXPECT_EQ(listing(), std::vector<std::string>{"ns%3atenant-a%3aecho.state"});
    loaded = store.load_all();
    EXPECT_TRUE(loaded.set_aside.empty());
    ASSERT_EQ(loaded.records.size(), 1u);
    EXPECT_TRUE(same(loaded.records[0], expected));
}

TEST_F(StateStoreTest, AMinimalOldFormatRecordTakesTheOldDefaults) {
    StateStore store(dir_);
    write(dir_ / "shared%3aecho.state",
          "pattern-launcher-state 1\nprocess_id=shared:echo\npattern=echo\nisolation=none\n"
          "pid=7\ncgroup=/sys/fs/cgroup/pl/shared:echo\ngrpc_port=20005\nend\n");
    const LoadedRecords loaded = store.load_all();
    EXPECT_TRUE(loaded.set_aside.empty());
    ASSERT_EQ(loaded.records.size(), 1u);
    const KeyRecord& r = loaded.records[0];
    EXPECT_EQ(r.process_id(), "shared:echo");
    EXPECT_EQ(r.pid(), 7);
    EXPECT_EQ(r.grpc_port(), 20005u);
    EXPECT_EQ(r.health_port(), 0u);
    EXPECT_EQ(r.identity(), 0u);
    EXPECT_EQ(r.incarnation(), 0u);
    EXPECT_TRUE(r.limits_enforced());  // the old default
    EXPECT_EQ(r.desired(), pls::DESIRED_RUNNING);
    EXPECT_EQ(r.phase(), pls::PHASE_RUNNING);
    EXPECT_TRUE(r.config().empty());
}

TEST_F(StateStoreTest, ABadOldFormatRecordIsSetAsideWithTheOldParsersReason) {
    StateStore store(dir_);
    auto with = [](const std::string& from, const std::string& to) {
        std::string text = kOldRecord;
        text.replace(text.find(from), from.size(), to);
        return text;
    };
    write(dir_ / "pid0.state", with("pid=4242\n", "pid=0\n"));
    write(dir_ / "v2.state", with("pattern-launcher-state 1", "pattern-launcher-state 2"));
    write(dir_ / "cut.state", kOldRecord.substr(0, 100));
    write(dir_ / "cut-header.state", "pattern-launcher-st");
    // Not UTF-8, which the old format allowed and protobuf strings do not.
    write(dir_ / "ns%3atenant-a%3aecho.state", with("config.DSN=", "config.BIN=\xff\nconfig.DSN="));
    const LoadedRecords loaded = store.load_all();
    EXPECT_TRUE(loaded.records.empty());
    std::vector<std::string> reasons;
    for (const launcher::SetAsideRecord& aside : loaded.set_aside) {
        EXPECT_FALSE(aside.moved_to.empty()) << aside.reason;
        reasons.push_back(aside.file.filename().string() + ": " + aside.reason);
    }
    std::sort(reasons.begin(), reasons.end());
    const std::string old = "a record of the previous format: ";
    EXPECT_EQ(
        reasons,
        (std::vector<std::string>{
            "cut-header.state: " + old + "line 1: unterminated last line (the file is truncated)",
            "cut.state: " + old +
                "line 5: unterminated last line (the file "
                "is truncated)",
            "ns%3atenant-a%3aecho.state: a record of the previous format that "
            "cannot be converted: the record of 'ns:tenant-a:echo' would not load "
            "back: its config.value is not UTF-8",
            "pid0.state: " + old + "line 7: pid: 0 is out of range (1..2147483647)",
            "v2.state: " + old + "line 1: unsupported version '2' (this launcher reads version 1)",
        }));
    EXPECT_EQ(listing(), std::vector<std::string>{"set-aside"});
}

TEST_F(StateStoreTest, HundredsOfRecordsLoad) {
    StateStore store(dir_);
    for (int i = 0; i < 300; ++i)
        store.save(sample("ns:tenant-" + std::to_string(i) + ":echo"));
    const LoadedRecords loaded = store.load_all();
    EXPECT_TRUE(loaded.set_aside.empty());
    EXPECT_EQ(loaded.records.size(), 300u);
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
