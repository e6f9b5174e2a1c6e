// The claim protocol's messages (core/claim_protocol.h): what a late-binding
// pattern reads and answers. The daemon suite's SessionPool.* drive it
// between the real launcher and the real echo sample.
#include "core/claim_protocol.h"

#include <gtest/gtest.h>

namespace {

using launcher::Claim;

TEST(ClaimProtocol, AClaimIsOneJsonObjectThatRoundTrips) {
    const Claim claim{"tenant-a", "s1", "session:s1:echo", {{"GREETING", "hi \"there\"\n"}}};
    const std::string text = launcher::encode_claim(claim);
    EXPECT_EQ(text,
              "{\"config\":{\"GREETING\":\"hi \\\"there\\\"\\n\"},\"namespace\":\"tenant-a\","
              "\"process_id\":\"session:s1:echo\",\"session_id\":\"s1\"}");
    std::string problem;
    const std::optional<Claim> back = launcher::decode_claim(text, problem);
    ASSERT_TRUE(back) << problem;
    EXPECT_EQ(back->namespace_id, "tenant-a");
    EXPECT_EQ(back->session_id, "s1");
    EXPECT_EQ(back->process_id, "session:s1:echo");
    EXPECT_EQ(back->config, claim.config);
}

TEST(ClaimProtocol, WhatIsNotAClaimSaysWhy) {
    std::string problem;
    EXPECT_FALSE(launcher::decode_claim("READY=1", problem));
    EXPECT_EQ(problem, "not a JSON object");
    EXPECT_FALSE(launcher::decode_claim(
        R"({"namespace":"t","session_id":1,"process_id":"p","config":{}})", problem));
    EXPECT_EQ(problem, "\"session_id\" is missing or not a string");
    EXPECT_FALSE(
        launcher::decode_claim(R"({"namespace":"t","session_id":"s","process_id":"p"})", problem));
    EXPECT_EQ(problem, "\"config\" is missing or not an object");
    EXPECT_FALSE(launcher::decode_claim(
        R"({"namespace":"t","session_id":"s","process_id":"p","config":{"A":2}})", problem));
    EXPECT_EQ(problem, "config \"A\" is not a string");
}

TEST(ClaimProtocol, OnlyReadyIsReadyAndARefusalKeepsItsReasonOnOneLine) {
    EXPECT_TRUE(launcher::parse_claim_answer("READY=1").ready);
    EXPECT_TRUE(launcher::parse_claim_answer("STATUS=claimed\nREADY=1\n").ready);
    EXPECT_FALSE(launcher::parse_claim_answer("READY=0").ready);
    EXPECT_FALSE(launcher::parse_claim_answer("").ready);
    const launcher::ClaimAnswer refused = launcher::parse_claim_answer("ERROR=no\rbackend\x01");
    EXPECT_FALSE(refused.ready);
    EXPECT_EQ(refused.error, "no backend ");
    const launcher::ClaimAnswer junk =
        launcher::parse_claim_answer(std::string(300, 'x') + "\nmore");
    EXPECT_FALSE(junk.ready);
    EXPECT_EQ(junk.error.find("it answered neither READY=1 nor ERROR=...: '"), 0u);
    EXPECT_EQ(junk.error.size(),
              std::string("it answered neither READY=1 nor ERROR=...: ''").size() + 200);
}

}  // namespace
