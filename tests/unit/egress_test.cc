// Egress (issue 14): the destination parser, the manifest's sandbox.egress,
// the launcher config's egress section, and the /31 pool.
#include "config/egress.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/egress_pool.h"
#include "config/config.h"
#include "config/confinement_report.h"
#include "config/manifest.h"

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using launcher::EgressDestination;
using launcher::EgressPool;
using launcher::EgressSyntaxError;
using launcher::FileError;
using launcher::parse_egress_destination;
using Protocol = launcher::EgressDestination::Protocol;

sandbox::Ipv4Network net(const char* text) {
    const auto n = sandbox::parse_ipv4_network(text);
    EXPECT_TRUE(n.has_value()) << text;
    return n.value_or(sandbox::Ipv4Network{});
}

// The message parse_egress_destination() refuses `text` with ("" if it does not).
std::string refusal(const std::string& text) {
    try {
        const EgressDestination d = parse_egress_destination(text);
        ADD_FAILURE() << "accepted: " << text;
    } catch (const EgressSyntaxError& e) {
        return e.what();
    }
    return "";
}

// ---- The parser: every accepted form ----

TEST(EgressDestination, AnAddressIsASlash32WithOnePortOverTcp) {
    const EgressDestination d = parse_egress_destination("10.20.0.7:443");
    EXPECT_EQ(d.protocol, Protocol::kTcp);
    EXPECT_EQ(std::get<sandbox::Ipv4Network>(d.host), net("10.20.0.7/32"));
    EXPECT_EQ(d.first_port, 443);
    EXPECT_EQ(d.last_port, 443);
    EXPECT_EQ(d.text, "10.20.0.7:443");
    EXPECT_FALSE(d.is_host_name());
}

TEST(EgressDestination, ANetworkWithAPortRange) {
    const EgressDestination d = parse_egress_destination("10.20.0.0/16:8000-8099");
    EXPECT_EQ(std::get<sandbox::Ipv4Network>(d.host), net("10.20.0.0/16"));
    EXPECT_EQ(d.first_port, 8000);
    EXPECT_EQ(d.last_port, 8099);
    const EgressDestination all = parse_egress_destination("192.0.2.0/24:1-65535");
    EXPECT_EQ(all.first_port, 1);
    EXPECT_EQ(all.last_port, 65535);
    EXPECT_EQ(parse_egress_destination("192.0.2.1:80-80").last_port, 80);
    // The whole Internet: accepted, the never-reachable ranges stay closed.
    EXPECT_EQ(std::get<sandbox::Ipv4Network>(parse_egress_destination("0.0.0.0/0:443").host),
              net("0.0.0.0/0"));
}

TEST(EgressDestination, ProtocolSuffix) {
    EXPECT_EQ(parse_egress_destination("192.0.2.53:53/udp").protocol, Protocol::kUdp);
    EXPECT_EQ(parse_egress_destination("192.0.2.53:53/tcp").protocol, Protocol::kTcp);
    const EgressDestination range = parse_egress_destination("198.51.100.0/24:5000-5010/udp");
    EXPECT_EQ(range.protocol, Protocol::kUdp);
    EXPECT_EQ(range.first_port, 5000);
    EXPECT_EQ(range.last_port, 5010);
    EXPECT_EQ(parse_egress_destination("ntp.example.org:123/udp").protocol, Protocol::kUdp);
}

TEST(EgressDestination, HostNamesAreKeptInLowerCaseWithoutTheTrailingDot) {
    const EgressDestination d = parse_egress_destination("DB-1.Internal.Example.:5432");
    ASSERT_TRUE(d.is_host_name());
    EXPECT_EQ(std::get<std::string>(d.host), "db-1.internal.example");
    EXPECT_EQ(d.text, "DB-1.Internal.Example.:5432");
    EXPECT_EQ(std::get<std::string>(parse_egress_destination("db:5432").host), "db");
    // Labels may start with a digit (RFC 1123 relaxed RFC 952), and the last
    // one may mix digits and letters.
    EXPECT_EQ(std::get<std::string>(parse_egress_destination("3com.example:80").host),
              "3com.example");
    EXPECT_EQ(std::get<std::string>(parse_egress_destination("host.0x1:80").host), "host.0x1");
    const std::string label63(63, 'a');
    EXPECT_TRUE(parse_egress_destination(label63 + ".example:80").is_host_name());
    // 253 characters: 3 labels of 63 and one of 61, with dots.
    const std::string longest =
        label63 + "." + label63 + "." + label63 + "." + std::string(61, 'b');
    ASSERT_EQ(longest.size(), 253u);
    EXPECT_TRUE(parse_egress_destination(longest + ":80").is_host_name());
}

