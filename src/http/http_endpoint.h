// A minimal HTTP/1.1 server on the event loop, for /metrics and /health.
//
// It serves a listening socket it is given (bound by bind_http_listener, or
// inherited from systemd socket activation) and never binds itself. Each
// connection: read the request head (at most 8 KiB, else 431), accept GET
// and HEAD only (405 otherwise), route by path (the query is ignored; 404
// for unknown paths), answer with Content-Length and `Connection: close`,
// then half-close and discard whatever the client still sends until it
// closes. A connection gets 5 s for its request head and 5 s of inactivity
// while its response is written; it never blocks the loop. The head parser
// is http_request_parser.h; out of fds, accepting pauses (accept_backoff.h).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "common/accept_backoff.h"
#include "common/event_loop.h"
#include "http/http_request_parser.h"
#include "sandbox/unique_fd.h"

namespace launcher {

struct HttpResponse {
    int status = 200;
    std::string content_type = "text/plain; charset=utf-8";
    std::string body;
};

class HttpEndpoint {
public:
    // Runs on the loop thread; an exception becomes a 500.
    using Handler = std::function<HttpResponse(const HttpRequest&)>;

    struct Options {
        std::size_t max_head_bytes = 8192;
        std::chrono::milliseconds head_timeout{5000};    // from accept to a complete head
        std::chrono::milliseconds write_timeout{5000};   // without progress while answering
        std::chrono::milliseconds linger_timeout{2000};  // draining after the response
        std::size_t max_connections = 64;                // more wait in the listen backlog
    };

    // Takes `listener` (a listening stream socket: TCP or unix) and starts
    // accepting on `loop`. `name` is for log lines ("metrics"). Throws
    // SysError if `listener` is not a listening socket.
    HttpEndpoint(EventLoop& loop, sandbox::UniqueFd listener, std::string name);
    HttpEndpoint(EventLoop& loop, sandbox::UniqueFd listener, std::string name, Options options);
    // Closes the listener and every connection. Loop thread.
    ~HttpEndpoint();
    HttpEndpoint(const HttpEndpoint&) = delete;
    HttpEndpoint& operator=(const HttpEndpoint&) = delete;

    // `path` starts with '/'; exact match.
    void route(const std::string& path, Handler handler);

    // The TCP port of the listener (0 for a unix socket).
    int port() const;
    // "127.0.0.1:9092" or "unix:/run/..." for logs.
    std::string address() const;
    std::size_t open_connections() const { return connections_.size(); }

private:
    struct Connection;
    // From callbacks: never throw; on trouble, try again a little later.
    void resume_accepting();
    bool watch(Connection& c, std::uint32_t events);
    void on_connection(sandbox::UniqueFd fd);
    void on_event(std::uint64_t id, std::uint32_t events);
    void on_timeout(std::uint64_t id);
    void read_head(Connection& c);
    void respond(Connection& c, int status, const std::string& content_type, std::string body,
                 bool head_only, const std::string& extra_headers = {});
    void respond_to(Connection& c, const HttpParseResult& parsed);
    void write_some(Connection& c);
    void drain(Connection& c);
    void close(std::uint64_t id);
    void arm_timer(Connection& c, std::chrono::milliseconds delay);

    EventLoop& loop_;
    sandbox::UniqueFd listener_;
    std::string name_;
    Options options_;
    std::map<std::string, Handler> routes_;
    std::map<std::uint64_t, std::unique_ptr<Connection>> connections_;
    std::uint64_t next_id_ = 1;
    // Last: destroyed first, so that no accept callback sees a dying endpoint.
    std::unique_ptr<AcceptBackoff> acceptor_;
};

// A TCP listening socket on `address`:`port` (an IPv4 or IPv6 literal; port
// 0 picks a free one), non-blocking and close-on-exec, SO_REUSEADDR.
// Throws SysError ("bind 127.0.0.1:9092: Address already in use").
sandbox::UniqueFd bind_http_listener(const std::string& address, int port);

// The reason phrase of an HTTP status code ("Not Found").
const char* http_reason(int status);

}  // namespace launcher
