#include "config/yaml_strict.h"

#include <yaml-cpp/eventhandler.h>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <system_error>

#include "sandbox/error.h"
#include "sandbox/limits.h"

namespace launcher::yaml_strict {

namespace fs = std::filesystem;

namespace {

std::string in_where(const std::string& where) {
    return where.empty() ? std::string() : " in " + where;
}

// The text of a scalar field; anything else is "<path>: expected <what>, got a list".
const std::string& scalar(const fs::path& file, const Field& field, std::string_view expected) {
    if (!field.value.IsScalar()) {
        fail(file, field, "expected " + std::string(expected) + ", got " + describe(field.value));
    }
    return field.value.Scalar();
}

}  // namespace

int line_of(const YAML::Node& node, int fallback) {
    if (!node.IsDefined() || node.IsNull()) return fallback;
    const YAML::Mark mark = node.Mark();
    if (mark.is_null() || mark.line < 0) return fallback;
    return mark.line + 1;
}

std::string describe(const YAML::Node& node) {
    switch (node.Type()) {
        case YAML::NodeType::Map:
            return "a mapping";
        case YAML::NodeType::Sequence:
            return "a list";
        case YAML::NodeType::Scalar:
            return "'" + node.Scalar() + "'";
        case YAML::NodeType::Null:
        case YAML::NodeType::Undefined:
            break;
    }
    return "an empty value";
}

std::string join(const std::vector<std::string>& items) {
    std::string out;
    for (const std::string& item : items) {
        if (!out.empty()) out += ", ";
        out += item;
    }
    return out;
}

namespace {

// The events of one document, of which it keeps the root node's mark: all
// that load_mapping_file needs of a second document (that it exists, and
// its line). The root comes as the first node event.
class FirstNodeMark : public YAML::EventHandler {
public:
    // The 1-based line of the root, or `fallback` for a null root (as line_of).
    int line(int fallback) const { return mark_ && !mark_->is_null() ? mark_->line + 1 : fallback; }

    void OnDocumentStart(const YAML::Mark&) override {}
    void OnDocumentEnd() override {}
    void OnNull(const YAML::Mark&, YAML::anchor_t) override { seen_ = true; }
    void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override { first(mark); }
    void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                  const std::string&) override {
        first(mark);
    }
    void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                         YAML::EmitterStyle::value) override {
        first(mark);
    }
    void OnSequenceEnd() override {}
    void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                    YAML::EmitterStyle::value) override {
        first(mark);
    }
    void OnMapEnd() override {}

private:
    void first(const YAML::Mark& mark) {
        if (!seen_) mark_ = mark;
        seen_ = true;
    }
    bool seen_ = false;
    std::optional<YAML::Mark> mark_;
};

}  // namespace

YAML::Node load_mapping_file(const fs::path& file) {
    std::error_code ec;
    const fs::file_status status = fs::status(file, ec);
    if (ec) throw FileError(file, 0, "cannot read: " + ec.message());
    if (!fs::is_regular_file(status)) throw FileError(file, 0, "cannot read: not a regular file");
    const std::uintmax_t size = fs::file_size(file, ec);
    if (ec) throw FileError(file, 0, "cannot read: " + ec.message());
    if (size > kMaxFileSize) {
        throw FileError(file, 0,
                        "file is too large (" + std::to_string(size) + " bytes; the limit is " +
                            std::to_string(kMaxFileSize) + ")");
    }

    std::ifstream in(file, std::ios::binary);
    if (!in) throw FileError(file, 0, std::string("cannot read: ") + std::strerror(errno));
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (in.bad()) throw FileError(file, 0, std::string("cannot read: ") + std::strerror(errno));

    // Not YAML::LoadAll: yaml-cpp 0.7 loops there for ever, a new node per
    // turn until memory runs out, on some malformed input such as ",%t\x85ad"
    // (HandleNextDocument keeps reporting an empty document without consuming
    // input; found by tests/fuzz, kept in tests/fuzz/regressions/config). A
    // file holds one document, so load the first and only ask a parser
    // whether a second begins: at most two documents are ever read.
    std::vector<YAML::Node> documents;  // the first, if any
    int second_document_line = -1;      // -1: there is none
    try {
        std::istringstream stream(text);
        YAML::Parser parser(stream);
        FirstNodeMark first, second;
        if (parser.HandleNextDocument(first)) {
            documents.push_back(YAML::Load(text));
            if (parser.HandleNextDocument(second)) second_document_line = second.line(0);
        }
    } catch (const YAML::Exception& e) {
        const int line = e.mark.is_null() ? 0 : e.mark.line + 1;
        std::string message = "YAML syntax error: " + e.msg;
        if (!e.mark.is_null()) message += " (column " + std::to_string(e.mark.column + 1) + ")";
        // yaml-cpp's "end of sequence (flow) not found": most often a string
        // that starts with '[', such as an IPv6 "[2001:db8::1]:443", which YAML
        // reads as a flow list.
        if (e.msg.find("end of sequence") != std::string::npos) {
            message +=
                "; a value that starts with '[' is a YAML list: quote it if it is a string "
                "(\"[2001:db8::1]:443\")";
        }
        throw FileError(file, line, message);
    }
    if (second_document_line >= 0) {
        throw FileError(file, second_document_line,
                        "more than one YAML document (a file holds exactly one)");
    }
    if (documents.empty() || documents[0].IsNull()) {
        throw FileError(file, 1, "the file is empty (expected a mapping of keys)");
    }
    const YAML::Node& root = documents[0];
    if (!root.IsMap()) {
        throw FileError(file, line_of(root, 1),
                        "expected a mapping of keys at the top level, got " + describe(root));
    }
    return root;
}

