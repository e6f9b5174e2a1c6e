// A main for the fuzz targets in the normal (gcc, no libFuzzer) build: runs
// LLVMFuzzerTestOneInput once over every file under the directories (or the
// files) given, so that the seed corpora and every kept finding are a ctest
// regression test. A crash, a sanitizer report or an uncaught exception in
// the target aborts the run; the last "input:" line names the file.
//
// A directory that does not exist is skipped (regressions/<target> appears
// with the target's first finding), but a run over no input at all fails:
// a corpus that went missing must not pass silently.
#include <sys/resource.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {

namespace fs = std::filesystem;

std::vector<fs::path> inputs_of(const fs::path& root) {
    std::vector<fs::path> files;
    std::error_code ec;
    if (fs::is_regular_file(root, ec)) return {root};
    if (!fs::is_directory(root, ec)) {
        std::fprintf(stderr, "skipped %s: not a directory (no inputs yet)\n", root.c_str());
        return files;
    }
    for (const auto& entry : fs::recursive_directory_iterator(root)) {
        if (entry.is_regular_file()) files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());  // a stable order, for reproducible logs
    return files;
}

}  // namespace

int main(int argc, char** argv) {
#if !defined(__SANITIZE_ADDRESS__) && !defined(__has_feature)
    // An input that makes a parser allocate without end (the yaml-cpp loop
    // in regressions/config) must fail the test with bad_alloc, not push the
    // host into its OOM killer. Not under ASan, which reserves terabytes of
    // address space (gcc says so; clang builds are PL_FUZZ ones, all under ASan).
    const rlimit limit{1ul << 31, 1ul << 31};  // 2 GiB of address space
    ::setrlimit(RLIMIT_AS, &limit);
#endif
    std::size_t runs = 0;
    for (int i = 1; i < argc; ++i) {
        for (const fs::path& file : inputs_of(argv[i])) {
            std::ifstream in(file, std::ios::binary);
            if (!in) {
                std::fprintf(stderr, "cannot read %s\n", file.c_str());
                return 1;
            }
            const std::string bytes{std::istreambuf_iterator<char>(in), {}};
            std::fprintf(stderr, "input: %s (%zu bytes)\n", file.c_str(), bytes.size());
            std::fflush(stderr);
            LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(bytes.data()),
                                   bytes.size());
            ++runs;
        }
    }
    if (runs == 0) {
        std::fprintf(stderr, "no inputs: every directory given is missing or empty\n");
        return 1;
    }
    std::fprintf(stderr, "%zu inputs ran without a finding\n", runs);
    return 0;
}