TEST(EgressDestination, SameAsComparesTheValueNotTheText) {
    EXPECT_TRUE(parse_egress_destination("10.0.0.1:80")
                    .same_as(parse_egress_destination("10.0.0.1/32:80/tcp")));
    EXPECT_FALSE(parse_egress_destination("10.0.0.1:80")
                     .same_as(parse_egress_destination("10.0.0.1:80/udp")));
    EXPECT_TRUE(parse_egress_destination("DB.example:1")
                    .same_as(parse_egress_destination("db.example.:1")));
}

// ---- The parser: every refusal, with its message ----

TEST(EgressDestination, BadPorts) {
    EXPECT_EQ(refusal("10.0.0.1"),
              "'10.0.0.1': no port; expected HOST:PORT, CIDR:PORT or CIDR:FIRST-LAST, optionally "
              "with /udp or /tcp (e.g. db.example.com:5432, 10.0.0.0/8:8000-8099, "
              "192.0.2.53:53/udp)");
    EXPECT_EQ(refusal("10.0.0.1:").substr(0, 23), "'10.0.0.1:': no port; e");
    EXPECT_EQ(refusal("10.0.0.1:/udp").substr(0, 27), "'10.0.0.1:/udp': no port; e");
    EXPECT_EQ(refusal("10.0.0.1:0"), "'10.0.0.1:0': port 0 is out of range (1-65535)");
    EXPECT_EQ(refusal("10.0.0.1:65536"), "'10.0.0.1:65536': port 65536 is out of range (1-65535)");
    EXPECT_EQ(refusal("10.0.0.1:99999999999999999999"),
              "'10.0.0.1:99999999999999999999': port 99999999999999999999 is out of range "
              "(1-65535)");
    EXPECT_EQ(refusal("10.0.0.1:https"),
              "'10.0.0.1:https': invalid port 'https' (a number from 1 to 65535)");
    EXPECT_EQ(refusal("10.0.0.1:+80"),
              "'10.0.0.1:+80': invalid port '+80' (a number from 1 to 65535)");
    EXPECT_EQ(refusal("10.0.0.0/8:80-"),
              "'10.0.0.0/8:80-': invalid port '' (a number from 1 to 65535)");
    EXPECT_EQ(refusal("10.0.0.0/8:-80"),
              "'10.0.0.0/8:-80': invalid port '' (a number from 1 to 65535)");
    EXPECT_EQ(refusal("10.0.0.0/8:1-2-3"),
              "'10.0.0.0/8:1-2-3': invalid port '2-3' (a number from 1 to 65535)");
    EXPECT_EQ(refusal("10.0.0.0/8:2000-1000"),
              "'10.0.0.0/8:2000-1000': port range 2000-1000: the first port must not be greater "
              "than the last");
}

TEST(EgressDestination, APortRangeIsForAddressesAndNetworksOnly) {
    EXPECT_EQ(refusal("db.example:5432-5433"),
              "'db.example:5432-5433': a port range is for an address or a network; a host name "
              "takes one port (list the name once per port)");
}

TEST(EgressDestination, BadSuffix) {
    EXPECT_EQ(refusal("10.0.0.1:53/sctp"),
              "'10.0.0.1:53/sctp': unknown protocol 'sctp' (known: tcp, udp)");
    EXPECT_EQ(refusal("10.0.0.1:53/UDP"),
              "'10.0.0.1:53/UDP': unknown protocol 'UDP' (known: tcp, udp)");
    EXPECT_EQ(refusal("10.0.0.1:53/"), "'10.0.0.1:53/': unknown protocol '' (known: tcp, udp)");
}

TEST(EgressDestination, BadAddressesAndNetworks) {
    EXPECT_EQ(refusal("10.0.0.300:80"), "'10.0.0.300:80': invalid IPv4 address '10.0.0.300'");
    EXPECT_EQ(refusal("10.0.0:80"), "'10.0.0:80': invalid IPv4 address '10.0.0'");
    EXPECT_EQ(refusal("010.0.0.1:80"), "'010.0.0.1:80': invalid IPv4 address '010.0.0.1'");
    EXPECT_EQ(refusal("10.0.0.0/33:80"), "'10.0.0.0/33:80': invalid prefix length '/33' (0 to 32)");
    EXPECT_EQ(refusal("10.0.0.0/:80"), "'10.0.0.0/:80': invalid prefix length '/' (0 to 32)");
    EXPECT_EQ(refusal("10.0.0.0/x:80"), "'10.0.0.0/x:80': invalid prefix length '/x' (0 to 32)");
    EXPECT_EQ(refusal("10.0.0.0/08:80"), "'10.0.0.0/08:80': invalid prefix length '/08' (0 to 32)");
    EXPECT_EQ(refusal("10.0.0.0/008:80"),
              "'10.0.0.0/008:80': invalid prefix length '/008' (0 to 32)");
    EXPECT_EQ(refusal("10.1.0.1/16:80"),
              "'10.1.0.1/16:80': '10.1.0.1/16' has bits set beyond its /16 prefix (did you mean "
              "10.1.0.0/16?)");
    EXPECT_EQ(refusal("db.example/24:80"), "'db.example/24:80': invalid IPv4 address 'db.example'");
}

