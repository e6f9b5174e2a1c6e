// The HTTP server's request head parser (pure: bytes in, result out), and
// one in-process test of the server itself out of fds.
#include "http/http_request_parser.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "common/event_loop.h"
#include "fd_table_filler.h"
#include "http/http_endpoint.h"

namespace {

using namespace std::chrono_literals;
using namespace std::string_literals;
using launcher::HttpParseResult;
using launcher::parse_http_request;
using Outcome = HttpParseResult::Outcome;

constexpr std::size_t kMax = 8192;

HttpParseResult parse(std::string_view input, std::size_t max = kMax) {
    return parse_http_request(input, max);
}

TEST(HttpRequestParser, ParsesAGetWithHeadersAndQuery) {
    const std::string head =
        "GET /metrics?name=x&y HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: */*\r\n\r\n";
    HttpParseResult r = parse(head);
    ASSERT_EQ(r.outcome, Outcome::kRequest) << r.detail;
    EXPECT_EQ(r.request.method, launcher::HttpMethod::kGet);
    EXPECT_EQ(r.request.path, "/metrics");
    EXPECT_EQ(r.request.query, "name=x&y");
    EXPECT_EQ(r.head_bytes, head.size());
}

TEST(HttpRequestParser, ParsesHeadAndHttp10WithoutHeaders) {
    HttpParseResult r = parse("HEAD /health HTTP/1.0\r\n\r\n");
    ASSERT_EQ(r.outcome, Outcome::kRequest) << r.detail;
    EXPECT_EQ(r.request.method, launcher::HttpMethod::kHead);
    EXPECT_EQ(r.request.path, "/health");
    EXPECT_EQ(r.request.query, "");
}

TEST(HttpRequestParser, NeedsMoreUntilTheBlankLineWhateverTheSplit) {
    const std::string head = "GET /health HTTP/1.1\r\nHost: x\r\nUser-Agent: t\r\n\r\n";
    // Every prefix, as if each read brought one byte more.
    for (std::size_t n = 0; n < head.size(); ++n) {
        HttpParseResult r = parse(std::string_view(head).substr(0, n));
        ASSERT_EQ(r.outcome, Outcome::kNeedMore) << "after " << n << " bytes: " << r.detail;
    }
    HttpParseResult r = parse(head);
    ASSERT_EQ(r.outcome, Outcome::kRequest) << r.detail;
    EXPECT_EQ(r.request.path, "/health");
}

TEST(HttpRequestParser, AcceptsBareLfLineEndsAndLeadingEmptyLines) {
    HttpParseResult lf = parse("GET /metrics HTTP/1.1\nHost: x\n\n");
    ASSERT_EQ(lf.outcome, Outcome::kRequest) << lf.detail;
    EXPECT_EQ(lf.request.path, "/metrics");
    EXPECT_EQ(lf.head_bytes, std::string("GET /metrics HTTP/1.1\nHost: x\n\n").size());

    HttpParseResult leading = parse("\r\nGET /metrics HTTP/1.1\r\n\r\n");
    ASSERT_EQ(leading.outcome, Outcome::kRequest) << leading.detail;
    EXPECT_EQ(leading.request.path, "/metrics");
}

TEST(HttpRequestParser, TakesThePathOfAnAbsoluteFormTarget) {
    HttpParseResult r = parse("GET http://127.0.0.1:9092/metrics?a=1 HTTP/1.1\r\n\r\n");
    ASSERT_EQ(r.outcome, Outcome::kRequest) << r.detail;
    EXPECT_EQ(r.request.path, "/metrics");
    EXPECT_EQ(r.request.query, "a=1");
    HttpParseResult root = parse("GET http://example HTTP/1.1\r\n\r\n");
    ASSERT_EQ(root.outcome, Outcome::kRequest) << root.detail;
    EXPECT_EQ(root.request.path, "/");
}

TEST(HttpRequestParser, StopsAtTheHeadSoPipelinedRequestsParseOneByOne) {
    const std::string first = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    const std::string second = "HEAD /health?full HTTP/1.1\r\n\r\n";
    const std::string both = first + second;
    HttpParseResult r1 = parse(both);
    ASSERT_EQ(r1.outcome, Outcome::kRequest) << r1.detail;
    EXPECT_EQ(r1.request.path, "/metrics");
    ASSERT_EQ(r1.head_bytes, first.size());
    HttpParseResult r2 = parse(std::string_view(both).substr(r1.head_bytes));
    ASSERT_EQ(r2.outcome, Outcome::kRequest) << r2.detail;
    EXPECT_EQ(r2.request.method, launcher::HttpMethod::kHead);
    EXPECT_EQ(r2.request.path, "/health");
    EXPECT_EQ(r2.request.query, "full");
    // A body after the head is not part of it.
    HttpParseResult body = parse("GET / HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi");
    ASSERT_EQ(body.outcome, Outcome::kRequest) << body.detail;
    EXPECT_EQ(body.head_bytes, std::string("GET / HTTP/1.1\r\nContent-Length: 2\r\n\r\n").size());
}

TEST(HttpRequestParser, OversizedHeadsAre431) {
    const std::string big = "GET / HTTP/1.1\r\nX-Big: " + std::string(kMax, 'a') + "\r\n\r\n";
    HttpParseResult complete = parse(big);
    EXPECT_EQ(complete.outcome, Outcome::kError);
    EXPECT_EQ(complete.status, 431);
    EXPECT_NE(complete.detail.find("8192"), std::string::npos) << complete.detail;

    // No blank line within the limit: no need to wait for more.
    HttpParseResult endless = parse(std::string(kMax + 1, 'G'));
    EXPECT_EQ(endless.outcome, Outcome::kError);
    EXPECT_EQ(endless.status, 431);
    EXPECT_EQ(parse(std::string(kMax, 'G')).outcome, Outcome::kNeedMore);

    // Exactly at the limit, blank line included, is fine.
    const std::string prefix = "GET / HTTP/1.1\r\nX: ";
    const std::string exact = prefix + std::string(64 - prefix.size() - 4, 'a') + "\r\n\r\n";
    ASSERT_EQ(exact.size(), 64u);
    EXPECT_EQ(parse(exact, 64).outcome, Outcome::kRequest);
    EXPECT_EQ(parse(exact, 63).status, 431);
}

TEST(HttpRequestParser, MalformedRequestLinesAndFieldsAre400) {
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"GET /metrics\r\n\r\n", "malformed request line"},
        {"GET  /metrics HTTP/1.1\r\n\r\n", "malformed request line"},
        {"GET  HTTP/1.1\r\n\r\n", "empty request target"},
        {"GET /metrics HTTP/1.1 extra\r\n\r\n", "malformed request line"},
        {"G(T /metrics HTTP/1.1\r\n\r\n", "malformed method"},
        {"GET /metrics HTTX/1.1\r\n\r\n", "malformed HTTP version"},
        {"GET /metrics HTTP/1.10\r\n\r\n", "malformed HTTP version"},
        {"GET /me\x01trics HTTP/1.1\r\n\r\n", "invalid character in the request target"},
        {"GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n", "invalid character in the request target"},
        {"GET metrics HTTP/1.1\r\n\r\n", "the request target must be a path"},
        {"GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n", "malformed header field"},
        {"GET /metrics HTTP/1.1\r\nBad Name: x\r\n\r\n", "malformed header field"},
        {"GET /metrics HTTP/1.1\r\n: empty name\r\n\r\n", "malformed header field"},
        {"\r\n\r\n", "empty request"},
        {"\x16\x03\x01\x02\x00\x01\x00\xff garbage\r\n\r\n"s, "malformed request line"},
    };
    for (const auto& [input, detail] : cases) {
        HttpParseResult r = parse(input);
        EXPECT_EQ(r.outcome, Outcome::kError) << input;
        EXPECT_EQ(r.status, 400) << input;
        EXPECT_EQ(r.detail, detail) << input;
    }
}

