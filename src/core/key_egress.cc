// A key's way out (sandbox.egress): its network namespace, veth and rules
// through the NetworkPort, the name files of its view, and the periodic
// lookup of the listed host names on the background worker. Runs on the loop.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>

#include "core/egress_plan.h"
#include "core/key.h"
#include "core/launcher.h"
#include "core/spawn_plan.h"
#include "sandbox/error.h"

namespace launcher {
namespace {

// In place (not a rename): the file is bound into the pattern's view by
// inode, so a new file would never be seen there. It is small, on the
// runtime directory's tmpfs, and never synced.
void write_in_place(const std::filesystem::path& path, const std::string& text) {
    sandbox::UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644));
    if (!fd) sandbox::throw_sys_error(errno, "open", path.string());
    if (::ftruncate(fd.get(), 0) != 0) sandbox::throw_sys_error(errno, "truncate", path.string());
    std::size_t done = 0;
    while (done < text.size()) {
        const ssize_t n =
            ::pwrite(fd.get(), text.data() + done, text.size() - done, static_cast<off_t>(done));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) sandbox::throw_sys_error(errno, "write", path.string());
        done += static_cast<std::size_t>(n);
    }
}

}  // namespace

std::filesystem::path Launcher::name_file(const Key& k, const char* suffix) const {
    return config_.runtime_dir / "egress" / (k.id + suffix);
}

std::vector<sandbox::EgressAllow> Launcher::egress_allowed(const Key& k) const {
    return allowed_elements(effective_egress(*k.manifest, k.key, config_.egress), names_.addresses)
        .allowed;
}

void Launcher::write_name_files(const Key& k) {
    const std::vector<EgressDestination> list =
        effective_egress(*k.manifest, k.key, config_.egress);
    write_in_place(name_file(k, ".hosts"), render_hosts(egress_names(list), names_.addresses));
    write_in_place(name_file(k, ".resolv"), render_resolv_conf());
}

// From prepare(): the key's first start (or its first after a launcher
// restart that did not adopt it). Throws StartError: never a start without
// its rules.
void Launcher::open_network(Key& k) {
    const std::vector<EgressDestination> list =
        effective_egress(*k.manifest, k.key, config_.egress);
    if (list.empty() || k.network) return;
    const std::string& pattern = k.manifest->name;
    if (!network_) {
        throw StartError(ErrorCode::kFailedPrecondition,
                         "pattern '" + pattern +
                             "' has an egress list and this launcher has no "
                             "network for it");
    }
    const std::vector<std::string> names = egress_names(list);
    if (!names.empty() && !has_file_view(*k.manifest)) {
        throw StartError(ErrorCode::kFailedPrecondition,
                         "pattern '" + pattern +
                             "' lists host names in sandbox.egress: they resolve through the "
                             "view's /etc/hosts, which needs the mount namespace");
    }
    const AllowedElements allowed = allowed_elements(list, names_.addresses);
    if (!allowed.unresolved.empty()) {
        const std::string& name = allowed.unresolved.front();
        const auto error = names_.errors.find(name);
        if (error == names_.errors.end()) {
            resolve_names();
            throw StartError(ErrorCode::kUnavailable,
                             "egress name '" + name + "' is being looked up; try again");
        }
        throw StartError(ErrorCode::kFailedPrecondition,
                         "egress name '" + name + "' does not resolve: " + error->second);
    }
    if (k.egress_slot == 0) {
        const std::optional<EgressSlot> slot = egress_pool_.allocate();
        if (!slot) {
            throw StartError(ErrorCode::kResourceExhausted,
                             "no free address in egress.pool " +
                                 sandbox::to_string(egress_pool_.network()) + " (" +
                                 std::to_string(egress_pool_.in_use()) + " keys hold one)");
        }
        k.egress_slot = slot->index;
    }
    try {
        k.network = network_->open(k.id, egress_pool_.slot(k.egress_slot), allowed.allowed);
        write_name_files(k);
    } catch (const std::exception& e) {
        // release() gives the slot back (and closes a network made here).
        throw StartError(ErrorCode::kFailedPrecondition, std::string("egress: ") + e.what());
    }
}