TEST(EgressDestination, BadHostNames) {
    EXPECT_EQ(refusal(":80").substr(0, 15), "':80': no host;");
    EXPECT_EQ(refusal("db_1.example:80"),
              "'db_1.example:80': '_' is not allowed in a host name (letters, digits, '-' and "
              "'.')");
    EXPECT_EQ(refusal("db..example:80"),
              "'db..example:80': a host name has no empty labels ('..')");
    EXPECT_EQ(refusal(".example:80"), "'.example:80': a host name has no empty labels ('..')");
    EXPECT_EQ(refusal(".:80"), "'.:80': a host name has no empty labels ('..')");
    EXPECT_EQ(refusal("-db.example:80"), "'-db.example:80': label '-db' starts or ends with '-'");
    EXPECT_EQ(refusal("db-.example:80"), "'db-.example:80': label 'db-' starts or ends with '-'");
    const std::string label64(64, 'a');
    EXPECT_EQ(refusal(label64 + ".example:80"),
              "'" + label64 + ".example:80': label '" + label64 + "' is longer than 63 characters");
    const std::string label63(63, 'a');
    const std::string too_long =
        label63 + "." + label63 + "." + label63 + "." + std::string(62, 'b');
    ASSERT_EQ(too_long.size(), 254u);
    EXPECT_EQ(refusal(too_long + ":80"),
              "'" + too_long + ":80': a host name has at most 253 characters, this one 254");
    EXPECT_EQ(refusal("host.123:80"),
              "'host.123:80': neither an IPv4 address nor a host name (a host name's last label "
              "is not all digits)");
    EXPECT_EQ(refusal("db\xc3\xa9.example:80"),
              "'db\xc3\xa9.example:80': a host name is ASCII (write an internationalised name in "
              "its xn-- form)");
    EXPECT_EQ(refusal(""),
              "'': empty; expected HOST:PORT, CIDR:PORT or CIDR:FIRST-LAST, optionally with /udp "
              "or /tcp (e.g. db.example.com:5432, 10.0.0.0/8:8000-8099, 192.0.2.53:53/udp)");
    EXPECT_EQ(refusal("db.example: 80"),
              "'db.example: 80': no spaces or control characters allowed");
    EXPECT_EQ(refusal("db.example:80\n"),
              "'db.example:80\n': no spaces or control characters allowed");
}

TEST(EgressDestination, LocalhostIsNeverReachable) {
    EXPECT_EQ(refusal("localhost:5432"),
              "'localhost:5432': 'localhost' is host loopback (RFC 6761), which is never "
              "reachable");
    EXPECT_EQ(refusal("LocalHost.:5432"),
              "'LocalHost.:5432': 'LocalHost.' is host loopback (RFC 6761), which is never "
              "reachable");
    EXPECT_EQ(refusal("db.localhost:5432"),
              "'db.localhost:5432': 'db.localhost' is host loopback (RFC 6761), which is never "
              "reachable");
    // Only the label: "notlocalhost" is an ordinary name.
    EXPECT_TRUE(parse_egress_destination("notlocalhost:80").is_host_name());
}

TEST(EgressDestination, DestinationsInsideTheNeverReachableRangesAreRefused) {
    EXPECT_EQ(refusal("127.0.0.1:5432"),
              "'127.0.0.1:5432': 127.0.0.1/32 lies in 127.0.0.0/8 (loopback), which is never "
              "reachable");
    EXPECT_EQ(refusal("127.0.0.0/8:1-65535"),
              "'127.0.0.0/8:1-65535': 127.0.0.0/8 lies in 127.0.0.0/8 (loopback), which is never "
              "reachable");
    EXPECT_EQ(refusal("0.0.0.0:80"),
              "'0.0.0.0:80': 0.0.0.0/32 lies in 0.0.0.0/8 (\"this network\"), which is never "
              "reachable");
    EXPECT_EQ(refusal("169.254.169.254:80"),
              "'169.254.169.254:80': 169.254.169.254/32 lies in 169.254.0.0/16 (link-local, "
              "where cloud metadata services answer), which is never reachable");
    EXPECT_EQ(refusal("224.0.0.251:5353/udp"),
              "'224.0.0.251:5353/udp': 224.0.0.251/32 lies in 224.0.0.0/4 (multicast), which is "
              "never reachable");
    EXPECT_EQ(refusal("255.255.255.255:67/udp"),
              "'255.255.255.255:67/udp': 255.255.255.255/32 lies in 240.0.0.0/4 (reserved, with "
              "the limited broadcast 255.255.255.255), which is never reachable");
    // Overlapping is not lying inside: accepted (those ranges stay closed).
    EXPECT_NO_THROW(parse_egress_destination("0.0.0.0/0:80"));
    EXPECT_NO_THROW(parse_egress_destination("96.0.0.0/3:80"));       // includes 127/8
    EXPECT_NO_THROW(parse_egress_destination("169.254.0.0/15:80"));   // includes 169.254/16
    EXPECT_NO_THROW(parse_egress_destination("1.0.0.0/8:80"));        // next to 0/8
    EXPECT_NO_THROW(parse_egress_destination("223.255.255.255:80"));  // next to 224/4
}

