// The request head parser of the HTTP/1.1 server (http_endpoint.h): bytes in,
// a request, "need more" or an error status out. Pure: no sockets, no loop,
// so that every case is tested in-process (tests/unit/http_parser_test.cc).
//
// What it accepts (RFC 9112): optional empty lines, then
// `method SP request-target SP HTTP/1.x`, header fields `name: value`
// (names are tokens; values are not interpreted), an empty line. Bare LF
// line ends are accepted. Only GET and HEAD are served; the target is a path
// (origin-form) or an absolute URI whose path is taken (absolute-form).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace launcher {

enum class HttpMethod { kGet, kHead };  // all that is served

struct HttpRequest {
    HttpMethod method = HttpMethod::kGet;
    std::string path;   // without the query
    std::string query;  // after '?', may be empty
};

struct HttpParseResult {
    enum class Outcome {
        kNeedMore,  // no complete head yet, and still within the size limit
        kRequest,   // `request` holds it; the head is `head_bytes` long
        kError,     // answer `status` (400, 405, 431, 505) and close
    };
    Outcome outcome = Outcome::kNeedMore;
    HttpRequest request;
    // kRequest: the length of the head, blank line included. What follows
    // is a body or the next request of a pipelining client.
    std::size_t head_bytes = 0;
    int status = 0;      // kError
    std::string detail;  // kError: why, for the response body
};

// Parses the request head at the start of `input`, which holds everything
// received on the connection so far. A head longer than `max_head_bytes`
// (blank line included), or more than that many bytes without a complete
// head, is a 431 (exactly that many still wait: the head can then only
// complete over the limit, so the 431 comes with the next byte).
HttpParseResult parse_http_request(std::string_view input, std::size_t max_head_bytes);

}  // namespace launcher
