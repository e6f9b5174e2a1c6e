// `warm_pool`: NAMESPACE keys the launcher keeps running before any launch
// asks for them, so that a tenant's first launch is a reuse and not a cold
// start (RFC-035: "pre-launch consumer processes for popular namespaces").
// Two places list them, and a key is kept when either does:
// - a manifest, for its own pattern: `warm_pool: {namespaces: [tenant-a]}`;
// - the launcher config, per tenant: `warm_pool: {tenants: {tenant-a: [echo]}}`.
// Parsed strictly; every error names the file and line.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "config/yaml_strict.h"

namespace launcher {

struct WarmPoolSettings {
    // namespace id -> the patterns whose NAMESPACE key of that tenant is kept running
    std::map<std::string, std::vector<std::string>> tenants;
};

// A manifest's `warm_pool` mapping: its `namespaces` list (valid ids, no
// duplicates). Whether the pattern's isolation level allows a pool is the
// manifest parser's check.
std::vector<std::string> to_manifest_warm_pool(const std::filesystem::path& file,
                                               const yaml_strict::Field& field);

// The config's `warm_pool` mapping. Pattern names are checked for their
// form here; whether they are discovered, and NAMESPACE patterns, is known
// only with the patterns (the launcher logs each one it cannot keep).
WarmPoolSettings to_warm_pool_settings(const std::filesystem::path& file,
                                       const yaml_strict::Field& field);

}  // namespace launcher
