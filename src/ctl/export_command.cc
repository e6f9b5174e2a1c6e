#include "export_command.h"

#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <system_error>

#include "config/config.h"
#include "config/manifest.h"
#include "export/yaml_writer.h"

namespace launcher::ctl {
namespace {

namespace fs = std::filesystem;

class UsageError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

std::pair<std::string, std::string> split_once(const std::string& text, char sep,
                                               const char* option) {
    const auto at = text.find(sep);
    if (at == std::string::npos || at == 0 || at + 1 == text.size())
        throw UsageError(std::string(option) + ": expected the form A" + sep + "B; got '" + text +
                         "'");
    return {text.substr(0, at), text.substr(at + 1)};
}

std::vector<std::string> split_list(const std::string& text) {
    std::vector<std::string> out;
    std::size_t start = 0;
    while (start <= text.size()) {
        const auto comma = text.find(',', start);
        out.push_back(
            text.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
        if (comma == std::string::npos) break;
        start = comma + 1;
    }
    return out;
}

using Overrides = std::map<std::string, std::vector<sandbox::Ipv4Address>>;

// --resolve first; otherwise the resolver of this host (getaddrinfo, IPv4:
// the launcher's egress is IPv4 only).
std::vector<sandbox::Ipv4Address> resolve(const Overrides& overrides, const std::string& name) {
    if (const auto it = overrides.find(name); it != overrides.end()) return it->second;
    addrinfo hints{};
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    std::vector<sandbox::Ipv4Address> out;
    if (getaddrinfo(name.c_str(), nullptr, &hints, &found) != 0) return out;
    std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> owner(found, freeaddrinfo);
    for (const addrinfo* a = found; a; a = a->ai_next) {
        const auto* in = reinterpret_cast<const sockaddr_in*>(a->ai_addr);
        out.push_back({ntohl(in->sin_addr.s_addr)});
    }
    return out;
}

void write_file(const fs::path& path, const std::string& text) {
    fs::create_directories(path.parent_path());
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << text;
    out.close();
    if (!out) throw std::runtime_error("cannot write " + path.string());
}

void parse_args(ExportArgs& a) {
    kubernetes::ExportOptions& o = a.options;
    o.tenants = a.tenants;
    for (const std::string& s : a.sessions)
        o.sessions.push_back(split_once(s, ':', "--session"));
    for (const std::string& i : a.images) {
        auto [pattern, image] = split_once(i, '=', "--image");
        o.images[pattern] = image;
    }
    for (const std::string& c : a.never_reach) {
        const auto n = sandbox::parse_ipv4_network(c);
        if (!n) throw UsageError("--never-reach: '" + c + "' is not an IPv4 network (10.0.0.0/8)");
        o.never_reach.push_back(*n);
    }
    if (!a.proxy_selector.empty()) {
        o.proxy_labels.clear();
        for (const std::string& kv : split_list(a.proxy_selector)) {
            auto [key, value] = split_once(kv, '=', "--proxy-selector");
            o.proxy_labels[key] = value;
        }
    }
}

}  // namespace

CLI::App* add_export_command(CLI::App& app, ExportArgs& a) {
    CLI::App* export_cmd =
        app.add_subcommand("export", "write what runs the patterns elsewhere, offline");
    export_cmd->require_subcommand(1);
    CLI::App* k = export_cmd->add_subcommand(
        "kubernetes",
        "Deployments, Pods, Services, NetworkPolicies, quotas and seccomp profiles that keep the "
        "launcher's promises (docs/kubernetes.md)");
    k->add_option("DIR", a.patterns_dir, "the patterns directory (default: the config's)");
    k->add_option("--config", a.config_file, "the launcher config (tenants, quotas, egress)")
        ->type_name("FILE")
        ->check(CLI::ExistingFile);
    k->add_option("--pattern", a.patterns, "only this pattern (repeatable)")->type_name("NAME");
    k->add_option("--tenant", a.tenants,
                  "export NAMESPACE and SESSION patterns for this namespace id (repeatable; "
                  "default: the tenants the config names)")
        ->type_name("ID");
    k->add_option("--session", a.sessions, "also a Pod for this session (repeatable)")
        ->type_name("TENANT:SESSION");
    k->add_option("--output-dir", a.output_dir,
                  "write a file per object and seccomp/<subdir>/*.json here (it must be empty "
                  "or absent); default: the objects to stdout")
        ->type_name("DIR");
    k->add_option("--shared-namespace", a.options.shared_namespace,
                  "the Kubernetes namespace of isolation: none patterns")
        ->type_name("NAME")
        ->capture_default_str();
    k->add_option("--proxy-selector", a.proxy_selector,
                  "labels of the proxy's pods, the only ones let in (default "
                  "app.kubernetes.io/name=prism-proxy)")
        ->type_name("KEY=VALUE[,...]");
    k->add_option("--proxy-namespace", a.options.proxy_namespace,
                  "the Kubernetes namespace the proxy runs in")
        ->type_name("NAME")
        ->capture_default_str();
    k->add_option("--image", a.images, "the image of a pattern (repeatable)")
        ->type_name("PATTERN=IMAGE");
    k->add_option("--image-prefix", a.options.image_prefix,
                  "other patterns' image: <prefix><name>:<version>")
        ->type_name("PREFIX")
        ->capture_default_str();
    k->add_option("--grpc-port", a.options.grpc_port, "the port each pattern binds (GRPC_PORT)")
        ->check(CLI::Range(1, 65535))
        ->capture_default_str();
    k->add_option("--health-port", a.options.health_port, "HEALTH_PORT, for http health checks")
        ->check(CLI::Range(1, 65535))
        ->capture_default_str();
    k->add_option("--never-reach", a.never_reach,
                  "a network no pattern may reach whatever its egress says: the cluster's pod "
                  "and Service CIDRs (repeatable)")
        ->type_name("CIDR");
    k->add_option("--resolve", a.resolve,
                  "the addresses of an egress host name, instead of looking it up (repeatable)")
        ->type_name("NAME=ADDRESS[,ADDRESS...]");
    k->add_option("--seccomp-subdir", a.options.seccomp_subdir,
                  "the profiles' directory below the kubelet's seccomp directory")
        ->type_name("NAME")
        ->capture_default_str();
    return k;
}

int run_export(ExportArgs& a) {
    Overrides overrides;
    try {
        parse_args(a);
        for (const std::string& r : a.resolve) {
            auto [name, list] = split_once(r, '=', "--resolve");
            for (const std::string& text : split_list(list)) {
                const auto address = sandbox::parse_ipv4_address(text);
                if (!address) throw UsageError("--resolve: '" + text + "' is not an IPv4 address");
                overrides[name].push_back(*address);
            }
        }
    } catch (const UsageError& e) {
        std::fprintf(stderr, "patternctl: %s\n", e.what());
        return 2;
    }
    LauncherConfig config;
    if (!a.config_file.empty()) config = load_config(a.config_file);  // FileError: file:line
    const fs::path dir = a.patterns_dir.empty() ? config.patterns_dir : fs::path(a.patterns_dir);
    Discovery found = discover_patterns(dir);
    for (const FileError& e : found.errors)
        std::fprintf(stderr, "patternctl: invalid %s\n", e.what());
    if (!found.errors.empty()) return 1;
    if (!a.patterns.empty()) {
        std::map<std::string, Manifest> chosen;
        for (const std::string& name : a.patterns) {
            auto it = found.patterns.find(name);
            if (it == found.patterns.end()) {
                std::fprintf(stderr, "patternctl: no pattern '%s' in %s\n", name.c_str(),
                             dir.c_str());
                return 1;
            }
            chosen.insert(*it);
        }
        found.patterns = std::move(chosen);
    }
    if (found.patterns.empty()) {
        std::fprintf(stderr, "patternctl: no patterns in %s\n", dir.c_str());
        return 1;
    }

    const kubernetes::KubernetesExport exported = kubernetes::export_kubernetes(
        found.patterns, config, a.options,
        [&](const std::string& name) { return resolve(overrides, name); });
    for (const std::string& n : exported.notes)
        std::fprintf(stderr, "patternctl: note: %s\n", n.c_str());

    if (a.output_dir.empty()) {
        std::cout << kubernetes::to_yaml_stream(exported);
        if (!exported.seccomp_profiles.empty())
            std::fprintf(stderr,
                         "patternctl: note: the seccomp profiles the pods name are written with "
                         "--output-dir only\n");
        return std::cout.flush() ? 0 : 1;
    }
    const fs::path out = a.output_dir;
    std::error_code ec;
    if (fs::exists(out, ec) && !fs::is_empty(out, ec)) {
        std::fprintf(stderr, "patternctl: %s is not empty: give a new or empty directory\n",
                     out.c_str());
        return 1;
    }
    for (const kubernetes::ExportedObject& o : exported.objects)
        write_file(out / kubernetes::object_file_name(o), to_yaml(o.body));
    for (const auto& [file, text] : exported.seccomp_profiles)
        write_file(out / "seccomp" / a.options.seccomp_subdir / file, text);
    return 0;
}

}  // namespace launcher::ctl
