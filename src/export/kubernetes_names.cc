#include "export/kubernetes_names.h"

#include <cctype>
#include <cstdint>
#include <cstdio>

namespace launcher::kubernetes {
namespace {

bool alnum(char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

bool is_dns_label(std::string_view s, bool letter_first, std::size_t max) {
    if (s.empty() || s.size() > max || !alnum(s.front()) || !alnum(s.back())) return false;
    if (letter_first && !(s.front() >= 'a' && s.front() <= 'z')) return false;
    for (const char c : s) {
        if (!alnum(c) && c != '-') return false;
    }
    return true;
}

// FNV-1a (32 bits): stable across runs and builds, unlike std::hash.
std::string short_hash(std::string_view text) {
    std::uint32_t h = 2166136261u;
    for (const char c : text) {
        h ^= static_cast<unsigned char>(c);
        h *= 16777619u;
    }
    char out[9];
    std::snprintf(out, sizeof out, "%08x", h);
    return out;
}

}  // namespace

std::string dns_label(std::string_view text, bool letter_first, std::size_t max) {
    if (is_dns_label(text, letter_first, max)) return std::string(text);
    std::string base;
    for (const char c : text) {
        const char lower = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        base += alnum(lower) ? lower : '-';
    }
    if (letter_first && !base.empty() && !(base.front() >= 'a' && base.front() <= 'z'))
        base.insert(0, "p");
    const std::string suffix = "-" + short_hash(text);
    if (base.size() + suffix.size() > max) base.resize(max - suffix.size());
    while (!base.empty() && !alnum(base.back()))
        base.pop_back();
    while (!base.empty() && !alnum(base.front()))
        base.erase(0, 1);
    if (base.empty() || (letter_first && !(base.front() >= 'a' && base.front() <= 'z')))
        base.insert(0, "p");
    return base + suffix;
}

std::string label_value(std::string_view text) {
    const auto ok_inner = [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
    };
    bool ok = !text.empty() && text.size() <= 63 &&
              std::isalnum(static_cast<unsigned char>(text.front())) &&
              std::isalnum(static_cast<unsigned char>(text.back()));
    for (const char c : text)
        ok = ok && ok_inner(c);
    return ok ? std::string(text) : dns_label(text);
}

}  // namespace launcher::kubernetes
