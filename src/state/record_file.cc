#include "state/record_file.h"

#include <cstdint>
#include <stdexcept>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>

namespace launcher::record_file {

namespace {

using pattern_launcher::state::KeyRecord;

void put_u32_le(std::string& out, std::uint32_t value) {
    for (int shift = 0; shift < 32; shift += 8) {
        out += static_cast<char>((value >> shift) & 0xff);
    }
}

std::uint32_t get_u32_le(std::string_view bytes) {
    std::uint32_t value = 0;
    for (std::size_t i = 0; i < 4; ++i) {
        value |= static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i])) << (8 * i);
    }
    return value;
}

// Well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing
// above U+10FFFF), which is what protobuf checks proto3 strings against.
bool is_utf8(std::string_view text) {
    std::size_t i = 0;
    while (i < text.size()) {
        const auto c = static_cast<unsigned char>(text[i]);
        if (c < 0x80) {
            ++i;
            continue;
        }
        std::size_t length = 0;
        unsigned char low = 0x80;
        unsigned char high = 0xbf;  // the range of the second byte
        if (c >= 0xc2 && c <= 0xdf) {
            length = 2;
        } else if (c >= 0xe0 && c <= 0xef) {
            length = 3;
            if (c == 0xe0) low = 0xa0;   // overlong
            if (c == 0xed) high = 0x9f;  // surrogates
        } else if (c >= 0xf0 && c <= 0xf4) {
            length = 4;
            if (c == 0xf0) low = 0x90;   // overlong
            if (c == 0xf4) high = 0x8f;  // above U+10FFFF
        } else {
            return false;
        }
        if (i + length > text.size()) return false;
        const auto second = static_cast<unsigned char>(text[i + 1]);
        if (second < low || second > high) return false;
        for (std::size_t k = 2; k < length; ++k) {
            const auto next = static_cast<unsigned char>(text[i + k]);
            if (next < 0x80 || next > 0xbf) return false;
        }
        i += length;
    }
    return true;
}

// The name of the first string field of `message` that is not UTF-8
// ("config.value"), or empty. Walks the descriptor, so fields added later
// are covered.
std::string first_non_utf8_field(const google::protobuf::Message& message) {
    using google::protobuf::FieldDescriptor;
    const google::protobuf::Descriptor* descriptor = message.GetDescriptor();
    const google::protobuf::Reflection* reflection = message.GetReflection();
    for (int f = 0; f < descriptor->field_count(); ++f) {
        const FieldDescriptor* field = descriptor->field(f);
        if (field->type() == FieldDescriptor::TYPE_STRING) {
            if (field->is_repeated()) {
                for (int k = 0; k < reflection->FieldSize(message, field); ++k) {
                    if (!is_utf8(reflection->GetRepeatedString(message, field, k)))
                        return field->name();
                }
            } else if (!is_utf8(reflection->GetString(message, field))) {
                return field->name();
            }
        } else if (field->type() == FieldDescriptor::TYPE_MESSAGE) {
            // Map entries (config) are repeated messages of key and value.
            if (field->is_repeated()) {
                for (int k = 0; k < reflection->FieldSize(message, field); ++k) {
                    const std::string inner =
                        first_non_utf8_field(reflection->GetRepeatedMessage(message, field, k));
                    if (!inner.empty()) return field->name() + "." + inner;
                }
            } else if (reflection->HasField(message, field)) {
                const std::string inner =
                    first_non_utf8_field(reflection->GetMessage(message, field));
                if (!inner.empty()) return field->name() + "." + inner;
            }
        }
    }
    return {};
}

}  // namespace

std::string frame(std::string_view message) {
    std::string out;
    out.reserve(kHeaderSize + message.size());
    out += kMagic;
    put_u32_le(out, static_cast<std::uint32_t>(message.size()));
    out += message;
    return out;
}

std::string encode(const KeyRecord& record) {
    // proto3 checks UTF-8 when parsing, not when serialising: a string that
    // is not UTF-8 would be written and then refused by the next launcher.
    // (Checked here first: protobuf would also log to stderr about it.)
    if (const std::string field = first_non_utf8_field(record); !field.empty()) {
        throw std::invalid_argument("the record of '" + record.process_id() +
                                    "' would not load back: its " + field + " is not UTF-8");
    }
    std::string message;
    if (!record.SerializeToString(&message)) {
        throw std::invalid_argument("cannot serialise the record of '" + record.process_id() + "'");
    }
    if (kHeaderSize + message.size() > kMaxFileSize) {
        throw std::invalid_argument("the record of '" + record.process_id() + "' is " +
                                    std::to_string(message.size()) +
                                    " bytes, more than a state file may hold");
    }
    // The guarantee, whatever the check above might miss.
    KeyRecord reread;
    if (!reread.ParseFromString(message)) {
        throw std::invalid_argument("the record of '" + record.process_id() +
                                    "' would not load back");
    }
    return frame(message);
}

bool has_magic(std::string_view bytes) {
    if (bytes.size() < kMagic.size()) return !bytes.empty() && kMagic.starts_with(bytes);
    return bytes.starts_with(kMagic);
}

bool decode(std::string_view bytes, KeyRecord& record, std::string& problem) {
    if (!has_magic(bytes)) {
        problem = "not a pattern-launcher state file (no \\x89PLSTATE magic)";
        return false;
    }
    if (bytes.size() < kHeaderSize) {
        problem = "truncated inside the header (" + std::to_string(bytes.size()) + " of " +
                  std::to_string(kHeaderSize) + " bytes)";
        return false;
    }
    const std::uint64_t announced = get_u32_le(bytes.substr(kMagic.size(), 4));
    const std::uint64_t held = bytes.size() - kHeaderSize;
    if (announced > kMaxFileSize) {
        problem = "the header announces " + std::to_string(announced) +
                  " bytes of record, more than a state file may hold";
        return false;
    }
    if (held < announced) {
        problem = "truncated: the header announces " + std::to_string(announced) +
                  " bytes of record, the file holds " + std::to_string(held);
        return false;
    }
    if (held > announced) {
        problem = std::to_string(held - announced) + " bytes after the record (the header " +
                  "announces " + std::to_string(announced) + ")";
        return false;
    }
    record.Clear();
    if (!record.ParseFromArray(bytes.data() + kHeaderSize, static_cast<int>(announced))) {
        problem =
            "not a valid KeyRecord message (malformed protobuf, or a string that is "
            "not UTF-8)";
        return false;
    }
    return true;
}

}  // namespace launcher::record_file
