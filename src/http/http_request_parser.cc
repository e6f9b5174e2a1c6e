#include "http/http_request_parser.h"

#include <utility>
#include <vector>

namespace launcher {
namespace {

// RFC 9110 token characters (methods, header names).
bool is_tchar(char c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
    return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool is_token(std::string_view s) {
    if (s.empty()) return false;
    for (char c : s) {
        if (!is_tchar(c)) return false;
    }
    return true;
}

// Where the head ends (just past its blank line), or npos. Bare LF line
// ends are accepted, as RFC 9112 allows.
std::size_t head_end(std::string_view in) {
    const std::size_t crlf = in.find("\r\n\r\n");
    const std::size_t lf = in.find("\n\n");
    std::size_t end = std::string_view::npos;
    if (crlf != std::string_view::npos) end = crlf + 4;
    if (lf != std::string_view::npos && (end == std::string_view::npos || lf + 2 < end))
        end = lf + 2;
    return end;
}

// Splits the head into lines without their CR LF / LF.
std::vector<std::string_view> head_lines(std::string_view head) {
    std::vector<std::string_view> lines;
    std::size_t pos = 0;
    while (pos < head.size()) {
        std::size_t nl = head.find('\n', pos);
        if (nl == std::string_view::npos) nl = head.size();
        std::string_view line = head.substr(pos, nl - pos);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        lines.push_back(line);
        pos = nl + 1;
    }
    return lines;
}

HttpParseResult error(int status, std::string detail) {
    HttpParseResult out;
    out.outcome = HttpParseResult::Outcome::kError;
    out.status = status;
    out.detail = std::move(detail);
    return out;
}

// A complete head: its request line and header fields.
HttpParseResult parse_head(std::string_view head) {
    std::vector<std::string_view> lines = head_lines(head);
    std::size_t first = 0;
    // A server SHOULD ignore empty lines before the request line.
    while (first < lines.size() && lines[first].empty())
        ++first;
    if (first == lines.size()) return error(400, "empty request");
    std::string_view line = lines[first];

    // method SP request-target SP HTTP-version
    const std::size_t sp1 = line.find(' ');
    const std::size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) {
        return error(400, "malformed request line");
    }
    const std::string_view method = line.substr(0, sp1);
    const std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    const std::string_view version = line.substr(sp2 + 1);
    if (!is_token(method)) return error(400, "malformed method");
    if (version.size() != 8 || version.substr(0, 5) != "HTTP/" || version[6] != '.' ||
        version[5] < '0' || version[5] > '9' || version[7] < '0' || version[7] > '9') {
        return error(400, "malformed HTTP version");
    }
    if (target.empty()) return error(400, "empty request target");
    for (char c : target) {
        const auto u = static_cast<unsigned char>(c);
        if (u <= 0x20 || u >= 0x7f) return error(400, "invalid character in the request target");
    }
    for (std::size_t i = first + 1; i < lines.size(); ++i) {
        const std::string_view field = lines[i];
        if (field.empty()) break;
        const std::size_t colon = field.find(':');
        if (colon == std::string_view::npos || !is_token(field.substr(0, colon))) {
            return error(400, "malformed header field");
        }
    }
    if (version[5] != '1') return error(505, "only HTTP/1.x is served");
    HttpMethod served;
    if (method == "GET") {
        served = HttpMethod::kGet;
    } else if (method == "HEAD") {
        served = HttpMethod::kHead;
    } else {
        return error(405, "only GET and HEAD are served");
    }

    // absolute-form (http://host/path) -> its path; otherwise origin-form.
    std::string_view path = target;
    if (std::size_t scheme = target.find("://");
        scheme != std::string_view::npos && target[0] != '/') {
        const std::size_t slash = target.find('/', scheme + 3);
        path = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
    } else if (target[0] != '/') {
        return error(400, "the request target must be a path");
    }
    std::string_view query;
    if (std::size_t q = path.find('?'); q != std::string_view::npos) {
        query = path.substr(q + 1);
        path = path.substr(0, q);
    }
    HttpParseResult out;
    out.outcome = HttpParseResult::Outcome::kRequest;
    out.request.method = served;
    out.request.path = std::string(path);
    out.request.query = std::string(query);
    out.head_bytes = head.size();
    return out;
}

}  // namespace

HttpParseResult parse_http_request(std::string_view input, std::size_t max_head_bytes) {
    const std::size_t end = head_end(input);
    if (end == std::string_view::npos ? input.size() > max_head_bytes : end > max_head_bytes) {
        return error(431, "request head larger than " + std::to_string(max_head_bytes) + " bytes");
    }
    if (end == std::string_view::npos) return HttpParseResult{};
    return parse_head(input.substr(0, end));
}

}  // namespace launcher
