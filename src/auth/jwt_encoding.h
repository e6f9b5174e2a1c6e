// The encodings JWS (RFC 7515) and JWK (RFC 7517) use, shared by the key set
// and the verifier: unpadded base64url, and how an untrusted value (a header
// field, a claim) may appear in an error message.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace launcher::auth {

// Base64url without padding (RFC 7515 section 2 and appendix C), strictly:
// only [A-Za-z0-9_-], no '=', no whitespace, a length that is not 1 modulo 4,
// and the unused low bits of the last character zero, so that every byte
// string has exactly one accepted encoding (no malleable tokens). nullopt
// when `text` is not such an encoding.
inline std::optional<std::string> base64url_decode(std::string_view text) {
    auto value_of = [](char c) -> int {
        if (c >= 'A' && c <= 'Z') return c - 'A';
        if (c >= 'a' && c <= 'z') return c - 'a' + 26;
        if (c >= '0' && c <= '9') return c - '0' + 52;
        if (c == '-') return 62;
        if (c == '_') return 63;
        return -1;
    };
    if (text.size() % 4 == 1) return std::nullopt;
    std::string out;
    out.reserve(text.size() / 4 * 3 + 2);
    std::uint32_t bits = 0;
    int pending = 0;  // bits in `bits` not yet written out
    for (const char c : text) {
        const int v = value_of(c);
        if (v < 0) return std::nullopt;
        bits = (bits << 6) | static_cast<std::uint32_t>(v);
        pending += 6;
        if (pending >= 8) {
            pending -= 8;
            out.push_back(static_cast<char>((bits >> pending) & 0xffu));
        }
    }
    // 2 or 4 bits left over after the last full byte must be zero.
    if ((bits & ((1u << pending) - 1u)) != 0) return std::nullopt;
    return out;
}

inline std::string base64url_encode(std::string_view bytes) {
    static constexpr char kAlphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    std::uint32_t bits = 0;
    int pending = 0;
    for (const char c : bytes) {
        bits = (bits << 8) | static_cast<unsigned char>(c);
        pending += 8;
        while (pending >= 6) {
            pending -= 6;
            out.push_back(kAlphabet[(bits >> pending) & 0x3fu]);
        }
    }
    if (pending > 0) out.push_back(kAlphabet[(bits << (6 - pending)) & 0x3fu]);
    return out;
}

// `value` in double quotes for an error message: quotes, backslashes and
// bytes outside printable ASCII escaped (a claim must not forge or cut a log
// line), and cut after `limit` bytes with "..." (a claim must not flood one).
inline std::string quoted_value(std::string_view value, std::size_t limit = 64) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out = "\"";
    for (std::size_t i = 0; i < value.size() && i < limit; ++i) {
        const auto c = static_cast<unsigned char>(value[i]);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c < 0x20 || c >= 0x7f) {
            out += "\\x";
            out += kHex[c >> 4];
            out += kHex[c & 0xf];
        } else {
            out += static_cast<char>(c);
        }
    }
    out += '"';
    if (value.size() > limit) out += "...";
    return out;
}

}  // namespace launcher::auth
