// spawn()'s two clone modes (sandbox/spawn.h CloneMode): both run the full
// compartment; only kSharedMemory leaves the parent's memory uncopied.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

#include "sandbox/error.h"
#include "sandbox/spawn.h"
#include "test_support.h"

namespace {

using sandbox::CloneMode;

const char* mode_name(CloneMode mode) {
    return mode == CloneMode::kSharedMemory ? "shared memory" : "fork";
}

// Every namespace, the file view and the init: the steps a CLONE_VM child
// runs in our memory are all there.
sandbox::SpawnSpec confined_report(CloneMode mode) {
    auto spec = pltest::misbehave({"report"});
    spec.namespaces = {
        .mount = true, .pid = true, .ipc = true, .uts = true, .net = true, .cgroup = true};
    pltest::use_init(spec);
    pltest::enable_view(spec);
    spec.credentials = sandbox::Credentials{65534, 65534, {}};
    spec.clone_mode = mode;
    return spec;
}

long minor_faults() {
    rusage usage{};
    ::getrusage(RUSAGE_SELF, &usage);
    return usage.ru_minflt;
}

class CloneModes : public ::testing::TestWithParam<CloneMode> {
protected:
    void SetUp() override {
        if (GetParam() == CloneMode::kSharedMemory && !sandbox::shared_memory_clone_supported()) {
            GTEST_SKIP() << "this build clones in fork mode only (not x86-64, or a sanitizer)";
        }
    }
};

TEST_P(CloneModes, RunsTheWholeCompartmentAndSaysHow) {
    sandbox::SpawnSpec spec = confined_report(GetParam());
    spec.stdout_fd = -1;
    sandbox::SpawnResult result = sandbox::spawn(spec);
    EXPECT_EQ(result.clone_mode, GetParam()) << mode_name(GetParam());
    result.process.reap();

    pltest::Captured run = pltest::run_captured(confined_report(GetParam()));
    ASSERT_TRUE(run.status.success()) << run.status.describe() << "\n" << run.output;
    auto report = pltest::parse_report(run.output);
    EXPECT_EQ(report["uid"], "65534");
    EXPECT_EQ(report["pid"], "2") << "the pattern runs under the init";
}

// A failing step reports its own errno, not whatever our thread's errno
// holds: the child's syscalls never touch the parent's thread-local state.
TEST_P(CloneModes, AFailingStepReportsItsStepAndErrno) {
    sandbox::SpawnSpec spec = confined_report(GetParam());
    spec.working_directory = "/nonexistent-dir";
    errno = 0;
    try {
        sandbox::spawn(spec);
        FAIL() << "chdir to a missing directory must fail";
    } catch (const sandbox::SpawnError& e) {
        EXPECT_EQ(e.step(), sandbox::ChildStep::kWorkingDirectory);
        EXPECT_EQ(e.error_code(), ENOENT) << e.what();
    }
    spec = confined_report(GetParam());
    spec.executable = "/nonexistent/pattern";
    try {
        sandbox::spawn(spec);
        FAIL() << "a missing executable must fail";
    } catch (const sandbox::SpawnError& e) {
        EXPECT_EQ(e.step(), sandbox::ChildStep::kInitExec) << e.what();
        EXPECT_EQ(e.error_code(), ENOENT) << e.what();
    }
}

// What fork mode costs a big parent and kSharedMemory does not: clone3 in
// fork mode write-protects every private page of ours, so the first write
// to each page after the spawn faults (copy-on-write, or reuse once the
// child has exec'd). With CLONE_VM nothing is write-protected.
TEST_P(CloneModes, WritesToOurMemoryAfterASpawnFaultOnlyInForkMode) {
    constexpr std::size_t kBytes = 32u << 20;
    const std::size_t page = static_cast<std::size_t>(::getpagesize());
    const long pages = static_cast<long>(kBytes / page);
    void* memory =
        ::mmap(nullptr, kBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ASSERT_NE(memory, MAP_FAILED);
    ::madvise(memory, kBytes, MADV_NOHUGEPAGE);  // one fault per page, not per 2 MiB
    auto* bytes = static_cast<unsigned char*>(memory);
    std::memset(bytes, 1, kBytes);

    sandbox::SpawnSpec spec = pltest::misbehave({"exit", "0"});
    spec.clone_mode = GetParam();
    sandbox::SpawnResult result = sandbox::spawn(spec);
    result.process.reap();

    long before = minor_faults();
    for (std::size_t i = 0; i < kBytes; i += page)
        bytes[i] = 2;
    long faults = minor_faults() - before;
    ::munmap(memory, kBytes);
    if (GetParam() == CloneMode::kFork) {
        EXPECT_GE(faults, pages / 2) << "fork mode write-protects our pages";
    } else {
        EXPECT_LT(faults, pages / 20) << "a CLONE_VM child must leave our page tables alone";
    }
    std::printf("%s: %ld faults writing %ld pages after one spawn\n", mode_name(GetParam()), faults,
                pages);
}

INSTANTIATE_TEST_SUITE_P(Spawn, CloneModes,
                         ::testing::Values(CloneMode::kSharedMemory, CloneMode::kFork),
                         [](const auto& param_info) {
                             return param_info.param == CloneMode::kSharedMemory ? "SharedMemory"
                                                                                 : "Fork";
                         });

}  // namespace
