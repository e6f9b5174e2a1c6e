// The installed service with a mutual-TLS API listener (launcher.api.tls)
// and a policy: the packaged patternctl with a client certificate launches
// in the namespace its grant names and is refused elsewhere; without a
// certificate, or with an expired one, the handshake is refused. Every call
// that reached the service leaves its audit record in the journal.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "system_support.h"

namespace plsys {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// Below /etc: the unit's PrivateTmp= gives the daemon a /tmp of its own, and
// ProtectSystem=strict leaves /etc readable to it.
const std::string kPki = "/etc/pattern-launcher/tls-system-test";
constexpr const char* kListen = "127.0.0.1:7443";
constexpr const char* kTenantA = "spiffe://pattern-launcher.test/tenant-a";
constexpr const char* kPatternctl = "/usr/bin/patternctl";

// tests/fixtures/make_test_pki.sh, which tests/system/run.sh puts next to
// system_tests in the payload.
fs::path pki_script() {
    return fs::read_symlink("/proc/self/exe").parent_path() / "make_test_pki.sh";
}

// stop_service_and_clean_up() puts back the packaged config from this copy
// (the one set_config_value keeps), so the next test gets the packaged one.
void append_to_config(const std::string& text) {
    const std::string backup = std::string(kConfig) + ".system-test";
    if (!fs::exists(backup)) fs::copy_file(kConfig, backup);
    std::ofstream(kConfig, std::ios::app) << text;
}

// The packaged patternctl on the TLS listener; `tls` holds the credential
// options (the CA is always given: it turns TLS on).
CommandResult patternctl_tls(const std::string& tls, const std::string& command) {
    return sh(std::string(kPatternctl) + " --address " + kListen + " --tls-ca " + kPki +
              "/ca.crt --tls-server-name localhost " + tls + " " + command);
}

std::string client(const std::string& name) {
    return "--tls-cert " + kPki + "/" + name + ".crt --tls-key " + kPki + "/" + name + ".key";
}

// The service's audit records (journald fields, src/api/audit_log.cc) that
// match every FIELD=VALUE of `matches`, one MESSAGE per line. Waits up to
// 30 s for at least one: journald stores what the daemon sent asynchronously.
std::string audit_records(pid_t daemon, const std::string& matches) {
    std::string found;
    wait_until(
        [&] {
            found =
                sh("journalctl --no-pager -o cat _PID=" + std::to_string(daemon) + " " + matches)
                    .output;
            return found.find("audit: ") != std::string::npos;
        },
        30s);
    return found;
}

class ApiTls : public ::testing::Test {
protected:
    void SetUp() override {
        reset_service();
        fs::remove_all(kPki);
        sh_ok("sh " + pki_script().string() + " " + kPki);
        append_to_config(
            "\n"
            "  api:\n"
            "    tls:\n"
            "      listen: " +
            std::string(kListen) +
            "\n"
            "      cert: " +
            kPki +
            "/server.crt\n"
            "      key: " +
            kPki +
            "/server.key\n"
            "      client_ca: " +
            kPki +
            "/ca.crt\n"
            "    policy:\n"
            "      - {name: operators, match: {uid: 0}, rpcs: ['*']}\n"
            "      - {name: tenant-a, match: {certificate: '" +
            kTenantA +
            "'},\n"
            "         rpcs: [LaunchPattern, ListPatterns, TerminatePattern],\n"
            "         namespaces: [tenant-a]}\n");
        sh_ok("systemctl restart " + std::string(kService));
        ASSERT_EQ(unit_property(kService, "ActiveState"), "active")
            << sh("journalctl --no-pager -o cat -u " + std::string(kService)).output;
        // Bound before READY=1, so listening by now.
        const std::string listening = sh("ss -Hltn 'sport = :7443'").output;
        ASSERT_NE(listening.find(kListen), std::string::npos)
            << "nothing listens on " << kListen << ": '" << listening << "'; journal:\n"
            << sh("journalctl --no-pager -o cat -u " + std::string(kService)).output;
    }
    // The stop must leave nothing; it also puts back the packaged config.
    void TearDown() override {
        EXPECT_EQ(stop_service_and_clean_up(), "");
        std::error_code ec;
        fs::remove_all(kPki, ec);
    }
};

TEST_F(ApiTls, ACertificateLaunchesInItsNamespaceOnlyAndNoCertificateIsRefused) {
    const pid_t daemon = main_pid();

    // Granted: LaunchPattern of the packaged echo in tenant-a.
    CommandResult ok = patternctl_tls(client("client-a"), "launch echo --namespace tenant-a");
    ASSERT_EQ(ok.exit_code, 0) << ok.output;
    EXPECT_NE(ok.output.find("ns:tenant-a:echo STATE_RUNNING"), std::string::npos) << ok.output;
    // The launched echo serves (the address is the last word of the line).
    const std::string line = ok.output.substr(0, ok.output.find('\n'));
    EXPECT_EQ(echo_roundtrip(line.substr(line.rfind(' ') + 1), "tls").reply, "tls");

    // Not granted: the same certificate in tenant-b.
    CommandResult denied = patternctl_tls(client("client-a"), "launch echo --namespace tenant-b");
    EXPECT_EQ(denied.exit_code, 1) << denied.output;
    EXPECT_NE(denied.output.find("(PERMISSION_DENIED)"), std::string::npos) << denied.output;
    EXPECT_NE(denied.output.find(std::string("cert ") + kTenantA), std::string::npos)
        << denied.output;

    // No client certificate: the server requires one, so the handshake fails
    // (not UNAUTHENTICATED: no call reaches the service).
    CommandResult anonymous = patternctl_tls("", "launch echo --namespace tenant-a");
    EXPECT_EQ(anonymous.exit_code, 1) << anonymous.output;
    EXPECT_NE(anonymous.output.find("(UNAVAILABLE)"), std::string::npos) << anonymous.output;

    // Expired (signed by the trusted CA): the handshake fails too.
    CommandResult expired =
        patternctl_tls(client("client-expired"), "launch echo --namespace tenant-a");
    EXPECT_EQ(expired.exit_code, 1) << expired.output;
    EXPECT_NE(expired.output.find("(UNAVAILABLE)"), std::string::npos) << expired.output;

    // Only the granted launch happened: root on the unix socket (operators)
    // sees tenant-a's echo and nothing in tenant-b.
    const std::string listed = sh_ok(std::string(kPatternctl) + " list");
    EXPECT_NE(listed.find("ns:tenant-a:echo"), std::string::npos) << listed;
    EXPECT_EQ(listed.find("tenant-b"), std::string::npos) << listed;

    // The audit trail: journald fields, one record per call that reached the
    // service, with the certificate's identity.
    const std::string identity = std::string("AUDIT_IDENTITY='cert ") + kTenantA + "'";
    const std::string allowed =
        audit_records(daemon, "AUDIT_RPC=LaunchPattern AUDIT_DECISION=allowed NAMESPACE=tenant-a " +
                                  identity + " AUDIT_AUTH=mtls AUDIT_RESULT=OK");
    EXPECT_NE(allowed.find("audit: LaunchPattern allowed"), std::string::npos)
        << allowed << sh("journalctl --no-pager -o verbose AUDIT_RPC=LaunchPattern").output;
    const std::string refused =
        audit_records(daemon, "AUDIT_RPC=LaunchPattern AUDIT_DECISION=denied NAMESPACE=tenant-b " +
                                  identity + " AUDIT_RESULT=PERMISSION_DENIED");
    EXPECT_NE(refused.find("audit: LaunchPattern denied"), std::string::npos)
        << refused << sh("journalctl --no-pager -o verbose AUDIT_RPC=LaunchPattern").output;
    // The refused handshakes made no call, hence no record; the expired
    // certificate's name appears nowhere.
    const std::string all = sh("journalctl --no-pager -o verbose _PID=" + std::to_string(daemon) +
                               " AUDIT_RPC=LaunchPattern")
                                .output;
    EXPECT_EQ(all.find("pattern-launcher.test/expired"), std::string::npos) << all;

    // TerminatePattern is granted in tenant-a as well.
    CommandResult stopped = patternctl_tls(client("client-a"), "terminate ns:tenant-a:echo");
    EXPECT_EQ(stopped.exit_code, 0) << stopped.output;
}

}  // namespace
}  // namespace plsys
