#include "core/claim_protocol.h"

#include <nlohmann/json.hpp>

namespace launcher {

namespace {

// The pattern's own text, shown in an error: one line, bounded.
std::string shown(std::string_view text) {
    std::string out(text.substr(0, 200));
    for (char& c : out) {
        if (c == '\n' || c == '\r' || static_cast<unsigned char>(c) < 0x20) c = ' ';
    }
    return out;
}

}  // namespace

std::string encode_claim(const Claim& claim) {
    nlohmann::json j = {{"namespace", claim.namespace_id},
                        {"session_id", claim.session_id},
                        {"process_id", claim.process_id},
                        {"config", claim.config}};
    return j.dump();
}

std::optional<Claim> decode_claim(std::string_view text, std::string& problem) {
    const nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) {
        problem = "not a JSON object";
        return std::nullopt;
    }
    Claim claim;
    for (auto [field, out] :
         {std::pair{"namespace", &claim.namespace_id}, std::pair{"session_id", &claim.session_id},
          std::pair{"process_id", &claim.process_id}}) {
        auto it = j.find(field);
        if (it == j.end() || !it->is_string()) {
            problem = std::string("\"") + field + "\" is missing or not a string";
            return std::nullopt;
        }
        *out = it->get<std::string>();
    }
    auto config = j.find("config");
    if (config == j.end() || !config->is_object()) {
        problem = "\"config\" is missing or not an object";
        return std::nullopt;
    }
    for (auto it = config->begin(); it != config->end(); ++it) {
        if (!it->is_string()) {
            problem = "config \"" + it.key() + "\" is not a string";
            return std::nullopt;
        }
        claim.config[it.key()] = it->get<std::string>();
    }
    return claim;
}

ClaimAnswer parse_claim_answer(std::string_view text) {
    std::string_view rest = text;
    while (!rest.empty()) {
        const std::size_t end = rest.find('\n');
        const std::string_view line = rest.substr(0, end);
        if (line == "READY=1") return ClaimAnswer{true, {}};
        if (line.starts_with("ERROR=")) return ClaimAnswer{false, shown(line.substr(6))};
        if (end == std::string_view::npos) break;
        rest.remove_prefix(end + 1);
    }
    return ClaimAnswer{false, "it answered neither READY=1 nor ERROR=...: '" + shown(text) + "'"};
}

}  // namespace launcher