TEST(EgressDestination, NeverReachableNetworks) {
    std::vector<std::string> text;
    for (const auto& n : launcher::never_reachable_networks()) {
        text.push_back(sandbox::to_string(n.network));
    }
    EXPECT_EQ(text, (std::vector<std::string>{"0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16",
                                              "224.0.0.0/4", "240.0.0.0/4"}));
}

TEST(EgressDestination, Ipv6IsRecognisedAndRefused) {
    const std::string why =
        "IPv6 egress is not supported yet (only IPv4 addresses, networks and host names)";
    EXPECT_EQ(refusal("[2001:db8::/32]:443"), "'[2001:db8::/32]:443': " + why);
    EXPECT_EQ(refusal("[2001:db8::1]:443/udp"), "'[2001:db8::1]:443/udp': " + why);
    EXPECT_EQ(refusal("[::1]:80"), "'[::1]:80': " + why);
    EXPECT_EQ(refusal("2001:db8::1:443"), "'2001:db8::1:443': " + why);
}

// ---- Manifests ----

// A fresh directory under /tmp for one test, removed afterwards.
class EgressFilesTest : public ::testing::Test {
protected:
    void SetUp() override {
        std::string tmpl = (fs::temp_directory_path() / "pl-egress-test.XXXXXX").string();
        ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
        root_ = tmpl;
    }
    void TearDown() override {
        std::error_code ec;
        fs::remove_all(root_, ec);
    }

    fs::path write(const fs::path& relative, const std::string& text) {
        const fs::path file = root_ / relative;
        fs::create_directories(file.parent_path());
        std::ofstream(file) << text;
        return file;
    }

    // A manifest of kHeader plus `text`, next to an executable `run`.
    fs::path manifest(const std::string& text) {
        const fs::path run = write("p/run", "#!/bin/sh\nexit 0\n");
        fs::permissions(run, fs::perms(0755));
        return write("p/manifest.yaml",
                     "name: demo\n"         // 1
                     "version: \"1.0\"\n"   // 2
                     "executable: ./run\n"  // 3
                         + text);
    }
    fs::path config(const std::string& text) { return write("etc/launcher.yaml", text); }

    template <typename Load>
    FileError error_of(const fs::path& file, Load load) {
        try {
            load(file);
        } catch (const FileError& e) {
            EXPECT_EQ(e.file(), file);
            return e;
        }
        ADD_FAILURE() << "no error for " << file;
        return FileError(file, -1, "no error");
    }
    FileError manifest_error(const std::string& text) {
        return error_of(manifest(text), [](const fs::path& f) { launcher::parse_manifest(f); });
    }
    FileError config_error(const std::string& text) {
        return error_of(config(text), [](const fs::path& f) { launcher::load_config(f); });
    }

    fs::path root_;
};

#define EXPECT_ERROR_AT(error, want_line, want_message)     \
    do {                                                    \
        const FileError e_ = (error);                       \
        EXPECT_EQ(e_.line(), want_line) << e_.what();       \
        EXPECT_EQ(e_.message(), want_message) << e_.what(); \
    } while (0)

TEST_F(EgressFilesTest, ManifestWithoutEgressHasNone) {
    const launcher::Manifest m = launcher::parse_manifest(manifest("sandbox:\n  network: host\n"));
    EXPECT_TRUE(m.sandbox.egress.empty());
    EXPECT_TRUE(launcher::parse_manifest(manifest("")).sandbox.egress.empty());
}

