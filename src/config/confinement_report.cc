#include "config/confinement_report.h"

#include <algorithm>

namespace launcher {

std::vector<std::string> confinement_weakenings(const Manifest& manifest) {
    const SandboxSettings& sb = manifest.sandbox;
    std::vector<std::string> out;
    if (sb.allow_root) {
        out.push_back(
            "runs as root (sandbox.allow_root): root owns the host's files, "
            "cgroupfs and /proc/sys");
    } else if (sb.user || sb.group) {
        out.push_back(
            "a fixed identity (sandbox.user/group): every key of this pattern "
            "shares it, so they can signal and read one another");
    }
    if (sb.network == NetworkMode::kHost) {
        out.push_back(
            "network: host: the host's network, its loopback services and other "
            "tenants' ports are reachable");
    }
    if (!sb.egress.empty()) {
        std::string list;
        for (const EgressDestination& d : sb.egress)
            list += (list.empty() ? "" : " ") + d.text;
        out.push_back("egress: a network path out of the isolated network, to " + list +
                      " (never to host loopback, the launcher's ports or other tenants)");
    }
    if (sb.seccomp == "none") out.push_back("seccomp: none: no system call filter");
    for (const char* ns : {"mount", "pid", "ipc", "uts", "cgroup"}) {
        if (!sb.has_namespace(ns)) {
            out.push_back(std::string("no ") + ns + " namespace" +
                          (std::string(ns) == "mount" ? ": the host's file system, writable where "
                                                        "its permissions allow"
                                                      : ""));
        }
    }
    if (!sb.landlock) out.push_back("landlock: false: signals and abstract sockets not scoped");
    if (!sb.capabilities.empty()) {
        std::string caps;
        for (const std::string& c : sb.capabilities)
            caps += (caps.empty() ? "" : " ") + c;
        out.push_back("keeps capabilities: " + caps);
    }
    if (manifest.accept_any_config) {
        out.push_back(
            "accept_any_config: true: a launch request may set any environment variable "
            "the pattern does not declare (never the loader and shell variables of "
            "docs/security.md)");
    }
    return out;
}

}  // namespace launcher
