// Egress on the installed service (issue 14): pattern-launcher.service under
// systemd reaches, for tenant-egress (tests/system/patterns), exactly what its
// manifest lists, follows a listed name that moves, and keeps doing so after
// systemd restarts a killed daemon.
// The guest is the test's own machine: the backend is a network namespace
// the test makes there, forwarding is turned on for the test and put back.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "system_support.h"

namespace plsys {
namespace {

using namespace std::chrono_literals;

constexpr const char* kBackendNetns = "plegress-backend";
constexpr const char* kHostsLines = "192.0.2.1 backend.test\n192.0.2.1 unlisted.test\n";

int bound_socket(int type, const char* address, int port) {
    const int fd = ::socket(AF_INET, type | SOCK_CLOEXEC, 0);
    if (fd < 0) throw std::runtime_error("socket");
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    ::inet_pton(AF_INET, address, &addr.sin_addr);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
        throw std::runtime_error(std::string("bind ") + address + ":" + std::to_string(port));
    if (type == SOCK_STREAM && ::listen(fd, 64) != 0) throw std::runtime_error("listen");
    return fd;
}

// The backend namespace (192.0.2.1) behind a veth to the guest (192.0.2.254),
// with TCP listeners (handshakes complete in the backlog) and UDP echoes on
// listed and unlisted ports alike, so that a refusal is the rules' doing; and
// a TCP listener of the guest itself that must never see a connection.
class Backend {
public:
    Backend() {
        sh("ip netns del " + std::string(kBackendNetns) + " 2>/dev/null");
        sh_ok(std::string("ip netns add ") + kBackendNetns +
              " && ip link add plbk0 type veth peer name eth0 netns " + kBackendNetns +
              " && ip addr add 192.0.2.254/24 dev plbk0 && ip link set plbk0 up" + " && ip -n " +
              kBackendNetns + " addr add 192.0.2.1/24 dev eth0" + " && ip -n " + kBackendNetns +
              " link set eth0 up && ip -n " + kBackendNetns + " link set lo up && ip -n " +
              kBackendNetns + " route add default via 192.0.2.254");
        // Sockets made on a thread inside the namespace stay in it.
        std::thread([this] {
            const std::string path = std::string("/run/netns/") + kBackendNetns;
            const int ns = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
            if (ns < 0 || ::setns(ns, CLONE_NEWNET) != 0) return;
            ::close(ns);
            for (int port : {7000, 7001, 7003})
                fds_.push_back(bound_socket(SOCK_STREAM, "0.0.0.0", port));
            for (int port : {7002, 7004})
                udp_.push_back(bound_socket(SOCK_DGRAM, "0.0.0.0", port));
        }).join();
        if (fds_.size() != 3 || udp_.size() != 2) throw std::runtime_error("backend listeners");
        host_listener_ = bound_socket(SOCK_STREAM, "192.0.2.254", 7000);
        ::fcntl(host_listener_, F_SETFL, O_NONBLOCK);
        echo_ = std::thread([this] { echo_loop(); });
    }
    ~Backend() {
        stop_ = true;
        echo_.join();
        for (int fd : fds_)
            ::close(fd);
        for (int fd : udp_)
            ::close(fd);
        ::close(host_listener_);
        sh(std::string("ip link del plbk0; ip netns del ") + kBackendNetns);
    }
    // Whether anything connected to the guest's own listener.
    bool host_reached() const {
        const int fd = ::accept(host_listener_, nullptr, nullptr);
        if (fd >= 0) ::close(fd);
        return fd >= 0;
    }

private:
    void echo_loop() {
        while (!stop_) {
            std::vector<pollfd> fds;
            for (int fd : udp_)
                fds.push_back({fd, POLLIN, 0});
            if (::poll(fds.data(), fds.size(), 200) <= 0) continue;
            for (const pollfd& p : fds) {
                if (!(p.revents & POLLIN)) continue;
                char buf[512];
                sockaddr_in from{};
                socklen_t len = sizeof from;
                const ssize_t n =
                    ::recvfrom(p.fd, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &len);
                if (n > 0)
                    ::sendto(p.fd, buf, static_cast<std::size_t>(n), 0,
                             reinterpret_cast<sockaddr*>(&from), len);
            }
        }
    }

