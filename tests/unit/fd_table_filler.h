// Runs a process out of fds, for tests of what happens on EMFILE: lowers
// RLIMIT_NOFILE to just above the fds in use and fills the table with dups
// of stderr. Everything is undone by release() or the destructor.
#pragma once

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <string>
#include <vector>

namespace pltest {

class FdTableFiller {
public:
    FdTableFiller() {
        if (::getrlimit(RLIMIT_NOFILE, &saved_) != 0) return;
        rlimit tight = saved_;
        tight.rlim_cur = static_cast<rlim_t>(highest_open_fd() + 8);
        if (::setrlimit(RLIMIT_NOFILE, &tight) != 0) return;
        lowered_ = true;
        int fd;
        while ((fd = ::dup(STDERR_FILENO)) >= 0)
            fillers_.push_back(fd);
        full_ = errno == EMFILE;
    }
    ~FdTableFiller() { release(); }
    FdTableFiller(const FdTableFiller&) = delete;
    FdTableFiller& operator=(const FdTableFiller&) = delete;

    // True when the next fd-allocating call fails with EMFILE.
    bool full() const { return full_; }

    void release() {
        for (int fd : fillers_)
            ::close(fd);
        fillers_.clear();
        if (lowered_) ::setrlimit(RLIMIT_NOFILE, &saved_);
        lowered_ = false;
        full_ = false;
    }

private:
    static int highest_open_fd() {
        int highest = 2;
        if (DIR* dir = ::opendir("/proc/self/fd")) {
            while (dirent* entry = ::readdir(dir)) {
                if (entry->d_name[0] == '.') continue;
                highest = std::max(highest, std::atoi(entry->d_name));
            }
            ::closedir(dir);
        }
        return highest;
    }

    rlimit saved_{};
    bool lowered_ = false;
    bool full_ = false;
    std::vector<int> fillers_;
};

}  // namespace pltest
