// Network namespaces made and entered without moving the calling thread.
//
// setns()/unshare(CLONE_NEWNET) change the namespace of the calling thread
// only, and for good. Doing that on a launcher thread would make every
// later socket() of that thread land in the pattern's namespace; so each
// such step runs on a thread of its own that ends right after. What it
// made survives it: a namespace lives while an fd (or a process, or a
// socket) refers to it.
#pragma once

#include <functional>

#include "sandbox/unique_fd.h"

namespace sandbox {

// Runs `work` on a new thread and waits for it; an exception thrown by
// `work` is rethrown here.
void run_on_own_thread(const std::function<void()>& work);

// Runs `work` on a new thread that first joined the network namespace
// `netns_fd` (setns(CLONE_NEWNET); needs CAP_SYS_ADMIN over it). SysError
// when the join fails; exceptions of `work` are rethrown here.
void run_in_network_namespace(int netns_fd, const std::function<void()>& work);

// A new network namespace, the caller's user namespace as its owner, `lo`
// up and nothing else; the returned fd (O_RDONLY|O_CLOEXEC, of
// /proc/thread-self/ns/net) is what keeps it alive: close it and the
// namespace goes, with every link in it.
UniqueFd create_network_namespace();

// The inode number of the network namespace `netns_fd` refers to, the
// number in /proc/PID/ns/net's "net:[N]", to compare namespaces.
unsigned long network_namespace_inode(int netns_fd);

}  // namespace sandbox
