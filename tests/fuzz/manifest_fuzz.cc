// Fuzz target: a pattern manifest (parse_manifest: strict YAML, the schema,
// durations, sizes, environment, config_keys with their value patterns, the
// sandbox section with its NSS lookups).
// The input is written as <scratch>/pattern/manifest.yaml next to an
// executable `echo`, so that the seeds' `executable: ./echo` resolves and
// the fields after it are reached. FileError is the documented failure;
// any other exception is a finding.
#include <sys/stat.h>

#include <cstddef>
#include <cstdint>

#include "config/manifest.h"
#include "config/request_variables.h"
#include "fuzz_support.h"

namespace {

const std::filesystem::path& manifest_file() {
    static const std::filesystem::path file = [] {
        const auto dir = fuzz::scratch_dir() / "pattern";
        std::filesystem::create_directories(dir);
        static constexpr std::uint8_t kScript[] = "#!/bin/sh\n";
        fuzz::write_file(dir / "echo", kScript, sizeof kScript - 1);
        ::chmod((dir / "echo").c_str(), 0755);
        return dir / "manifest.yaml";
    }();
    return file;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto& file = manifest_file();
    fuzz::write_file(file, data, size);
    try {
        const launcher::Manifest manifest = launcher::parse_manifest(file);
        // What validation promises of an accepted manifest.
        fuzz::check(launcher::is_valid_identifier(manifest.name), "invalid name accepted",
                    manifest.name);
        fuzz::check(
            manifest.healthcheck.interval.count() > 0 && manifest.healthcheck.timeout.count() > 0,
            "non-positive healthcheck duration accepted");
        for (const auto& [name, value] : manifest.environment) {
            fuzz::check(launcher::is_valid_env_name(name) && !launcher::is_reserved_env_name(name),
                        "bad environment name accepted", name);
        }
        // No declared key is one a request may never set.
        for (const launcher::ConfigKeyRule& rule : manifest.config_keys) {
            fuzz::check(rule.is_glob() || !launcher::is_forbidden_request_variable(rule.name),
                        "forbidden config key declared", rule.name);
            fuzz::check(rule.max_length >= 1 && rule.max_length <= launcher::kMaxConfigValue,
                        "config key max_length out of range", rule.name);
        }
    } catch (const launcher::FileError&) {
    }
    return 0;
}
