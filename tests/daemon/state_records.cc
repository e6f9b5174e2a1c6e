#include "state_records.h"

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>

#include "state/record_file.h"

namespace pltest {

std::filesystem::path record_file_of(const std::string& state_dir, const std::string& process_id) {
    // file_for() only computes the name; constructing a store on an existing
    // directory changes nothing in it.
    return launcher::StateStore(state_dir).file_for(process_id);
}

std::optional<KeyRecord> read_record(const std::string& state_dir, const std::string& process_id) {
    std::ifstream in(record_file_of(state_dir, process_id), std::ios::binary);
    if (!in) return std::nullopt;
    const std::string bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    KeyRecord record;
    std::string problem;
    if (!launcher::record_file::decode(bytes, record, problem)) {
        ADD_FAILURE() << "the record of " << process_id << " in " << state_dir
                      << " does not decode: " << problem;
        return std::nullopt;
    }
    return record;
}

bool edit_record(const std::string& state_dir, const std::string& process_id,
                 const std::function<void(KeyRecord&)>& edit) {
    launcher::StateStore store(state_dir);
    launcher::LoadedRecords loaded = store.load_all();
    for (const launcher::SetAsideRecord& bad : loaded.set_aside) {
        ADD_FAILURE() << "the test's StateStore set aside " << bad.file << ": " << bad.reason;
    }
    for (KeyRecord& record : loaded.records) {
        if (record.process_id() != process_id) continue;
        edit(record);
        store.save(record);
        return loaded.set_aside.empty();
    }
    ADD_FAILURE() << "no state record of " << process_id << " in " << state_dir;
    return false;
}

}  // namespace pltest
