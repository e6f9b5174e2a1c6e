// Taking pattern processes back after the launcher itself was restarted
// (killed, crashed, upgraded). Only the launcher's own cgroup subtree is
// searched; a process is adopted only when a state record, its cgroup and
// its pid all agree. Everything else found there is killed and removed.
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>

#include "core/launcher.h"
#include "core/managed_process.h"
#include "sandbox/error.h"

namespace launcher {

using std::chrono::milliseconds;

namespace {

void log_line(const std::string& line) {
    std::fprintf(stderr, "pattern-launcher: %s\n", line.c_str());
}

std::vector<std::string> subdirectories(const std::string& path) {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(path, ec)) {
        if (entry.is_directory()) out.push_back(entry.path().filename().string());
    }
    return out;
}

// Gets back a listening socket the pattern holds at `fd_number` (its copy
// of what we handed over), if it is still the one bound to 127.0.0.1:port.
sandbox::UniqueFd recover_socket(int pidfd, int fd_number, int port) {
    int fd = static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd, fd_number, 0));
    if (fd < 0) return {};
    sandbox::UniqueFd socket(fd);
    sockaddr_in addr{};
    socklen_t len = sizeof addr;
    int listening = 0;
    socklen_t optlen = sizeof listening;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0 ||
        addr.sin_family != AF_INET || ntohs(addr.sin_port) != port ||
        ::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &optlen) != 0 || !listening) {
        return {};
    }
    return socket;
}

// Who a process runs as: real and effective uid and gid.
struct RunsAs {
    std::uint64_t uid[2] = {};
    std::uint64_t gid[2] = {};
};

// From /proc/<pid>/status; nullopt (and `problem` set) when it cannot be read.
std::optional<RunsAs> runs_as(pid_t pid, std::string& problem) {
    const std::string path = "/proc/" + std::to_string(pid) + "/status";
    std::ifstream in(path);
    if (!in) {
        problem = "cannot read " + path;
        return std::nullopt;
    }
    RunsAs ids;
    int found = 0;
    for (std::string line; found < 2 && std::getline(in, line);) {
        const bool uid = line.starts_with("Uid:");
        if (!uid && !line.starts_with("Gid:")) continue;
        std::uint64_t* pair = uid ? ids.uid : ids.gid;
        std::istringstream fields(line.substr(4));
        if (!(fields >> pair[0] >> pair[1])) {
            problem = "unreadable line '" + line + "' in " + path;
            return std::nullopt;
        }
        ++found;
    }
    if (found < 2) {
        problem = "no Uid: and Gid: lines in " + path;
        return std::nullopt;
    }
    return ids;
}

// Why a process that runs as `ids` cannot be the key whose record names
// `identity` (0: none), or "". A key with an identity runs as that uid and
// gid; one without runs as nothing from the pool, which could hand it out.
std::string identity_problem(const RunsAs& ids, std::uint32_t identity, const IdentityPool& pool) {
    for (const bool uid : {true, false}) {
        const std::uint64_t* pair = uid ? ids.uid : ids.gid;
        const std::string what = std::string(uid ? "uid " : "gid ") + std::to_string(pair[0]) +
                                 " (effective " + std::to_string(pair[1]) + ")";
        if (identity != 0 && (pair[0] != identity || pair[1] != identity)) {
            return "runs as " + what + ", not as its identity " + std::to_string(identity);
        }
        if (identity == 0 && (pool.contains(static_cast<std::uint32_t>(pair[0])) ||
                              pool.contains(static_cast<std::uint32_t>(pair[1])))) {
            return "runs as " + what + " from identity_range, but its state record names no " +
                   "identity";
        }
    }
    return {};
}

}  // namespace

