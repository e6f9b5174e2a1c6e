#include "config/config_keys.h"

#include <algorithm>
#include <cstdint>
#include <regex>
#include <stdexcept>
#include <vector>

#if !defined(__GLIBCXX__)
#error \
    "ValuePattern needs libstdc++'s polynomial std::regex executor (regex_constants::__polynomial)"
#endif

namespace launcher {
namespace {

// Nesting of groups: libstdc++'s regex compiler recurses once per level.
constexpr int kMaxGroupDepth = 16;
// An upper bound on the automaton's states (see estimate_states). The
// polynomial executor's work per character and its recursion (epsilon
// closures) grow with it; 2000 keeps a 4096-byte value well under 1 ms per
// hundred states on this project's hosts and a few hundred KiB of stack.
constexpr std::uint64_t kMaxStates = 2000;
constexpr std::uint64_t kHuge = 1'000'000'000;
// The longest number std::regex may read: the counts of `{n,m}` and the N of
// a `\N` back-reference. libstdc++ 12 (Debian 12's GCC) accumulates those
// digits in a long with no overflow check (regex_compiler.tcc,
// _M_cur_int_value), so a 20-digit run is undefined behaviour before the
// compiler gets to refuse it. Found by the manifest fuzzer under UBSan.
constexpr std::size_t kMaxNumberDigits = 9;

// Throws unless the digit run of `s` that starts at `start` is short
// enough for std::regex to read as a number (kMaxNumberDigits).
void check_number_length(std::string_view s, std::size_t start) {
    std::size_t end = start;
    while (end < s.size() && s[end] >= '0' && s[end] <= '9')
        ++end;
    if (end - start > kMaxNumberDigits) {
        throw std::invalid_argument("a number of more than " + std::to_string(kMaxNumberDigits) +
                                    " digits in a {n,m} count or a \\N back-reference");
    }
}

std::uint64_t saturate(std::uint64_t n) {
    return std::min(n, kHuge);
}

// An over-estimate of the states libstdc++ builds for `source` (ECMAScript):
// one per atom, a few per group, alternative and quantifier, and a copy of
// the repeated part per count of a `{n,m}` (libstdc++ clones it). Only the
// shape matters; std::regex itself judges the syntax.
std::uint64_t estimate_states(std::string_view s) {
    struct Frame {
        std::uint64_t sum = 0;   // the items before the last
        std::uint64_t last = 0;  // the last item, which a quantifier repeats
    };
    std::vector<Frame> frames(1);
    auto atom = [&](std::uint64_t cost) {
        Frame& f = frames.back();
        f.sum = saturate(f.sum + f.last);
        f.last = cost;
    };
    bool after_quantifier = false;
    for (std::size_t i = 0; i < s.size(); ++i) {
        const char c = s[i];
        const bool quantified = after_quantifier;
        after_quantifier = false;
        switch (c) {
            case '\\':
                check_number_length(s, i + 1);  // \N: std::regex reads all of N's digits
                ++i;  // the escaped character (\d, \., \x41's x: its digits count as atoms)
                atom(1);
                break;
            case '[': {
                std::size_t j = i + 1;
                if (j < s.size() && s[j] == '^') ++j;
                while (j < s.size() && s[j] != ']') {
                    if (s[j] == '\\') {
                        j += 2;
                    } else if (s[j] == '[' && j + 1 < s.size() &&
                               (s[j + 1] == ':' || s[j + 1] == '.' || s[j + 1] == '=')) {
                        // [:alpha:], [.x.], [=x=]
                        const std::size_t end = s.find(std::string{s[j + 1], ']'}, j + 2);
                        j = end == std::string_view::npos ? s.size() : end + 2;
                    } else {
                        ++j;
                    }
                }
                i = j;
                atom(1);
                break;
            }
            case '(':
                if (static_cast<int>(frames.size()) > kMaxGroupDepth) {
                    throw std::invalid_argument("groups nested more than " +
                                                std::to_string(kMaxGroupDepth) + " deep");
                }
                frames.emplace_back();
                if (i + 2 < s.size() && s[i + 1] == '?') i += 2;  // (?: (?= (?!
                break;
            case ')':
                if (frames.size() > 1) {
                    const Frame inner = frames.back();
                    frames.pop_back();
                    atom(saturate(inner.sum + inner.last + 2));
                } else {
                    atom(1);  // unbalanced: std::regex says so
                }
                break;
            case '|': {
                Frame& f = frames.back();
                f.sum = saturate(f.sum + f.last + 1);
                f.last = 0;
                break;
            }
            case '*':
            case '+':
            case '?':
                if (c == '?' && quantified) break;  // lazy: *? +? ?? {n}?
                frames.back().last = saturate(frames.back().last * (c == '+' ? 2 : 1) + 2);
                after_quantifier = true;
                break;
            case '{': {
                // {n}, {n,}, {n,m}: the repeated part n (or m, or n+1) times.
                std::size_t j = i + 1;
                auto number = [&](std::uint64_t& out) {
                    const std::size_t start = j;
                    check_number_length(s, start);  // also in a `{n,` std::regex refuses later
                    out = 0;
                    while (j < s.size() && s[j] >= '0' && s[j] <= '9') {
                        out = saturate(out * 10 + static_cast<std::uint64_t>(s[j] - '0'));
                        ++j;
                    }
                    return j > start;
                };
                std::uint64_t low = 0, high = 0;
                if (!number(low)) {
                    atom(1);
                    break;
                }
                high = low;
                if (j < s.size() && s[j] == ',') {
                    ++j;
                    if (!number(high)) high = low + 1;
                }
                if (j >= s.size() || s[j] != '}') {
                    atom(1);
                    break;
                }
                i = j;
                const std::uint64_t copies = std::max<std::uint64_t>(std::max(low, high), 1);
                frames.back().last = saturate(frames.back().last * copies + copies + 2);
                after_quantifier = true;
                break;
            }
            default:
                atom(1);
                break;
        }
    }
    std::uint64_t total = 0;
    for (const Frame& f : frames)
        total = saturate(total + f.sum + f.last + 2);
    return total;
}

}  // namespace

struct ValuePattern::Compiled {
    std::string source;
    std::regex regex;
};

ValuePattern ValuePattern::compile(std::string_view source) {
    if (source.empty()) throw std::invalid_argument("empty pattern");
    if (source.size() > kMaxValuePatternLength) {
        throw std::invalid_argument("longer than " + std::to_string(kMaxValuePatternLength) +
                                    " characters");
    }
    if (estimate_states(source) > kMaxStates) {
        throw std::invalid_argument("too large once its repetitions are expanded (at most about " +
                                    std::to_string(kMaxStates) +
                                    " states; use * or + instead of large {n,m} counts)");
    }
    auto compiled = std::make_shared<Compiled>();
    compiled->source = std::string(source);
    try {
        compiled->regex = std::regex(compiled->source, std::regex_constants::ECMAScript |
                                                           std::regex_constants::__polynomial);
    } catch (const std::regex_error& e) {
        throw std::invalid_argument(std::string("not a valid ECMAScript regular expression: ") +
                                    e.what());
    }
    ValuePattern pattern;
    pattern.compiled_ = std::move(compiled);
    return pattern;
}

const std::string& ValuePattern::source() const {
    static const std::string kNone;
    return compiled_ ? compiled_->source : kNone;
}

bool ValuePattern::matches(std::string_view value) const {
    return compiled_ && std::regex_match(value.begin(), value.end(), compiled_->regex);
}

bool glob_matches(std::string_view glob, std::string_view name) {
    // Iterative, with one backtrack point (the last `*`): linear enough for
    // names of at most 128 characters.
    std::size_t g = 0, n = 0, star = std::string_view::npos, resume = 0;
    while (n < name.size()) {
        if (g < glob.size() && (glob[g] == '?' || glob[g] == name[n])) {
            ++g;
            ++n;
        } else if (g < glob.size() && glob[g] == '*') {
            star = g++;
            resume = n;
        } else if (star != std::string_view::npos) {
            g = star + 1;
            n = ++resume;
        } else {
            return false;
        }
    }
    while (g < glob.size() && glob[g] == '*')
        ++g;
    return g == glob.size();
}

const ConfigKeyRule* find_config_key_rule(const std::vector<ConfigKeyRule>& rules,
                                          std::string_view key) {
    for (const ConfigKeyRule& rule : rules) {
        if (!rule.is_glob() && rule.name == key) return &rule;
    }
    for (const ConfigKeyRule& rule : rules) {
        if (rule.is_glob() && glob_matches(rule.name, key)) return &rule;
    }
    return nullptr;
}

std::string config_value_problem(const ConfigKeyRule& rule, std::string_view key,
                                 std::string_view value) {
    const std::string quoted = "config value of '" + std::string(key) + "'";
    if (value.size() > rule.max_length) {
        return quoted + " is " + std::to_string(value.size()) +
               " bytes, longer than its declared max_length (" + std::to_string(rule.max_length) +
               ")";
    }
    if (!rule.values.empty() &&
        std::find(rule.values.begin(), rule.values.end(), value) == rule.values.end()) {
        std::string known;
        for (const std::string& v : rule.values)
            known += (known.empty() ? "" : ", ") + v;
        return quoted + " is not one of its declared values (" + known + ")";
    }
    if (rule.pattern && !rule.pattern->matches(value)) {
        return quoted + " does not match its declared pattern";
    }
    return {};
}

}  // namespace launcher