Mapping::Mapping(const fs::path& file, const YAML::Node& node, std::string where,
                 std::initializer_list<std::string_view> known, int line)
    : file_(file), where_(std::move(where)), line_(line) {
    load(node, std::vector<std::string_view>(known));
}

Mapping::Mapping(const fs::path& file, const Field& field,
                 std::initializer_list<std::string_view> known)
    : Mapping(file, field, std::vector<std::string_view>(known)) {}

Mapping::Mapping(const fs::path& file, const Field& field,
                 const std::vector<std::string_view>& known)
    : file_(file), where_(field.path), line_(field.line()) {
    load(field.value, known);
}

void Mapping::load(const YAML::Node& node, const std::vector<std::string_view>& known) {
    if (!node.IsDefined() || node.IsNull()) return;  // an empty section
    if (!node.IsMap()) {
        std::string prefix = where_.empty() ? std::string() : where_ + ": ";
        throw FileError(file_, line_of(node, line_),
                        prefix + "expected a mapping, got " + describe(node));
    }
    line_ = line_of(node, line_);

    std::vector<std::string> known_names(known.begin(), known.end());
    // Copies, not references: yaml-cpp's iterators hand out temporaries.
    for (const auto& entry : node) {
        const YAML::Node key = entry.first;
        const YAML::Node value = entry.second;
        if (!key.IsScalar()) {
            throw FileError(file_, line_of(key, line_of(value, line_)),
                            "keys must be plain strings, got " + describe(key) + in_where(where_));
        }
        const std::string& name = key.Scalar();
        const int key_line = line_of(key, line_);
        for (const Field& seen : fields_) {
            if (seen.key == name) {
                throw FileError(file_, key_line,
                                "duplicate key '" + name + "'" + in_where(where_) +
                                    " (first at line " + std::to_string(seen.key_line) + ")");
            }
        }
        bool is_known = false;
        for (std::string_view k : known)
            is_known = is_known || k == name;
        if (!is_known) {
            throw FileError(file_, key_line,
                            "unknown key '" + name + "'" + in_where(where_) +
                                " (known: " + join(known_names) + ")");
        }
        fields_.push_back(
            Field{name, where_.empty() ? name : where_ + "." + name, value, key_line});
    }
}

const Field* Mapping::find(std::string_view key) const {
    for (const Field& field : fields_) {
        if (field.key == key) return &field;
    }
    return nullptr;
}

const Field& Mapping::require(std::string_view key) const {
    if (const Field* field = find(key)) return *field;
    throw FileError(file_, line_,
                    "missing required key '" + std::string(key) + "'" + in_where(where_));
}

void fail(const fs::path& file, const Field& field, const std::string& message) {
    throw FileError(file, field.line(), field.path + ": " + message);
}

std::string to_string(const fs::path& file, const Field& field) {
    const std::string& text = scalar(file, field, "a string");
    if (text.find('\0') != std::string::npos) fail(file, field, "must not contain a NUL character");
    return text;
}

std::string to_nonempty_string(const fs::path& file, const Field& field) {
    std::string text = to_string(file, field);
    if (text.empty()) fail(file, field, "must not be empty");
    return text;
}

