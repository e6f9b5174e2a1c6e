#include "config/warm_pool.h"

#include <map>

#include "common/isolation_key.h"
#include "config/namespace_map.h"

namespace launcher {

namespace fs = std::filesystem;
using yaml_strict::Field;
using yaml_strict::Mapping;

namespace {

// A list of identifiers (namespace ids or pattern names), each once.
std::vector<std::string> to_identifier_list(const fs::path& file, const Field& field,
                                            const std::string& what) {
    std::vector<std::string> out;
    std::map<std::string, int> lines;
    for (const Field& item : yaml_strict::to_items(file, field)) {
        const std::string id = yaml_strict::to_nonempty_string(file, item);
        if (!is_valid_identifier(id)) {
            yaml_strict::fail(file, item,
                              "invalid " + what + " '" + id +
                                  "' (1 to 63 of a-z, 0-9, '.', '_', '-', starting with a "
                                  "letter or digit)");
        }
        if (const auto seen = lines.find(id); seen != lines.end()) {
            yaml_strict::fail(file, item,
                              what + " '" + id + "' is listed twice (first at line " +
                                  std::to_string(seen->second) + ")");
        }
        lines.emplace(id, item.line());
        out.push_back(id);
    }
    return out;
}

}  // namespace

ManifestWarmPool to_manifest_warm_pool(const fs::path& file, const Field& field) {
    const Mapping map(file, field, {"namespaces", "sessions"});
    ManifestWarmPool pool;
    if (const Field* namespaces = map.find("namespaces"))
        pool.namespaces = to_identifier_list(file, *namespaces, "namespace id");
    if (const Field* sessions = map.find("sessions")) {
        pool.sessions_line = sessions->line();
        const std::string expected = "a mapping of namespace id to a number of processes (1-" +
                                     std::to_string(kMaxSessionPool) + ")";
        for (const Field& tenant : namespace_map_entries(file, *sessions, expected)) {
            pool.sessions[tenant.key] =
                static_cast<int>(yaml_strict::to_integer(file, tenant, 1, kMaxSessionPool));
        }
    }
    return pool;
}

WarmPoolSettings to_warm_pool_settings(const fs::path& file, const Field& field) {
    const Mapping map(file, field, {"tenants", "sessions"});
    WarmPoolSettings settings;
    if (const Field* tenants = map.find("tenants")) {
        for (const Field& tenant : namespace_map_entries(
                 file, *tenants, "a mapping of namespace id to a list of pattern names")) {
            settings.tenants[tenant.key] = to_identifier_list(file, tenant, "pattern name");
        }
    }
    if (const Field* sessions = map.find("sessions")) {
        const std::string count =
            "a number of processes (1-" + std::to_string(kMaxSessionPool) + ")";
        for (const Field& tenant : namespace_map_entries(
                 file, *sessions,
                 "a mapping of namespace id to a mapping of pattern name to " + count)) {
            std::map<std::string, int>& patterns = settings.sessions[tenant.key];
            for (const Field& pattern : identifier_map_entries(
                     file, tenant, "a mapping of pattern name to " + count, "pattern name")) {
                patterns[pattern.key] =
                    static_cast<int>(yaml_strict::to_integer(file, pattern, 1, kMaxSessionPool));
            }
        }
    }
    return settings;
}

}  // namespace launcher
