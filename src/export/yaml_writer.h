// Deterministic YAML for exported objects: the same JSON value gives the
// same bytes, keys in the order they were inserted (nlohmann::ordered_json).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace launcher {

// One document, block style, two-space indentation, ending in a newline.
std::string to_yaml(const nlohmann::ordered_json& value);

// Documents joined by "---" lines (a multi-document stream, as kubectl reads).
std::string to_yaml_stream(const std::vector<nlohmann::ordered_json>& documents);

}  // namespace launcher