// From release(): everything made for the key's way out goes.
void Launcher::close_network(Key& k) {
    if (k.network) {
        try {
            k.network->close();
        } catch (const std::exception& e) {
            log::warning(k.id + ": removing its egress: " + e.what(), log_key(k));
        }
        k.network.reset();
    }
    if (k.egress_slot != 0) {
        egress_pool_.release(k.egress_slot);
        k.egress_slot = 0;
        for (const char* suffix : {".hosts", ".resolv"}) {
            const std::filesystem::path file = name_file(k, suffix);
            if (::unlink(file.c_str()) != 0 && errno != ENOENT)
                log::warning(k.id + ": removing " + file.string() + ": " + std::strerror(errno),
                             log_key(k));
        }
    }
}

// Recovery of a live process whose record names an egress slot: its
// namespace (which the process keeps alive) and the veth a previous
// instance made. False with `why` when that is not there any more.
bool Launcher::adopt_network(Key& k, const KeyRecord& record, pid_t pid, std::string& why) {
    const std::uint32_t slot = record.egress_slot();
    if (slot == 0) return true;
    if (!network_) {
        why = "its record names egress slot " + std::to_string(slot) + " and there is no network";
        return false;
    }
    if (!egress_pool_.claim(slot)) {
        why = "its egress slot " + std::to_string(slot) + " is taken or outside egress.pool " +
              sandbox::to_string(egress_pool_.network());
        return false;
    }
    try {
        k.egress_slot = slot;
        // A pattern no longer discovered keeps its namespace, with nothing open.
        const std::vector<sandbox::EgressAllow> allowed =
            k.manifest ? egress_allowed(k) : std::vector<sandbox::EgressAllow>{};
        k.network = network_->adopt(k.id, egress_pool_.slot(slot), pid, allowed);
        if (k.manifest) write_name_files(k);
    } catch (const std::exception& e) {
        k.network.reset();
        k.egress_slot = 0;
        egress_pool_.release(slot);
        why = std::string("its egress: ") + e.what();
        return false;
    }
    return true;
}

std::vector<std::string> Launcher::known_egress_names() const {
    std::vector<EgressDestination> all;
    for (const auto& [name, manifest] : patterns_)
        all.insert(all.end(), manifest->sandbox.egress.begin(), manifest->sandbox.egress.end());
    for (const auto& [ns, list] : config_.egress.tenants)
        all.insert(all.end(), list.begin(), list.end());
    return egress_names(all);
}

// getaddrinfo goes through NSS and may wait on a name server: on the worker.
void Launcher::resolve_names() {
    if (resolving_) {
        resolve_again_ = true;
        return;
    }
    const std::vector<std::string> names = known_egress_names();
    if (names.empty()) return;
    resolving_ = true;
    std::weak_ptr<bool> alive = alive_;
    background_.submit([this, names, alive] {
        NameResolution resolution = resolve_egress_names(names);
        loop_.post([this, alive, resolution = std::move(resolution)]() mutable {
            if (alive.lock()) names_resolved(std::move(resolution));
        });
    });
}

// A name that moved: the keys that list it get their new rules and hosts
// file; a name that stopped resolving keeps its last addresses (a name
// server's hiccup must not cut a running pattern off its database).
void Launcher::names_resolved(NameResolution resolution) {
    resolving_ = false;
    std::set<std::string> moved;
    for (auto& [name, addresses] : resolution.addresses) {
        names_.errors.erase(name);
        std::vector<sandbox::Ipv4Address>& known = names_.addresses[name];
        if (known != addresses) moved.insert(name);
        known = std::move(addresses);
    }
    for (auto& [name, error] : resolution.errors) {
        if (names_.addresses.count(name)) {
            log::warning("egress name '" + name + "' did not resolve (" + error +
                         "); its last addresses stay");
        } else {
            names_.errors[name] = std::move(error);
        }
    }
    for (auto& [id, owned] : processes_) {
        Key& k = *owned;
        if (!k.network) continue;
        const std::vector<std::string> names =
            egress_names(effective_egress(*k.manifest, k.key, config_.egress));
        if (std::none_of(names.begin(), names.end(),
                         [&](const std::string& n) { return moved.count(n) > 0; }))
            continue;
        try {
            k.network->update(egress_allowed(k));
            write_name_files(k);
        } catch (const std::exception& e) {
            log::warning(k.id + ": updating its egress: " + e.what(), log_key(k));
        }
    }
    if (resolve_again_) {
        resolve_again_ = false;
        resolve_names();
        return;
    }
    names_timer_ = loop_.timer(config_.egress.resolve_interval, [this] { resolve_names(); });
}

}  // namespace launcher
