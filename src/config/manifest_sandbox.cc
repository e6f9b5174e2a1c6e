// The `sandbox:` section of a manifest (manifest_sandbox.h): the keys, the
// user and group ids and their lookup in the account databases.
#include "config/manifest_sandbox.h"

#include <grp.h>
#include <pwd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <limits>
#include <system_error>
#include <vector>

#include "config/egress_section.h"
#include "sandbox/capabilities.h"
#include "sandbox/error.h"
#include "sandbox/seccomp.h"

namespace launcher::manifest_detail {

namespace fs = std::filesystem;
using yaml_strict::Field;
using yaml_strict::Mapping;

namespace {

// A user or group: a name, or a number that fits an id (and is not -1).
std::string parse_id(const fs::path& file, const Field& field) {
    std::string text = yaml_strict::to_nonempty_string(file, field);
    const bool numeric =
        std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (numeric) {
        std::uint32_t id = 0;
        auto [rest, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
        if (ec != std::errc() || rest != text.data() + text.size() ||
            id == std::numeric_limits<std::uint32_t>::max()) {
            yaml_strict::fail(file, field, "id " + text + " is out of range");
        }
        return text;
    }
    const bool bad = text.front() == '-' || std::any_of(text.begin(), text.end(), [](char c) {
                         return c == ':' || c == '/' || c == ' ' || c == '\t' || c == '\n';
                     });
    if (bad)
        yaml_strict::fail(file, field,
                          "expected a name or a non-negative number, got '" + text + "'");
    return text;
}

// The account databases through NSS (files, LDAP, sssd, ...): asked once
// when a manifest is loaded, never at spawn, since a directory service can
// take seconds to answer.

// getpwnam_r and friends report "no such entry" as 0 with no result, or as
// one of these (glibc's and other modules' varying answers, getpwnam(3)).
bool means_not_found(int err) {
    return err == 0 || err == ENOENT || err == ESRCH || err == EBADF || err == EPERM;
}

// Calls `lookup(buffer, size, found)` with a buffer grown on ERANGE; true
// when an entry was found. Throws FileError at `field` for a failed lookup.
template <typename Lookup>
bool nss_lookup(const fs::path& file, const Field& field, const std::string& what, Lookup lookup) {
    std::vector<char> buffer(4096);
    for (;;) {
        bool found = false;
        const int err = lookup(buffer.data(), buffer.size(), found);
        if (err == ERANGE && buffer.size() < (1u << 24)) {
            buffer.resize(buffer.size() * 2);
            continue;
        }
        if (found) return true;
        if (means_not_found(err)) return false;
        yaml_strict::fail(file, field, "cannot look up " + what + ": " + std::strerror(err));
    }
}

bool is_number(const std::string& text) {
    return std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// sandbox.user (parse_id checked it): its uid, and its primary gid into
// `primary_gid` (the uid's own number when a numeric uid has no entry).
std::uint32_t resolve_user(const fs::path& file, const Field& field, const std::string& user,
                           std::uint32_t& primary_gid) {
    passwd pw{};
    const bool numeric = is_number(user);
    std::uint32_t uid = 0;
    if (numeric) std::from_chars(user.data(), user.data() + user.size(), uid);
    const bool found =
        nss_lookup(file, field, "user '" + user + "'", [&](char* buf, std::size_t size, bool& hit) {
            passwd* result = nullptr;
            const int err = numeric ? ::getpwuid_r(uid, &pw, buf, size, &result)
                                    : ::getpwnam_r(user.c_str(), &pw, buf, size, &result);
            hit = result != nullptr;
            return err;
        });
    if (!found && !numeric) {
        yaml_strict::fail(file, field, "sandbox.user '" + user + "' does not exist");
    }
    primary_gid = found ? pw.pw_gid : uid;
    return found ? pw.pw_uid : uid;
}

// sandbox.group (parse_id checked it): its gid.
std::uint32_t resolve_group(const fs::path& file, const Field& field, const std::string& group) {
    std::uint32_t gid = 0;
    if (is_number(group)) {
        std::from_chars(group.data(), group.data() + group.size(), gid);
        return gid;
    }
    const bool found = nss_lookup(
        file, field, "group '" + group + "'", [&](char* buf, std::size_t size, bool& hit) {
            struct group gr {};
            struct group* result = nullptr;
            const int err = ::getgrnam_r(group.c_str(), &gr, buf, size, &result);
            hit = result != nullptr;
            if (hit) gid = gr.gr_gid;
            return err;
        });
    if (!found) yaml_strict::fail(file, field, "sandbox.group '" + group + "' does not exist");
    return gid;
}

}  // namespace

SandboxSettings parse_sandbox(const fs::path& file, const Field& field) {
    const Mapping map(file, field,
                      {"network", "seccomp", "namespaces", "user", "group", "capabilities",
                       "allow_root", "landlock", "tmp_size", "state_directory", "egress"});
    SandboxSettings sb;
    if (const Field* f = map.find("network")) {
        const std::string network = yaml_strict::to_string(file, *f);
        if (network == "host") {
            sb.network = NetworkMode::kHost;
        } else if (network == "isolated") {
            sb.network = NetworkMode::kIsolated;
        } else {
            yaml_strict::fail(file, *f,
                              "unknown network mode '" + network + "' (known: host, isolated)");
        }
    }
    if (const Field* f = map.find("egress")) {
        // The host's network already reaches everything: a list there would
        // promise a confinement that does not exist.
        if (sb.network == NetworkMode::kHost) {
            yaml_strict::fail(file, *f,
                              "not with network: host, which reaches every destination anyway; "
                              "use network: isolated (the default) with this list");
        }
        sb.egress = to_egress_list(file, *f);
    }
    if (const Field* f = map.find("seccomp")) {
        sb.seccomp = yaml_strict::to_string(file, *f);
        std::vector<std::string> known = sandbox::builtin_profile_names();
        if (sb.seccomp != "none" &&
            std::find(known.begin(), known.end(), sb.seccomp) == known.end()) {
            known.emplace_back("none");
            yaml_strict::fail(file, *f,
                              "unknown seccomp profile '" + sb.seccomp +
                                  "' (known: " + yaml_strict::join(known) + ")");
        }
    }
    if (const Field* f = map.find("namespaces")) {
        static const std::vector<std::string> kKnown{"mount", "pid",    "ipc",
                                                     "uts",   "cgroup", "user"};
        sb.namespaces.clear();
        for (const Field& item : yaml_strict::to_items(file, *f)) {
            std::string ns = yaml_strict::to_string(file, item);
            if (std::find(kKnown.begin(), kKnown.end(), ns) == kKnown.end()) {
                yaml_strict::fail(file, item,
                                  "unknown namespace '" + ns +
                                      "' (known: " + yaml_strict::join(kKnown) +
                                      "; the network namespace is set by sandbox.network)");
            }
            if (std::find(sb.namespaces.begin(), sb.namespaces.end(), ns) != sb.namespaces.end()) {
                yaml_strict::fail(file, item, "namespace '" + ns + "' is listed twice");
            }
            sb.namespaces.push_back(std::move(ns));
        }
    }
    if (sb.has_namespace("pid") && !sb.has_namespace("mount")) {
        yaml_strict::fail(file, *map.find("namespaces"),
                          "namespace 'pid' needs 'mount' too (the pattern's own /proc)");
    }
    if (const Field* f = map.find("user")) {
        sb.user = parse_id(file, *f);
        std::uint32_t primary_gid = 0;
        sb.uid = resolve_user(file, *f, *sb.user, primary_gid);
        sb.gid = primary_gid;
    }
    if (const Field* f = map.find("group")) {
        sb.group = parse_id(file, *f);
        sb.gid = resolve_group(file, *f, *sb.group);
    }
    if (const Field* f = map.find("allow_root")) sb.allow_root = yaml_strict::to_bool(file, *f);
    // "root", "0", "00", or any other name the passwd database gives uid 0.
    const bool root_user = sb.uid == 0u;
    if (root_user && !sb.allow_root) {
        yaml_strict::fail(file, *map.find("user"),
                          "sandbox.user '" + *sb.user +
                              "' is root, which owns the host's files and cgroupfs: set "
                              "sandbox.allow_root: true to mean it");
    }
    if (sb.allow_root && !root_user) {
        yaml_strict::fail(file, *map.find("allow_root"),
                          "sandbox.allow_root is for sandbox.user: root (or 0) only");
    }
    if (const Field* f = map.find("landlock")) sb.landlock = yaml_strict::to_bool(file, *f);
    if (const Field* f = map.find("tmp_size")) {
        sb.tmp_size = yaml_strict::to_size(file, *f);
        if (sb.tmp_size < 4096) yaml_strict::fail(file, *f, "tmp_size must be at least 4096 bytes");
    }
    if (const Field* f = map.find("state_directory")) {
        sb.state_directory = yaml_strict::to_bool(file, *f);
        if (sb.state_directory && !sb.has_namespace("mount")) {
            yaml_strict::fail(file, *f,
                              "state_directory needs the mount namespace (it is bound into "
                              "the pattern's view)");
        }
    }
    if (const Field* f = map.find("capabilities")) {
        sandbox::CapabilityMask seen = 0;
        for (const Field& item : yaml_strict::to_items(file, *f)) {
            std::string name = yaml_strict::to_nonempty_string(file, item);
            sandbox::CapabilityMask mask = 0;
            try {
                mask = sandbox::parse_capabilities({name});
            } catch (const sandbox::ConfigError& e) {
                yaml_strict::fail(file, item, e.what());
            }
            if ((seen & mask) != 0) {
                yaml_strict::fail(file, item, "capability '" + name + "' is listed twice");
            }
            seen |= mask;
            sb.capabilities.push_back(std::move(name));
        }
    }
    return sb;
}

}  // namespace launcher::manifest_detail
