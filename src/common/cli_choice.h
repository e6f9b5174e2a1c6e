// Command-line words that stand for values, for CLI11 (patternctl and the
// daemon's flags share it). Header-only: it is a template over the value type.
#pragma once

#include <CLI/CLI.hpp>

#include <iterator>
#include <map>
#include <string>

namespace launcher::cli {

// A CLI11 transform from the words of `names` to their values: rejects
// anything else (numbers too) with "expects a, b or c; got 'x'".
template <typename T>
CLI::Validator one_of(const std::map<std::string, T>& names) {
    std::string list;
    for (auto it = names.begin(); it != names.end(); ++it) {
        if (it != names.begin()) list += std::next(it) == names.end() ? " or " : ", ";
        list += it->first;
    }
    return CLI::Validator(
        [names, list](std::string& text) {
            auto it = names.find(text);
            if (it == names.end()) return "expects " + list + "; got '" + text + "'";
            text = std::to_string(static_cast<long long>(it->second));
            return std::string();
        },
        "");
}

}  // namespace launcher::cli
