#include "sandbox/capabilities.h"

#include <gtest/gtest.h>
#include <linux/capability.h>

#include "sandbox/error.h"

namespace {

TEST(Capabilities, ParsesNamesInAnyCommonSpelling) {
    const sandbox::CapabilityMask bind = 1ULL << CAP_NET_BIND_SERVICE;
    EXPECT_EQ(sandbox::parse_capabilities({"CAP_NET_BIND_SERVICE"}), bind);
    EXPECT_EQ(sandbox::parse_capabilities({"cap_net_bind_service"}), bind);
    EXPECT_EQ(sandbox::parse_capabilities({"net_bind_service"}), bind);
    EXPECT_EQ(sandbox::parse_capabilities({"kill", "chown"}),
              (1ULL << CAP_KILL) | (1ULL << CAP_CHOWN));
    EXPECT_EQ(sandbox::parse_capabilities({}), 0u);
}

TEST(Capabilities, RejectsUnknownNames) {
    try {
        sandbox::parse_capabilities({"net_bind_servce"});
        FAIL();
    } catch (const sandbox::ConfigError& e) {
        EXPECT_STREQ(e.what(), "unknown capability 'net_bind_servce'");
    }
    EXPECT_THROW(sandbox::parse_capabilities({""}), sandbox::ConfigError);
}

TEST(Capabilities, NamesForDiagnostics) {
    EXPECT_EQ(sandbox::capability_names(0), "");
    EXPECT_EQ(sandbox::capability_names((1ULL << CAP_KILL) | (1ULL << CAP_NET_BIND_SERVICE)),
              "cap_kill,cap_net_bind_service");
    EXPECT_GE(sandbox::last_capability(), CAP_BPF);
}

}  // namespace