    std::vector<int> fds_, udp_;
    int host_listener_ = -1;
    std::atomic<bool> stop_{false};
    std::thread echo_;
};

// The guest's forwarding and /etc/hosts for the test, put back afterwards.
class GuestSettings {
public:
    GuestSettings()
        : forwarding_(read_line("/proc/sys/net/ipv4/ip_forward")), hosts_(read_file("/etc/hosts")) {
        sh_ok("sysctl -qw net.ipv4.ip_forward=1");
        sh_ok("printf '" + std::string(kHostsLines) + "' >> /etc/hosts");
    }
    ~GuestSettings() {
        sh("sysctl -qw net.ipv4.ip_forward=" + forwarding_);
        sh("cat > /etc/hosts <<'PLEOF'\n" + hosts_ + "PLEOF");
    }

private:
    std::string forwarding_;
    std::string hosts_;
};

// The results of the last complete round in the pattern's journal:
// "connect <target>" / "resolve <name>" -> what it printed, plus "hosts".
std::map<std::string, std::string> last_round(const std::string& journal, int* rounds) {
    std::map<std::string, std::string> current, done;
    std::istringstream in(journal);
    std::string line;
    *rounds = 0;
    while (std::getline(in, line)) {
        if (!line.starts_with("PROBE ")) continue;
        line = line.substr(6);
        if (line.starts_with("round ") && line.ends_with(" begin")) {
            current.clear();
        } else if (line.starts_with("round ") && line.ends_with(" done")) {
            done = current;
            ++*rounds;
        } else if (line.starts_with("hosts ")) {
            current["hosts"] += line.substr(6) + "\n";
        } else if (const auto colon = line.rfind(": "); colon != std::string::npos) {
            current[line.substr(0, colon)] = line.substr(colon + 2);
        }
    }
    return done;
}

void expect_enforced(const std::map<std::string, std::string>& r, const std::string& when) {
    SCOPED_TRACE(when);
    auto at = [&](const std::string& k) { return r.count(k) ? r.at(k) : "(missing)"; };
    EXPECT_EQ(at("connect tcp:192.0.2.1:7000"), "ok");
    EXPECT_EQ(at("connect tcp:192.0.2.1:7003"), "ECONNREFUSED");  // a listener, not listed
    EXPECT_EQ(at("connect udp:192.0.2.1:7002"), "ok");
    EXPECT_NE(at("connect udp:192.0.2.1:7004"), "ok");
    EXPECT_EQ(at("connect tcp:backend.test:7001"), "ok");
    EXPECT_EQ(at("connect tcp:192.0.2.1:7001"), "ok");  // backend.test's address, for now
    EXPECT_EQ(at("connect tcp:192.0.2.254:7000"), "ECONNREFUSED");  // the host itself
    EXPECT_EQ(at("resolve backend.test"), "192.0.2.1");
    EXPECT_TRUE(at("resolve unlisted.test").starts_with("EAI_")) << at("resolve unlisted.test");
    EXPECT_EQ(at("hosts").find("unlisted"), std::string::npos) << at("hosts");
}

std::string egress_links() {
    return sh("ip -o link | grep -o 'plk[0-9]*' | sort -u").output;
}

TEST(Egress, TheServiceOpensExactlyTheListAndKeepsItAcrossADaemonKill) {
    GuestSettings settings;
    Backend backend;
    reset_service();  // started anew by the first call: it resolves the names then
    Api api;
    const auto launched = api.launch_running("tenant-egress", "egress-a");
    const std::string id = launched.process_id();
    std::string journal;
    int rounds = 0;
    ASSERT_TRUE(wait_until(
        [&] {
            journal = pattern_journal(id);
            last_round(journal, &rounds);
            return rounds >= 1;
        },
        90s))
        << journal;
    expect_enforced(last_round(journal, &rounds), "first round");
    EXPECT_FALSE(backend.host_reached());
    const auto info = api.status(id);
    EXPECT_TRUE(info.egress_address().starts_with("10.213.")) << info.egress_address();
    EXPECT_NE(egress_links(), "") << "no plk link for the key";
    // Refusals are counted (sampled once a second): 3 per round at least.
    EXPECT_TRUE(wait_until([&] { return api.status(id).egress_denied() >= 3; }, 20s))
        << api.status(id).egress_denied();

    // systemd restarts a killed daemon; the key is adopted with its way out.
    const int before = restarts();
    sh_ok("systemctl kill -s KILL " + std::string(kService));
    ASSERT_TRUE(wait_until([&] { return restarts() > before && main_pid() > 0; }, 180s));
    const int rounds_at_kill = rounds;
    ASSERT_TRUE(wait_until(
        [&] {
            journal = pattern_journal(id);
            last_round(journal, &rounds);
            return rounds >= rounds_at_kill + 3 && api.known(id);
        },
        120s))
        << journal;
    EXPECT_EQ(api.status(id).recovery(), "adopted");
    EXPECT_EQ(api.status(id).egress_address(), info.egress_address());
    expect_enforced(last_round(journal, &rounds), "after the daemon was killed and restarted");
    EXPECT_FALSE(backend.host_reached());

    // A name that moves is followed: looked up again every resolve_interval
    // (30 s by default), it gets new rules and a new line in the view's
    // /etc/hosts, and its old address is closed.
    sh_ok(std::string("ip -n ") + kBackendNetns + " addr add 192.0.2.2/24 dev eth0");
    sh_ok("sed -i 's/^192.0.2.1 backend.test$/192.0.2.2 backend.test/' /etc/hosts");
    std::map<std::string, std::string> moved;
    EXPECT_TRUE(wait_until(
        [&] {
            moved = last_round(pattern_journal(id), &rounds);
            return moved["resolve backend.test"] == "192.0.2.2" &&
                   moved["connect tcp:backend.test:7001"] == "ok" &&
                   moved["connect tcp:192.0.2.1:7001"] == "ECONNREFUSED";
        },
        120s))
        << "resolve: " << moved["resolve backend.test"]
        << ", by name: " << moved["connect tcp:backend.test:7001"]
        << ", the old address: " << moved["connect tcp:192.0.2.1:7001"];

    // Everything made for the key goes with it; the table with the last key.
    EXPECT_TRUE(api.terminate(id).success());
    EXPECT_TRUE(wait_until([&] { return egress_links().empty(); }, 30s)) << egress_links();
    EXPECT_TRUE(
        wait_until([&] { return sh("nft list table inet pattern_launcher").exit_code != 0; }, 30s))
        << sh("nft list ruleset").output;
    reset_service();
}

}  // namespace
}  // namespace plsys
