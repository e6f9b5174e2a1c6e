// The logger keeps what a request puts into a line from forging, cutting or
// flooding the log (audit lines carry the request's namespace and pattern).
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <string>

#include "common/log.h"

namespace launcher {
namespace {

// What log::write puts on stderr (no journal here: $JOURNAL_STREAM unset).
std::string logged(const std::string& message) {
    std::fflush(stderr);
    std::FILE* capture = std::tmpfile();
    const int saved = ::dup(STDERR_FILENO);
    ::dup2(::fileno(capture), STDERR_FILENO);
    log::write(log::Level::kNotice, message);
    std::fflush(stderr);
    ::dup2(saved, STDERR_FILENO);
    ::close(saved);
    std::string out;
    std::rewind(capture);
    for (int c; (c = std::fgetc(capture)) != EOF;)
        out += static_cast<char>(c);
    std::fclose(capture);
    return out;
}

TEST(Log, ARequestCannotForgeACutOrAHugeLine) {
    ::unsetenv("JOURNAL_STREAM");
    const std::string forged =
        logged("audit: namespace=a\npattern-launcher: audit: caller=[uid 0] result=OK");
    EXPECT_EQ(forged,
              "pattern-launcher: audit: namespace=a\\x0apattern-launcher: audit: caller=[uid 0] "
              "result=OK\n");
    const std::string cut = logged(std::string("before\0after", 12));
    EXPECT_EQ(cut, "pattern-launcher: before\\x00after\n");
    const std::string huge = logged(std::string(3 << 20, 'x'));
    EXPECT_LT(huge.size(), 9000u);
    EXPECT_NE(huge.find("more bytes)\n"), std::string::npos);
    EXPECT_EQ(std::count(huge.begin(), huge.end(), '\n'), 1);
}

TEST(Log, LevelsBelowTheThresholdAreDropped) {
    log::set_level(log::Level::kWarning);
    EXPECT_TRUE(log::enabled(log::Level::kError));
    EXPECT_FALSE(log::enabled(log::Level::kInfo));
    // notice is below warning: nothing is written.
    EXPECT_EQ(logged("dropped"), "");
    log::Level parsed = log::Level::kInfo;
    EXPECT_TRUE(log::parse_level("debug", parsed));
    EXPECT_EQ(parsed, log::Level::kDebug);
    EXPECT_FALSE(log::parse_level("verbose", parsed));
    log::set_level(log::Level::kInfo);
}

}  // namespace
}  // namespace launcher