TEST(HttpRequestParser, OtherMethodsAre405AndOtherVersions505) {
    HttpParseResult post = parse("POST /metrics HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi");
    EXPECT_EQ(post.status, 405);
    EXPECT_EQ(parse("DELETE /health HTTP/1.1\r\n\r\n").status, 405);
    HttpParseResult h2 = parse("GET /metrics HTTP/2.0\r\n\r\n");
    EXPECT_EQ(h2.status, 505);
    EXPECT_EQ(h2.outcome, Outcome::kError);
    // A malformed head is a 400 before the method or version is judged.
    EXPECT_EQ(parse("POST /x HTTP/2.0\r\nno colon\r\n\r\n").status, 400);
}

// The server on a real loop: out of fds it pauses accepting (instead of
// spinning on level-triggered EMFILE) and answers once fds are free.
TEST(HttpEndpoint, OutOfFdsItPausesAcceptingAndAnswersOnceFdsAreFree) {
    launcher::EventLoop loop;
    launcher::HttpEndpoint endpoint(loop, launcher::bind_http_listener("127.0.0.1", 0), "test");
    endpoint.route("/ping", [](const launcher::HttpRequest&) {
        return launcher::HttpResponse{200, "text/plain", "pong\n"};
    });
    sandbox::UniqueFd client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<std::uint16_t>(endpoint.port()));

    pltest::FdTableFiller filler;
    ASSERT_TRUE(filler.full());
    // The handshake completes in the kernel; the connection waits in the backlog.
    ASSERT_EQ(::connect(client.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    const std::string request = "GET /ping HTTP/1.1\r\n\r\n";
    ASSERT_EQ(::send(client.get(), request.data(), request.size(), 0),
              static_cast<ssize_t>(request.size()));

    std::string reply;
    std::size_t connections_while_full = 0;
    timespec before{}, after{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &before);
    loop.add_timer(400ms, [&] {
        ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &after);
        connections_while_full = endpoint.open_connections();
        filler.release();
    });
    loop.add_fd(client.get(), EPOLLIN | EPOLLRDHUP, [&](std::uint32_t) {
        char buf[512];
        ssize_t n = ::recv(client.get(), buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0) reply.append(buf, static_cast<std::size_t>(n));
        if (n == 0 || reply.find("pong\n") != std::string::npos) {
            loop.remove_fd(client.get());
            loop.stop();
        }
    });
    loop.add_timer(10s, [&] { loop.stop(); });
    loop.run();
    filler.release();

    const double cpu_ms = static_cast<double>(after.tv_sec - before.tv_sec) * 1e3 +
                          static_cast<double>(after.tv_nsec - before.tv_nsec) / 1e6;
    EXPECT_EQ(connections_while_full, 0u);
    EXPECT_LT(cpu_ms, 80.0) << "the loop spun while out of fds";
    EXPECT_NE(reply.find("HTTP/1.1 200 OK\r\n"), std::string::npos) << reply;
    EXPECT_NE(reply.find("pong\n"), std::string::npos) << reply;
}

}  // namespace
