// What a process uses, as /proc shows it: descriptors, resident memory,
// threads. The hostile-client test and the soak watch the daemon with these.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <string>

namespace pltest {

// Open descriptors, not counting a sanitizer runtime's report file.
int fd_count(pid_t pid);
// VmRSS in KiB; -1 when the process is gone.
long rss_kib(pid_t pid);
// The "Threads:" line of /proc/<pid>/status; -1 when the process is gone.
int thread_count(pid_t pid);
// What each descriptor is ("socket", "anon_inode:[eventfd]", a path), counted.
std::map<std::string, int> fd_kinds(pid_t pid);
// One line per kind, for a failure message.
std::string describe_fds(const std::map<std::string, int>& kinds);
// Waits until the process's descriptors drop to `at_most` (the daemon
// closes a connection some milliseconds after the peer did); returns the
// last count.
int settle_fds(pid_t pid, int at_most,
               std::chrono::milliseconds within = std::chrono::milliseconds(10000));

// Whether this build's daemon runs under ASan or TSan (the tests are built
// with the same flags; CMake defines PL_SANITIZED). Their allocators keep freed memory in
// quarantine and add shadow memory, so resident memory says nothing about leaks there: the memory
// bounds hold in the plain build, and LeakSanitizer checks the ASan daemon at exit.
#if defined(PL_SANITIZED)
inline constexpr bool kSanitizedMemory = true;
#else
inline constexpr bool kSanitizedMemory = false;
#endif

// EXPECTs that resident memory grew by less than `bound_kib` (always true
// in a sanitized build, where it only prints the growth).
void expect_rss_growth_below(long before_kib, long after_kib, long bound_kib,
                             const std::string& what);

}  // namespace pltest
