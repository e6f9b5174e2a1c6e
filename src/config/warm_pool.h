// `warm_pool`: NAMESPACE keys the launcher keeps running before any launch
// asks for them, so that a tenant's first launch is a reuse and not a cold
// start (RFC-035: "pre-launch consumer processes for popular namespaces").
// Two places list them, and a key is kept when either does:
// - a manifest, for its own pattern: `warm_pool: {namespaces: [tenant-a]}`;
// - the launcher config, per tenant: `warm_pool: {tenants: {tenant-a: [echo]}}`.
// A pattern that speaks the claim protocol (`late_binding: true`,
// docs/late-binding.md) may also keep processes started ahead for the
// SESSION keys of listed tenants: `warm_pool: {sessions: {tenant-a: 2}}`.
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
    // namespace id -> pattern -> processes kept ready for that tenant's SESSION
    // keys (`warm_pool.sessions`; late-binding patterns only, checked with them)
    std::map<std::string, std::map<std::string, int>> sessions;
};

// The most processes one tenant's session pool of one pattern keeps.
inline constexpr int kMaxSessionPool = 64;

struct ManifestWarmPool {
    std::vector<std::string> namespaces;  // NAMESPACE keys kept running
    std::map<std::string, int> sessions;  // namespace id -> processes kept for its sessions
    int sessions_line = 0;                // where `sessions` is (for the manifest's checks)
};

// A manifest's `warm_pool` mapping: its `namespaces` list (valid ids, no
// duplicates) and its `sessions` mapping (valid ids, 1 to kMaxSessionPool
// each). Whether the pattern's isolation level and late binding allow them
// is the manifest parser's check.
ManifestWarmPool to_manifest_warm_pool(const std::filesystem::path& file,
                                       const yaml_strict::Field& field);

// The config's `warm_pool` mapping: `tenants` and `sessions`
// ({tenant-a: {echo: 2}}). Pattern names are checked for their form here;
// whether they are discovered, and NAMESPACE (for `tenants`) or late-binding
// (for `sessions`) patterns, is known only with the patterns (the launcher
// logs each one it cannot keep).
WarmPoolSettings to_warm_pool_settings(const std::filesystem::path& file,
                                       const yaml_strict::Field& field);

}  // namespace launcher
