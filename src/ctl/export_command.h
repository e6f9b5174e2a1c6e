// `patternctl export kubernetes`: offline, like `validate`; reads the
// manifests (and the launcher config when given) and writes the Kubernetes
// objects of export/kubernetes_export.h to stdout or a directory.
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

#include "export/kubernetes_export.h"

namespace launcher::ctl {

struct ExportArgs {
    std::string patterns_dir;           // empty: the config's patterns_dir
    std::string config_file;            // empty: the built-in defaults
    std::vector<std::string> patterns;  // empty: every valid manifest
    std::vector<std::string> tenants;
    std::vector<std::string> sessions;     // TENANT:SESSION
    std::vector<std::string> images;       // PATTERN=IMAGE
    std::vector<std::string> resolve;      // NAME=ADDRESS[,ADDRESS...]
    std::vector<std::string> never_reach;  // CIDR
    std::string proxy_selector;            // KEY=VALUE[,KEY=VALUE...]
    std::string output_dir;                // empty: stdout
    kubernetes::ExportOptions options;
};

// Adds `export` with its `kubernetes` subcommand; returns the latter.
CLI::App* add_export_command(CLI::App& app, ExportArgs& args);

// Exit code: 0 written, 1 the manifests or the export failed (each problem on
// stderr), 2 an unusable command line value.
int run_export(ExportArgs& args);

}  // namespace launcher::ctl