bool Launcher::adopt(const ProcessRecord& record, sandbox::Cgroup& group) {
    auto pattern = patterns_.find(record.pattern);
    auto level = parse_isolation(record.isolation);
    if (pattern == patterns_.end() || !level) return false;
    IsolationKey key{*level, record.pattern, record.namespace_id, record.session_id};
    if (key.process_id() != record.process_id) return false;
    // The process runs in one leaf ("run.N") of the key's group.
    auto has_pid = [&](const std::string& leaf) {
        auto members = sandbox::cgroup_processes(leaf);
        return std::find(members.begin(), members.end(), record.pid) != members.end();
    };
    std::string leaf;
    for (const std::string& name : subdirectories(group.path())) {
        if (has_pid(group.path() + "/" + name)) leaf = group.path() + "/" + name;
    }
    if (leaf.empty()) return false;
    sandbox::Process process = sandbox::Process::open(record.pid);
    // The pid could have been recycled between the read and pidfd_open:
    // it must still be in the leaf now that the pidfd pins the process.
    if (!has_pid(leaf)) {
        process.detach();  // not ours: never signal it
        return false;
    }
    // Who it runs as must match the record's identity (the pid is the host's
    // view of PID 1 of the pattern's pid namespace, which runs as the key
    // too), and no other key may hold that identity.
    std::string why;
    const std::optional<RunsAs> adopted_ids = runs_as(record.pid, why);
    if (adopted_ids) why = identity_problem(*adopted_ids, record.identity, identities_);
    // Still running after the read: the status was its own, not a recycled pid's.
    if (why.empty() && process.has_exited()) why = "it exited while being adopted";
    if (why.empty() && record.identity != 0 && !identities_.reserve(record.identity)) {
        const IdRange& range = identities_.range();
        why = "identity " + std::to_string(record.identity);
        if (!identities_.contains(record.identity)) {
            why += " is outside identity_range " + std::to_string(range.first) + "-" +
                   std::to_string(range.last());
        } else if (identities_.is_held(record.identity)) {
            why += " is already held by another key";
        } else {
            why += " is named in /etc/passwd or /etc/group";
        }
    }
    if (!why.empty()) {
        log_line("not adopting " + record.process_id + " (pid " + std::to_string(record.pid) +
                 "): " + why);
        return false;
    }
    // Given back if the adoption fails from here on.
    struct Reservation {
        IdentityPool& pool;
        std::uint32_t id;
        ~Reservation() {
            if (id != 0) pool.release(id);
        }
    } reservation{identities_, record.identity};
    auto run = std::make_unique<sandbox::Cgroup>(sandbox::Cgroup::adopt(leaf));

    auto owned = std::make_unique<ManagedProcess>();
    ManagedProcess& p = *owned;
    p.key = key;
    p.id = record.process_id;
    p.manifest = pattern->second;
    p.config = record.config;
    p.state = ProcessState::kRunning;
    p.healthy = true;  // liveness checks confirm it from here on
    p.ever_running = true;
    p.adopted = true;
    p.limits_enforced = record.limits_enforced;
    p.grace = milliseconds(record.grace_period_ms > 0 ? record.grace_period_ms
                                                      : config_.default_grace_period.count());
    p.group = std::make_unique<sandbox::Cgroup>(std::move(group));
    p.run = std::move(run);
    p.oom_kills_at_start = p.group->memory_events().oom_kill;
    p.grpc.port = record.grpc_port;
    p.grpc.fd = recover_socket(process.pidfd(), 3, record.grpc_port);
    p.health.port = record.health_port;
    if (record.health_port && p.manifest->healthcheck.type == HealthcheckType::kHttp) {
        p.health.fd = recover_socket(process.pidfd(), 4, record.health_port);
    }
    ports_.reserve(record.grpc_port);
    if (record.health_port) ports_.reserve(record.health_port);
    p.address = record.address;
    p.pid = record.pid;
    p.process = std::move(process);
    p.process_alive = true;
    p.started_at_unix_ms = record.started_at_unix_ms;
    const auto age = std::chrono::system_clock::now() -
                     std::chrono::system_clock::time_point(milliseconds(record.started_at_unix_ms));
    p.started_at =
        EventLoop::Clock::now() - std::chrono::duration_cast<EventLoop::Clock::duration>(age);
    p.restart_count = record.restart_count;
    p.identity = record.identity;
    if (adopted_ids) {
        p.uid = static_cast<std::uint32_t>(adopted_ids->uid[0]);
        p.gid = static_cast<std::uint32_t>(adopted_ids->gid[0]);
    }
    p.confinement = applied_confinement(*p.manifest, *confinement_);
    p.weakened = confinement_weakenings(*p.manifest);

    if (!key.namespace_id.empty()) namespace_group(key.namespace_id);
    if (key.level == Isolation::kSession) session_owner_.emplace(key.session_id, key.namespace_id);
    processes_[p.id] = std::move(owned);
    reservation.id = 0;  // the key holds it now
    watch_process(p);
    schedule_liveness(p);
    persist(p);
    log_line("adopted " + p.id + " (pid " + std::to_string(p.pid) + ", " + p.address +
             (p.grpc.fd ? ", socket recovered" : ", socket to be bound again on restart") + ")");
    return true;
}

