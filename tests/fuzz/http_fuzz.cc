// Fuzz target: the HTTP/1.1 request head parser (parse_http_request). Pure
// and total: it must not throw, and its result must be consistent. The
// first input byte picks the head limit, so that the 431 paths are reached
// with short inputs too.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_support.h"
#include "http/http_request_parser.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const std::size_t max_head = data[0] < 128 ? 8192 : std::size_t{data[0]} - 100;
    const std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
    using Outcome = launcher::HttpParseResult::Outcome;
    const launcher::HttpParseResult result = launcher::parse_http_request(input, max_head);
    switch (result.outcome) {
        case Outcome::kNeedMore:
            // Exactly max_head bytes without a blank line still wait (as
            // http_parser_test pins): any completion is then over the limit,
            // so the 431 comes one byte later and the buffer stays bounded.
            fuzz::check(input.size() <= max_head, "need more beyond the head limit");
            break;
        case Outcome::kRequest:
            fuzz::check(result.head_bytes > 0 && result.head_bytes <= input.size() &&
                            result.head_bytes <= max_head,
                        "head_bytes out of range", std::to_string(result.head_bytes));
            fuzz::check(!result.request.path.empty() && result.request.path.front() == '/',
                        "a request path that is not a path", result.request.path);
            // The same head alone is the same request (nothing after it mattered).
            {
                const auto again =
                    launcher::parse_http_request(input.substr(0, result.head_bytes), max_head);
                fuzz::check(again.outcome == Outcome::kRequest &&
                                again.head_bytes == result.head_bytes &&
                                again.request.path == result.request.path &&
                                again.request.query == result.request.query,
                            "the head alone parses differently");
            }
            break;
        case Outcome::kError:
            fuzz::check(result.status == 400 || result.status == 405 || result.status == 431 ||
                            result.status == 505,
                        "unexpected status", std::to_string(result.status));
            break;
    }
    return 0;
}
