// A pattern's compartment beyond its manifest's words: the host-wide pieces
// every spawn shares (the init, its exit reports, the Landlock ruleset, the
// launcher's own paths to hide), where the per-key pieces appear inside the
// pattern's view, and what a manifest gives up of the default confinement
// (logged at launch, shown by `validate` and `check`).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "config/config.h"
#include "config/confinement_report.h"
#include "config/manifest.h"
#include "sandbox/init_reports.h"
#include "sandbox/landlock.h"
#include "sandbox/unique_fd.h"

namespace launcher {

// Where the key's own host paths are bound inside its file view.
inline constexpr const char* kViewNotifySocket = "/run/pattern/notify";
inline constexpr const char* kViewStateDirectory = "/run/pattern/state";

class HostConfinement {
public:
    // Opens the init binary and makes the exit-report socket and the
    // Landlock ruleset. Throws sandbox::SysError naming what is missing.
    explicit HostConfinement(const LauncherConfig& config);

    int init_fd() const noexcept { return init_.get(); }
    const std::filesystem::path& init_path() const noexcept { return init_path_; }
    sandbox::InitReports& reports() noexcept { return reports_; }
    int report_sender_fd() const noexcept { return reports_.sender_fd(); }
    const sandbox::LandlockPlan& landlock() const noexcept { return landlock_; }
    // The launcher's runtime and state directories, API socket, logs and
    // config, and the host's password hashes: masked in every view.
    const std::vector<std::string>& masked_paths() const noexcept { return masked_; }

private:
    std::filesystem::path init_path_;
    sandbox::UniqueFd init_;
    sandbox::InitReports reports_;
    sandbox::LandlockPlan landlock_;
    std::vector<std::string> masked_;
};

// `configured` if set, else next to our own executable: the installed layout
// (<prefix>/bin -> <prefix>/lib/pattern-launcher/) or the build tree
// (src/ -> sandbox/init/). Throws sandbox::SysError(ENOENT) listing the places tried.
std::filesystem::path find_init_binary(const std::filesystem::path& configured);

// What a spawn of `manifest` applies, in one line for the process status:
// "namespaces mount pid ipc uts cgroup net; init; file view; seccomp default;
// landlock ABI 7: signal, abstract-unix-socket scoped".
std::string applied_confinement(const Manifest& manifest, const HostConfinement& host);

}  // namespace launcher