TEST_F(EgressFilesTest, ManifestEgressList) {
    const launcher::Manifest m =
        launcher::parse_manifest(manifest("sandbox:\n"                        // 4
                                          "  egress:\n"                       // 5
                                          "    - db.internal.example:5432\n"  // 6
                                          "    - 10.20.0.0/16:8000-8099\n"    // 7
                                          "    - \"192.0.2.53:53/udp\"\n"     // 8
                                          "    - 0.0.0.0/0:443\n"));          // 9
    ASSERT_EQ(m.sandbox.egress.size(), 4u);
    EXPECT_EQ(std::get<std::string>(m.sandbox.egress[0].host), "db.internal.example");
    EXPECT_EQ(m.sandbox.egress[1].last_port, 8099);
    EXPECT_EQ(m.sandbox.egress[2].protocol, Protocol::kUdp);
    EXPECT_EQ(m.sandbox.egress[3].text, "0.0.0.0/0:443");
    EXPECT_EQ(m.sandbox.network, launcher::NetworkMode::kIsolated);
    // Flow style is a list as well.
    EXPECT_EQ(launcher::parse_manifest(manifest("sandbox:\n  egress: [\"10.0.0.1:80\", "
                                                "db:1]\n"))
                  .sandbox.egress.size(),
              2u);
}

TEST_F(EgressFilesTest, ManifestErrorsNameTheEntrysLine) {
    EXPECT_ERROR_AT(manifest_error("sandbox:\n"               // 4
                                   "  egress:\n"              // 5
                                   "    - 10.0.0.1:80\n"      // 6
                                   "    - 10.0.0.300:80\n"),  // 7
                    7, "sandbox.egress[1]: '10.0.0.300:80': invalid IPv4 address '10.0.0.300'");
    EXPECT_ERROR_AT(manifest_error("sandbox:\n  egress:\n    - localhost:5432\n"), 6,
                    "sandbox.egress[0]: 'localhost:5432': 'localhost' is host loopback (RFC "
                    "6761), which is never reachable");
    EXPECT_ERROR_AT(manifest_error("sandbox:\n"
                                   "  egress:\n"
                                   "    - 10.0.0.1:80\n"           // 6
                                   "    - 10.0.0.1/32:80/tcp\n"),  // 7
                    7, "sandbox.egress[1]: '10.0.0.1/32:80/tcp' is listed twice (also at line 6)");
    EXPECT_ERROR_AT(manifest_error("sandbox:\n  egress: 10.0.0.1:80\n"), 5,
                    "sandbox.egress: expected a list, got '10.0.0.1:80'");
    EXPECT_ERROR_AT(manifest_error("sandbox:\n  egress: []\n"), 5,
                    "sandbox.egress: an empty list opens nothing: remove the key");
    EXPECT_ERROR_AT(manifest_error("sandbox:\n  egress:\n    - db.example: 80\n"), 6,
                    "sandbox.egress[0]: expected a destination string (HOST:PORT, CIDR:PORT or "
                    "CIDR:FIRST-LAST), got a mapping; write HOST:PORT without a space after the "
                    "':'");
    EXPECT_ERROR_AT(manifest_error("sandbox:\n  egress:\n    -\n    - 10.0.0.1:80\n"), 6,
                    "sandbox.egress[0]: expected a destination string (HOST:PORT, CIDR:PORT or "
                    "CIDR:FIRST-LAST), got an empty value");
}

// Unquoted, a bracketed IPv6 destination is YAML: the message says to quote
// it; quoted, the parser says IPv6 is not supported yet.
TEST_F(EgressFilesTest, UnquotedBracketsGetAHintQuotedIpv6IsRefused) {
    const FileError unquoted = manifest_error("sandbox:\n  egress:\n    - [2001:db8::/32]:443\n");
    EXPECT_EQ(unquoted.line(), 6) << unquoted.what();
    // yaml-cpp cannot read it at all: a syntax error, with the hint added.
    EXPECT_TRUE(unquoted.message().starts_with("YAML syntax error: ")) << unquoted.what();
    EXPECT_NE(unquoted.message().find("a value that starts with '[' is a YAML list: quote it if "
                                      "it is a string (\"[2001:db8::1]:443\")"),
              std::string::npos)
        << unquoted.what();
    const FileError list = manifest_error("sandbox:\n  egress:\n    - [2001:db8::1]\n");
    EXPECT_EQ(list.line(), 6) << list.what();
    EXPECT_NE(list.message().find("got a list; YAML reads an unquoted [...] as a list"),
              std::string::npos)
        << list.what();
    EXPECT_ERROR_AT(manifest_error("sandbox:\n  egress:\n    - \"[2001:db8::/32]:443\"\n"), 6,
                    "sandbox.egress[0]: '[2001:db8::/32]:443': IPv6 egress is not supported yet "
                    "(only IPv4 addresses, networks and host names)");
}

TEST_F(EgressFilesTest, EgressIsRefusedWithTheHostNetwork) {
    const std::string why =
        "sandbox.egress: not with network: host, which reaches every destination anyway; use "
        "network: isolated (the default) with this list";
    EXPECT_ERROR_AT(manifest_error("sandbox:\n"             // 4
                                   "  network: host\n"      // 5
                                   "  egress:\n"            // 6
                                   "    - 10.0.0.1:80\n"),  // 7
                    7, why);
    // Whatever the order of the keys.
    EXPECT_ERROR_AT(manifest_error("sandbox:\n  egress: [\"10.0.0.1:80\"]\n  network: host\n"), 5,
                    why);
}

