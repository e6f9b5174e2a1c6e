#include "sandbox/limits.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "sandbox/error.h"

namespace {

using sandbox::ConfigError;
using sandbox::parse_size;

TEST(ParseSize, BinaryAndDecimalSuffixes) {
    EXPECT_EQ(parse_size("0"), 0u);
    EXPECT_EQ(parse_size("4096"), 4096u);
    EXPECT_EQ(parse_size("512Mi"), 512ULL << 20);
    EXPECT_EQ(parse_size("1Gi"), 1ULL << 30);
    EXPECT_EQ(parse_size("64Ki"), 64ULL << 10);
    EXPECT_EQ(parse_size("2Ti"), 2ULL << 40);
    EXPECT_EQ(parse_size("100M"), 100'000'000u);
    EXPECT_EQ(parse_size("3K"), 3000u);
    EXPECT_EQ(parse_size("1G"), 1'000'000'000u);
    EXPECT_EQ(parse_size("15Ei"), 15ULL << 60);
}

TEST(ParseSize, RejectsMalformedInputWithTheReason) {
    auto message = [](const char* text) {
        try {
            parse_size(text);
        } catch (const ConfigError& e) {
            return std::string(e.what());
        }
        return std::string("accepted");
    };
    EXPECT_EQ(message("12Mx"),
              "invalid size '12Mx': unknown suffix 'Mx' (use Ki, Mi, Gi, Ti, Pi, Ei or K, M, G, "
              "T, P, E)");
    EXPECT_NE(message("-1Mi").find("negative"), std::string::npos);
    EXPECT_NE(message("").find("empty"), std::string::npos);
    EXPECT_NE(message("Mi").find("whole number"), std::string::npos);
    EXPECT_NE(message("1.5Gi").find("unknown suffix '.5Gi'"), std::string::npos);
    EXPECT_NE(message(" 1Mi").find("whole number"), std::string::npos);
    EXPECT_NE(message("+1Mi").find("whole number"), std::string::npos);
    EXPECT_NE(message("1mi").find("unknown suffix 'mi'"), std::string::npos);
    EXPECT_NE(message("16Ei").find("overflows"), std::string::npos);
    EXPECT_NE(message("99999999999999999999").find("too large"), std::string::npos);
    EXPECT_NE(message("18446744073709551615Ki").find("overflows"), std::string::npos);
}

TEST(CpuMax, FromCpuCount) {
    EXPECT_EQ(sandbox::cpu_max_from_cpus(0.5).to_string(), "50000 100000");
    EXPECT_EQ(sandbox::cpu_max_from_cpus(1).to_string(), "100000 100000");
    EXPECT_EQ(sandbox::cpu_max_from_cpus(2.25).to_string(), "225000 100000");
    EXPECT_EQ(sandbox::cpu_max_from_cpus(0.01).to_string(), "1000 100000");
    EXPECT_EQ(sandbox::cpu_max_from_cpus(0.5, 10000).to_string(), "5000 10000");
}

TEST(CpuMax, RejectsImpossibleCounts) {
    EXPECT_THROW(sandbox::cpu_max_from_cpus(0), ConfigError);
    EXPECT_THROW(sandbox::cpu_max_from_cpus(-1), ConfigError);
    EXPECT_THROW(sandbox::cpu_max_from_cpus(std::nan("")), ConfigError);
    EXPECT_THROW(sandbox::cpu_max_from_cpus(std::numeric_limits<double>::infinity()), ConfigError);
    EXPECT_THROW(sandbox::cpu_max_from_cpus(0.001), ConfigError);  // below 1 ms per period
    EXPECT_THROW(sandbox::cpu_max_from_cpus(1e300), ConfigError);
    EXPECT_THROW(sandbox::cpu_max_from_cpus(1, 500), ConfigError);  // period too short
}

}  // namespace
