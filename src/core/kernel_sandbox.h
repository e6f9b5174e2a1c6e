// The real SandboxPort: cgroups, spawns and pidfds through sandbox/, and the
// compartment of each key's process (what its manifest and its key make of
// the default confinement: build_spawn_spec plus the state directory, the
// notify socket's owner, the seccomp program and the weakenings).
#pragma once

#include <map>
#include <memory>
#include <string>

#include "config/config.h"
#include "core/confinement.h"
#include "core/sandbox_port.h"
#include "sandbox/cgroup.h"
#include "sandbox/process.h"
#include "sandbox/seccomp.h"

namespace launcher {

class KernelSandbox : public SandboxPort {
public:
    // `tree` outlives this. Opens the init binary and the report socket
    // (HostConfinement); throws naming what is missing.
    KernelSandbox(sandbox::CgroupTree& tree, const LauncherConfig& config);

    const std::string& root_path() const override { return tree_.root_path(); }
    std::unique_ptr<KeyGroup> create_group(const std::string& name, KeyGroup* parent) override;
    sandbox::LimitReport apply_limits(KeyGroup& group, const sandbox::CgroupLimits& limits,
                                      sandbox::Enforcement enforcement) override;
    SpawnOutcome spawn(const SpawnRequest& request) override;
    std::unique_ptr<PendingProcess> start_spawn(const SpawnRequest& request) override;
    std::optional<siginfo_t> reported_exit(pid_t pid) override;
    std::string applied_confinement(const Manifest& manifest) const override;
    std::unique_ptr<KeyGroup> adopt_group(const std::string& path) override;
    std::unique_ptr<KeyProcess> open_process(pid_t pid) override;

private:
    const sandbox::BpfProgram* seccomp_program(const std::string& profile);
    std::filesystem::path state_directory(const std::string& process_id, std::uint32_t owner) const;

    sandbox::CgroupTree& tree_;
    LauncherConfig config_;
    HostConfinement confinement_;
    std::map<std::string, sandbox::BpfProgram> seccomp_cache_;
};

}  // namespace launcher