TEST_F(EgressFilesTest, EgressIsAWeakening) {
    const launcher::Manifest m = launcher::parse_manifest(
        manifest("sandbox:\n  egress:\n    - db.example:5432\n    - 10.0.0.0/8:80/udp\n"));
    const std::vector<std::string> weakened = launcher::confinement_weakenings(m);
    ASSERT_EQ(weakened.size(), 1u);
    EXPECT_EQ(weakened[0],
              "egress: a network path out of the isolated network, to db.example:5432 "
              "10.0.0.0/8:80/udp (never to host loopback, the launcher's ports or other "
              "tenants)");
    EXPECT_TRUE(launcher::confinement_weakenings(launcher::parse_manifest(manifest(""))).empty());
}

// ---- The launcher config ----

TEST_F(EgressFilesTest, ConfigDefaults) {
    const launcher::LauncherConfig c = launcher::load_config(config("launcher: {}\n"));
    EXPECT_EQ(c.egress.pool, net("10.213.0.0/16"));
    EXPECT_EQ(c.egress.resolve_interval, 30s);
    EXPECT_TRUE(c.egress.tenants.empty());
    const launcher::LauncherConfig empty = launcher::load_config(config("launcher:\n  egress:\n"));
    EXPECT_EQ(empty.egress.pool, net("10.213.0.0/16"));
}

TEST_F(EgressFilesTest, ConfigSection) {
    const launcher::LauncherConfig c =
        launcher::load_config(config("launcher:\n"
                                     "  egress:\n"
                                     "    pool: 172.20.0.0/20\n"
                                     "    resolve_interval: 5m\n"
                                     "    tenants:\n"
                                     "      tenant-a:\n"
                                     "        - db-a.internal.example:5432\n"
                                     "        - 10.1.0.0/24:9000-9010/udp\n"
                                     "      tenant-b: [\"db-b.internal.example:5432\"]\n"));
    EXPECT_EQ(c.egress.pool, net("172.20.0.0/20"));
    EXPECT_EQ(c.egress.resolve_interval, 5min);
    ASSERT_EQ(c.egress.tenants.size(), 2u);
    const auto& a = c.egress.tenants.at("tenant-a");
    ASSERT_EQ(a.size(), 2u);
    EXPECT_EQ(std::get<std::string>(a[0].host), "db-a.internal.example");
    EXPECT_EQ(a[1].protocol, Protocol::kUdp);
    EXPECT_EQ(c.egress.tenants.at("tenant-b").at(0).text, "db-b.internal.example:5432");
    for (const char* pool :
         {"10.0.0.0/8", "192.168.8.0/29", "100.64.0.0/10", "172.31.255.248/29"}) {
        const auto ok = launcher::load_config(
            config(std::string("launcher:\n  egress:\n    pool: ") + pool + "\n"));
        EXPECT_EQ(ok.egress.pool, net(pool));
    }
}

TEST_F(EgressFilesTest, ConfigPoolErrors) {
    auto pool_error = [&](const std::string& pool) {
        return config_error("launcher:\n  egress:\n    pool: " + pool + "\n");  // line 3
    };
    EXPECT_ERROR_AT(pool_error("10.213.0.1/16"), 3,
                    "launcher.egress.pool: expected an IPv4 network such as 10.213.0.0/16 (no "
                    "bits set beyond the prefix), got '10.213.0.1/16'");
    EXPECT_ERROR_AT(pool_error("10.213.0.0"), 3,
                    "launcher.egress.pool: expected an IPv4 network such as 10.213.0.0/16 (no "
                    "bits set beyond the prefix), got '10.213.0.0'");
    EXPECT_ERROR_AT(pool_error("10.0.0.0/30"), 3,
                    "launcher.egress.pool: the prefix must be between /8 and /29 (a /31 per key, "
                    "the first one unused), got /30");
    EXPECT_ERROR_AT(pool_error("0.0.0.0/7"), 3,
                    "launcher.egress.pool: the prefix must be between /8 and /29 (a /31 per key, "
                    "the first one unused), got /7");
    EXPECT_ERROR_AT(pool_error("127.0.0.0/16"), 3,
                    "launcher.egress.pool: 127.0.0.0/16 overlaps 127.0.0.0/8 (loopback)");
    EXPECT_ERROR_AT(pool_error("192.0.2.0/24"), 3,
                    "launcher.egress.pool: 192.0.2.0/24 is not inside a private range "
                    "(10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16 or 100.64.0.0/10)");
    EXPECT_ERROR_AT(pool_error("172.0.0.0/8"), 3,
                    "launcher.egress.pool: 172.0.0.0/8 is not inside a private range "
                    "(10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16 or 100.64.0.0/10)");
    EXPECT_ERROR_AT(pool_error("\"\""), 3, "launcher.egress.pool: must not be empty");
}

