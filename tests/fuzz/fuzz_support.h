// Helpers shared by the fuzz targets: a property that must hold (its
// violation is a finding, like a crash), and a scratch file for the parsers
// that read a path rather than bytes.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

namespace fuzz {

// A violated property aborts, which libFuzzer reports as a crash and the
// corpus runner as a failed test.
[[noreturn]] inline void finding(const char* what, const std::string& detail = {}) {
    std::fprintf(stderr, "FUZZ FINDING: %s %s\n", what, detail.c_str());
    std::abort();
}

inline void check(bool ok, const char* what, const std::string& detail = {}) {
    if (!ok) finding(what, detail);
}

// A private directory for this process (libFuzzer may run several jobs at
// once), created on first use and removed at exit. Kept for the whole run:
// creating one per input would cost more than the parse. In memory
// (/dev/shm) unless TMPDIR says otherwise: on a disk with discard, the
// O_TRUNC of every input waits for the device and made the YAML targets
// 3.5 times slower.
inline const std::filesystem::path& scratch_dir() {
    static const std::filesystem::path dir = [] {
        const char* base = std::getenv("TMPDIR");
        std::string root = base && *base ? base : "/tmp";
        if ((!base || !*base) && ::access("/dev/shm", W_OK) == 0) root = "/dev/shm";
        std::string pattern = root + "/pl-fuzz-XXXXXX";
        if (::mkdtemp(pattern.data()) == nullptr) finding("mkdtemp failed", pattern);
        std::atexit([] {
            std::error_code ec;
            std::filesystem::remove_all(scratch_dir(), ec);
        });
        return std::filesystem::path(pattern);
    }();
    return dir;
}

// Replaces `file` with exactly these bytes.
inline void write_file(const std::filesystem::path& file, const std::uint8_t* data,
                       std::size_t size) {
    const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) finding("cannot create", file.string());
    std::size_t done = 0;
    while (done < size) {
        const ssize_t n = ::write(fd, data + done, size - done);
        if (n <= 0) finding("cannot write", file.string());
        done += static_cast<std::size_t>(n);
    }
    ::close(fd);
}

}  // namespace fuzz
