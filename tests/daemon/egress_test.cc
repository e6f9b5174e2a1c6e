// Issue 14's egress, end to end and hostile: a real daemon, run inside a
// network namespace of the test's own (never the host's), launches
// pl-misbehave's `egress-probe` mode (tests/fixtures/egress_probe.cc), which
// tries to reach what it is given and prints one line per attempt. Behind
// the launcher's namespace sits a "backend" namespace (192.0.2.1 and .2 on
// a veth; the launcher's end is 192.0.2.254) with TCP listeners on 7000 and
// 7001 and UDP echoes on 7002 and 7003; the launcher's namespace itself
// listens on 7000 (TCP) and echoes on 7002 (UDP), as the host's own
// services would.
//
// The daemon runs as `ip netns exec <launcher> sh -c '<remount cgroup2>;
// exec "$@"' ...`: ip netns exec bind-mounts /etc/netns/<name>/hosts over
// /etc/hosts (so the daemon resolves backend.test the test's way) and
// mounts a fresh /sys for the namespace, which hides the cgroup2 mount the
// daemon's cgroup_root lies on; the shell mounts it again at the same path
// in the daemon's own mount namespace.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "sandbox/cgroup_mount.h"
#include "sandbox/unique_fd.h"
#include "test_daemon.h"

namespace {

using namespace pltest;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

// ---- commands ------------------------------------------------------------------

CommandResult sh(const std::string& command) {
    return run_command({"/bin/sh", "-c", command});
}

// Runs `command`; a failure is a fatal setup error (thrown, so that SetUp's
// callers see the command and its output).
void must(const std::string& command) {
    CommandResult r = sh(command);
    if (r.exit_code != 0)
        throw std::runtime_error("`" + command + "` failed (" + std::to_string(r.exit_code) +
                                 "): " + r.out + r.err);
}

bool have(const std::string& tool) {
    return sh("command -v " + tool + " >/dev/null 2>&1").exit_code == 0;
}

// ---- services in a namespace ---------------------------------------------------

// TCP listeners (accepting and hanging up, counting) and UDP echoes in the
// named netns, served by one thread that entered it with setns.
class Services {
public:
    Services(const std::string& netns, std::vector<std::uint16_t> tcp,
             std::vector<std::uint16_t> udp) {
        std::promise<std::string> ready;
        std::future<std::string> started = ready.get_future();
        thread_ = std::thread([this, netns, tcp, udp, &ready] {
            std::string error = open_all(netns, tcp, udp);
            ready.set_value(error);
            if (error.empty()) serve();
        });
        const std::string error = started.get();
        if (!error.empty()) {
            thread_.join();
            throw std::runtime_error("services in " + netns + ": " + error);
        }
    }
    ~Services() {
        stop_ = true;
        thread_.join();
    }
    Services(const Services&) = delete;
    Services& operator=(const Services&) = delete;

    // Connections accepted on the TCP port.
    int accepted(std::uint16_t port) const {
        auto it = accepted_.find(port);
        return it == accepted_.end() ? 0 : it->second->load();
    }

private:
    struct Socket {
        sandbox::UniqueFd fd;
        bool udp;
        std::uint16_t port;
    };

    std::string open_all(const std::string& netns, const std::vector<std::uint16_t>& tcp,
                         const std::vector<std::uint16_t>& udp) {
        sandbox::UniqueFd ns(::open(("/run/netns/" + netns).c_str(), O_RDONLY | O_CLOEXEC));
        if (!ns || ::setns(ns.get(), CLONE_NEWNET) != 0)
            return "entering /run/netns/" + netns + ": " + std::strerror(errno);
        for (std::uint16_t port : tcp) {
            if (std::string e = open_one(false, port); !e.empty()) return e;
            accepted_[port] = std::make_unique<std::atomic<int>>(0);
        }
        for (std::uint16_t port : udp) {
            if (std::string e = open_one(true, port); !e.empty()) return e;
        }
        return {};
    }

