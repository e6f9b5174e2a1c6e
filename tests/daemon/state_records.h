// The daemon's state records (<runtime_dir>/state, src/state/state_store.h)
// as the recovery tests read and edit them: through the launcher's own
// StateStore, so that a test edits the binary KeyRecord, not its bytes.
#pragma once

#include <filesystem>
#include <functional>
#include <optional>
#include <string>

#include "state/state_store.h"

namespace pltest {

using launcher::KeyRecord;

// The record of `process_id` in `state_dir`, read without a StateStore (so
// safe while the daemon runs: load_all() would move files and remove the
// daemon's temporary ones). nullopt if there is none or it cannot be decoded.
std::optional<KeyRecord> read_record(const std::string& state_dir, const std::string& process_id);

// Loads every record of `state_dir` (the daemon must be down), applies
// `edit` to the one of `process_id` and saves it back. Fails the test (and
// returns false) if there is no such record or a file was set aside.
bool edit_record(const std::string& state_dir, const std::string& process_id,
                 const std::function<void(KeyRecord&)>& edit);

// The file that holds the record of `process_id`.
std::filesystem::path record_file_of(const std::string& state_dir, const std::string& process_id);

}  // namespace pltest
