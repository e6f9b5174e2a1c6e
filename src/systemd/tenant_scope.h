// Where tenants live under systemd: a transient scope unit of their own.
//
// Why not the service's own delegated cgroup: once the launcher has enabled
// controllers there for its tenants, the kernel's no-internal-process rule
// forbids putting a process into that cgroup, and systemd (before 254's
// DelegateSubgroup=) starts a restarted service's main process exactly
// there. Every restart after a crash, a SIGKILL or a watchdog timeout then
// fails with EBUSY ("Failed at step CGROUP") while the tenants keep running.
// So the launcher asks systemd for "<unit>-tenants.scope" (Delegate=yes, the
// service's own DelegateControllers, in the service's slice), kept alive by
// a placeholder process ("pattern-launcher hold") in its supervisor leaf.
// The scope outlives the daemon, so a restarted daemon finds it and adopts
// the tenants in it; a clean stop ends the placeholder and with it the scope.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

namespace launcher {

struct TenantScope {
    std::string unit;              // "pattern-launcher-tenants.scope"
    std::string cgroup_dir;        // absolute, on the cgroup2 mount
    pid_t holder = 0;              // the placeholder, in <cgroup_dir>/supervisor
    bool holder_is_child = false;  // started by this instance (reap it)
    // The service's DelegateControllers: what the tenants may use.
    std::vector<std::string> delegated_controllers;
};

// The scope of the service this process runs as (sd_pid_get_unit), whose
// cgroup is `service_cgroup_dir`, found again after a restart or created
// through systemd's D-Bus API. nullopt when this process is not a systemd
// service; throws with what failed (the D-Bus error, the path) when it is
// one and the scope cannot be had.
std::optional<TenantScope> open_tenant_scope(const std::string& service_cgroup_dir);

// Once every tenant is gone: asks systemd to stop the scope (which ends the
// placeholder and removes the cgroup) and waits for the placeholder.
void release_tenant_scope(const TenantScope& scope);

// The placeholder's main: sleeps until SIGTERM or SIGKILL.
int run_holder();

}  // namespace launcher
