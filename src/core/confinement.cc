#include "core/confinement.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "sandbox/error.h"

namespace launcher {
namespace fs = std::filesystem;

namespace {

constexpr const char* kInitName = "pattern-launcher-init";

}  // namespace

fs::path find_init_binary(const fs::path& configured) {
    std::vector<fs::path> candidates;
    if (!configured.empty()) {
        candidates.push_back(configured);
    } else {
        std::error_code ec;
        const fs::path self = fs::read_symlink("/proc/self/exe", ec);
        if (!ec) {
            candidates.push_back(self.parent_path().parent_path() / "lib/pattern-launcher" /
                                 kInitName);
            candidates.push_back(self.parent_path().parent_path() / "sandbox/init" / kInitName);
        }
    }
    std::string tried;
    for (const fs::path& path : candidates) {
        if (::access(path.c_str(), X_OK) == 0) return path;
        tried += (tried.empty() ? "" : ", ") + path.string();
    }
    throw sandbox::SysError(ENOENT, std::string("no ") + kInitName + " (tried " +
                                        (tried.empty() ? "nothing" : tried) +
                                        "); set launcher.init_path");
}

HostConfinement::HostConfinement(const LauncherConfig& config)
    : init_path_(find_init_binary(config.init_path)), landlock_(sandbox::make_landlock_ruleset()) {
    init_.reset(::open(init_path_.c_str(), O_PATH | O_CLOEXEC));
    if (!init_) sandbox::throw_sys_error(errno, "open", init_path_.string());
    masked_ = {config.runtime_dir.string(),
               "/etc/pattern-launcher",
               "/var/lib/pattern-launcher",
               "/var/log/pattern-launcher",
               "/etc/shadow",
               "/etc/gshadow",
               "/etc/shadow-",
               "/etc/gshadow-"};
    if (!config.log_dir.empty()) masked_.push_back(config.log_dir.string());
    if (!config.grpc_socket.empty()) masked_.push_back(config.grpc_socket.string());
}

std::string applied_confinement(const Manifest& manifest, const HostConfinement& host) {
    const SandboxSettings& sb = manifest.sandbox;
    std::string out = "namespaces";
    for (const std::string& ns : sb.namespaces)
        out += " " + ns;
    if (sb.network == NetworkMode::kIsolated) out += " net";
    if (!sb.egress.empty()) out += " (egress: veth behind the launcher's rules)";
    if (sb.has_namespace("pid")) out += "; init " + host.init_path().filename().string();
    if (sb.has_namespace("mount")) out += "; private file view";
    out += "; seccomp " + sb.seccomp;
    out += "; " + (sb.landlock ? host.landlock().describe() : std::string("landlock: off"));
    return out;
}

}  // namespace launcher