std::int64_t to_integer(const fs::path& file, const Field& field, std::int64_t min,
                        std::int64_t max) {
    const std::string& text = scalar(file, field, "an integer");
    std::int64_t value = 0;
    const char* end = text.data() + text.size();
    auto [rest, ec] = std::from_chars(text.data(), end, value);
    if (text.empty() || rest != end ||
        (ec != std::errc() && ec != std::errc::result_out_of_range)) {
        fail(file, field, "expected an integer, got '" + text + "'");
    }
    if (ec == std::errc::result_out_of_range) fail(file, field, "'" + text + "' is out of range");
    if (value < min || value > max) {
        // A bound of INT_MAX or more is "no bound" as far as a reader cares.
        const bool unbounded = max >= std::numeric_limits<int>::max();
        if (unbounded && value < min) {
            fail(file, field, "must be at least " + std::to_string(min) + ", got " + text);
        }
        if (unbounded)
            fail(file, field, "must be at most " + std::to_string(max) + ", got " + text);
        fail(file, field,
             "must be between " + std::to_string(min) + " and " + std::to_string(max) + ", got " +
                 text);
    }
    return value;
}

double to_number(const fs::path& file, const Field& field) {
    const std::string& text = scalar(file, field, "a number");
    double value = 0;
    const char* end = text.data() + text.size();
    auto [rest, ec] = std::from_chars(text.data(), end, value);
    if (text.empty() || rest != end || ec != std::errc() || !std::isfinite(value)) {
        fail(file, field, "expected a number, got '" + text + "'");
    }
    return value;
}

bool to_bool(const fs::path& file, const Field& field) {
    const std::string& text = scalar(file, field, "true or false");
    if (text == "true" || text == "True" || text == "TRUE") return true;
    if (text == "false" || text == "False" || text == "FALSE") return false;
    fail(file, field, "expected true or false, got '" + text + "'");
}

std::chrono::milliseconds to_duration(const fs::path& file, const Field& field) {
    const std::string& text = scalar(file, field, "a duration such as 30s");
    try {
        return parse_duration(text);
    } catch (const std::invalid_argument& e) {
        fail(file, field, e.what());
    }
}

std::uint64_t to_size(const fs::path& file, const Field& field) {
    const std::string& text = scalar(file, field, "a size such as 512Mi");
    try {
        return sandbox::parse_size(text);
    } catch (const sandbox::ConfigError& e) {
        fail(file, field, e.what());
    }
}

fs::path to_path(const fs::path& file, const Field& field, const fs::path& base) {
    fs::path path(to_nonempty_string(file, field));
    if (path.is_relative()) path = base / path;
    path = path.lexically_normal();
    // "/run/x/" -> "/run/x", so that appending and comparing behave.
    if (!path.has_filename() && path.has_relative_path()) path = path.parent_path();
    return path;
}

std::vector<Field> to_items(const fs::path& file, const Field& field) {
    std::vector<Field> items;
    if (!field.value.IsDefined() || field.value.IsNull()) return items;
    if (!field.value.IsSequence())
        fail(file, field, "expected a list, got " + describe(field.value));
    std::size_t index = 0;
    for (const YAML::Node& item : field.value) {
        items.push_back(Field{"", field.path + "[" + std::to_string(index) + "]", item,
                              line_of(item, field.line())});
        ++index;
    }
    return items;
}

std::vector<std::string_view> resource_keys() {
    return {"cpu_limit", "memory_limit", "memory_swap_limit", "pids_limit", "cpu_weight"};
}

Resources to_resources(const fs::path& file, const Field& field) {
    return to_resources(file, Mapping(file, field, resource_keys()));
}

Resources to_resources(const fs::path& file, const Mapping& map) {
    Resources resources;
    if (const Field* f = map.find("cpu_limit")) {
        const double cpus = to_number(file, *f);
        if (!(cpus > 0)) fail(file, *f, "must be greater than 0, got " + f->value.Scalar());
        try {
            (void)sandbox::cpu_max_from_cpus(cpus);
        } catch (const sandbox::ConfigError& e) {
            fail(file, *f, e.what());
        }
        resources.cpu_limit = cpus;
    }
    if (const Field* f = map.find("memory_limit")) {
        const std::uint64_t bytes = to_size(file, *f);
        if (bytes == 0)
            fail(file, *f, "must be greater than 0 (a limit of 0 bytes leaves no memory)");
        resources.memory_limit = bytes;
    }
    if (const Field* f = map.find("memory_swap_limit")) {
        resources.memory_swap_limit = to_size(file, *f);
    }
    if (const Field* f = map.find("pids_limit")) {
        resources.pids_limit = static_cast<std::uint64_t>(
            to_integer(file, *f, 1, std::numeric_limits<std::int64_t>::max()));
    }
    if (const Field* f = map.find("cpu_weight")) {
        resources.cpu_weight = static_cast<std::uint32_t>(to_integer(file, *f, 1, 10000));
    }
    return resources;
}

}  // namespace launcher::yaml_strict
