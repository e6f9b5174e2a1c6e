// The audit trail: one structured record per API call, allowed or denied.
// Under systemd each record is a journal entry whose fields are the
// record's (AUDIT_RPC=LaunchPattern, AUDIT_IDENTITY=..., ...); elsewhere it
// is one JSON line appended to a file. Request config values never appear:
// they may be secrets.
#pragma once

#include <cstdint>
#include <filesystem>
#include <mutex>
#include <string>

#include "sandbox/unique_fd.h"

namespace launcher {

struct AuditRecord {
    std::int64_t time_unix_ms = 0;
    std::string identity;            // CallerIdentity::name()
    std::string auth;                // how it was established: none, unix, mtls, jwt
    std::string transport;           // unix, tls, tcp
    std::string peer;                // pid / address
    std::string certificate_sha256;  // mtls: the client certificate's fingerprint
    std::string rpc;
    std::string decision;  // "allowed" or "denied"
    std::string grant;     // the grant that allowed it
    std::string namespace_id, session_id, pattern, process_id;
    std::int32_t pid = 0;
    std::string result;       // the gRPC status code name: OK, PERMISSION_DENIED, ...
    std::string message;      // the status message when not OK
    std::string exit_cause;   // TerminatePattern: how the process ended
    std::string config_keys;  // LaunchPattern: the names (never the values) of its config
};

// One JSON object, no newline (keys left out when empty or zero).
std::string audit_json(const AuditRecord& record);

class AuditLog {
public:
    // `file` empty: records go to the journal (the logger's journal stream).
    // Otherwise the file is opened O_APPEND (created 0600) now; throws
    // SysError naming it.
    explicit AuditLog(const std::filesystem::path& file);
    // Any thread. One write(2) of one line: the kernel appends it whole, so
    // records of concurrent writers (or a second daemon) never interleave,
    // and a record written survives the launcher's crash (it is in the page
    // cache). No fsync: that would block the event loop.
    void record(const AuditRecord& record);
    const std::filesystem::path& file() const { return file_; }

private:
    std::filesystem::path file_;
    sandbox::UniqueFd fd_;
    std::mutex mutex_;  // serializes the rare short write's retry
};

}  // namespace launcher
