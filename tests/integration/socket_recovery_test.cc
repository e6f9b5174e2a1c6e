// take_listening_socket: a socket copied back out of another process with
// pidfd_getfd, and only the socket the launcher handed over.
#include "sandbox/socket_recovery.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include "sandbox/unique_fd.h"

namespace {

using sandbox::UniqueFd;

// A TCP or UDP socket bound to `address` with a kernel-chosen port.
struct Bound {
    UniqueFd fd;
    int port = 0;
};

Bound bind_socket(int type, std::uint32_t address, bool listen) {
    Bound b;
    b.fd = UniqueFd(::socket(AF_INET, type | SOCK_CLOEXEC, 0));
    EXPECT_TRUE(b.fd) << "socket: errno " << errno;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(address);
    EXPECT_EQ(::bind(b.fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    socklen_t len = sizeof addr;
    EXPECT_EQ(::getsockname(b.fd.get(), reinterpret_cast<sockaddr*>(&addr), &len), 0);
    b.port = ntohs(addr.sin_port);
    if (listen) {
        EXPECT_EQ(::listen(b.fd.get(), 8), 0);
    }
    return b;
}

// A forked child that holds copies of this process's fds and does nothing;
// the test's own copies are closed, so whatever comes back came from it.
class Holder {
public:
    Holder() {
        pid_ = ::fork();
        if (pid_ == 0) {
            for (;;)
                ::pause();
        }
        EXPECT_GT(pid_, 0);
        pidfd_ = UniqueFd(static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0)));
        EXPECT_TRUE(pidfd_) << "pidfd_open: errno " << errno;
    }
    ~Holder() { end(); }
    int pidfd() const { return pidfd_.get(); }
    void end() {
        if (pid_ <= 0) return;
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
        pid_ = -1;
    }

private:
    pid_t pid_ = -1;
    UniqueFd pidfd_;
};

int local_port(int fd) {
    sockaddr_in addr{};
    socklen_t len = sizeof addr;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return -1;
    return ntohs(addr.sin_port);
}

TEST(TakeListeningSocket, GetsTheListenerBackFromTheProcessThatHoldsIt) {
    Bound listener = bind_socket(SOCK_STREAM, INADDR_LOOPBACK, true);
    const int number = listener.fd.get();
    Holder holder;
    listener.fd.reset();  // only the holder has it now

    UniqueFd taken = sandbox::take_listening_socket(holder.pidfd(), number, listener.port);
    ASSERT_TRUE(taken);
    EXPECT_EQ(local_port(taken.get()), listener.port);
    // It is the same listening socket: a connection made now is accepted on it.
    UniqueFd client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(listener.port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(client.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    UniqueFd accepted(::accept4(taken.get(), nullptr, nullptr, SOCK_CLOEXEC));
    EXPECT_TRUE(accepted) << "accept: errno " << errno;
    // And it stays usable after the holder is gone.
    holder.end();
    EXPECT_EQ(local_port(taken.get()), listener.port);
}

TEST(TakeListeningSocket, RefusesWhatIsNotTheListenerHandedOver) {
    Bound listener = bind_socket(SOCK_STREAM, INADDR_LOOPBACK, true);
    Bound not_listening = bind_socket(SOCK_STREAM, INADDR_LOOPBACK, false);
    Bound udp = bind_socket(SOCK_DGRAM, INADDR_LOOPBACK, false);
    Bound any_address = bind_socket(SOCK_STREAM, INADDR_ANY, true);
    int pipe_fds[2];
    ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
    UniqueFd pipe_read(pipe_fds[0]), pipe_write(pipe_fds[1]);
    Holder holder;
    const int pidfd = holder.pidfd();

    ASSERT_TRUE(sandbox::take_listening_socket(pidfd, listener.fd.get(), listener.port))
        << "the control case must work, or the refusals below prove nothing";
    EXPECT_FALSE(sandbox::take_listening_socket(pidfd, listener.fd.get(), listener.port + 1))
        << "bound to another port";
    EXPECT_FALSE(sandbox::take_listening_socket(pidfd, not_listening.fd.get(), not_listening.port))
        << "not listening";
    EXPECT_FALSE(sandbox::take_listening_socket(pidfd, udp.fd.get(), udp.port)) << "not TCP";
    EXPECT_FALSE(sandbox::take_listening_socket(pidfd, any_address.fd.get(), any_address.port))
        << "bound to 0.0.0.0, not loopback";
    EXPECT_FALSE(sandbox::take_listening_socket(pidfd, pipe_read.get(), listener.port))
        << "not a socket";
    EXPECT_FALSE(sandbox::take_listening_socket(pidfd, 1000, listener.port)) << "no such fd";
    holder.end();
    EXPECT_FALSE(sandbox::take_listening_socket(pidfd, listener.fd.get(), listener.port))
        << "the process is gone";
}

}  // namespace
