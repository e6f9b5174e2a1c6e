// PatternLogs: the size cap of pattern output files, kept by its worker
// thread (never the event loop's work). Real files in a temporary directory.
#include "core/pattern_logs.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr std::uint64_t kCap = 64 * 1024;

class PatternLogsTest : public ::testing::Test {
protected:
    void SetUp() override {
        std::string tmpl = (fs::temp_directory_path() / "pl-logs-test.XXXXXX").string();
        ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
        dir_ = tmpl;
    }
    void TearDown() override {
        std::error_code ec;
        fs::remove_all(dir_, ec);
    }
    // Skips where journald runs: output goes there, not to capped files.
    bool files_in_use(const launcher::PatternLogs& logs) { return !logs.uses_journald(); }
    static void write_bytes(int fd, std::size_t count) {
        const std::string chunk(4096, 'x');
        for (std::size_t done = 0; done < count; done += chunk.size()) {
            ASSERT_EQ(::write(fd, chunk.data(), chunk.size()), static_cast<ssize_t>(chunk.size()));
        }
    }

    fs::path dir_;
};

TEST_F(PatternLogsTest, AFileOverTheCapIsKeptAsDotOneAndTruncated) {
    launcher::PatternLogs logs(dir_, kCap);
    if (!files_in_use(logs)) GTEST_SKIP() << "journald runs here: output is not in files";
    sandbox::UniqueFd fd = logs.open_for("ns:a:echo");
    const fs::path file = dir_ / "ns:a:echo.log";
    write_bytes(fd.get(), 4 * kCap);
    logs.enforce_caps();
    logs.wait_for_pass();
    EXPECT_EQ(fs::file_size(file), 0u);
    EXPECT_EQ(fs::file_size(file.string() + ".1"), 4 * kCap) << "the old output is kept once";
    // The pattern's fd is O_APPEND: it goes on at the new end, with no hole.
    ASSERT_EQ(::write(fd.get(), "after\n", 6), 6);
    EXPECT_EQ(fs::file_size(file), 6u);
}

TEST_F(PatternLogsTest, AFileUnderTheCapIsLeftAlone) {
    launcher::PatternLogs logs(dir_, kCap);
    if (!files_in_use(logs)) GTEST_SKIP() << "journald runs here: output is not in files";
    sandbox::UniqueFd fd = logs.open_for("ns:a:quiet");
    write_bytes(fd.get(), kCap / 2);
    logs.wait_for_pass();
    EXPECT_EQ(fs::file_size(dir_ / "ns:a:quiet.log"), kCap / 2);
    EXPECT_FALSE(fs::exists(dir_ / "ns:a:quiet.log.1"));
}

// Nobody calls enforce_caps(): the worker keeps the cap on its own period.
TEST_F(PatternLogsTest, TheWorkerKeepsTheCapByItself) {
    launcher::PatternLogs logs(dir_, kCap);
    if (!files_in_use(logs)) GTEST_SKIP() << "journald runs here: output is not in files";
    sandbox::UniqueFd fd = logs.open_for("ns:a:chatty");
    write_bytes(fd.get(), 2 * kCap);
    const fs::path file = dir_ / "ns:a:chatty.log";
    const auto deadline = Clock::now() + 3 * launcher::PatternLogs::kCheckPeriod;
    while (fs::file_size(file) > kCap && Clock::now() < deadline)
        std::this_thread::sleep_for(50ms);
    EXPECT_LE(fs::file_size(file), kCap);
}

TEST_F(PatternLogsTest, AFileOpenedAgainAfterItWasRemovedIsCappedToo) {
    launcher::PatternLogs logs(dir_, kCap);
    if (!files_in_use(logs)) GTEST_SKIP() << "journald runs here: output is not in files";
    const fs::path file = dir_ / "ns:a:again.log";
    logs.open_for("ns:a:again");
    fs::remove(file);  // an operator cleaned up
    logs.wait_for_pass();
    sandbox::UniqueFd fd = logs.open_for("ns:a:again");
    write_bytes(fd.get(), 2 * kCap);
    logs.wait_for_pass();
    EXPECT_EQ(fs::file_size(file), 0u);
}

// The periodic pass stats only what was written (inotify says which):
// idle files cost nothing however many there are, a written one is capped.
TEST_F(PatternLogsTest, APeriodicPassLooksOnlyAtTheFilesWritten) {
    launcher::PatternLogs logs(dir_, kCap);
    if (!files_in_use(logs)) GTEST_SKIP() << "journald runs here: output is not in files";
    sandbox::UniqueFd chatty = logs.open_for("ns:a:chatty");
    sandbox::UniqueFd idle1 = logs.open_for("ns:a:idle1");
    sandbox::UniqueFd idle2 = logs.open_for("ns:a:idle2");
    logs.wait_for_check();  // the three just opened are looked at once
    const std::uint64_t before = logs.files_examined();
    logs.wait_for_check();
    EXPECT_EQ(logs.files_examined(), before) << "nothing was written: nothing is stat-ed";
    write_bytes(chatty.get(), 2 * kCap);
    logs.wait_for_check();
    EXPECT_EQ(logs.files_examined(), before + 1) << "only the written file is stat-ed";
    EXPECT_EQ(fs::file_size(dir_ / "ns:a:chatty.log"), 0u) << "and it is capped";
    EXPECT_EQ(fs::file_size(dir_ / "ns:a:chatty.log.1"), 2 * kCap);
}

// A file already over the cap when a key opens it again (output of a
// launcher run before) is capped without being written.
TEST_F(PatternLogsTest, AFileOpenedOverTheCapIsCappedWithoutAWrite) {
    {
        std::FILE* f = std::fopen((dir_ / "ns:a:old.log").c_str(), "w");
        ASSERT_NE(f, nullptr);
        const std::string big(2 * kCap, 'x');
        std::fwrite(big.data(), 1, big.size(), f);
        std::fclose(f);
    }
    launcher::PatternLogs logs(dir_, kCap);
    if (!files_in_use(logs)) GTEST_SKIP() << "journald runs here: output is not in files";
    sandbox::UniqueFd fd = logs.open_for("ns:a:old");
    logs.wait_for_check();
    EXPECT_EQ(fs::file_size(dir_ / "ns:a:old.log"), 0u);
}

// A removed file is forgotten on the next periodic pass, as on a full one.
TEST_F(PatternLogsTest, ARemovedFileIsForgottenByAPeriodicPass) {
    launcher::PatternLogs logs(dir_, kCap);
    if (!files_in_use(logs)) GTEST_SKIP() << "journald runs here: output is not in files";
    logs.open_for("ns:a:gone");
    logs.wait_for_check();
    fs::remove(dir_ / "ns:a:gone.log");
    logs.wait_for_check();  // stats it once (the removal), finds it gone
    const std::uint64_t before = logs.files_examined();
    logs.wait_for_pass();
    EXPECT_EQ(logs.files_examined(), before) << "a full pass has nothing left to stat";
}

// The destructor wakes the worker instead of waiting out its period.
TEST_F(PatternLogsTest, DestructionStopsTheWorkerPromptly) {
    const auto start = Clock::now();
    {
        launcher::PatternLogs logs(dir_, kCap);
        logs.open_for("ns:a:short");
        logs.enforce_caps();
    }
    EXPECT_LT(Clock::now() - start, launcher::PatternLogs::kCheckPeriod / 2);
}

}  // namespace
