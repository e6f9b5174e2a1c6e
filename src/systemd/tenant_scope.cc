#include "systemd/tenant_scope.h"

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-login.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <thread>

#include "common/log.h"
#include "sandbox/cgroup.h"
#include "sandbox/error.h"
#include "sandbox/process.h"
#include "sandbox/unique_fd.h"

namespace launcher {
namespace {

using Bus = std::unique_ptr<sd_bus, decltype(&sd_bus_flush_close_unref)>;
using Message = std::unique_ptr<sd_bus_message, decltype(&sd_bus_message_unref)>;

constexpr const char* kSystemd = "org.freedesktop.systemd1";

// The kernel's cgroup v2 controllers; systemd's DelegateControllers also
// lists its BPF pseudo-controllers, which are not cgroup files.
constexpr const char* kKernelControllers[] = {"cpu",  "cpuset",  "io",   "memory",
                                              "pids", "hugetlb", "rdma", "misc"};

// systemd's D-Bus error for a unit name that is taken (BUS_ERROR_UNIT_EXISTS
// in systemd's src/libsystemd/sd-bus/bus-common-errors.h).
constexpr const char* kUnitExists = "org.freedesktop.systemd1.UnitExists";

struct BusError {
    // SD_BUS_ERROR_NULL without its C compound literal (clang: -Wc99-extensions).
    sd_bus_error error{};
    ~BusError() { sd_bus_error_free(&error); }
};

std::runtime_error bus_failure(const std::string& what, int r, const sd_bus_error* error) {
    std::string why = error && error->message ? error->message : std::strerror(-r);
    return std::runtime_error(what + ": " + why);
}

std::string take_string(char* s) {
    std::string out = s ? s : "";
    std::free(s);
    return out;
}

// The system bus, else systemd's private socket (root only; works without
// dbus-daemon, as systemctl does).
Bus connect_to_systemd() {
    sd_bus* raw = nullptr;
    if (sd_bus_open_system(&raw) >= 0) return Bus(raw, sd_bus_flush_close_unref);
    int r = sd_bus_new(&raw);
    if (r < 0) throw bus_failure("sd_bus_new", r, nullptr);
    Bus bus(raw, sd_bus_flush_close_unref);
    r = sd_bus_set_address(raw, "unix:path=/run/systemd/private");
    if (r >= 0) r = sd_bus_start(raw);
    if (r < 0)
        throw bus_failure("connect to systemd (system bus and /run/systemd/private)", r, nullptr);
    return bus;
}

std::vector<std::string> delegate_controllers(sd_bus* bus, const std::string& unit) {
    std::string path;
    char* encoded = nullptr;
    int r = sd_bus_path_encode("/org/freedesktop/systemd1/unit", unit.c_str(), &encoded);
    if (r < 0) throw bus_failure("encode the object path of " + unit, r, nullptr);
    path = take_string(encoded);
    BusError e;
    char** list = nullptr;
    r = sd_bus_get_property_strv(bus, kSystemd, path.c_str(), "org.freedesktop.systemd1.Service",
                                 "DelegateControllers", &e.error, &list);
    if (r < 0) throw bus_failure("read DelegateControllers of " + unit, r, &e.error);
    std::vector<std::string> controllers;
    for (char** c = list; c && *c; ++c) {
        if (std::find_if(std::begin(kKernelControllers), std::end(kKernelControllers),
                         [&](const char* k) { return std::strcmp(k, *c) == 0; }) !=
            std::end(kKernelControllers)) {
            controllers.emplace_back(*c);
        }
        std::free(*c);
    }
    std::free(list);
    return controllers;
}

void check(int r, const char* what) {
    if (r < 0) throw bus_failure(std::string("build StartTransientUnit: ") + what, r, nullptr);
}

// Asks systemd to stop `unit` (SIGTERM to what is left in it, then its
// cgroup is removed). Returns once the job is queued.
void stop_unit(sd_bus* bus, const std::string& unit) {
    BusError e;
    sd_bus_message* reply = nullptr;
    int r = sd_bus_call_method(bus, kSystemd, "/org/freedesktop/systemd1",
                               "org.freedesktop.systemd1.Manager", "StopUnit", &e.error, &reply,
                               "ss", unit.c_str(), "replace");
    sd_bus_message_unref(reply);
    if (r < 0) throw bus_failure("StopUnit " + unit, r, &e.error);
}

// False when systemd already has a unit of that name (told by the D-Bus
// error's name, not its text); throws on any other failure.
bool start_scope(sd_bus* bus, const TenantScope& scope, const std::string& slice) {
    sd_bus_message* raw = nullptr;
    check(sd_bus_message_new_method_call(bus, &raw, kSystemd, "/org/freedesktop/systemd1",
                                         "org.freedesktop.systemd1.Manager", "StartTransientUnit"),
          "new call");
    Message m(raw, sd_bus_message_unref);
    check(sd_bus_message_append(raw, "ss", scope.unit.c_str(), "fail"), "name");
    check(sd_bus_message_open_container(raw, 'a', "(sv)"), "properties");
    check(sd_bus_message_append(raw, "(sv)", "Description", "s",
                                "pattern-launcher tenants (kept by pattern-launcher hold)"),
          "Description");
    check(sd_bus_message_append(raw, "(sv)", "Slice", "s", slice.c_str()), "Slice");
    check(sd_bus_message_append(raw, "(sv)", "PIDs", "au", 1, static_cast<uint32_t>(scope.holder)),
          "PIDs");
    // Collected once stopped, also after a failure: the name is reused.
    check(sd_bus_message_append(raw, "(sv)", "CollectMode", "s", "inactive-or-failed"),
          "CollectMode");
    // DelegateControllers alone: it turns delegation on with just these
    // (systemd ORs it into the mask, so Delegate=true first would mean all).
    check(sd_bus_message_open_container(raw, 'r', "sv"), "DelegateControllers");
    check(sd_bus_message_append(raw, "s", "DelegateControllers"), "DelegateControllers");
    check(sd_bus_message_open_container(raw, 'v', "as"), "DelegateControllers");
    check(sd_bus_message_open_container(raw, 'a', "s"), "DelegateControllers");
    for (const std::string& c : scope.delegated_controllers)
        check(sd_bus_message_append(raw, "s", c.c_str()), "DelegateControllers");
    check(sd_bus_message_close_container(raw), "DelegateControllers");
    check(sd_bus_message_close_container(raw), "DelegateControllers");
    check(sd_bus_message_close_container(raw), "DelegateControllers");
    check(sd_bus_message_close_container(raw), "properties");
    check(sd_bus_message_append(raw, "a(sa(sv))", 0), "auxiliary units");
    BusError e;
    sd_bus_message* reply = nullptr;
    int r = sd_bus_call(bus, raw, 30 * 1000 * 1000, &e.error, &reply);
    sd_bus_message_unref(reply);
    if (r < 0 && sd_bus_error_has_name(&e.error, kUnitExists)) return false;
    if (r < 0) throw bus_failure("StartTransientUnit " + scope.unit, r, &e.error);
    return true;
}

// This very binary, as "pattern-launcher hold".
pid_t start_holder() {
    const char* executable = "/proc/self/exe";
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    // The daemon blocks the signals it reads through a signalfd; the holder
    // must die of SIGTERM.
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSID);
    const char* argv[] = {"pattern-launcher", "hold", nullptr};
    const char* envp[] = {"PATH=/usr/bin:/bin", nullptr};
    pid_t pid = 0;
    int err = posix_spawn(&pid, executable, nullptr, &attr, const_cast<char**>(argv),
                          const_cast<char**>(envp));
    posix_spawnattr_destroy(&attr);
    if (err != 0) sandbox::throw_sys_error(err, "start the scope's placeholder", executable);
    return pid;
}

bool in_cgroup(pid_t pid, const std::string& dir) {
    // systemd creates the scope's cgroup while it runs the job: not there yet.
    std::error_code ec;
    if (!std::filesystem::exists(dir + "/cgroup.procs", ec)) return false;
    const auto members = sandbox::cgroup_processes(dir);
    return std::find(members.begin(), members.end(), pid) != members.end();
}

}  // namespace

