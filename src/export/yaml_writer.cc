// Written by hand rather than with yaml-cpp's Emitter: the Emitter decides
// between a plain and a quoted scalar by YAML 1.2 rules, while the readers
// of Kubernetes objects (sigs.k8s.io/yaml on go-yaml v2, kubectl) follow
// YAML 1.1, where a plain `on`, `y`, `no` or `0755` is not the string it
// looks like. Here a string stays plain only when no YAML 1.1 or 1.2 reader
// can take it for anything but that string, and is JSON-quoted otherwise (a
// JSON string is a valid double-quoted YAML scalar).
#include "export/yaml_writer.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <string_view>

namespace launcher {
namespace {

using nlohmann::ordered_json;

// Plain only for [A-Za-z0-9_./@-]+ starting with a letter or '/', and not a
// YAML 1.1 boolean or null word. Digits first could be a number (1e3, 0x1f,
// 1_000 in 1.1); anything else could be an indicator (':', '#', '-', '*').
bool safe_plain(std::string_view s) {
    if (s.empty()) return false;
    const unsigned char first = static_cast<unsigned char>(s.front());
    if (!std::isalpha(first) && first != '/') return false;
    for (const char c : s) {
        const unsigned char u = static_cast<unsigned char>(c);
        if (!std::isalnum(u) && c != '_' && c != '.' && c != '/' && c != '-' && c != '@')
            return false;
    }
    std::string lower(s);
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    static constexpr std::array<std::string_view, 12> kWords = {
        "y", "n", "yes", "no", "on", "off", "true", "false", "null", "nan", "inf", "infinity"};
    return std::find(kWords.begin(), kWords.end(), lower) == kWords.end();
}

std::string scalar(const ordered_json& v) {
    if (v.is_string()) {
        const auto& s = v.get_ref<const std::string&>();
        return safe_plain(s) ? s : v.dump();
    }
    return v.dump();  // numbers, booleans, null: JSON's spelling is YAML's
}

std::string key_text(const std::string& key) {
    return safe_plain(key) ? key : ordered_json(key).dump();
}

bool is_empty_container(const ordered_json& v) {
    return (v.is_object() || v.is_array()) && v.empty();
}

void write(std::string& out, const ordered_json& v, int indent);

// A value after "key:" or "- ": a scalar or empty container on the same
// line, a mapping or sequence on the lines below.
void write_after(std::string& out, const ordered_json& v, int indent, bool in_sequence_item) {
    if (is_empty_container(v)) {
        out += v.is_object() ? " {}\n" : " []\n";
    } else if (v.is_object()) {
        if (in_sequence_item) {
            // "- key: value" with the mapping's other keys aligned under it
            bool first = true;
            for (const auto& [k, item] : v.items()) {
                if (first) {
                    out += ' ';
                    first = false;
                } else {
                    out.append(static_cast<std::size_t>(indent), ' ');
                }
                out += key_text(k) + ":";
                write_after(out, item, indent + 2, false);
            }
        } else {
            out += '\n';
            write(out, v, indent);
        }
    } else if (v.is_array()) {
        out += '\n';
        // Sequences inside a mapping are not indented further ("key:\n- a"),
        // as kubectl writes them.
        write(out, v, in_sequence_item ? indent : indent - 2);
    } else {
        out += ' ' + scalar(v) + '\n';
    }
}

void write(std::string& out, const ordered_json& v, int indent) {
    const std::string pad(static_cast<std::size_t>(indent), ' ');
    if (v.is_object()) {
        for (const auto& [k, item] : v.items()) {
            out += pad + key_text(k) + ":";
            write_after(out, item, indent + 2, false);
        }
    } else if (v.is_array()) {
        for (const auto& item : v) {
            out += pad + "-";
            write_after(out, item, indent + 2, true);
        }
    } else {
        out += pad + scalar(v) + '\n';
    }
}

}  // namespace

std::string to_yaml(const ordered_json& value) {
    std::string out;
    if (is_empty_container(value)) return value.is_object() ? "{}\n" : "[]\n";
    write(out, value, 0);
    return out;
}

std::string to_yaml_stream(const std::vector<ordered_json>& documents) {
    std::string out;
    for (std::size_t i = 0; i < documents.size(); ++i) {
        if (i > 0) out += "---\n";
        out += to_yaml(documents[i]);
    }
    return out;
}

}  // namespace launcher
