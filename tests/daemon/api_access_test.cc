// Who may drive the launcher, attacked through the real daemon: unix peers
// told apart by the kernel (an unprivileged uid, a group member, root inside
// a pattern's cgroup), mutual TLS with certificates made by
// tests/fixtures/make_test_pki.sh (each client gets exactly its grants; none,
// another CA and an expired one are refused), JWT bearer tokens signed here
// with the openssl CLI, and the audit record each call leaves.
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "http_client.h"
#include "test_daemon.h"

namespace pltest {
namespace {

namespace fs = std::filesystem;

std::string read_text(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

// The test PKI, made once per test binary run.
const std::string& pki() {
    static const std::string dir = [] {
        std::string d = "/tmp/pl-pki-" + std::to_string(::getpid());
        CommandResult r = run_command({"/bin/sh", PL_MAKE_TEST_PKI, d});
        if (r.exit_code != 0) ADD_FAILURE() << "make_test_pki.sh: " << r.out << r.err;
        return d;
    }();
    return dir;
}

// A stub over mutual TLS to 127.0.0.1:port. `client` names the key pair in
// the PKI ("client-a"); "" presents no certificate.
std::unique_ptr<pb::PatternLauncher::Stub> tls_stub(int port, const std::string& client) {
    grpc::SslCredentialsOptions options;
    options.pem_root_certs = read_text(pki() + "/ca.crt");
    if (!client.empty()) {
        options.pem_cert_chain = read_text(pki() + "/" + client + ".crt");
        options.pem_private_key = read_text(pki() + "/" + client + ".key");
    }
    grpc::ChannelArguments args;
    args.SetSslTargetNameOverride("localhost");
    // A fresh connection per stub: no subchannel shared between identities.
    args.SetInt("grpc.use_local_subchannel_pool", 1);
    return pb::PatternLauncher::NewStub(grpc::CreateCustomChannel(
        "127.0.0.1:" + std::to_string(port), grpc::SslCredentials(options), args));
}

grpc::Status launch_on(pb::PatternLauncher::Stub& stub, const std::string& ns,
                       pb::LaunchResponse* out, const std::string& token = "",
                       const std::string& pattern = "echo") {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
    pb::LaunchRequest req;
    req.set_pattern_name(pattern);
    req.set_isolation(pb::ISOLATION_NAMESPACE);
    req.set_namespace_(ns);
    return stub.LaunchPattern(&ctx, req, out);
}

grpc::Status list_on(pb::PatternLauncher::Stub& stub, pb::ListPatternsResponse* out,
                     const std::string& token = "") {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
    return stub.ListPatterns(&ctx, pb::ListPatternsRequest(), out);
}

std::vector<std::string> listed_ids(const pb::ListPatternsResponse& r) {
    std::vector<std::string> ids;
    for (const auto& p : r.patterns())
        ids.push_back(p.process_id());
    std::sort(ids.begin(), ids.end());
    return ids;
}

// Every audit record the daemon wrote so far, parsed (a line that is not
// JSON fails the test).
std::vector<nlohmann::json> audit_records(const TestDaemon& d) {
    std::vector<nlohmann::json> out;
    std::istringstream in(read_text(d.audit_log_path()));
    std::string line;
    while (std::getline(in, line)) {
        auto j = nlohmann::json::parse(line, nullptr, false);
        EXPECT_FALSE(j.is_discarded()) << "not JSON: " << line;
        if (!j.is_discarded()) out.push_back(j);
    }
    return out;
}

// The records of `rpc` whose identity contains `who`.
std::vector<nlohmann::json> records_of(const TestDaemon& d, const std::string& rpc,
                                       const std::string& who) {
    std::vector<nlohmann::json> out;
    for (const auto& r : audit_records(d)) {
        if (r.value("rpc", "") == rpc && r.value("identity", "").find(who) != std::string::npos)
            out.push_back(r);
    }
    return out;
}

// patternctl as another user: setpriv(1) drops to uid/gid 65534 with the
// given supplementary groups (empty: none).
CommandResult patternctl_as_nobody(const TestDaemon& d, const std::vector<std::string>& groups,
                                   const std::vector<std::string>& args) {
    std::vector<std::string> argv{"/usr/bin/setpriv", "--reuid=65534", "--regid=65534"};
    if (groups.empty()) {
        argv.push_back("--clear-groups");
    } else {
        std::string list;
        for (const auto& g : groups)
            list += (list.empty() ? "" : ",") + g;
        argv.push_back("--groups=" + list);
    }
    argv.push_back(PL_PATTERNCTL);
    argv.push_back("--socket");
    argv.push_back(d.socket());
    argv.insert(argv.end(), args.begin(), args.end());
    return run_command(argv);
}

// The socket is 0660 root:pattern-launcher, so an unprivileged peer is
// normally stopped by the file mode before the policy is asked. Opening it
// lets these tests attack the policy itself (defence in depth).
void open_socket_to_everyone(const TestDaemon& d) {
    ASSERT_EQ(::chmod(d.socket().c_str(), 0666), 0);
}

std::string base64url(const std::string& in) {
    static const char* table = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::string out;
    std::size_t i = 0;
    for (; i + 2 < in.size(); i += 3) {
        unsigned v = (static_cast<unsigned char>(in[i]) << 16) |
                     (static_cast<unsigned char>(in[i + 1]) << 8) |
                     static_cast<unsigned char>(in[i + 2]);
        for (int k = 3; k >= 0; --k)
            out += table[(v >> (6 * k)) & 63];
    }
    if (i + 1 == in.size()) {
        unsigned v = static_cast<unsigned char>(in[i]) << 16;
        out += table[(v >> 18) & 63];
        out += table[(v >> 12) & 63];
    } else if (i + 2 == in.size()) {
        unsigned v = (static_cast<unsigned char>(in[i]) << 16) |
                     (static_cast<unsigned char>(in[i + 1]) << 8);
        out += table[(v >> 18) & 63];
        out += table[(v >> 12) & 63];
        out += table[(v >> 6) & 63];
    }
    return out;
}

// A token issuer for the tests: an RSA key made with the openssl CLI, its
// public half in a PEM file the daemon reads as tokens.keys.
class Issuer {
public:
    explicit Issuer(const std::string& dir) : dir_(dir) {
        fs::create_directories(dir_);
        key_ = dir_ + "/issuer.key";
        pub_ = dir_ + "/issuer.pub.pem";
        EXPECT_EQ(run_command({"/usr/bin/openssl", "genrsa", "-out", key_, "2048"}).exit_code, 0);
        EXPECT_EQ(run_command({"/usr/bin/openssl", "rsa", "-in", key_, "-pubout", "-out", pub_})
                      .exit_code,
                  0);
    }
    const std::string& public_pem() const { return pub_; }

    static std::int64_t now() {
        return std::chrono::duration_cast<std::chrono::seconds>(
                   std::chrono::system_clock::now().time_since_epoch())
            .count();
    }
    static nlohmann::json claims(const std::string& sub) {
        return {{"iss", "https://issuer.test"},
                {"aud", "pattern-launcher"},
                {"sub", sub},
                {"iat", now()},
                {"exp", now() + 300}};
    }
    // header.payload.signature, RS256 over the given claims.
    std::string sign(const nlohmann::json& payload, const std::string& alg = "RS256") const {
        const std::string input = base64url(nlohmann::json{{"alg", alg}, {"typ", "JWT"}}.dump()) +
                                  "." + base64url(payload.dump());
        const std::string data = dir_ + "/input", sig = dir_ + "/sig";
        std::ofstream(data, std::ios::binary) << input;
        EXPECT_EQ(run_command({"/usr/bin/openssl", "dgst", "-sha256", "-sign", key_, "-binary",
                               "-out", sig, data})
                      .exit_code,
                  0);
        return input + "." + base64url(read_text(sig));
    }

private:
    std::string dir_, key_, pub_;
};

grpc::Status health_on(pb::PatternLauncher::Stub& stub, pb::HealthResponse* out,
                       const std::string& token = "") {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
    pb::HealthRequest req;
    req.set_include_processes(true);
    return stub.Health(&ctx, req, out);
}

// ---- unix peers ------------------------------------------------------------------

TEST(ApiAccess, UnprivilegedUnixPeerIsDeniedByTheDefaultPolicy) {
    TestDaemon d;
    d.add_pattern("echo", echo_manifest(), PL_ECHO);
    d.start();
    open_socket_to_everyone(d);

    CommandResult r = patternctl_as_nobody(d, {}, {"list"});
    EXPECT_NE(r.exit_code, 0) << r.out << r.err;
    EXPECT_NE((r.out + r.err).find("PERMISSION_DENIED"), std::string::npos) << r.out << r.err;
    EXPECT_NE((r.out + r.err).find("uid 65534"), std::string::npos) << r.out << r.err;

    // Root (this test) may.
    EXPECT_EQ(d.list().patterns_size(), 0);
    const auto denied = records_of(d, "ListPatterns", "uid 65534");
    ASSERT_EQ(denied.size(), 1u) << read_text(d.audit_log_path());
    EXPECT_EQ(denied[0]["decision"], "denied");
    EXPECT_EQ(denied[0]["result"], "PERMISSION_DENIED");
    EXPECT_EQ(denied[0]["auth"], "unix");
    const auto allowed = records_of(d, "ListPatterns", "uid 0");
    ASSERT_FALSE(allowed.empty());
    EXPECT_EQ(allowed.back()["decision"], "allowed");
    EXPECT_EQ(allowed.back()["grant"], "default: root");
}

TEST(ApiAccess, GroupMemberGetsTheGroupsGrantsAndNoMore) {
    TestDaemon d;
    d.add_pattern("echo", echo_manifest(), PL_ECHO);
    d.add_api("policy:");
    d.add_api("  - {name: operators, match: {uid: 0}, rpcs: ['*']}");
    d.add_api("  - {name: viewers, match: {group: '4242'}, rpcs: [ListPatterns, Health]}");
    d.start();
    open_socket_to_everyone(d);

    CommandResult member = patternctl_as_nobody(d, {"4242"}, {"list"});
    EXPECT_EQ(member.exit_code, 0) << member.out << member.err;
    CommandResult stranger = patternctl_as_nobody(d, {"4243"}, {"list"});
    EXPECT_NE(stranger.exit_code, 0);
    EXPECT_NE((stranger.out + stranger.err).find("PERMISSION_DENIED"), std::string::npos);
    // The member may list, not launch.
    CommandResult launch =
        patternctl_as_nobody(d, {"4242"}, {"launch", "echo", "--namespace", "tenant-a"});
    EXPECT_NE(launch.exit_code, 0);
    EXPECT_NE((launch.out + launch.err).find("LaunchPattern"), std::string::npos)
        << launch.out << launch.err;
    EXPECT_EQ(d.list().patterns_size(), 0);
    const auto records = records_of(d, "ListPatterns", "uid 65534");
    ASSERT_EQ(records.size(), 2u);
    EXPECT_EQ(records[0]["grant"], "viewers");
}

TEST(ApiAccess, RootInsideAPatternsCgroupIsNeverAuthorized) {
    TestDaemon d;
    d.add_pattern("echo", echo_manifest(), PL_ECHO);
    d.start();
    pb::LaunchResponse launched;
    ASSERT_TRUE(d.launch("echo", pb::ISOLATION_NAMESPACE, "tenant-a", "", &launched).ok());
    const std::string cgroup = cgroup_of(launched.pid());
    ASSERT_FALSE(cgroup.empty());

    // A root process that joins the pattern's cgroup, as a pattern's own
    // child would be, then calls the API with root's credentials.
    int out_pipe[2];
    ASSERT_EQ(::pipe(out_pipe), 0);
    pid_t child = ::fork();
    if (child == 0) {
        ::dup2(out_pipe[1], 1);
        ::dup2(out_pipe[1], 2);
        std::ofstream(cgroup + "/cgroup.procs") << ::getpid();
        ::execl(PL_PATTERNCTL, PL_PATTERNCTL, "--socket", d.socket().c_str(), "terminate",
                launched.process_id().c_str(), nullptr);
        ::_exit(127);
    }
    ::close(out_pipe[1]);
    std::string output;
    char buf[512];
    for (ssize_t n; (n = ::read(out_pipe[0], buf, sizeof buf)) > 0;)
        output.append(buf, static_cast<std::size_t>(n));
    ::close(out_pipe[0]);
    int status = 0;
    ::waitpid(child, &status, 0);
    EXPECT_NE(WEXITSTATUS(status), 0) << output;
    EXPECT_NE(output.find("PERMISSION_DENIED"), std::string::npos) << output;
    EXPECT_NE(output.find("inside the tenants' cgroup subtree"), std::string::npos) << output;
    // The pattern still runs.
    EXPECT_EQ(d.status(launched.process_id()).state(), pb::STATE_RUNNING);
    const auto denied = records_of(d, "TerminatePattern", "uid 0");
    ASSERT_EQ(denied.size(), 1u);
    EXPECT_EQ(denied[0]["decision"], "denied");
}

// ---- mutual TLS ------------------------------------------------------------------

class TlsApi : public ::testing::Test {
protected:
    void SetUp() override {
        port_ = test_port(0);
        d_.add_pattern("echo", echo_manifest(), PL_ECHO);
        d_.add_api("tls:");
        d_.add_api("  listen: 127.0.0.1:" + std::to_string(port_));
        // A copy the reload test may replace.
        fs::create_directories(d_.dir() + "/tls");
        fs::copy_file(pki() + "/server.crt", d_.dir() + "/tls/server.crt");
        fs::copy_file(pki() + "/server.key", d_.dir() + "/tls/server.key");
        d_.add_api("  cert: " + d_.dir() + "/tls/server.crt");
        d_.add_api("  key: " + d_.dir() + "/tls/server.key");
        d_.add_api("  client_ca: " + pki() + "/ca.crt");
        d_.add_api("policy:");
        d_.add_api("  - {name: operators, match: {uid: 0}, rpcs: ['*']}");
        d_.add_api("  - name: tenant-a");
        d_.add_api("    match: {certificate: 'spiffe://pattern-launcher.test/tenant-a'}");
        d_.add_api(
            "    rpcs: [LaunchPattern, ListPatterns, TerminatePattern, GetProcessStatus, Health]");
        d_.add_api("    namespaces: [tenant-a]");
        d_.add_api(
            "  - {name: auditor, match: {certificate: '*.clients.test'}, rpcs: "
            "[ListPatterns]}");
        d_.add_api("  - {name: prober, match: {certificate: cn-client}, rpcs: [Health]}");
        d_.start();
    }
    TestDaemon d_;
    int port_ = 0;
};

TEST_F(TlsApi, EachClientCertificateGetsExactlyItsGrants) {
    auto a = tls_stub(port_, "client-a");
    auto b = tls_stub(port_, "client-b");
    auto cn = tls_stub(port_, "client-cn");

    pb::LaunchResponse mine;
    grpc::Status s = launch_on(*a, "tenant-a", &mine);
    ASSERT_TRUE(s.ok()) << s.error_message();
    pb::LaunchResponse other;
    ASSERT_TRUE(d_.launch("echo", pb::ISOLATION_NAMESPACE, "tenant-b", "", &other).ok());

    // tenant-a may not launch into tenant-b; the message names who and what.
    pb::LaunchResponse ignored;
    s = launch_on(*a, "tenant-b", &ignored);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
    EXPECT_NE(s.error_message().find("cert spiffe://pattern-launcher.test/tenant-a"),
              std::string::npos)
        << s.error_message();
    EXPECT_NE(s.error_message().find("tenant-b"), std::string::npos) << s.error_message();

    // It sees only its own process.
    pb::ListPatternsResponse listed;
    ASSERT_TRUE(list_on(*a, &listed).ok());
    EXPECT_EQ(listed_ids(listed), std::vector<std::string>{"ns:tenant-a:echo"});
    pb::HealthResponse health;
    ASSERT_TRUE(health_on(*a, &health).ok());
    EXPECT_EQ(health.total_processes(), 1);
    {
        grpc::ClientContext ctx;
        pb::GetProcessStatusRequest req;
        req.set_process_id(other.process_id());
        pb::GetProcessStatusResponse status;
        ASSERT_TRUE(a->GetProcessStatus(&ctx, req, &status).ok());
        EXPECT_TRUE(status.not_found());
    }
    // ... and may not terminate tenant-b's.
    {
        grpc::ClientContext ctx;
        pb::TerminateRequest req;
        req.set_process_id(other.process_id());
        pb::TerminateResponse r;
        s = a->TerminatePattern(&ctx, req, &r);
        EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << s.error_message();
        EXPECT_EQ(d_.status(other.process_id()).state(), pb::STATE_RUNNING);
    }

    // The auditor (a DNS SAN) lists everything and launches nothing.
    listed.Clear();
    ASSERT_TRUE(list_on(*b, &listed).ok());
    EXPECT_EQ(listed_ids(listed),
              (std::vector<std::string>{"ns:tenant-a:echo", "ns:tenant-b:echo"}));
    s = launch_on(*b, "tenant-a", &ignored);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
    EXPECT_NE(s.error_message().find("cert b.clients.test"), std::string::npos);

    // The CN-only client may ask for health and nothing else.
    ASSERT_TRUE(health_on(*cn, &health).ok());
    s = list_on(*cn, &listed);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
    EXPECT_NE(s.error_message().find("cert cn-client"), std::string::npos);

    // Every call left its record, with the certificate identity.
    const auto a_launches =
        records_of(d_, "LaunchPattern", "spiffe://pattern-launcher.test/tenant-a");
    ASSERT_EQ(a_launches.size(), 2u);
    EXPECT_EQ(a_launches[0]["auth"], "mtls");
    EXPECT_EQ(a_launches[0]["transport"], "tls");
    EXPECT_EQ(a_launches[0]["result"], "OK");
    EXPECT_EQ(a_launches[0]["process_id"], "ns:tenant-a:echo");
    EXPECT_EQ(a_launches[1]["result"], "PERMISSION_DENIED");
    EXPECT_EQ(records_of(d_, "ListPatterns", "cert cn-client").size(), 1u);
}

TEST_F(TlsApi, NoCertificateAnotherCaAndAnExpiredOneAreRefused) {
    for (const std::string client : {"", "client-other", "client-expired"}) {
        auto stub = tls_stub(port_, client);
        pb::ListPatternsResponse listed;
        grpc::Status s = list_on(*stub, &listed);
        EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE)
            << "client '" << client << "': " << s.error_message();
    }
    // The good one still works, so the refusals were the certificates'.
    auto a = tls_stub(port_, "client-a");
    pb::ListPatternsResponse listed;
    EXPECT_TRUE(list_on(*a, &listed).ok());
}

TEST_F(TlsApi, PythonGrpcioClientWithACertificateIsServedItsGrants) {
    const std::string out_dir = d_.dir() + "/py";
    fs::create_directories(out_dir);
    CommandResult r = run_command({"/usr/bin/python3", PL_PY_CLIENT, "--port",
                                   std::to_string(port_), "--pki", pki(), "--client", "client-a",
                                   "--proto-root", PL_PROTO_DIR, "--out", out_dir});
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    // The script launches in tenant-a (allowed) and tenant-b (refused) and prints the codes.
    EXPECT_NE(r.out.find("launch tenant-a: OK ns:tenant-a:echo"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("launch tenant-b: PERMISSION_DENIED"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("list: ns:tenant-a:echo"), std::string::npos) << r.out;
}

std::string without_whitespace(std::string text) {
    std::erase_if(text, [](char c) { return std::isspace(static_cast<unsigned char>(c)); });
    return text;
}

// The certificate the server presented on `stub`'s connection, PEM.
std::string server_certificate(pb::PatternLauncher::Stub& stub) {
    grpc::ClientContext ctx;
    pb::ListPatternsResponse listed;
    grpc::Status s = stub.ListPatterns(&ctx, pb::ListPatternsRequest(), &listed);
    EXPECT_TRUE(s.ok()) << s.error_message();
    auto auth = ctx.auth_context();
    if (!auth) return {};
    auto values = auth->FindPropertyValues("x509_pem_cert");
    return values.empty() ? std::string() : std::string(values[0].data(), values[0].size());
}

TEST_F(TlsApi, SighupReloadsTheServerCertificateWithoutDroppingConnections) {
    auto before = tls_stub(port_, "client-a");
    ASSERT_EQ(without_whitespace(server_certificate(*before)),
              without_whitespace(read_text(pki() + "/server.crt")));

    auto reloads = [this] {
        std::size_t n = 0;
        for (std::size_t at = 0; (at = d_.log().find("reloaded", at)) != std::string::npos; ++at)
            ++n;
        return n;
    };
    auto sighup_and_wait = [&](std::size_t count) {
        ::kill(d_.pid(), SIGHUP);
        for (int i = 0; i < 200 && reloads() < count; ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        ASSERT_GE(reloads(), count) << d_.log();
    };
    fs::copy_file(pki() + "/server2.crt", d_.dir() + "/tls/server.crt",
                  fs::copy_options::overwrite_existing);
    fs::copy_file(pki() + "/server2.key", d_.dir() + "/tls/server.key",
                  fs::copy_options::overwrite_existing);
    sighup_and_wait(1);
    // New handshakes present the new certificate ...
    auto after = tls_stub(port_, "client-a");
    EXPECT_EQ(without_whitespace(server_certificate(*after)),
              without_whitespace(read_text(pki() + "/server2.crt")));
    // ... and the connection made before still serves calls.
    pb::ListPatternsResponse listed;
    EXPECT_TRUE(list_on(*before, &listed).ok());

    // A broken key is refused at reload; the last good material keeps serving.
    std::ofstream(d_.dir() + "/tls/server.key") << "not a key\n";
    sighup_and_wait(2);
    EXPECT_NE(d_.log().find("API credentials not reloaded"), std::string::npos) << d_.log();
    auto third = tls_stub(port_, "client-a");
    EXPECT_EQ(without_whitespace(server_certificate(*third)),
              without_whitespace(read_text(pki() + "/server2.crt")));
}

// ---- bearer tokens ---------------------------------------------------------------

class TokenApi : public ::testing::Test {
protected:
    TokenApi() : issuer_("/tmp/pl-issuer-" + std::to_string(::getpid())) {}
    void SetUp() override {
        d_.add_pattern("echo", echo_manifest(), PL_ECHO);
        d_.add_api("tokens:");
        d_.add_api("  issuer: https://issuer.test");
        d_.add_api("  audience: pattern-launcher");
        d_.add_api("  keys: " + issuer_.public_pem());
        d_.add_api("policy:");
        d_.add_api("  - name: proxies");
        d_.add_api("    match: {token_subject: 'proxy-*'}");
        d_.add_api("    rpcs: [LaunchPattern, ListPatterns]");
        d_.add_api("    namespaces: ['*']");
        d_.start();
    }
    std::string with(const std::function<void(nlohmann::json&)>& edit) {
        nlohmann::json c = Issuer::claims("proxy-1");
        edit(c);
        return issuer_.sign(c);
    }
    Issuer issuer_;
    TestDaemon d_;
};

TEST_F(TokenApi, TokensAreAcceptedOrRefusedByIssuerAudienceExpirySignatureAndAlgorithm) {
    auto stub = d_.connect();
    pb::LaunchResponse r;
    const std::string good = with([](nlohmann::json&) {});
    grpc::Status s = launch_on(*stub, "tenant-a", &r, good);
    ASSERT_TRUE(s.ok()) << s.error_message();

    struct Case {
        const char* name;
        std::string token;
        const char* reason;
    };
    std::string forged = good;
    forged[forged.size() - 5] = forged[forged.size() - 5] == 'A' ? 'B' : 'A';
    const std::string unsigned_token = base64url(R"({"alg":"none","typ":"JWT"})") + "." +
                                       base64url(Issuer::claims("proxy-1").dump()) + ".";
    const std::vector<Case> refused{
        {"wrong issuer", with([](auto& c) { c["iss"] = "https://evil.test"; }), "iss"},
        {"wrong audience", with([](auto& c) { c["aud"] = "someone-else"; }), "aud"},
        {"expired", with([](auto& c) { c["exp"] = Issuer::now() - 3600; }), "expired"},
        {"bad signature", forged, "signature"},
        {"alg none", unsigned_token, "alg"},
    };
    for (const Case& c : refused) {
        s = launch_on(*stub, "tenant-b", &r, c.token);
        EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << c.name;
        EXPECT_NE(s.error_message().find(c.reason), std::string::npos)
            << c.name << ": " << s.error_message();
        // Never the token itself.
        EXPECT_EQ(s.error_message().find(c.token.substr(0, 20)), std::string::npos) << c.name;
    }
    // A subject the policy does not know is authenticated, but has no grant.
    s = launch_on(*stub, "tenant-b", &r, with([](auto& c) { c["sub"] = "intruder"; }));
    EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << s.error_message();
    EXPECT_NE(s.error_message().find("sub=intruder"), std::string::npos);
    // The token's namespaces claim narrows the grant.
    const std::string narrow =
        with([](auto& c) { c["prism_namespaces"] = nlohmann::json::array({"tenant-a"}); });
    EXPECT_TRUE(launch_on(*stub, "tenant-a", &r, narrow).ok());
    s = launch_on(*stub, "tenant-c", &r, narrow);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << s.error_message();
    EXPECT_NE(s.error_message().find("namespaces claim"), std::string::npos);

    // Nothing of the refused ones started.
    pb::ListPatternsResponse listed;
    ASSERT_TRUE(list_on(*stub, &listed, good).ok());
    EXPECT_EQ(listed_ids(listed), std::vector<std::string>{"ns:tenant-a:echo"});

    // Audit: the refusals are there, as unauthenticated calls; no token in the file.
    int unauthenticated = 0;
    for (const auto& rec : audit_records(d_)) {
        if (rec.value("result", "") == "UNAUTHENTICATED") {
            ++unauthenticated;
            EXPECT_EQ(rec["auth"], "none");
        }
    }
    EXPECT_EQ(unauthenticated, static_cast<int>(refused.size()));
    const std::string file = read_text(d_.audit_log_path());
    EXPECT_EQ(file.find(good.substr(good.rfind('.') + 1)), std::string::npos);
    EXPECT_EQ(records_of(d_, "LaunchPattern", "token sub=proxy-1").front()["auth"], "jwt");
}

TEST_F(TokenApi, RootWithoutATokenIsStillRootButATokenReplacesItsIdentity) {
    auto stub = d_.connect();
    pb::ListPatternsResponse listed;
    // The configured policy has no uid grant: root over the unix socket has none.
    grpc::Status s = list_on(*stub, &listed);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
    EXPECT_TRUE(list_on(*stub, &listed, with([](auto&) {})).ok());
}

// ---- plain TCP, config values, metrics ---------------------------------------------

TEST(ApiAccess, PlainTcpIsRefusedUnlessExplicitlyAllowedAndCarriesNoIdentity) {
    {
        TestDaemon d;
        d.add_pattern("echo", echo_manifest(), PL_ECHO);
        d.add_config("grpc_port: " + std::to_string(test_port(1)));
        d.spawn();
        int status = 0;
        for (int i = 0; i < 200 && ::waitpid(d.pid(), &status, WNOHANG) == 0; ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        EXPECT_NE(d.log().find("a TCP listener without TLS is refused"), std::string::npos)
            << d.log();
    }
    TestDaemon d;
    d.add_pattern("echo", echo_manifest(), PL_ECHO);
    const int port = test_port(2);
    d.add_config("grpc_port: " + std::to_string(port));
    d.add_api("allow_insecure_loopback: true");
    d.start();
    auto stub = pb::PatternLauncher::NewStub(grpc::CreateChannel(
        "127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));
    pb::ListPatternsResponse listed;
    grpc::Status s = list_on(*stub, &listed);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << s.error_message();
    EXPECT_NE(s.error_message().find("plain TCP"), std::string::npos) << s.error_message();
}

TEST(ApiAccess, ConfigValuesNeverReachTheAuditTrailOrTheLog) {
    TestDaemon d;
    d.add_pattern("echo", echo_manifest(), PL_ECHO);
    const int metrics_port = test_port(3);
    d.add_config("metrics: {port: " + std::to_string(metrics_port) + "}");
    d.start();
    open_socket_to_everyone(d);
    pb::LaunchResponse r;
    const std::string secret = "s3cr3t-" + std::to_string(::getpid());
    (void)d.launch("echo", pb::ISOLATION_NAMESPACE, "tenant-a", "", &r,
                   {{"API_SECRET", secret}, {"LD_PRELOAD", "/tmp/" + secret + ".so"}});
    (void)patternctl_as_nobody(
        d, {}, {"launch", "echo", "--namespace", "tenant-a", "--config", "API_SECRET=" + secret});
    const auto launches = records_of(d, "LaunchPattern", "");
    ASSERT_EQ(launches.size(), 2u);
    EXPECT_EQ(launches[0]["config_keys"], "API_SECRET,LD_PRELOAD");
    EXPECT_EQ(read_text(d.audit_log_path()).find(secret), std::string::npos);
    EXPECT_EQ(d.log().find(secret), std::string::npos);

    // The refusal is counted per RPC.
    Reply metrics = http_get(metrics_port, "/metrics");
    EXPECT_NE(metrics.body.find("pattern_launcher_api_denials_total{code=\"PERMISSION_DENIED\",rpc="
                                "\"LaunchPattern\"} 1"),
              std::string::npos)
        << metrics.body;
}

}  // namespace
}  // namespace pltest
