// The keys' durable records: what the launcher owes each key it accepted
// and what it needs to take the key back after its own restart.
//
// One file per key under <runtime_dir>/state/, named after its process id
// ("ns:tenant-a:echo" -> "ns%3atenant-a%3aecho.state"), holding a KeyRecord
// (proto/pattern_launcher/state.proto) in the envelope of record_file.h.
//
// Written atomically: the bytes go to a temporary file in the same
// directory, which is renamed over the record, so a reader finds the old or
// the new record, never a torn one. Not fsynced, deliberately: the records
// live in the runtime directory (/run, a tmpfs) and protect against a crash
// of the launcher itself, which a rename into the page cache survives; a
// crash of the host ends every tenant anyway, and with them what a record
// could describe. So a save costs a few microseconds and stays on the loop
// (issue 11: "fsyncs off the loop or not at all").
//
// Forward compatible: fields a newer launcher added are kept (protobuf 3.5+
// keeps unknown proto3 fields) and written back by save(). Nothing is ever
// rejected for its version, and nothing is ever deleted for being wrong: a
// file that cannot be trusted is moved to <dir>/set-aside/ and reported,
// and its process is judged by the cgroup and pid checks.
//
// Not synchronised: one thread (the loop's) uses a store.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "pattern_launcher/state.pb.h"

namespace launcher {

using KeyRecord = pattern_launcher::state::KeyRecord;

// A file of the state directory that load_all() could not trust. The store
// does not log these: the caller does, once, with what it did about them.
struct SetAsideRecord {
    std::filesystem::path file;  // where it was
    // <dir>/set-aside/<name>.<unix_ms>[.n]; empty: left in place (a file not
    // named like a record, or one that could not be moved; see reason).
    std::filesystem::path moved_to;
    std::string reason;  // e.g. "truncated: the header announces 120 bytes ..."
};

struct LoadedRecords {
    std::vector<KeyRecord> records;  // sorted by process_id
    std::vector<SetAsideRecord> set_aside;
};

class StateStore {
public:
    // Creates `dir` (0700; its parents as ordinary directories) if needed.
    // Throws SysError naming the path.
    explicit StateStore(std::filesystem::path dir);

    // Atomically replaces the record of record.process_id(). Throws SysError
    // naming the path; std::invalid_argument for a record that would not
    // load back (an empty process id, a string that is not UTF-8).
    void save(const KeyRecord& record);
    // Removes the record; a missing one is fine. Throws SysError.
    void remove(const std::string& process_id);
    // Reads every record. Never throws for a bad file: one that cannot be
    // parsed (not a state file, truncated, a process_id that is empty or does
    // not match the file name) is moved aside and listed in set_aside.
    // Temporary files left by a crash in save() are removed. A record of
    // the previous text format is converted and rewritten in this one.
    // Throws SysError only when the directory itself cannot be read.
    LoadedRecords load_all();

    const std::filesystem::path& dir() const { return dir_; }

    // The file of a process id: bytes outside [a-z0-9._-] become %hh.
    std::filesystem::path file_for(const std::string& process_id) const;

private:
    std::filesystem::path set_aside(const std::filesystem::path& file, std::string& reason);
    std::filesystem::path dir_;
};

}  // namespace launcher
