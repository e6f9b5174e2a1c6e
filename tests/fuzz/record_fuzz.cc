// Fuzz target: a state file as found on disk after a crash
// (record_file::decode: magic, length, protobuf KeyRecord). decode reports
// failure by its result and must never throw. A record it accepts must
// survive a save: encode() takes it (std::invalid_argument would mean the
// launcher reads a record it then cannot write back, losing the key) and
// decoding that gives the same message.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <google/protobuf/util/message_differencer.h>

#include "fuzz_support.h"
#include "state/record_file.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    namespace rf = launcher::record_file;
    const std::string_view bytes(reinterpret_cast<const char*>(data), size);
    pattern_launcher::state::KeyRecord record;
    std::string problem;
    const bool magic = rf::has_magic(bytes);
    if (!rf::decode(bytes, record, problem)) {
        fuzz::check(!problem.empty(), "decode failed without saying why");
        return 0;
    }
    fuzz::check(magic, "decode accepted a file without the magic");
    std::string saved;
    try {
        saved = rf::encode(record);
    } catch (const std::invalid_argument& e) {
        fuzz::finding("a decoded record does not encode:", e.what());
    }
    pattern_launcher::state::KeyRecord again;
    fuzz::check(rf::decode(saved, again, problem), "an encoded record does not decode:", problem);
    // Compared as messages: the bytes of a map field follow its hash order,
    // which differs between two equal messages.
    fuzz::check(google::protobuf::util::MessageDifferencer::Equals(record, again),
                "a record changed through encode and decode");
    return 0;
}
