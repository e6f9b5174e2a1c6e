#include "api/audit_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <nlohmann/json.hpp>

#include "common/log.h"
#include "sandbox/error.h"

namespace launcher {

std::string audit_json(const AuditRecord& r) {
    nlohmann::ordered_json j;
    j["time_unix_ms"] = r.time_unix_ms;
    auto put = [&j](const char* key, const std::string& value) {
        if (!value.empty()) j[key] = value;
    };
    put("identity", r.identity);
    put("auth", r.auth);
    put("transport", r.transport);
    put("peer", r.peer);
    put("certificate_sha256", r.certificate_sha256);
    put("rpc", r.rpc);
    put("decision", r.decision);
    put("grant", r.grant);
    put("namespace", r.namespace_id);
    put("session_id", r.session_id);
    put("pattern", r.pattern);
    put("process_id", r.process_id);
    if (r.pid != 0) j["pid"] = r.pid;
    put("result", r.result);
    put("message", r.message);
    put("exit_cause", r.exit_cause);
    put("config_keys", r.config_keys);
    // Identities and ids come from callers: replace invalid UTF-8 rather than throw.
    return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

AuditLog::AuditLog(const std::filesystem::path& file) : file_(file) {
    if (file_.empty()) return;
    std::error_code ec;
    std::filesystem::create_directories(file_.parent_path(), ec);
    fd_ = sandbox::UniqueFd(
        ::open(file_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!fd_) sandbox::throw_sys_error(errno, "open the audit log", file_.string());
}

void AuditLog::record(const AuditRecord& r) {
    if (!fd_) {
        std::string text = "audit: " + r.rpc + " " + r.decision + " identity=[" + r.identity +
                           "] result=" + r.result;
        if (!r.process_id.empty()) text += " process_id=" + r.process_id;
        if (!r.message.empty()) text += " message=\"" + r.message + "\"";
        log::write_record(log::Level::kNotice, text, {r.process_id, r.namespace_id, r.pattern},
                          {{"AUDIT_RPC", r.rpc},
                           {"AUDIT_DECISION", r.decision},
                           {"AUDIT_IDENTITY", r.identity},
                           {"AUDIT_AUTH", r.auth},
                           {"AUDIT_TRANSPORT", r.transport},
                           {"AUDIT_PEER", r.peer},
                           {"AUDIT_CERTIFICATE_SHA256", r.certificate_sha256},
                           {"AUDIT_GRANT", r.grant},
                           {"AUDIT_SESSION_ID", r.session_id},
                           {"AUDIT_PID", r.pid ? std::to_string(r.pid) : ""},
                           {"AUDIT_RESULT", r.result},
                           {"AUDIT_MESSAGE", r.message},
                           {"AUDIT_EXIT_CAUSE", r.exit_cause},
                           {"AUDIT_CONFIG_KEYS", r.config_keys},
                           {"AUDIT_JSON", audit_json(r)}});
        return;
    }
    const std::string line = audit_json(r) + "\n";
    std::lock_guard lock(mutex_);
    std::size_t done = 0;
    while (done < line.size()) {
        ssize_t n = ::write(fd_.get(), line.data() + done, line.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            log::error("audit log " + file_.string() + ": write failed: " +
                       std::string(std::strerror(errno)) + "; record: " + audit_json(r));
            return;
        }
        done += static_cast<std::size_t>(n);
    }
}

}  // namespace launcher