TEST_F(EgressFilesTest, ConfigResolveIntervalAndKeys) {
    EXPECT_ERROR_AT(config_error("launcher:\n  egress:\n    resolve_interval: 500ms\n"), 3,
                    "launcher.egress.resolve_interval: must be at least 1s");
    EXPECT_EQ(launcher::load_config(config("launcher:\n  egress:\n    resolve_interval: 1s\n"))
                  .egress.resolve_interval,
              1s);
    const FileError bad = config_error("launcher:\n  egress:\n    resolve_interval: 1.5s\n");
    EXPECT_EQ(bad.line(), 3) << bad.what();
    EXPECT_NE(bad.message().find("fractions are not allowed"), std::string::npos) << bad.what();
    EXPECT_ERROR_AT(config_error("launcher:\n  egress:\n    pools: 10.0.0.0/8\n"), 3,
                    "unknown key 'pools' in launcher.egress (known: pool, resolve_interval, "
                    "tenants)");
}

TEST_F(EgressFilesTest, ConfigTenantErrors) {
    EXPECT_ERROR_AT(config_error("launcher:\n"                     // 1
                                 "  egress:\n"                     // 2
                                 "    tenants:\n"                  // 3
                                 "      tenant-a:\n"               // 4
                                 "        - db.example:5432\n"     // 5
                                 "        - db.example:99999\n"),  // 6
                    6,
                    "launcher.egress.tenants.tenant-a[1]: 'db.example:99999': port 99999 is out "
                    "of range (1-65535)");
    EXPECT_ERROR_AT(config_error("launcher:\n  egress:\n    tenants:\n      Tenant_A!:\n"
                                 "        - db.example:5432\n"),
                    4,
                    "launcher.egress.tenants: invalid namespace id 'Tenant_A!' (1 to 63 of a-z, "
                    "0-9, '.', '_', '-', starting with a letter or digit)");
    EXPECT_ERROR_AT(config_error("launcher:\n  egress:\n    tenants:\n"
                                 "      a: [\"db:1\"]\n"    // 4
                                 "      a: [\"db:2\"]\n"),  // 5
                    5, "duplicate key 'a' in launcher.egress.tenants (first at line 4)");
    EXPECT_ERROR_AT(config_error("launcher:\n  egress:\n    tenants: [a]\n"), 3,
                    "launcher.egress.tenants: expected a mapping of namespace id to a list of "
                    "destinations, got a list");
    EXPECT_ERROR_AT(config_error("launcher:\n  egress:\n    tenants:\n      a:\n"), 4,
                    "launcher.egress.tenants.a: an empty list opens nothing: remove the key");
    // The pool holds the patterns' own veths: never a tenant's destination.
    EXPECT_ERROR_AT(config_error("launcher:\n"
                                 "  egress:\n"
                                 "    pool: 10.99.0.0/16\n"
                                 "    tenants:\n"
                                 "      a:\n"
                                 "        - 10.0.0.0/8:80\n"      // 6: overlaps: fine
                                 "        - 10.99.3.0/24:80\n"),  // 7: inside
                    7,
                    "launcher.egress.tenants.a[1]: '10.99.3.0/24:80': 10.99.3.0/24 lies in "
                    "egress.pool 10.99.0.0/16 (the patterns' own veths), which is never "
                    "reachable");
}

// The commented-out egress block of the example config, uncommented, parses.
TEST_F(EgressFilesTest, TheExampleConfigsEgressBlockParses) {
    std::ifstream in(fs::path(PL_SOURCE_DIR) / "config" / "pattern-launcher.yaml");
    std::string line, block = "launcher:\n";
    bool inside = false;
    while (std::getline(in, line)) {
        if (line == "  # egress:") inside = true;
        if (inside && line.empty()) break;
        if (inside) {
            ASSERT_TRUE(line.starts_with("  # ")) << line;
            block += "  " + line.substr(4) + "\n";
        }
    }
    ASSERT_TRUE(inside) << "no '  # egress:' block in config/pattern-launcher.yaml";
    const launcher::LauncherConfig c = launcher::load_config(config(block));
    EXPECT_EQ(c.egress.pool, net("10.213.0.0/16"));
    EXPECT_EQ(c.egress.tenants.size(), 2u);
}