    std::string open_one(bool udp, std::uint16_t port) {
        sandbox::UniqueFd fd(
            ::socket(AF_INET, (udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
        const int one = 1;
        sockaddr_in at{};
        at.sin_family = AF_INET;
        at.sin_port = htons(port);
        if (!fd || ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
            ::bind(fd.get(), reinterpret_cast<sockaddr*>(&at), sizeof at) != 0 ||
            (!udp && ::listen(fd.get(), 64) != 0))
            return std::string(udp ? "udp " : "tcp ") + std::to_string(port) + ": " +
                   std::strerror(errno);
        sockets_.push_back({std::move(fd), udp, port});
        return {};
    }

    void serve() {
        std::vector<pollfd> polls;
        for (const Socket& s : sockets_)
            polls.push_back({s.fd.get(), POLLIN, 0});
        while (!stop_) {
            if (::poll(polls.data(), polls.size(), 100) <= 0) continue;
            for (std::size_t i = 0; i < polls.size(); ++i) {
                if (!(polls[i].revents & POLLIN)) continue;
                const Socket& s = sockets_[i];
                if (s.udp) {
                    char buf[512];
                    sockaddr_in from{};
                    socklen_t len = sizeof from;
                    const ssize_t n = ::recvfrom(s.fd.get(), buf, sizeof buf, 0,
                                                 reinterpret_cast<sockaddr*>(&from), &len);
                    if (n > 0)
                        ::sendto(s.fd.get(), buf, static_cast<std::size_t>(n), 0,
                                 reinterpret_cast<sockaddr*>(&from), len);
                } else {
                    const int conn = ::accept4(s.fd.get(), nullptr, nullptr, SOCK_CLOEXEC);
                    if (conn >= 0) {
                        ++*accepted_[s.port];
                        ::close(conn);
                    }
                }
            }
        }
    }

    std::vector<Socket> sockets_;
    std::map<std::uint16_t, std::unique_ptr<std::atomic<int>>> accepted_;
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

// ---- the probe's output ----------------------------------------------------------

// One complete round of the probe (egress_probe.cc's output contract).
struct Round {
    int number = 0;
    std::vector<std::string> hosts;
    std::map<std::string, std::string> resolved;   // name -> addresses or EAI_*
    std::map<std::string, std::string> connected;  // target -> ok or errno name
    std::string text;                              // its lines, for messages

    std::string connect(const std::string& target) const {
        auto it = connected.find(target);
        return it == connected.end() ? "<not probed>" : it->second;
    }
    std::string resolve(const std::string& name) const {
        auto it = resolved.find(name);
        return it == resolved.end() ? "<not probed>" : it->second;
    }
    // Whether a line of its /etc/hosts has both `address` and `name` as words.
    bool hosts_has(const std::string& address, const std::string& name) const {
        for (const std::string& line : hosts) {
            std::istringstream words(line);
            std::vector<std::string> w{std::istream_iterator<std::string>(words), {}};
            if (!w.empty() && w[0] == address && std::find(w.begin() + 1, w.end(), name) != w.end())
                return true;
        }
        return false;
    }
    bool hosts_mention(const std::string& name) const {
        for (const std::string& line : hosts) {
            if (line.find(name) != std::string::npos) return true;
        }
        return false;
    }
};

// The complete rounds in `output`, in order.
std::vector<Round> parse_rounds(const std::string& output) {
    std::vector<Round> rounds;
    std::optional<Round> current;
    std::istringstream in(output);
    for (std::string line; std::getline(in, line);) {
        const auto start = line.find("PROBE ");
        if (start == std::string::npos) continue;
        line = line.substr(start + 6);
        if (line.starts_with("round ")) {
            std::istringstream words(line.substr(6));
            int n = 0;
            std::string what;
            words >> n >> what;
            if (what == "begin") {
                current = Round{};
                current->number = n;
            } else if (what == "done" && current && current->number == n) {
                rounds.push_back(*current);
                current.reset();
            }
            continue;
        }
        if (!current) continue;
        current->text += "  " + line + "\n";
        auto colon = line.find(": ");
        if (line.starts_with("hosts ")) {
            current->hosts.push_back(line.substr(6));
        } else if (line.starts_with("resolve ") && colon != std::string::npos) {
            current->resolved[line.substr(8, colon - 8)] = line.substr(colon + 2);
        } else if (line.starts_with("connect ") && colon != std::string::npos) {
            current->connected[line.substr(8, colon - 8)] = line.substr(colon + 2);
        }
    }
    return rounds;
}

std::uint32_t parse_ipv4(const std::string& text) {
    in_addr a{};
    if (::inet_pton(AF_INET, text.c_str(), &a) != 1) return 0;
    return ntohl(a.s_addr);
}

// ---- the fixture -------------------------------------------------------------------

constexpr const char* kProbeTargetsAll =
    "tcp:192.0.2.1:7000,tcp:192.0.2.1:7001,udp:192.0.2.1:7002,udp:192.0.2.1:7003,"
    "tcp:192.0.2.254:7000,udp:192.0.2.254:7002,tcp:@peer:7000,tcp:127.0.0.1:7000";

class Egress : public ::testing::Test {
protected:
    void SetUp() override {
        if (::geteuid() != 0) GTEST_SKIP() << "needs root (network namespaces, nftables)";
        for (const char* tool : {"ip", "nft", "sysctl"}) {
            if (!have(tool)) GTEST_SKIP() << tool << " is not installed";
        }
        const std::string tag = std::to_string(::getpid());
        launcher_ = "pltest-" + tag + "-launcher";
        backend_ = "pltest-" + tag + "-backend";
        etc_dir_ = "/etc/netns/" + launcher_;
        // Leftovers of an earlier run with this pid (a crashed test).
        cleanup();
        try {
            fs::create_directories(etc_dir_);
            write_hosts("192.0.2.1 backend.test\n192.0.2.3 unlisted.test\n");
            must("ip netns add " + launcher_);
            must("ip netns add " + backend_);
            const std::string L = "ip -n " + launcher_ + " ";
            const std::string B = "ip -n " + backend_ + " ";
            // Not plk*: that prefix is the launcher's.
            must(L + "link add bk0 type veth peer name eth0 netns " + backend_);
            must(L + "link set lo up");
            must(L + "addr add 192.0.2.254/24 dev bk0");
            must(L + "link set bk0 up");
            must(B + "link set lo up");
            must(B + "addr add 192.0.2.1/24 dev eth0");
            must(B + "addr add 192.0.2.2/24 dev eth0");
            must(B + "addr add 192.0.2.3/24 dev eth0");
            must(B + "link set eth0 up");
            must(B + "route add default via 192.0.2.254");
            // The test's own namespace: the launcher may forward there.
            set_ip_forward(true);
            backend_services_ =
                std::make_unique<Services>(backend_, std::vector<std::uint16_t>{7000, 7001},
                                           std::vector<std::uint16_t>{7002, 7003});
            host_services_ = std::make_unique<Services>(launcher_, std::vector<std::uint16_t>{7000},
                                                        std::vector<std::uint16_t>{7002});
        } catch (const std::exception& e) {
            FAIL() << e.what();
        }
        const std::string cgroup2 = sandbox::find_cgroup2_mount().path;
        d.set_wrapper({"/usr/bin/env", "ip", "netns", "exec", launcher_, "/bin/sh", "-c",
                       // ip netns exec mounted a fresh /sys: the cgroup2
                       // mount under it is gone in the daemon's view.
                       "mountpoint -q " + cgroup2 + " || { mount -t tmpfs -o mode=755 tmpfs " +
                           fs::path(cgroup2).parent_path().string() + " && mkdir -p " + cgroup2 +
                           " && mount -t cgroup2 cgroup2 " + cgroup2 +
                           "; } || exit 99; exec \"$@\"",
                       "sh"});
        ready_ = true;
    }

    void TearDown() override {
        if (d.running()) d.stop();
        backend_services_.reset();
        host_services_.reset();
        if (!launcher_.empty()) cleanup();
    }

    void cleanup() {
        sh("ip netns del " + launcher_ + " 2>/dev/null");
        sh("ip netns del " + backend_ + " 2>/dev/null");
        std::error_code ec;
        fs::remove_all(etc_dir_, ec);
    }

    // In place (no rename): ip netns exec bind-mounted this inode over the
    // daemon's /etc/hosts.
    void write_hosts(const std::string& lines) {
        std::ofstream out(etc_dir_ + "/hosts", std::ios::trunc);
        out << "127.0.0.1 localhost\n" << lines;
    }

    void set_ip_forward(bool on) {
        must("ip netns exec " + launcher_ +
             " sysctl -q -w net.ipv4.ip_forward=" + (on ? "1" : "0"));
    }

    std::string in_launcher(const std::string& command) {
        return sh("ip netns exec " + launcher_ + " " + command).out;
    }
    // `ip -o link` of the launcher's namespace: the plk* links.
    std::vector<std::string> plk_links() {
        std::vector<std::string> out;
        std::istringstream in(in_launcher("ip -o link"));
        for (std::string line; std::getline(in, line);) {
            // "N: name@peer: <...>" or "N: name: <...>"
            std::istringstream words(line);
            std::string index, name;
            words >> index >> name;
            name = name.substr(0, name.find_first_of("@:"));
            if (name.starts_with("plk")) out.push_back(name);
        }
        return out;
    }
    // `nft list table inet pattern_launcher`; nullopt when there is none.
    std::optional<std::string> egress_table() {
        CommandResult r =
            sh("ip netns exec " + launcher_ + " nft list table inet pattern_launcher");
        if (r.exit_code != 0) return std::nullopt;
        return r.out;
    }

    // The probe pattern: `egress` its sandbox.egress list (none: no sandbox
    // section, the default isolated network),
    // `env` more environment lines ("  KEY: value").
    void add_probe(const std::string& name, const std::vector<std::string>& egress,
                   const std::string& targets, const std::string& env = "") {
        std::string list;
        for (const std::string& e : egress)
            list += "    - \"" + e + "\"\n";
        d.add_pattern(name,
                      "version: 1.0.0\n"
                      "isolation_level: namespace\n"
                      "healthcheck:\n"
                      "  type: notify\n"
                      "  start_timeout: 60s\n"
                      "environment:\n"
                      "  MISBEHAVE_MODE: egress-probe\n"
                      "  PROBE_CONNECT: \"" +
                          targets + "\"\n" + env + "config_keys: [PROBE_CONNECT_MORE]\n" +
                          (egress.empty() ? "" : "sandbox:\n  egress:\n" + list));
    }

    // What a pattern process wrote (its log file; journald does not run here).
    std::string output(const std::string& process_id) const {
        if (::access("/run/systemd/journal/stdout", W_OK) == 0)
            return run_command({"/usr/bin/journalctl", "--no-pager", "-o", "cat", "-t", process_id})
                .out;
        std::ifstream in(d.dir() + "/run/logs/" + process_id + ".log");
        return std::string(std::istreambuf_iterator<char>(in), {});
    }

    // The first complete round numbered `after` + 1 or later (waits up to
    // `wait`); nullopt if none came.
    std::optional<Round> round_after(const std::string& process_id, int after,
                                     std::chrono::milliseconds wait = 20s) {
        const auto deadline = std::chrono::steady_clock::now() + wait;
        for (;;) {
            for (const Round& r : parse_rounds(output(process_id))) {
                if (r.number > after) return r;
            }
            if (std::chrono::steady_clock::now() > deadline) return std::nullopt;
            std::this_thread::sleep_for(100ms);
        }
    }
    std::optional<Round> last_round(const std::string& process_id) {
        std::vector<Round> rounds = parse_rounds(output(process_id));
        if (rounds.empty()) return std::nullopt;
        return rounds.back();
    }

    // Launches and returns the response; a failure is a test failure with the
    // pattern's output and the daemon's log.
    pb::LaunchResponse launch_ok(const std::string& pattern, const std::string& ns,
                                 const std::map<std::string, std::string>& config = {}) {
        pb::LaunchResponse response;
        grpc::Status status = d.launch(pattern, pb::ISOLATION_NAMESPACE, ns, "", &response, config);
        EXPECT_TRUE(status.ok()) << pattern << " in " << ns << ": " << status.error_code() << " "
                                 << status.error_message() << "\nits output:\n"
                                 << output("ns:" + ns + ":" + pattern) << "\nlauncher log:\n"
                                 << d.log();
        return response;
    }

    // egress_denied once it reached `expected` (the launcher samples it
    // about once a second), or its value after 5 s; then, for an exact
    // count, a further 1.5 s (a sample or more) to see it does not grow.
    std::uint64_t denied_when(const std::string& id, std::uint64_t expected, bool exact) {
        const auto deadline = std::chrono::steady_clock::now() + 5s;
        std::uint64_t value = d.status(id).egress_denied();
        while (value < expected && std::chrono::steady_clock::now() < deadline) {
            std::this_thread::sleep_for(100ms);
            value = d.status(id).egress_denied();
        }
        if (exact && value == expected) {
            std::this_thread::sleep_for(1500ms);
            value = d.status(id).egress_denied();
        }
        return value;
    }

    // egress_address in the pool 10.213.0.0/16, odd (the pattern's end of a /31).
    void expect_in_pool(const pb::PatternInfo& info) {
        const std::uint32_t a = parse_ipv4(info.egress_address());
        EXPECT_EQ(a & 0xffff0000u, 0x0ad50000u)
            << "egress_address '" << info.egress_address() << "' of " << info.process_id();
        EXPECT_EQ(a & 1u, 1u) << info.egress_address();
    }

    // "plk<slot>": the host end of the key's veth, from its address.
    static std::string link_of(const pb::PatternInfo& info) {
        const std::uint32_t a = parse_ipv4(info.egress_address());
        return "plk" + std::to_string((a - 0x0ad50000u) / 2);
    }

    bool ready_ = false;
    std::string launcher_, backend_, etc_dir_;
    std::unique_ptr<Services> backend_services_, host_services_;
    TestDaemon d;
};

#define REQUIRE_READY() \
    if (!ready_) return

// 1. Exactly the listed protocol/port reaches the backend; the host (its own
// addresses, the launcher's end of the veth, its loopback) never does; every
// refusal is counted.
TEST_F(Egress, OnlyListedPortsAndProtocolsGetThroughAndTheHostNever) {
    REQUIRE_READY();
    add_probe("probe", {"192.0.2.1:7000", "192.0.2.1:7002/udp"}, kProbeTargetsAll);
    d.start();
    const pb::LaunchResponse launched = launch_ok("probe", "tenant-a");
    ASSERT_FALSE(launched.process_id().empty());
    std::optional<Round> r = round_after(launched.process_id(), 0);
    ASSERT_TRUE(r) << "no complete round:\n" << output(launched.process_id()) << d.log();

    EXPECT_EQ(r->connect("tcp:192.0.2.1:7000"), "ok") << r->text << d.log();
    EXPECT_EQ(r->connect("tcp:192.0.2.1:7001"), "ECONNREFUSED") << r->text;    // unlisted port
    EXPECT_EQ(r->connect("udp:192.0.2.1:7002"), "ok") << r->text;              // listed /udp
    EXPECT_EQ(r->connect("udp:192.0.2.1:7003"), "EHOSTUNREACH") << r->text;    // unlisted udp
    EXPECT_EQ(r->connect("tcp:192.0.2.254:7000"), "ECONNREFUSED") << r->text;  // the host
    EXPECT_EQ(r->connect("udp:192.0.2.254:7002"), "EHOSTUNREACH") << r->text;
    EXPECT_EQ(r->connect("tcp:@peer:7000"), "ECONNREFUSED") << r->text;  // the host's veth end
    // Its own loopback: the host's 127.0.0.1 is not there.
    EXPECT_EQ(r->connect("tcp:127.0.0.1:7000"), "ECONNREFUSED") << r->text;
    EXPECT_EQ(backend_services_->accepted(7000), 1);
    EXPECT_EQ(backend_services_->accepted(7001), 0);
    EXPECT_EQ(host_services_->accepted(7000), 0);

    const pb::PatternInfo info = d.status(launched.process_id());
    expect_in_pool(info);
    // 7001, udp 7003, the host's tcp 7000 and udp 7002, the peer's 7000.
    EXPECT_EQ(denied_when(launched.process_id(), 5, true), 5u) << r->text;
}

// 1b. A list that covers the host's network still does not reach the host.
TEST_F(Egress, ListingTheHostsNetworkDoesNotOpenTheHost) {
    REQUIRE_READY();
    add_probe("wide", {"192.0.2.0/24:1-65535", "192.0.2.0/24:1-65535/udp"}, kProbeTargetsAll);
    d.start();
    const pb::LaunchResponse launched = launch_ok("wide", "tenant-a");
    ASSERT_FALSE(launched.process_id().empty());
    std::optional<Round> r = round_after(launched.process_id(), 0);
    ASSERT_TRUE(r) << "no complete round:\n" << output(launched.process_id()) << d.log();

    EXPECT_EQ(r->connect("tcp:192.0.2.1:7000"), "ok") << r->text << d.log();
    EXPECT_EQ(r->connect("tcp:192.0.2.1:7001"), "ok") << r->text;
    EXPECT_EQ(r->connect("udp:192.0.2.1:7002"), "ok") << r->text;
    EXPECT_EQ(r->connect("udp:192.0.2.1:7003"), "ok") << r->text;
    EXPECT_EQ(r->connect("tcp:192.0.2.254:7000"), "ECONNREFUSED") << r->text;
    EXPECT_EQ(r->connect("udp:192.0.2.254:7002"), "EHOSTUNREACH") << r->text;
    EXPECT_EQ(r->connect("tcp:@peer:7000"), "ECONNREFUSED") << r->text;
    EXPECT_EQ(host_services_->accepted(7000), 0);
    const pb::PatternInfo info = d.status(launched.process_id());
    expect_in_pool(info);
    EXPECT_EQ(denied_when(launched.process_id(), 3, true), 3u) << r->text;
}

// 2. Names: a listed one is in the pattern's /etc/hosts and connects, an
// unlisted one (that the launcher could resolve) does not resolve; a changed
// address is followed, in /etc/hosts and in the rules.
TEST_F(Egress, ListedNamesResolveAndAChangedAddressIsFollowed) {
    REQUIRE_READY();
    d.add_config("egress:");
    d.add_config("  resolve_interval: 1s");
    add_probe("names", {"backend.test:7000"},
              "tcp:backend.test:7000,tcp:192.0.2.1:7000,tcp:192.0.2.2:7000,tcp:unlisted.test:7000",
              "  PROBE_RESOLVE: \"backend.test,unlisted.test\"\n  PROBE_LOOP_MS: \"300\"\n");
    d.start();
    const pb::LaunchResponse launched = launch_ok("names", "tenant-a");
    ASSERT_FALSE(launched.process_id().empty());
    const std::string id = launched.process_id();
    std::optional<Round> r = round_after(id, 0);
    ASSERT_TRUE(r) << "no complete round:\n" << output(id) << d.log();

    EXPECT_TRUE(r->hosts_has("192.0.2.1", "backend.test")) << r->text;
    EXPECT_FALSE(r->hosts_mention("unlisted.test")) << r->text;
    EXPECT_TRUE(r->hosts_has("127.0.0.1", "localhost")) << r->text;
    EXPECT_EQ(r->resolve("backend.test"), "192.0.2.1") << r->text;
    EXPECT_TRUE(r->resolve("unlisted.test").starts_with("EAI_")) << r->text;
    EXPECT_EQ(r->connect("tcp:backend.test:7000"), "ok") << r->text << d.log();
    EXPECT_EQ(r->connect("tcp:192.0.2.1:7000"), "ok") << r->text;
    EXPECT_EQ(r->connect("tcp:192.0.2.2:7000"), "ECONNREFUSED") << r->text;
    EXPECT_TRUE(r->connect("tcp:unlisted.test:7000").starts_with("EAI_")) << r->text;
    // The resolver has no server to ask (no query leaves through eth0).
    const std::string resolv =
        sh("cat /proc/" + std::to_string(pattern_pid(launched.pid())) + "/root/etc/resolv.conf")
            .out;
    EXPECT_EQ(resolv.find("nameserver"), std::string::npos) << resolv;

    // The name moves to 192.0.2.2.
    write_hosts("192.0.2.2 backend.test\n192.0.2.3 unlisted.test\n");
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    std::optional<Round> moved;
    int seen = r->number;
    while (std::chrono::steady_clock::now() < deadline) {
        std::optional<Round> next = round_after(id, seen, 5s);
        if (!next) break;
        seen = next->number;
        if (next->resolve("backend.test") == "192.0.2.2" &&
            next->connect("tcp:backend.test:7000") == "ok") {
            moved = next;
            break;
        }
    }
    ASSERT_TRUE(moved) << "the pattern did not follow the new address within 10 s; last round:\n"
                       << (last_round(id) ? last_round(id)->text : "<none>") << d.log();
    EXPECT_TRUE(moved->hosts_has("192.0.2.2", "backend.test")) << moved->text;
    EXPECT_FALSE(moved->hosts_has("192.0.2.1", "backend.test")) << moved->text;
    // The rule followed too: the old address is no longer listed.
    std::optional<Round> after = round_after(id, moved->number);
    ASSERT_TRUE(after);
    EXPECT_EQ(after->connect("tcp:192.0.2.2:7000"), "ok") << after->text;
    EXPECT_EQ(after->connect("tcp:192.0.2.1:7000"), "ECONNREFUSED") << after->text;
}

// 2b. A listed name that does not resolve fails the start, naming it.
TEST_F(Egress, AListedNameThatDoesNotResolveFailsTheStart) {
    REQUIRE_READY();
    add_probe("nowhere", {"nowhere.test:7000"}, "tcp:nowhere.test:7000");
    d.start();
    pb::LaunchResponse response;
    grpc::Status status = d.launch("nowhere", pb::ISOLATION_NAMESPACE, "tenant-a", "", &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
        << status.error_message() << "\n"
        << d.log();
    EXPECT_NE(status.error_message().find("nowhere.test"), std::string::npos)
        << status.error_message();
    EXPECT_TRUE(plk_links().empty()) << in_launcher("ip -o link");
    EXPECT_FALSE(egress_table()) << egress_table().value_or("");
}

// 3. A tenant's addition is that tenant's only; no key reaches another key,
// even with the pool inside its list.
TEST_F(Egress, ATenantsAdditionIsItsOwnAndKeysCannotReachEachOther) {
    REQUIRE_READY();
    d.add_config("egress:");
    d.add_config("  tenants:");
    d.add_config("    tenant-a: [\"192.0.2.2:7000\"]");
    add_probe("probe", {"192.0.2.1:7000", "10.0.0.0/8:7000"},
              "tcp:192.0.2.1:7000,tcp:192.0.2.2:7000", "  PROBE_LISTEN: \"7000\"\n");
    d.start();
    const pb::LaunchResponse a = launch_ok("probe", "tenant-a");
    ASSERT_FALSE(a.process_id().empty());
    const pb::PatternInfo a_info = d.status(a.process_id());
    expect_in_pool(a_info);
    const pb::LaunchResponse b = launch_ok(
        "probe", "tenant-b", {{"PROBE_CONNECT_MORE", "tcp:" + a_info.egress_address() + ":7000"}});
    ASSERT_FALSE(b.process_id().empty());
    const pb::PatternInfo b_info = d.status(b.process_id());
    expect_in_pool(b_info);
    EXPECT_NE(a_info.egress_address(), b_info.egress_address());

    std::optional<Round> ra = round_after(a.process_id(), 0);
    std::optional<Round> rb = round_after(b.process_id(), 0);
    ASSERT_TRUE(ra && rb) << output(a.process_id()) << output(b.process_id()) << d.log();
    EXPECT_EQ(ra->connect("tcp:192.0.2.1:7000"), "ok") << ra->text << d.log();
    EXPECT_EQ(ra->connect("tcp:192.0.2.2:7000"), "ok") << ra->text;  // tenant-a's addition
    EXPECT_EQ(rb->connect("tcp:192.0.2.1:7000"), "ok") << rb->text;
    EXPECT_EQ(rb->connect("tcp:192.0.2.2:7000"), "ECONNREFUSED") << rb->text;
    EXPECT_EQ(rb->connect("tcp:" + a_info.egress_address() + ":7000"), "ECONNREFUSED") << rb->text;
    EXPECT_EQ(denied_when(b.process_id(), 2, true), 2u) << rb->text;
    EXPECT_EQ(d.status(a.process_id()).egress_denied(), 0u);

    // A SESSION key of tenant-a has the addition as well.
    pb::LaunchResponse session;
    grpc::Status launched = d.launch("probe", pb::ISOLATION_SESSION, "tenant-a", "s1", &session);
    ASSERT_TRUE(launched.ok()) << launched.error_message() << "\n" << d.log();
    std::optional<Round> rs = round_after(session.process_id(), 0);
    ASSERT_TRUE(rs) << output(session.process_id()) << d.log();
    EXPECT_EQ(rs->connect("tcp:192.0.2.1:7000"), "ok") << rs->text;
    EXPECT_EQ(rs->connect("tcp:192.0.2.2:7000"), "ok") << rs->text;
    expect_in_pool(d.status(session.process_id()));
}

// 3b. A tenant's additions do not give a pattern without its own list a
// network: it keeps only lo.
TEST_F(Egress, APatternWithoutAListGetsNoNetworkFromItsTenantsAdditions) {
    REQUIRE_READY();
    d.add_config("egress:");
    d.add_config("  tenants:");
    d.add_config("    tenant-a: [\"192.0.2.2:7000\", \"192.0.2.0/24:1-65535/udp\"]");
    add_probe("plain", {}, "tcp:192.0.2.2:7000,udp:192.0.2.1:7002,tcp:@peer:7000");
    d.start();
    const pb::LaunchResponse launched = launch_ok("plain", "tenant-a");
    ASSERT_FALSE(launched.process_id().empty());
    std::optional<Round> r = round_after(launched.process_id(), 0);
    ASSERT_TRUE(r) << "no complete round:\n" << output(launched.process_id()) << d.log();
    EXPECT_EQ(r->connect("tcp:192.0.2.2:7000"), "ENETUNREACH") << r->text;
    EXPECT_EQ(r->connect("udp:192.0.2.1:7002"), "ENETUNREACH") << r->text;
    EXPECT_TRUE(r->connect("tcp:@peer:7000").starts_with("ENODEV")) << r->text;
    EXPECT_EQ(d.status(launched.process_id()).egress_address(), "");
    EXPECT_TRUE(plk_links().empty()) << in_launcher("ip -o link");
    EXPECT_FALSE(egress_table()) << egress_table().value_or("");
}

// 4. Links and rules live as long as their key, and survive a SIGKILL of
// the daemon with the key it adopts.
TEST_F(Egress, LinksAndRulesFollowTheKeysLifeAndSurviveARestart) {
    REQUIRE_READY();
    add_probe("probe", {"192.0.2.1:7000"}, "tcp:192.0.2.1:7000,tcp:192.0.2.1:7001",
              "  PROBE_LOOP_MS: \"300\"\n");
    EXPECT_TRUE(plk_links().empty());
    d.start();
    const pb::LaunchResponse a = launch_ok("probe", "tenant-a");
    const pb::LaunchResponse b = launch_ok("probe", "tenant-b");
    ASSERT_FALSE(a.process_id().empty());
    ASSERT_FALSE(b.process_id().empty());
    const pb::PatternInfo a_info = d.status(a.process_id());
    const pb::PatternInfo b_info = d.status(b.process_id());
    const std::string a_link = link_of(a_info), b_link = link_of(b_info);
    {
        const std::vector<std::string> links = plk_links();
        EXPECT_EQ(links.size(), 2u) << in_launcher("ip -o link");
        EXPECT_NE(std::find(links.begin(), links.end(), a_link), links.end()) << a_link;
        EXPECT_NE(std::find(links.begin(), links.end(), b_link), links.end()) << b_link;
        const std::optional<std::string> table = egress_table();
        ASSERT_TRUE(table) << "no table inet pattern_launcher\n" << d.log();
        EXPECT_NE(table->find("\"" + a_link + "\""), std::string::npos) << *table;
        EXPECT_NE(table->find("\"" + b_link + "\""), std::string::npos) << *table;
    }

    d.kill_hard();
    ASSERT_TRUE(process_alive(a.pid()));
    d.start();
    const pb::PatternInfo adopted = d.status(a.process_id());
    EXPECT_EQ(adopted.pid(), a.pid()) << d.log();
    EXPECT_EQ(adopted.egress_address(), a_info.egress_address());
    const std::optional<std::string> table = egress_table();
    ASSERT_TRUE(table) << "no table after the restart\n" << d.log();
    EXPECT_NE(table->find("\"" + a_link + "\""), std::string::npos) << *table;
    // Rounds that began after the restart: the rules still hold both ways.
    std::optional<Round> last = last_round(a.process_id());
    ASSERT_TRUE(last);
    std::optional<Round> r = round_after(a.process_id(), last->number + 1);
    ASSERT_TRUE(r) << output(a.process_id());
    EXPECT_EQ(r->connect("tcp:192.0.2.1:7000"), "ok") << r->text << d.log();
    EXPECT_EQ(r->connect("tcp:192.0.2.1:7001"), "ECONNREFUSED") << r->text;
    // The adopted key's refusals are still counted, the ones from before
    // the restart included: one per round (its 7001).
    EXPECT_GE(denied_when(a.process_id(), static_cast<std::uint64_t>(r->number), false),
              static_cast<std::uint64_t>(r->number))
        << "one refusal per round, " << r->number << " rounds\n"
        << d.log();

    pb::TerminateResponse terminated;
    ASSERT_TRUE(d.terminate(a.process_id(), &terminated).ok()) << d.log();
    {
        const std::vector<std::string> links = plk_links();
        EXPECT_EQ(std::find(links.begin(), links.end(), a_link), links.end())
            << in_launcher("ip -o link");
        EXPECT_NE(std::find(links.begin(), links.end(), b_link), links.end())
            << in_launcher("ip -o link");
        const std::optional<std::string> left = egress_table();
        ASSERT_TRUE(left) << "the table went with a key still there\n" << d.log();
        EXPECT_EQ(left->find("\"" + a_link + "\""), std::string::npos) << *left;
        EXPECT_NE(left->find("\"" + b_link + "\""), std::string::npos) << *left;
    }
    ASSERT_TRUE(d.terminate(b.process_id(), &terminated).ok()) << d.log();
    EXPECT_TRUE(plk_links().empty()) << in_launcher("ip -o link");
    // No key has egress any more: the table goes too.
    const std::optional<std::string> none = egress_table();
    EXPECT_FALSE(none) << "left behind:\n" << none.value_or("") << d.log();
}

// 5. Without forwarding in the launcher's netns a list could reach nothing:
// the start fails and says why.
TEST_F(Egress, WithoutIpForwardAStartWithEgressFails) {
    REQUIRE_READY();
    set_ip_forward(false);
    add_probe("probe", {"192.0.2.1:7000"}, "tcp:192.0.2.1:7000");
    d.start();
    pb::LaunchResponse response;
    grpc::Status status = d.launch("probe", pb::ISOLATION_NAMESPACE, "tenant-a", "", &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
        << status.error_message() << "\n"
        << d.log();
    EXPECT_NE(status.error_message().find("ip_forward"), std::string::npos)
        << status.error_message();
    EXPECT_TRUE(plk_links().empty()) << in_launcher("ip -o link");
    EXPECT_FALSE(egress_table()) << egress_table().value_or("");
}

}  // namespace
