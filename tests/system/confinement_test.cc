// The sandbox of a pattern launched through the installed service really
// confines: no host loopback, only lo, no module loading, no mount, no
// ptrace of another tenant, no capabilities.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sstream>

#include "system_support.h"

namespace plsys {
namespace {

using namespace std::chrono_literals;

// "confine KEY=VALUE" and "confine WHAT result=R errno=E" lines of
// pl-misbehave's confinement mode, keyed by KEY or WHAT.
std::map<std::string, std::string> parse_confinement(const std::string& journal) {
    std::map<std::string, std::string> lines;
    std::istringstream in(journal);
    std::string line;
    while (std::getline(in, line)) {
        if (!line.starts_with("confine ")) continue;
        line = line.substr(8);
        const auto split = line.find_first_of(" =");
        if (split == std::string::npos) continue;
        lines[line.substr(0, split)] = line.substr(split + 1);
    }
    return lines;
}

TEST(Confinement, AnIsolatedPatternCannotReachTheHostOrItsNeighbour) {
    reset_service();
    Api api;
    // A listener on the host's loopback that the pattern will try to reach.
    int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    ASSERT_GE(listener, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ASSERT_EQ(::listen(listener, 8), 0);
    socklen_t len = sizeof addr;
    ASSERT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len), 0);
    const int port = ntohs(addr.sin_port);

    // The neighbour: another tenant's process of the same pattern.
    auto neighbour = api.launch_running("tenant", "conf-b", {{"MISBEHAVE_MODE", "sleep"}});
    auto probe = api.launch_running(
        "tenant", "conf-a",
        {{"MISBEHAVE_MODE", "confinement"},
         {"MISBEHAVE_ARGS", std::to_string(port) + " " + std::to_string(neighbour.pid())}});
    std::string journal;
    ASSERT_TRUE(wait_until(
        [&] {
            journal = pattern_journal(probe.process_id());
            return journal.find("confine done") != std::string::npos;
        },
        60s))
        << "no 'confine done' in the pattern's journal:\n"
        << journal;
    auto facts = parse_confinement(journal);

    // The host's loopback is another network namespace's: nothing arrives.
    EXPECT_EQ(facts["connect"].rfind("result=-1 ", 0), 0u) << facts["connect"];
    EXPECT_LT(::accept(listener, nullptr, nullptr), 0) << "the pattern reached the host";
    ::close(listener);
    EXPECT_EQ(facts["netdevs"], "lo");
    EXPECT_EQ(facts["ptrace"], "result=-1 errno=EPERM");
    EXPECT_EQ(facts["finit_module"], "result=-1 errno=EPERM");
    EXPECT_EQ(facts["init_module"], "result=-1 errno=EPERM");
    EXPECT_EQ(facts["mount"], "result=-1 errno=EPERM");
    for (const char* set : {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"})
        EXPECT_EQ(facts[set], "0000000000000000") << set;
    EXPECT_EQ(facts["NoNewPrivs"], "1");
    EXPECT_TRUE(process_exists(neighbour.pid()));
    api.terminate(probe.process_id());
    api.terminate(neighbour.process_id());
    EXPECT_EQ(stop_service_and_clean_up(), "");
}

}  // namespace
}  // namespace plsys
