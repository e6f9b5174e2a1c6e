#include "export/kubernetes_names.h"

#include <gtest/gtest.h>

namespace launcher::kubernetes {
namespace {

TEST(KubernetesNames, AValidLabelStaysAsItIs) {
    EXPECT_EQ(dns_label("tenant-a"), "tenant-a");
    EXPECT_EQ(dns_label("echo"), "echo");
    EXPECT_EQ(dns_label("2fa"), "2fa");
}

TEST(KubernetesNames, AnIdThatMustChangeGetsAHashSoThatTwoIdsNeverMeet) {
    const std::string dot = dns_label("a.b");
    const std::string under = dns_label("a_b");
    EXPECT_TRUE(dot.starts_with("a-b-")) << dot;
    EXPECT_TRUE(under.starts_with("a-b-")) << under;
    EXPECT_NE(dot, under);
    EXPECT_EQ(dot, dns_label("a.b")) << "stable";
    EXPECT_EQ(dns_label("x-").substr(0, 2), "x-");
    EXPECT_NE(dns_label("x-"), "x-");
}

TEST(KubernetesNames, ServicesStartWithALetterAndEverythingFitsItsLength) {
    EXPECT_EQ(dns_label("2fa", true).front(), 'p');
    EXPECT_EQ(dns_label("echo", true), "echo");
    const std::string long_id(63, 'a');
    const std::string joined = dns_label(long_id + "-" + long_id);
    EXPECT_LE(joined.size(), 63u);
    for (const char c : joined)
        EXPECT_TRUE((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-');
}

TEST(KubernetesNames, LabelValuesAllowDotsAndUnderscoresInside) {
    EXPECT_EQ(label_value("tenant_b.x"), "tenant_b.x");
    EXPECT_NE(label_value("x."), "x.");
    EXPECT_EQ(label_value("none"), "none");
}

}  // namespace
}  // namespace launcher::kubernetes
