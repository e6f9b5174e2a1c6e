// The bytes of one state file: a fixed envelope around a binary KeyRecord.
//
//   offset 0   8 bytes  magic "\x89PLSTATE"
//   offset 8   4 bytes  length N of the message, little endian
//   offset 12  N bytes  KeyRecord, protobuf binary encoding
//   nothing after it
//
// Protobuf's binary encoding has no signature, and parsing is lenient: a
// file of random bytes, or a record cut at a field boundary, can parse as a
// (wrong) message. The magic recognises foreign files and the length a cut
// or extended one. The envelope never changes: it carries no version,
// because what evolves is the message, and the message is forward
// compatible (a reader keeps the fields it does not know). The leading 0x89
// (as in PNG) keeps it apart from the text format of earlier launchers,
// which began "pattern-launcher-state 1\n".
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "pattern_launcher/state.pb.h"

namespace launcher::record_file {

inline constexpr std::string_view kMagic{"\x89PLSTATE", 8};
inline constexpr std::size_t kHeaderSize = kMagic.size() + 4;
// A record is a few hundred bytes; anything this large is not one of ours.
inline constexpr std::size_t kMaxFileSize = 1024 * 1024;

// The envelope around already serialised message bytes (tests use it to
// write what a newer launcher would).
std::string frame(std::string_view message);

// The whole file for `record`. Throws std::invalid_argument when the result
// would not decode back (a string that is not UTF-8, which proto3 rejects on
// parsing; a record larger than kMaxFileSize): saving it would lose the key.
std::string encode(const pattern_launcher::state::KeyRecord& record);

// Whether `bytes` start like a state file of this format (or are a prefix of
// the magic: a file cut inside it).
bool has_magic(std::string_view bytes);

// Parses a whole file into `record` (unknown fields are kept in it). On
// failure returns false and says why in `problem`, e.g. "truncated: the
// header announces 120 bytes of record, the file holds 80".
bool decode(std::string_view bytes, pattern_launcher::state::KeyRecord& record,
            std::string& problem);

}  // namespace launcher::record_file
