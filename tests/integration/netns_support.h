// Network namespaces for the egress tests: created with `ip netns add`,
// removed by the guard even when the test fails, and threads that run a
// function inside one. Nothing here touches the host's own netns.
#pragma once

#include <sched.h>

#include <exception>
#include <future>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>

namespace pltest {

// Runs a shell command; throws std::runtime_error with its text on failure.
void sh(const std::string& command);
// Runs a shell command and returns its stdout; throws on failure.
std::string sh_output(const std::string& command);
// Whether the tests can run here (root, `ip` and `nft` present); else why not.
std::string netns_unavailable_reason();

// `ip netns add <name>`; `ip netns del` on destruction. Loopback is up.
class TestNetns {
public:
    explicit TestNetns(std::string name);
    ~TestNetns();
    TestNetns(const TestNetns&) = delete;
    TestNetns& operator=(const TestNetns&) = delete;
    const std::string& name() const noexcept { return name_; }
    // "ip netns exec <name> "
    std::string exec() const { return "ip netns exec " + name_ + " "; }

private:
    std::string name_;
};

// "pltest-<pid>-<role>"
std::string netns_name(const std::string& role);

// Enters the named netns on the calling thread (throws on failure).
void enter_netns(const std::string& name);

// Runs f() on a new thread that entered netns `name`; returns its result
// (or rethrows its exception). Sockets and nft contexts created there stay
// bound to that netns when used from other threads.
template <class F>
auto in_netns(const std::string& name, F f) -> std::invoke_result_t<F> {
    std::packaged_task<std::invoke_result_t<F>()> task([&]() {
        enter_netns(name);
        return f();
    });
    auto result = task.get_future();
    std::thread(std::move(task)).join();
    return result.get();
}

}  // namespace pltest
