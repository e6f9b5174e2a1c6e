// The standard services next to the API: grpc.health.v1 and server
// reflection (grpc.reflection.v1alpha), spoken as raw protobuf bytes so that
// no extra .proto files are needed.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <future>

#include "test_daemon.h"

namespace {

using namespace pltest;

std::string to_string(const grpc::ByteBuffer& buffer) {
    std::vector<grpc::Slice> slices;
    (void)buffer.Dump(&slices);
    std::string out;
    for (const auto& s : slices)
        out.append(reinterpret_cast<const char*>(s.begin()), s.size());
    return out;
}

grpc::ByteBuffer from_string(const std::string& bytes) {
    grpc::Slice slice(bytes);
    return grpc::ByteBuffer(&slice, 1);
}

class GrpcServicesTest : public ::testing::Test {
protected:
    void SetUp() override {
        d.add_pattern("p", misbehave_manifest("sleep"));
        d.start();
        channel = grpc::CreateChannel("unix:" + d.socket(), grpc::InsecureChannelCredentials());
    }
    TestDaemon d;
    std::shared_ptr<grpc::Channel> channel;
};

TEST_F(GrpcServicesTest, HealthCheckSaysServing) {
    grpc::GenericStub stub(channel);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    grpc::ByteBuffer request = from_string(""), response;  // HealthCheckRequest{service: ""}
    std::promise<grpc::Status> done;
    stub.UnaryCall(&ctx, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request, &response,
                   [&](grpc::Status s) { done.set_value(s); });
    grpc::Status status = done.get_future().get();
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(to_string(response), std::string("\x08\x01", 2)) << "status: SERVING";
}

TEST_F(GrpcServicesTest, ReflectionListsTheLauncherService) {
    grpc::GenericStub stub(channel);
    grpc::CompletionQueue cq;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    auto call = stub.PrepareCall(
        &ctx, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
    void* tag;
    bool ok;
    auto step = [&](int id) {
        EXPECT_TRUE(cq.Next(&tag, &ok));
        EXPECT_EQ(tag, reinterpret_cast<void*>(static_cast<intptr_t>(id)));
        return ok;
    };
    call->StartCall(reinterpret_cast<void*>(1));
    ASSERT_TRUE(step(1));
    // ServerReflectionRequest{list_services: ""}: field 7, length 0.
    call->Write(from_string(std::string("\x3a\x00", 2)), reinterpret_cast<void*>(2));
    ASSERT_TRUE(step(2));
    grpc::ByteBuffer reply;
    call->Read(&reply, reinterpret_cast<void*>(3));
    ASSERT_TRUE(step(3));
    std::string bytes = to_string(reply);
    EXPECT_NE(bytes.find("prism.launcher.PatternLauncher"), std::string::npos);
    EXPECT_NE(bytes.find("grpc.health.v1.Health"), std::string::npos);
    call->WritesDone(reinterpret_cast<void*>(4));
    step(4);
    grpc::Status status;
    call->Finish(&status, reinterpret_cast<void*>(5));
    step(5);
    EXPECT_TRUE(status.ok()) << status.error_message();
}

}  // namespace