// The fuzzers' egress seeds are valid, so that they start from accepted input.
TEST_F(EgressFilesTest, TheFuzzSeedsAreValid) {
    const fs::path fuzz = fs::path(PL_SOURCE_DIR) / "tests" / "fuzz" / "corpus";
    const fs::path dir = root_ / "seed";
    fs::create_directories(dir);
    fs::copy_file(fuzz / "manifest" / "egress.yaml", dir / "manifest.yaml");
    std::ofstream(dir / "echo") << "#!/bin/sh\n";
    fs::permissions(dir / "echo", fs::perms(0755));
    EXPECT_EQ(launcher::parse_manifest(dir / "manifest.yaml").sandbox.egress.size(), 7u);
    EXPECT_EQ(launcher::load_config(fuzz / "config" / "egress.yaml").egress.tenants.size(), 2u);
}

// ---- The /31 pool ----

TEST(EgressPool, SlotsAreSlash31sAfterTheFirst) {
    EgressPool pool(net("10.213.0.0/16"));
    EXPECT_EQ(pool.capacity(), 32767u);
    EXPECT_EQ(pool.in_use(), 0u);
    const auto first = pool.allocate();
    ASSERT_TRUE(first.has_value());
    EXPECT_EQ(first->index, 1u);
    EXPECT_EQ(sandbox::to_string(first->host), "10.213.0.2");
    EXPECT_EQ(sandbox::to_string(first->pattern), "10.213.0.3");
    EXPECT_EQ(sandbox::to_string(first->network()), "10.213.0.2/31");
    const auto second = pool.allocate();
    ASSERT_TRUE(second.has_value());
    EXPECT_EQ(second->index, 2u);
    EXPECT_EQ(sandbox::to_string(second->host), "10.213.0.4");
    EXPECT_EQ(pool.in_use(), 2u);
    // The last slot ends at the pool's last address.
    EXPECT_EQ(sandbox::to_string(pool.slot(pool.capacity()).pattern), "10.213.255.255");
    EXPECT_EQ(EgressPool(net("10.0.0.0/8")).capacity(), (1u << 23) - 1);
}

TEST(EgressPool, ExhaustionAndReuseOfTheLowestFreeSlot) {
    EgressPool pool(net("192.168.1.0/29"));  // 4 /31s, slot 0 unused: 3
    ASSERT_EQ(pool.capacity(), 3u);
    std::vector<std::uint32_t> got;
    for (int i = 0; i < 3; ++i) {
        const auto s = pool.allocate();
        ASSERT_TRUE(s.has_value());
        got.push_back(s->index);
    }
    EXPECT_EQ(got, (std::vector<std::uint32_t>{1, 2, 3}));
    EXPECT_EQ(pool.allocate(), std::nullopt);
    EXPECT_EQ(pool.in_use(), 3u);
    pool.release(2);
    EXPECT_EQ(pool.in_use(), 2u);
    const auto again = pool.allocate();
    ASSERT_TRUE(again.has_value());
    EXPECT_EQ(again->index, 2u);
    EXPECT_EQ(sandbox::to_string(again->pattern), "192.168.1.5");
    EXPECT_EQ(pool.allocate(), std::nullopt);
    pool.release(3);
    pool.release(1);
    EXPECT_EQ(pool.allocate()->index, 1u);  // lowest first
    EXPECT_EQ(pool.allocate()->index, 3u);
    pool.release(7);  // not in use: ignored
    EXPECT_EQ(pool.in_use(), 3u);
}

TEST(EgressPool, ClaimForRecovery) {
    EgressPool pool(net("10.213.0.0/16"));
    EXPECT_TRUE(pool.claim(2));
    EXPECT_FALSE(pool.claim(2));  // taken
    EXPECT_FALSE(pool.claim(0));  // never a slot
    EXPECT_FALSE(pool.claim(pool.capacity() + 1));
    EXPECT_TRUE(pool.claim(pool.capacity()));
    EXPECT_EQ(pool.in_use(), 2u);
    EXPECT_EQ(pool.allocate()->index, 1u);
    EXPECT_EQ(pool.allocate()->index, 3u);  // around the claimed 2
    pool.release(2);
    EXPECT_TRUE(pool.claim(2));
}

TEST(EgressPool, IndexOfAnAddress) {
    const EgressPool pool(net("10.213.0.0/16"));
    EXPECT_EQ(pool.index_of(pool.slot(5).host), 5u);
    EXPECT_EQ(pool.index_of(pool.slot(5).pattern), 5u);
    EXPECT_EQ(pool.index_of(*sandbox::parse_ipv4_address("10.213.0.1")), std::nullopt);  // slot 0
    EXPECT_EQ(pool.index_of(*sandbox::parse_ipv4_address("10.214.0.2")), std::nullopt);
}

TEST(EgressPool, ANetworkWithoutUsableSlotsIsRefused) {
    EXPECT_THROW(EgressPool(net("10.0.0.0/31")), std::invalid_argument);
    EXPECT_THROW(EgressPool(net("10.0.0.1/32")), std::invalid_argument);
    EXPECT_EQ(EgressPool(net("10.0.0.0/30")).capacity(), 1u);
}

}  // namespace
