// AcceptBackoff on a real event loop and a real listening socket, with the
// process really out of fds (RLIMIT_NOFILE lowered, the table filled).
#include "common/accept_backoff.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include <chrono>
#include <vector>

#include "common/event_loop.h"
#include "fd_table_filler.h"
#include "sandbox/unique_fd.h"

namespace {

using namespace std::chrono_literals;
using launcher::AcceptBackoff;
using launcher::EventLoop;

// A listening unix socket with a kernel-chosen abstract name (autobind).
struct Listener {
    sandbox::UniqueFd fd;
    sockaddr_un addr{};
    socklen_t addr_len = 0;
};

Listener listen_unix() {
    Listener l;
    l.fd = sandbox::UniqueFd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    sockaddr_un any{};
    any.sun_family = AF_UNIX;
    EXPECT_EQ(::bind(l.fd.get(), reinterpret_cast<sockaddr*>(&any), sizeof(sa_family_t)), 0);
    EXPECT_EQ(::listen(l.fd.get(), 16), 0);
    l.addr_len = sizeof l.addr;
    EXPECT_EQ(::getsockname(l.fd.get(), reinterpret_cast<sockaddr*>(&l.addr), &l.addr_len), 0);
    return l;
}

// Connects without needing an fd of its own: the socket is made beforehand.
bool connect_to(const Listener& l, const sandbox::UniqueFd& client) {
    return ::connect(client.get(), reinterpret_cast<const sockaddr*>(&l.addr), l.addr_len) == 0;
}

sandbox::UniqueFd client_socket() {
    return sandbox::UniqueFd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
}

std::chrono::nanoseconds thread_cpu() {
    timespec ts{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}

// Polls `condition` on the loop every 5 ms; runs `then` once it holds.
void when(EventLoop& loop, std::function<bool()> condition, std::function<void()> then) {
    if (condition()) return then();
    loop.add_timer(5ms, [&loop, condition, then] { when(loop, condition, then); });
}

TEST(AcceptBackoff, OutOfFdsItPausesInsteadOfSpinningAndAcceptsOnceFdsAreFree) {
    EventLoop loop;
    Listener listener = listen_unix();
    std::vector<sandbox::UniqueFd> accepted;
    AcceptBackoff acceptor(
        loop, listener.fd.get(), "test listener",
        [&](sandbox::UniqueFd fd) {
            accepted.push_back(std::move(fd));
            loop.stop();
        },
        50ms);
    acceptor.start();
    ASSERT_EQ(acceptor.state(), AcceptBackoff::State::kWatching);
    sandbox::UniqueFd client = client_socket();

    pltest::FdTableFiller filler;
    ASSERT_TRUE(filler.full()) << "could not fill the fd table";
    ASSERT_TRUE(connect_to(listener, client));  // waits in the backlog: accept4 gets EMFILE

    // 500 ms with the table full: level-triggered epoll reports the listener
    // readable all along. Then the fds are freed.
    constexpr auto kFullFor = 500ms;
    std::size_t pauses_while_full = 0;
    std::chrono::nanoseconds cpu_while_full{};
    std::size_t accepted_while_full = 0;
    const auto cpu_before = thread_cpu();
    loop.add_timer(kFullFor, [&] {
        cpu_while_full = thread_cpu() - cpu_before;
        pauses_while_full = acceptor.pauses();
        accepted_while_full = accepted.size();
        filler.release();
    });
    loop.add_timer(10s, [&] { loop.stop(); });  // bound, should the accept never come
    loop.run();
    filler.release();

    EXPECT_EQ(accepted_while_full, 0u);
    // One pause per 50 ms delay, not one wakeup per loop turn.
    EXPECT_GE(pauses_while_full, 2u);
    EXPECT_LE(pauses_while_full, 12u);
    // A spinning loop would have used the CPU for most of the 500 ms.
    EXPECT_LT(cpu_while_full, kFullFor / 5) << "the loop spun while out of fds";
    // Once fds are free, the re-armed watch takes the waiting connection.
    ASSERT_EQ(accepted.size(), 1u);
    EXPECT_EQ(acceptor.state(), AcceptBackoff::State::kWatching);
}

TEST(AcceptBackoff, StopDuringAPauseCancelsTheRearm) {
    EventLoop loop;
    Listener listener = listen_unix();
    std::size_t accepted = 0;
    AcceptBackoff acceptor(
        loop, listener.fd.get(), "test listener", [&](sandbox::UniqueFd) { ++accepted; }, 20ms);
    acceptor.start();
    sandbox::UniqueFd client = client_socket();
    pltest::FdTableFiller filler;
    ASSERT_TRUE(filler.full());
    ASSERT_TRUE(connect_to(listener, client));

    AcceptBackoff::State after_stop = AcceptBackoff::State::kWatching;
    when(
        loop, [&] { return acceptor.pauses() >= 1; },
        [&] {
            acceptor.stop();
            after_stop = acceptor.state();
            filler.release();
            // Ten delays later: a timer left armed would have re-armed the
            // watch and taken the connection.
            loop.add_timer(200ms, [&] { loop.stop(); });
        });
    loop.add_timer(10s, [&] { loop.stop(); });
    loop.run();
    filler.release();

    EXPECT_EQ(after_stop, AcceptBackoff::State::kStopped);
    EXPECT_EQ(accepted, 0u);
    EXPECT_EQ(acceptor.state(), AcceptBackoff::State::kStopped);
}

TEST(AcceptBackoff, StartDuringAPauseWaitsForTheDelay) {
    EventLoop loop;
    Listener listener = listen_unix();
    std::size_t accepted = 0;
    AcceptBackoff acceptor(
        loop, listener.fd.get(), "test listener",
        [&](sandbox::UniqueFd) {
            ++accepted;
            loop.stop();
        },
        10s);  // longer than the test: only an early re-arm could accept
    acceptor.start();
    sandbox::UniqueFd client = client_socket();
    pltest::FdTableFiller filler;
    ASSERT_TRUE(filler.full());
    ASSERT_TRUE(connect_to(listener, client));

    when(
        loop, [&] { return acceptor.pauses() >= 1; },
        [&] {
            filler.release();
            acceptor.start();  // e.g. an HTTP connection closed meanwhile
            loop.add_timer(200ms, [&] { loop.stop(); });
        });
    loop.add_timer(5s, [&] { loop.stop(); });
    loop.run();
    filler.release();

    EXPECT_EQ(acceptor.pauses(), 1u);
    EXPECT_EQ(accepted, 0u);
    EXPECT_EQ(acceptor.state(), AcceptBackoff::State::kBackingOff);
}

TEST(AcceptBackoff, StopFromTheCallbackLeavesTheRestInTheBacklogUntilStart) {
    EventLoop loop;
    Listener listener = listen_unix();
    std::size_t accepted = 0;
    AcceptBackoff acceptor(loop, listener.fd.get(), "test listener", [&](sandbox::UniqueFd) {
        ++accepted;
        acceptor.stop();  // a connection limit of one
    });
    acceptor.start();
    sandbox::UniqueFd a = client_socket(), b = client_socket();
    ASSERT_TRUE(connect_to(listener, a));
    ASSERT_TRUE(connect_to(listener, b));

    std::size_t after_first_wakeups = 0;
    loop.add_timer(100ms, [&] {
        after_first_wakeups = accepted;
        acceptor.start();
    });
    when(
        loop, [&] { return accepted == 2; }, [&] { loop.stop(); });
    loop.add_timer(5s, [&] { loop.stop(); });
    loop.run();

    EXPECT_EQ(after_first_wakeups, 1u);
    EXPECT_EQ(accepted, 2u);
    EXPECT_EQ(acceptor.pauses(), 0u);
}

}  // namespace