std::optional<TenantScope> open_tenant_scope(const std::string& service_cgroup_dir) {
    char* raw_unit = nullptr;
    if (sd_pid_get_unit(0, &raw_unit) < 0) return std::nullopt;
    const std::string unit = take_string(raw_unit);
    // A unit's type is its name's suffix (systemd.unit(5)).
    if (!unit.ends_with(".service")) return std::nullopt;
    char* raw_slice = nullptr;
    const int r = sd_pid_get_slice(0, &raw_slice);
    const std::string slice = r >= 0 ? take_string(raw_slice) : "system.slice";

    TenantScope scope;
    scope.unit = unit.substr(0, unit.size() - std::strlen(".service")) + "-tenants.scope";
    // A sibling of the service's cgroup, in the same slice.
    scope.cgroup_dir =
        service_cgroup_dir.substr(0, service_cgroup_dir.rfind('/')) + "/" + scope.unit;

    Bus bus = connect_to_systemd();
    scope.delegated_controllers = delegate_controllers(bus.get(), unit);
    if (std::filesystem::exists(scope.cgroup_dir)) {
        // A previous instance's scope, still alive: its tenants are adopted.
        // Its placeholder stays, or a new one takes the empty place.
        const auto holders = sandbox::cgroup_processes(scope.cgroup_dir + "/supervisor");
        if (!holders.empty()) {
            scope.holder = holders.front();
        } else {
            scope.holder = start_holder();
            scope.holder_is_child = true;
        }
        return scope;
    }
    scope.holder = start_holder();
    scope.holder_is_child = true;
    try {
        if (!start_scope(bus.get(), scope, slice)) {
            // A scope of that name without a cgroup: a leftover systemd has
            // not collected yet. Stop it and ask once more.
            stop_unit(bus.get(), scope.unit);
            std::this_thread::sleep_for(std::chrono::milliseconds(200));
            if (!start_scope(bus.get(), scope, slice)) {
                throw std::runtime_error("StartTransientUnit " + scope.unit +
                                         ": the unit still exists after StopUnit");
            }
        }
        // The job moves the holder; wait for it (generously: emulated hosts).
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
        while (!in_cgroup(scope.holder, scope.cgroup_dir)) {
            if (std::chrono::steady_clock::now() > deadline) {
                throw std::runtime_error("systemd did not move the placeholder into " +
                                         scope.cgroup_dir + " within 30 s");
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
    } catch (...) {
        ::kill(scope.holder, SIGKILL);
        ::waitpid(scope.holder, nullptr, 0);
        throw;
    }
    return scope;
}

void release_tenant_scope(const TenantScope& scope) {
    // A previous instance's placeholder is not our child: a pidfd taken now
    // tells when it is gone, whatever becomes of its pid afterwards.
    std::optional<sandbox::Process> holder;
    if (!scope.holder_is_child) {
        try {
            holder = sandbox::Process::open(scope.holder);
        } catch (const std::exception&) {
            // Gone already.
        }
    }
    // Stopping the unit lets systemd end the placeholder and remove the
    // cgroup itself; removing it behind systemd's back would leave the unit
    // "active" without a cgroup, and the next start could not reuse the name.
    try {
        Bus bus = connect_to_systemd();
        stop_unit(bus.get(), scope.unit);
    } catch (const std::exception& e) {
        log::warning(std::string(e.what()) + "; ending the placeholder directly");
        ::kill(scope.holder, SIGTERM);
    }
    if (scope.holder_is_child) {
        ::waitpid(scope.holder, nullptr, 0);
    } else if (holder) {
        // Shutdown, off the serving path: a bounded wait is what we want here.
        holder->wait_exit(std::chrono::milliseconds(10000));
        holder->detach();
    }
}

int run_holder() {
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGTERM, SIG_DFL);
    ::signal(SIGINT, SIG_DFL);
    ::signal(SIGHUP, SIG_IGN);  // not the launcher's reload signal
    for (;;)
        ::pause();
}

}  // namespace launcher
