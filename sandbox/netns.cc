#include "sandbox/netns.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>

#include <cerrno>
#include <exception>
#include <thread>

#include "sandbox/error.h"
#include "sandbox/netlink.h"

namespace sandbox {

void run_on_own_thread(const std::function<void()>& work) {
    std::exception_ptr failure;
    std::thread thread([&] {
        try {
            work();
        } catch (...) {
            failure = std::current_exception();
        }
    });
    thread.join();
    if (failure) std::rethrow_exception(failure);
}

void run_in_network_namespace(int netns_fd, const std::function<void()>& work) {
    run_on_own_thread([&] {
        if (::setns(netns_fd, CLONE_NEWNET) != 0) {
            throw_sys_error(errno, "setns(CLONE_NEWNET) into network namespace fd",
                            std::to_string(netns_fd));
        }
        work();
    });
}

UniqueFd create_network_namespace() {
    UniqueFd netns;
    run_on_own_thread([&] {
        // Allowed in a multi-threaded process (unlike CLONE_NEWUSER): only
        // this thread moves, and it ends below.
        if (::unshare(CLONE_NEWNET) != 0) throw_sys_error(errno, "unshare(CLONE_NEWNET)");
        // thread-self (3.17): /proc/self/ns/net would be the main thread's.
        netns = UniqueFd(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
        if (!netns) throw_sys_error(errno, "open", "/proc/thread-self/ns/net");
        // This thread is in the new namespace already: a socket it opens is
        // bound there (what open_in_netns() would arrange with a setns).
        NetlinkSocket socket = NetlinkSocket::open();
        set_link_up(socket, "lo");
    });
    return netns;
}

unsigned long network_namespace_inode(int netns_fd) {
    struct stat st {};
    if (::fstat(netns_fd, &st) != 0) {
        throw_sys_error(errno, "fstat network namespace fd", std::to_string(netns_fd));
    }
    return static_cast<unsigned long>(st.st_ino);
}

}  // namespace sandbox
