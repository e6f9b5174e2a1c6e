// The systemd service protocol without systemd as PID 1: socket activation
// through systemd-socket-activate, and sd_notify messages read from our own
// NOTIFY_SOCKET.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "test_daemon.h"

namespace {

using namespace pltest;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

TEST(SocketActivation, TheFirstConnectionStartsTheDaemonOnTheInheritedSocket) {
    TestDaemon d;
    d.add_pattern("echo", echo_manifest("notify"), PL_ECHO);
    std::filesystem::create_directories(d.dir() + "/run");
    std::vector<std::string> wrapper = {"/usr/bin/systemd-socket-activate", "-l", d.socket(),
                                        "--fdname=grpc"};
    // It passes on only the environment it is told to: a sanitized daemon
    // needs its runtime's options (where reports go, which exit code).
    for (const char* name : {"ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "TSAN_OPTIONS"}) {
        if (std::getenv(name)) wrapper.push_back(std::string("--setenv=") + name);
    }
    d.set_wrapper(wrapper);
    d.start();  // its first Health call is the connection that activates the daemon
    pb::LaunchResponse r;
    ASSERT_TRUE(d.launch("echo", pb::ISOLATION_NAMESPACE, "a", "", &r).ok()) << d.log();
    EXPECT_EQ(r.state(), pb::STATE_RUNNING);
    std::string log = d.log();
    EXPECT_NE(log.find("serving the API on socket fd 3 from systemd"), std::string::npos) << log;
    // The audit record names the caller by its SO_PEERCRED credentials,
    // read from the inherited socket's connection.
    std::ifstream audit_file(d.audit_log_path());
    const std::string audit((std::istreambuf_iterator<char>(audit_file)),
                            std::istreambuf_iterator<char>());
    EXPECT_NE(
        audit.find(R"("identity":"uid 0 gid 0","auth":"unix","transport":"unix","peer":"pid )" +
                   std::to_string(::getpid()) + R"(","rpc":"LaunchPattern")"),
        std::string::npos)
        << audit;
    struct stat before {};
    ASSERT_EQ(::stat(d.socket().c_str(), &before), 0);
    EXPECT_EQ(d.stop(), 0);
    struct stat after {};
    EXPECT_EQ(::stat(d.socket().c_str(), &after), 0) << "systemd's socket is not ours to unlink";
}

// Receives sd_notify datagrams on a socket of its own, each with the time
// the kernel queued it (SO_TIMESTAMPNS): when the daemon sent it, however
// late this thread gets to read it on a loaded machine.
class NotifyReceiver {
public:
    // `on_ready` runs on the receiving thread at the moment READY=1 arrives;
    // it is given here, before that thread starts (assigning it later raced
    // with the thread, as the TSan tier showed).
    explicit NotifyReceiver(const std::string& path, std::function<void()> on_ready = {})
        : path_(path), on_ready_(std::move(on_ready)) {
        fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        const int on = 1;
        EXPECT_EQ(::setsockopt(fd_, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on), 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
        ::unlink(path.c_str());
        EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
        thread_ = std::thread([this] { run(); });
    }
    ~NotifyReceiver() {
        stop_ = true;
        thread_.join();
        ::close(fd_);
        ::unlink(path_.c_str());
    }
    struct Message {
        std::chrono::system_clock::time_point sent;  // the kernel's timestamp
        std::string text;
    };
    std::vector<Message> messages() {
        std::lock_guard lock(mutex_);
        return messages_;
    }
    bool wait_for(const std::string& fragment, std::chrono::milliseconds timeout,
                  std::size_t times = 1) {
        auto deadline = Clock::now() + timeout;
        while (Clock::now() < deadline) {
            std::size_t seen = 0;
            for (const auto& m : messages())
                seen += m.text.find(fragment) != std::string::npos;
            if (seen >= times) return true;
            std::this_thread::sleep_for(5ms);
        }
        return false;
    }

private:
    void run() {
        while (!stop_) {
            pollfd p{fd_, POLLIN, 0};
            if (::poll(&p, 1, 20) <= 0) continue;
            char buf[4096];
            alignas(cmsghdr) char control[CMSG_SPACE(sizeof(timespec))];
            iovec iov{buf, sizeof buf};
            msghdr msg{};
            msg.msg_iov = &iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control;
            msg.msg_controllen = sizeof control;
            ssize_t n = ::recvmsg(fd_, &msg, 0);
            if (n <= 0) continue;
            auto sent = std::chrono::system_clock::now();
            for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
                if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_TIMESTAMPNS) continue;
                timespec ts{};
                std::memcpy(&ts, CMSG_DATA(c), sizeof ts);
                sent = std::chrono::system_clock::time_point(
                    std::chrono::duration_cast<std::chrono::system_clock::duration>(
                        std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec)));
            }
            std::string text(buf, static_cast<std::size_t>(n));
            if (text.find("READY=1") != std::string::npos && on_ready_) on_ready_();
            std::lock_guard lock(mutex_);
            messages_.push_back({sent, text});
        }
    }
    std::string path_;
    const std::function<void()> on_ready_;
    int fd_ = -1;
    std::atomic<bool> stop_{false};
    std::thread thread_;
    std::mutex mutex_;
    std::vector<Message> messages_;
};