Launcher::RecoveryReport Launcher::recover() {
    RecoveryReport report;
    LoadedRecords loaded = state_.load_all();
    for (const std::string& problem : loaded.problems) {
        log_line("untrusted state record " + problem + "; whatever it described is killed");
    }
    std::map<std::string, ProcessRecord> by_cgroup;
    for (ProcessRecord& r : loaded.records)
        by_cgroup[r.cgroup] = std::move(r);

    // One key's group: adopt its process, or kill and remove what is there.
    auto handle_group = [&](const std::string& path) {
        sandbox::Cgroup group = sandbox::Cgroup::adopt(path);
        auto record = by_cgroup.find(path);
        std::size_t count = group.processes().size();
        for (const std::string& leaf : subdirectories(path)) {
            count += sandbox::cgroup_processes(path + "/" + leaf).size();
        }
        bool adopted = false;
        std::string why = "no state record describes it";
        if (record != by_cgroup.end()) {
            if (config_.orphan_policy == OrphanPolicy::kKill) {
                why = "orphan_policy is kill";
            } else {
                try {
                    adopted = count > 0 && adopt(record->second, group);
                } catch (const std::exception& e) {
                    log_line("cannot adopt " + record->second.process_id + ": " + e.what());
                }
                why = "its state record does not match it";
            }
        }
        if (adopted) {
            ++report.adopted;
        } else {
            if (count > 0) {
                log_line("killing " + std::to_string(count) + " process(es) in " + path + ": " +
                         why);
                report.killed += static_cast<int>(count);
            }
            group.kill();
            group.remove(milliseconds(5000));
            ++report.removed_groups;
            if (record != by_cgroup.end()) state_.remove(record->second.process_id);
        }
        if (record != by_cgroup.end()) by_cgroup.erase(record);
    };

    const std::string root = tree_.root_path();
    for (const std::string& name : subdirectories(root)) {
        if (name == "supervisor") continue;
        const std::string path = root + "/" + name;
        if (name.starts_with("ns:") && std::count(name.begin(), name.end(), ':') == 1) {
            for (const std::string& child : subdirectories(path))
                handle_group(path + "/" + child);
            // A namespace group nobody was adopted into is removed.
            if (!namespace_groups_.count(name.substr(3))) {
                sandbox::Cgroup ns = sandbox::Cgroup::adopt(path);
                ns.kill();
                ns.remove(milliseconds(5000));
                ++report.removed_groups;
            }
        } else {
            handle_group(path);
        }
    }
    for (const auto& [cgroup, record] : by_cgroup) {
        log_line("state record of " + record.process_id + " names " + cgroup +
                 ", where no process runs; forgetting it");
        state_.remove(record.process_id);
        ++report.stale_records;
    }
    return report;
}

}  // namespace launcher
