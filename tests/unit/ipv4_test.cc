#include "sandbox/ipv4.h"

#include <gtest/gtest.h>

namespace sandbox {
namespace {

TEST(Ipv4, ParsesDottedQuadsOnly) {
    EXPECT_EQ(parse_ipv4_address("10.0.0.1")->value, 0x0a000001u);
    EXPECT_EQ(parse_ipv4_address("255.255.255.255")->value, 0xffffffffu);
    for (const char* bad :
         {"", "10.0.0", "10.0.0.256", "010.0.0.1x", " 10.0.0.1", "::1", "10.0.0.1/8"})
        EXPECT_FALSE(parse_ipv4_address(bad)) << bad;
}

TEST(Ipv4, NetworksMustHaveNoHostBits) {
    const auto n = parse_ipv4_network("10.213.0.0/16");
    ASSERT_TRUE(n);
    EXPECT_EQ(n->prefix, 16);
    EXPECT_EQ(to_string(*n), "10.213.0.0/16");
    EXPECT_EQ(to_string(n->last()), "10.213.255.255");
    EXPECT_EQ(parse_ipv4_network("192.0.2.7")->prefix, 32);
    EXPECT_EQ(parse_ipv4_network("0.0.0.0/0")->mask(), 0u);
    for (const char* bad : {"10.213.0.1/16", "10.0.0.0/33", "10.0.0.0/", "10.0.0.0/-1",
                            "10.0.0.0/016", "10.0.0.0/1x", "x/8", "10.0.0.0/08", "10.0.0.0/+8"})
        EXPECT_FALSE(parse_ipv4_network(bad)) << bad;
}

TEST(Ipv4, ContainmentAndOverlap) {
    const auto pool = *parse_ipv4_network("10.213.0.0/16");
    EXPECT_TRUE(pool.contains(*parse_ipv4_address("10.213.4.5")));
    EXPECT_FALSE(pool.contains(*parse_ipv4_address("10.214.0.0")));
    EXPECT_TRUE(pool.overlaps(*parse_ipv4_network("10.0.0.0/8")));
    EXPECT_TRUE(parse_ipv4_network("10.213.9.0/24")->overlaps(pool));
    EXPECT_FALSE(pool.overlaps(*parse_ipv4_network("10.212.0.0/16")));
}

}  // namespace
}  // namespace sandbox