TEST(Notify, ReadyOnlyOnceTheApiAnswersThenWatchdogReloadAndStopping) {
    TestDaemon d;
    d.add_pattern("echo", echo_manifest("notify"), PL_ECHO);
    std::atomic<bool> api_answered_at_ready{false};
    std::atomic<bool> in_supervisor_at_ready{false};
    NotifyReceiver receiver(d.dir() + "/notify.sock", [&] {
        if (api_answered_at_ready || in_supervisor_at_ready) return;  // only the first READY
        // At READY=1 the API must already answer: no retries, no waiting.
        auto channel =
            grpc::CreateChannel("unix:" + d.socket(), grpc::InsecureChannelCredentials());
        auto stub = pb::PatternLauncher::NewStub(channel);
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + 10s);  // answers, not how fast
        pb::HealthRequest req;
        pb::HealthResponse resp;
        api_answered_at_ready = stub->Health(&ctx, req, &resp).ok();
        std::string line, cgroup;
        std::ifstream in("/proc/" + std::to_string(d.pid()) + "/cgroup");
        while (std::getline(in, line)) {
            if (line.starts_with("0::")) cgroup = line;
        }
        in_supervisor_at_ready = cgroup.ends_with("/supervisor");
    });
    d.add_env("NOTIFY_SOCKET=" + d.dir() + "/notify.sock");
    d.add_env("WATCHDOG_USEC=800000");
    d.start();
    ASSERT_TRUE(receiver.wait_for("READY=1", 10s));
    EXPECT_TRUE(api_answered_at_ready) << "READY=1 came before the API answered";
    EXPECT_TRUE(in_supervisor_at_ready) << "READY=1 came before the move into supervisor";
    auto first = receiver.messages();
    ASSERT_FALSE(first.empty());
    EXPECT_NE(first.front().text.find("READY=1\nSTATUS=0 running"), std::string::npos)
        << first.front().text;

    // WATCHDOG=1 every WATCHDOG_USEC / 2 = 400 ms, from a timer of the event
    // loop. A loaded machine only delays a timer: no gap is shorter than
    // 400 ms (less 10 % for the loop's millisecond rounding), and the
    // median gap stays below WATCHDOG_USEC, the deadline systemd enforces,
    // unless most timers came 400 ms late.
    ASSERT_TRUE(receiver.wait_for("WATCHDOG=1", 20s, 6)) << "fewer than 6 pings in 20 s";
    std::vector<std::chrono::system_clock::time_point> pings;
    for (const auto& m : receiver.messages()) {
        if (m.text == "WATCHDOG=1") pings.push_back(m.sent);
    }
    std::vector<std::int64_t> gaps;
    for (std::size_t i = 1; i < pings.size(); ++i) {
        gaps.push_back(
            std::chrono::duration_cast<std::chrono::milliseconds>(pings[i] - pings[i - 1]).count());
        EXPECT_GE(gaps.back(), 360) << "ping " << i << " came too early";
    }
    std::sort(gaps.begin(), gaps.end());
    EXPECT_LT(gaps[gaps.size() / 2], 800) << "median gap of " << gaps.size() << " gaps";

    // Reload: RELOADING=1 then READY=1, and patternctl returns once it is done.
    CommandResult reload = run_command({PL_PATTERNCTL, "--socket", d.socket(), "reload"});
    EXPECT_EQ(reload.exit_code, 0) << reload.err;
    EXPECT_NE(reload.out.find("reloaded: 1 patterns loaded"), std::string::npos) << reload.out;
    auto all = receiver.messages();
    std::size_t reloading = all.size(), ready_after = all.size();
    for (std::size_t i = 0; i < all.size(); ++i) {
        if (all[i].text.starts_with("RELOADING=1")) reloading = i;
        if (reloading < all.size() && i > reloading && all[i].text.starts_with("READY=1")) {
            ready_after = i;
            break;
        }
    }
    ASSERT_LT(reloading, all.size()) << "no RELOADING=1";
    EXPECT_NE(all[reloading].text.find("MONOTONIC_USEC="), std::string::npos);
    EXPECT_LT(ready_after, all.size()) << "no READY=1 after RELOADING=1";

    pb::LaunchResponse r;
    ASSERT_TRUE(d.launch("echo", pb::ISOLATION_NAMESPACE, "a", "", &r).ok());
    EXPECT_EQ(d.stop(), 0);
    EXPECT_TRUE(receiver.wait_for("STOPPING=1", 5s));
}

TEST(Logs, PatternOutputGoesToAPerProcessFileWithoutJournald) {
    if (::access("/run/systemd/journal/stdout", F_OK) == 0) {
        GTEST_SKIP() << "journald runs here: pattern output goes there (the VM suite checks it)";
    }
    TestDaemon d;
    d.add_pattern("echo", echo_manifest("notify"), PL_ECHO);
    d.start();
    pb::LaunchResponse r;
    ASSERT_TRUE(d.launch("echo", pb::ISOLATION_NAMESPACE, "tenant-a", "", &r).ok());
    std::string file = d.dir() + "/run/logs/ns:tenant-a:echo.log";
    std::string text;
    const auto deadline = Clock::now() + 20s;
    while (text.find("echo: serving") == std::string::npos && Clock::now() < deadline) {
        std::this_thread::sleep_for(10ms);
        std::ifstream in(file);
        text.assign(std::istreambuf_iterator<char>(in), {});
    }
    EXPECT_NE(text.find("echo: serving echo on " + r.address()), std::string::npos) << text;
    EXPECT_EQ(d.log().find("echo: serving"), std::string::npos) << "not in the launcher's own log";
}

}  // namespace
