// Our proto/prism/launcher/launcher.proto against Prism's own definition
// (jrepp/prism-data-layer, proto/prism/launcher/launcher.proto): every
// element Prism defines must exist in ours identically (package, service,
// methods and their types, messages, field names, numbers, types, labels,
// JSON names, enum names and numbers), so that binary, JSON and reflection
// clients agree. Ours may only add fields, RPCs, messages and enum values,
// with numbers Prism does not use.
//
// The reference is a table, not Prism's file: upstream has no license
// ("License: [To be determined]" in its README at c45f0c7d, 2025-10-18, no
// LICENSE file), so the file is not vendored. The table is transcribed from
// that commit (see /work/shared/notes/prism-launcher-as-built.md §1). With
// PL_PRISM_PROTO=<a checkout's proto/prism/launcher/launcher.proto>, the
// table itself is checked against the real file (compiled with protoc).
#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "prism/launcher/launcher.pb.h"

namespace {

namespace gp = google::protobuf;
namespace fs = std::filesystem;

// ---- the reference: Prism's launcher.proto as of c45f0c7d (2025-10-18) ----------------

constexpr const char* kFileName = "prism/launcher/launcher.proto";
constexpr const char* kPackage = "prism.launcher";
constexpr const char* kService = "PatternLauncher";

struct MethodRef {
    const char* name;
    const char* input;
    const char* output;
};
const std::vector<MethodRef> kMethods = {
    {"LaunchPattern", "LaunchRequest", "LaunchResponse"},
    {"ListPatterns", "ListPatternsRequest", "ListPatternsResponse"},
    {"TerminatePattern", "TerminateRequest", "TerminateResponse"},
    {"Health", "HealthRequest", "HealthResponse"},
    {"GetProcessStatus", "GetProcessStatusRequest", "GetProcessStatusResponse"},
};

// type: a scalar ("string", "int64", ...), a message or enum of the package,
// "repeated <type>", or "map<key, value>". No field is proto3 `optional` or
// in a oneof; none has a json_name of its own.
struct FieldRef {
    const char* name;
    int number;
    const char* type;
};
struct MessageRef {
    const char* name;
    std::vector<FieldRef> fields;
};
const std::vector<MessageRef> kMessages = {
    {"LaunchRequest",
     {{"pattern_name", 1, "string"},
      {"isolation", 2, "IsolationLevel"},
      {"namespace", 3, "string"},
      {"session_id", 4, "string"},
      {"config", 5, "map<string, string>"},
      {"grace_period_secs", 6, "int64"}}},
    {"LaunchResponse",
     {{"process_id", 1, "string"},
      {"state", 2, "ProcessState"},
      {"address", 3, "string"},
      {"healthy", 4, "bool"},
      {"error", 5, "string"}}},
    {"ListPatternsRequest",
     {{"pattern_name", 1, "string"}, {"namespace", 2, "string"}, {"state", 3, "ProcessState"}}},
    {"ListPatternsResponse",
     {{"patterns", 1, "repeated PatternInfo"}, {"total_count", 2, "int32"}}},
    {"PatternInfo",
     {{"pattern_name", 1, "string"},
      {"process_id", 2, "string"},
      {"state", 3, "ProcessState"},
      {"address", 4, "string"},
      {"healthy", 5, "bool"},
      {"uptime_seconds", 6, "int64"},
      {"namespace", 7, "string"},
      {"session_id", 8, "string"},
      {"last_error", 9, "string"},
      {"error_count", 10, "int32"},
      {"restart_count", 11, "int32"},
      {"pid", 12, "int32"}}},
    {"TerminateRequest",
     {{"process_id", 1, "string"}, {"grace_period_secs", 2, "int64"}, {"force", 3, "bool"}}},
    {"TerminateResponse", {{"success", 1, "bool"}, {"error", 2, "string"}}},
    {"HealthRequest", {{"include_processes", 1, "bool"}}},
    {"HealthResponse",
     {{"healthy", 1, "bool"},
      {"total_processes", 2, "int32"},
      {"running_processes", 3, "int32"},
      {"terminating_processes", 4, "int32"},
      {"failed_processes", 5, "int32"},
      {"isolation_distribution", 6, "map<string, int32>"},
      {"processes", 7, "repeated PatternInfo"},
      {"uptime_seconds", 8, "int64"}}},
    {"GetProcessStatusRequest", {{"process_id", 1, "string"}}},
    {"GetProcessStatusResponse", {{"process", 1, "PatternInfo"}, {"not_found", 2, "bool"}}},
};

struct EnumRef {
    const char* name;
    std::vector<std::pair<const char*, int>> values;
};
const std::vector<EnumRef> kEnums = {
    {"IsolationLevel",
     {{"ISOLATION_LEVEL_UNSPECIFIED", 0},
      {"ISOLATION_NONE", 1},
      {"ISOLATION_NAMESPACE", 2},
      {"ISOLATION_SESSION", 3}}},
    {"ProcessState",
     {{"STATE_UNSPECIFIED", 0},
      {"STATE_STARTING", 1},
      {"STATE_RUNNING", 2},
      {"STATE_TERMINATING", 3},
      {"STATE_TERMINATED", 4},
      {"STATE_FAILED", 5},
      {"STATE_FINISHED", 6}}},
};

// ---- the table as a FileDescriptorProto ---------------------------------------------

const std::map<std::string, gp::FieldDescriptorProto::Type> kScalars = {
    {"double", gp::FieldDescriptorProto::TYPE_DOUBLE},
    {"float", gp::FieldDescriptorProto::TYPE_FLOAT},
    {"int64", gp::FieldDescriptorProto::TYPE_INT64},
    {"uint64", gp::FieldDescriptorProto::TYPE_UINT64},
    {"int32", gp::FieldDescriptorProto::TYPE_INT32},
    {"uint32", gp::FieldDescriptorProto::TYPE_UINT32},
    {"bool", gp::FieldDescriptorProto::TYPE_BOOL},
    {"string", gp::FieldDescriptorProto::TYPE_STRING},
    {"bytes", gp::FieldDescriptorProto::TYPE_BYTES},
};

bool is_enum_name(const std::string& name) {
    for (const EnumRef& e : kEnums)
        if (name == e.name) return true;
    return false;
}

void set_type(gp::FieldDescriptorProto* f, const std::string& type) {
    if (auto it = kScalars.find(type); it != kScalars.end()) {
        f->set_type(it->second);
        return;
    }
    f->set_type(is_enum_name(type) ? gp::FieldDescriptorProto::TYPE_ENUM
                                   : gp::FieldDescriptorProto::TYPE_MESSAGE);
    f->set_type_name(std::string(".") + kPackage + "." + type);
}

// protoc's name of a map field's entry message: config -> ConfigEntry.
std::string map_entry_name(const std::string& field) {
    std::string out;
    bool upper = true;
    for (char c : field) {
        if (c == '_') {
            upper = true;
            continue;
        }
        out += upper ? static_cast<char>(std::toupper(static_cast<unsigned char>(c))) : c;
        upper = false;
    }
    return out + "Entry";
}

gp::FileDescriptorProto reference_proto() {
    gp::FileDescriptorProto file;
    file.set_name(kFileName);
    file.set_package(kPackage);
    file.set_syntax("proto3");
    for (const MessageRef& m : kMessages) {
        gp::DescriptorProto* msg = file.add_message_type();
        msg->set_name(m.name);
        for (const FieldRef& r : m.fields) {
            gp::FieldDescriptorProto* f = msg->add_field();
            f->set_name(r.name);
            f->set_number(r.number);
            f->set_label(gp::FieldDescriptorProto::LABEL_OPTIONAL);
            std::string type = r.type;
            if (type.starts_with("repeated ")) {
                f->set_label(gp::FieldDescriptorProto::LABEL_REPEATED);
                type = type.substr(9);
            }
            if (type.starts_with("map<")) {
                const auto comma = type.find(", ");
                gp::DescriptorProto* entry = msg->add_nested_type();
                entry->set_name(map_entry_name(r.name));
                entry->mutable_options()->set_map_entry(true);
                gp::FieldDescriptorProto* key = entry->add_field();
                key->set_name("key");
                key->set_number(1);
                key->set_label(gp::FieldDescriptorProto::LABEL_OPTIONAL);
                set_type(key, type.substr(4, comma - 4));
                gp::FieldDescriptorProto* value = entry->add_field();
                value->set_name("value");
                value->set_number(2);
                value->set_label(gp::FieldDescriptorProto::LABEL_OPTIONAL);
                set_type(value, type.substr(comma + 2, type.size() - comma - 3));
                f->set_label(gp::FieldDescriptorProto::LABEL_REPEATED);
                f->set_type(gp::FieldDescriptorProto::TYPE_MESSAGE);
                f->set_type_name(std::string(".") + kPackage + "." + m.name + "." + entry->name());
            } else {
                set_type(f, type);
            }
        }
    }
    for (const EnumRef& e : kEnums) {
        gp::EnumDescriptorProto* en = file.add_enum_type();
        en->set_name(e.name);
        for (const auto& [name, number] : e.values) {
            gp::EnumValueDescriptorProto* v = en->add_value();
            v->set_name(name);
            v->set_number(number);
        }
    }
    gp::ServiceDescriptorProto* service = file.add_service();
    service->set_name(kService);
    for (const MethodRef& r : kMethods) {
        gp::MethodDescriptorProto* m = service->add_method();
        m->set_name(r.name);
        m->set_input_type(std::string(".") + kPackage + "." + r.input);
        m->set_output_type(std::string(".") + kPackage + "." + r.output);
    }
    return file;
}

// ---- the comparison -----------------------------------------------------------------

// How a field is typed, in words: "repeated .prism.launcher.PatternInfo",
// "map<string, int32>", "optional int64" (proto3 optional), "oneof x int32".
std::string field_type(const gp::FieldDescriptor& f) {
    auto base = [](const gp::FieldDescriptor& x) -> std::string {
        if (x.type() == gp::FieldDescriptor::TYPE_MESSAGE ||
            x.type() == gp::FieldDescriptor::TYPE_GROUP)
            return "." + x.message_type()->full_name();
        if (x.type() == gp::FieldDescriptor::TYPE_ENUM) return "." + x.enum_type()->full_name();
        return x.type_name();
    };
    if (f.is_map()) {
        const gp::Descriptor* e = f.message_type();
        return "map<" + base(*e->map_key()) + ", " + base(*e->map_value()) + ">";
    }
    std::string out;
    if (f.is_repeated()) out += f.is_packed() ? "packed repeated " : "repeated ";
    if (f.has_optional_keyword()) out += "optional ";
    if (f.real_containing_oneof()) out += "oneof " + f.real_containing_oneof()->name() + " ";
    return out + base(f);
}

std::string describe(const gp::FieldDescriptor& f) {
    return field_type(f) + " " + f.name() + " = " + std::to_string(f.number()) + " (JSON " +
           f.json_name() + ")";
}

void compare_message(const gp::Descriptor& ref, const gp::Descriptor& ours,
                     std::vector<std::string>& out) {
    const std::string where = "message " + ref.full_name() + ": ";
    for (int i = 0; i < ref.field_count(); ++i) {
        const gp::FieldDescriptor& rf = *ref.field(i);
        const gp::FieldDescriptor* by_name = ours.FindFieldByName(rf.name());
        const gp::FieldDescriptor* by_number = ours.FindFieldByNumber(rf.number());
        if (!by_name) {
            out.push_back(where + "field '" + describe(rf) + "' missing" +
                          (by_number ? "; ours has '" + describe(*by_number) + "' there" : ""));
            continue;
        }
        if (describe(*by_name) != describe(rf))
            out.push_back(where + "field '" + describe(rf) + "' is '" + describe(*by_name) +
                          "' in ours");
    }
    for (int i = 0; i < ours.field_count(); ++i) {
        const gp::FieldDescriptor& of = *ours.field(i);
        if (ref.FindFieldByName(of.name())) continue;  // compared above
        if (ref.FindFieldByNumber(of.number()) || ref.IsReservedNumber(of.number()))
            out.push_back(where + "added field '" + describe(of) + "' takes a number Prism uses");
        if (ref.IsReservedName(of.name()))
            out.push_back(where + "added field '" + of.name() + "' takes a name Prism reserved");
    }
    for (int i = 0; i < ref.nested_type_count(); ++i) {
        const gp::Descriptor& nested = *ref.nested_type(i);
        if (nested.options().map_entry()) continue;  // compared as the map field's type
        const gp::Descriptor* mine = ours.FindNestedTypeByName(nested.name());
        if (!mine)
            out.push_back(where + "nested message " + nested.name() + " missing");
        else
            compare_message(nested, *mine, out);
    }
}

void compare_enum(const gp::EnumDescriptor& ref, const gp::EnumDescriptor& ours,
                  std::vector<std::string>& out) {
    const std::string where = "enum " + ref.full_name() + ": ";
    for (int i = 0; i < ref.value_count(); ++i) {
        const gp::EnumValueDescriptor& rv = *ref.value(i);
        const gp::EnumValueDescriptor* mine = ours.FindValueByName(rv.name());
        const std::string want = rv.name() + " = " + std::to_string(rv.number());
        if (!mine) {
            const gp::EnumValueDescriptor* there = ours.FindValueByNumber(rv.number());
            out.push_back(
                where + want + " missing" +
                (there ? "; ours has " + there->name() + " = " + std::to_string(there->number())
                       : ""));
        } else if (mine->number() != rv.number()) {
            out.push_back(where + want + " is " + mine->name() + " = " +
                          std::to_string(mine->number()) + " in ours");
        }
    }
    for (int i = 0; i < ours.value_count(); ++i) {
        const gp::EnumValueDescriptor& ov = *ours.value(i);
        if (ref.FindValueByName(ov.name())) continue;
        if (ref.FindValueByNumber(ov.number()))
            out.push_back(where + "added value " + ov.name() + " = " + std::to_string(ov.number()) +
                          " takes a number Prism uses");
    }
}

void compare_service(const gp::ServiceDescriptor& ref, const gp::ServiceDescriptor& ours,
                     std::vector<std::string>& out) {
    auto describe_method = [](const gp::MethodDescriptor& m) {
        return "rpc " + m.name() + "(" + (m.client_streaming() ? "stream " : "") +
               m.input_type()->full_name() + ") returns (" +
               (m.server_streaming() ? "stream " : "") + m.output_type()->full_name() + ")";
    };
    for (int i = 0; i < ref.method_count(); ++i) {
        const gp::MethodDescriptor& rm = *ref.method(i);
        const gp::MethodDescriptor* mine = ours.FindMethodByName(rm.name());
        if (!mine)
            out.push_back("service " + ref.full_name() + ": " + describe_method(rm) + " missing");
        else if (describe_method(*mine) != describe_method(rm))
            out.push_back("service " + ref.full_name() + ": " + describe_method(rm) + " is " +
                          describe_method(*mine) + " in ours");
    }
}

// What in `ours` departs from `ref`: empty when every element of ref is in
// ours identically and ours only adds.
std::vector<std::string> differences(const gp::FileDescriptor& ref,
                                     const gp::FileDescriptor& ours) {
    std::vector<std::string> out;
    if (ours.name() != ref.name())
        out.push_back("file name '" + ref.name() + "' is '" + ours.name() + "' in ours");
    if (ours.package() != ref.package())
        out.push_back("package '" + ref.package() + "' is '" + ours.package() + "' in ours");
    if (ours.syntax() != ref.syntax()) out.push_back("the syntax differs");
    for (int i = 0; i < ref.message_type_count(); ++i) {
        const gp::Descriptor& m = *ref.message_type(i);
        const gp::Descriptor* mine = ours.FindMessageTypeByName(m.name());
        if (!mine)
            out.push_back("message " + m.full_name() + " missing");
        else
            compare_message(m, *mine, out);
    }
    for (int i = 0; i < ref.enum_type_count(); ++i) {
        const gp::EnumDescriptor& e = *ref.enum_type(i);
        const gp::EnumDescriptor* mine = ours.FindEnumTypeByName(e.name());
        if (!mine)
            out.push_back("enum " + e.full_name() + " missing");
        else
            compare_enum(e, *mine, out);
    }
    for (int i = 0; i < ref.service_count(); ++i) {
        const gp::ServiceDescriptor& s = *ref.service(i);
        const gp::ServiceDescriptor* mine = ours.FindServiceByName(s.name());
        if (!mine)
            out.push_back("service " + s.full_name() + " missing");
        else
            compare_service(s, *mine, out);
    }
    return out;
}

std::string joined(const std::vector<std::string>& lines) {
    std::string out;
    for (const std::string& l : lines)
        out += "\n  " + l;
    return out;
}

// A file of its own pool (descriptors live as long as their pool).
struct BuiltFile {
    gp::DescriptorPool pool;
    const gp::FileDescriptor* file = nullptr;
};

void build(const gp::FileDescriptorProto& proto, BuiltFile& into) {
    into.file = into.pool.BuildFile(proto);
    ASSERT_NE(into.file, nullptr) << "the descriptor does not build:\n" << proto.DebugString();
}

const gp::FileDescriptor& generated() {
    return *prism::launcher::LaunchRequest::descriptor()->file();
}

// ---- tests --------------------------------------------------------------------------

TEST(WireConformance, EveryElementOfPrismsProtoIsInOursIdentically) {
    BuiltFile ref;
    build(reference_proto(), ref);
    const std::vector<std::string> diff = differences(*ref.file, generated());
    EXPECT_TRUE(diff.empty()) << "launcher.proto departs from Prism's:" << joined(diff);
}

TEST(WireConformance, TheReferenceTableIsComplete) {
    // The counts of the as-built note, so that a row lost from the table is noticed.
    BuiltFile ref;
    build(reference_proto(), ref);
    ASSERT_EQ(ref.file->service_count(), 1);
    EXPECT_EQ(ref.file->service(0)->method_count(), 5);
    EXPECT_EQ(ref.file->message_type_count(), 11);
    EXPECT_EQ(ref.file->enum_type_count(), 2);
    int fields = 0;
    for (int i = 0; i < ref.file->message_type_count(); ++i)
        fields += ref.file->message_type(i)->field_count();
    EXPECT_EQ(fields, 6 + 5 + 3 + 2 + 12 + 3 + 2 + 1 + 8 + 1 + 2);
    EXPECT_EQ(ref.file->FindEnumTypeByName("ProcessState")->value_count(), 7);
    EXPECT_EQ(ref.file->FindEnumTypeByName("IsolationLevel")->value_count(), 4);
}

// Each kind of departure is reported, naming the element; additions with
// new numbers are not. (Changes to a copy of the reference, so that this
// checks the comparison alone.)
TEST(WireConformance, TheCheckReportsEachKindOfDeparture) {
    BuiltFile ref;
    build(reference_proto(), ref);
    const gp::FileDescriptorProto ours_proto = reference_proto();

    auto find_message = [](gp::FileDescriptorProto& f, const std::string& name) {
        for (gp::DescriptorProto& m : *f.mutable_message_type())
            if (m.name() == name) return &m;
        throw std::runtime_error("no message " + name);
    };
    auto find_field = [&](gp::FileDescriptorProto& f, const std::string& msg,
                          const std::string& name) {
        for (gp::FieldDescriptorProto& x : *find_message(f, msg)->mutable_field())
            if (x.name() == name) return &x;
        throw std::runtime_error("no field " + name);
    };
    auto find_enum = [](gp::FileDescriptorProto& f, const std::string& name) {
        for (gp::EnumDescriptorProto& e : *f.mutable_enum_type())
            if (e.name() == name) return &e;
        throw std::runtime_error("no enum " + name);
    };

    struct Case {
        const char* what;
        std::function<void(gp::FileDescriptorProto&)> change;
        const char* reported;  // "" : no difference expected
    };
    const std::vector<Case> cases = {
        {"the old value name",
         [&](auto& f) { find_enum(f, "ProcessState")->mutable_value(2)->set_name("RUNNING"); },
         "enum prism.launcher.ProcessState: STATE_RUNNING = 2 missing; ours has RUNNING = 2"},
        {"a renumbered value",
         [&](auto& f) { find_enum(f, "IsolationLevel")->mutable_value(1)->set_number(7); },
         "ISOLATION_NONE = 1 is ISOLATION_NONE = 7 in ours"},
        {"a renumbered field",
         [&](auto& f) { find_field(f, "PatternInfo", "pid")->set_number(99); },
         "field 'int32 pid = 12 (JSON pid)' is 'int32 pid = 99 (JSON pid)' in ours"},
        {"a retyped field",
         [&](auto& f) {
             find_field(f, "TerminateRequest", "grace_period_secs")
                 ->set_type(gp::FieldDescriptorProto::TYPE_INT32);
         },
         "field 'int64 grace_period_secs = 2 (JSON gracePeriodSecs)' is 'int32 "
         "grace_period_secs"},
        {"a field made repeated",
         [&](auto& f) {
             find_field(f, "HealthRequest", "include_processes")
                 ->set_label(gp::FieldDescriptorProto::LABEL_REPEATED);
         },
         "is 'packed repeated bool include_processes = 1"},
        {"a renamed field",
         [&](auto& f) { find_field(f, "LaunchRequest", "session_id")->set_name("session"); },
         "field 'string session_id = 4 (JSON sessionId)' missing; ours has 'string session = 4"},
        {"a JSON name of its own",
         [&](auto& f) { find_field(f, "LaunchResponse", "process_id")->set_json_name("id"); },
         "'string process_id = 1 (JSON processId)' is 'string process_id = 1 (JSON id)'"},
        {"a removed RPC",
         [&](auto& f) {
             auto* methods = f.mutable_service(0)->mutable_method();
             for (int i = 0; i < methods->size(); ++i)
                 if (methods->Get(i).name() == "GetProcessStatus") methods->DeleteSubrange(i, 1);
         },
         "service prism.launcher.PatternLauncher: rpc "
         "GetProcessStatus(prism.launcher.GetProcessStatusRequest) returns "
         "(prism.launcher.GetProcessStatusResponse) missing"},
        {"a streaming RPC",
         [&](auto& f) { f.mutable_service(0)->mutable_method(1)->set_server_streaming(true); },
         "returns (stream prism.launcher.ListPatternsResponse) in ours"},
        {"an added field with a new number",
         [&](auto& f) {
             gp::FieldDescriptorProto* x = find_message(f, "TerminateResponse")->add_field();
             x->set_name("signal");
             x->set_number(40);
             x->set_type(gp::FieldDescriptorProto::TYPE_INT32);
             x->set_label(gp::FieldDescriptorProto::LABEL_OPTIONAL);
         },
         ""},
        {"an added value with a new number",
         [&](auto& f) {
             gp::EnumValueDescriptorProto* v = find_enum(f, "ProcessState")->add_value();
             v->set_name("STATE_PAUSED");
             v->set_number(40);
         },
         ""},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.what);
        gp::FileDescriptorProto changed = ours_proto;
        c.change(changed);
        BuiltFile mine;
        build(changed, mine);
        if (!mine.file) continue;
        const std::vector<std::string> diff = differences(*ref.file, *mine.file);
        if (*c.reported == '\0') {
            EXPECT_TRUE(diff.empty()) << joined(diff);
        } else {
            const std::string all = joined(diff);
            EXPECT_NE(all.find(c.reported), std::string::npos) << "reported:" << all;
        }
    }

    // Another package: the same file with every type name moved along.
    gp::FileDescriptorProto moved = ours_proto;
    std::string text;
    moved.SerializeToString(&text);
    for (std::size_t at = 0; (at = text.find(".prism.launcher.", at)) != std::string::npos;)
        text.replace(at, 16, ".prism.launchxr.");  // same length: the wire framing holds
    ASSERT_TRUE(moved.ParseFromString(text));
    moved.set_package("prism.launchxr");
    BuiltFile other;
    build(moved, other);
    const std::string all = joined(differences(*ref.file, *other.file));
    EXPECT_NE(all.find("package 'prism.launcher' is 'prism.launchxr' in ours"), std::string::npos)
        << all;
}

// JSON users see Prism's names: the reason for the rename.
TEST(WireConformance, JsonCarriesPrismsEnumNames) {
    prism::launcher::PatternInfo info;
    info.set_state(prism::launcher::STATE_RUNNING);
    std::string json;
    ASSERT_TRUE(gp::util::MessageToJsonString(info, &json).ok());
    EXPECT_EQ(json, R"({"state":"STATE_RUNNING"})");

    prism::launcher::ListPatternsRequest parsed;
    ASSERT_TRUE(gp::util::JsonStringToMessage(R"({"state":"STATE_FAILED"})", &parsed).ok());
    EXPECT_EQ(parsed.state(), prism::launcher::STATE_FAILED);
    EXPECT_FALSE(gp::util::JsonStringToMessage(R"({"state":"FAILED"})", &parsed).ok())
        << "the old name must no longer parse";
}

// With PL_PRISM_PROTO, the table against Prism's real file: equal both ways.
TEST(WireConformance, TheTableIsPrismsFile) {
    const char* upstream = std::getenv("PL_PRISM_PROTO");
    if (!upstream || !*upstream)
        GTEST_SKIP() << "set PL_PRISM_PROTO to a jrepp/prism-data-layer checkout's "
                        "proto/prism/launcher/launcher.proto (not vendored: no upstream license)";
    ASSERT_TRUE(fs::is_regular_file(upstream)) << upstream;
    char dir_template[] = "/tmp/pl-wire-XXXXXX";
    ASSERT_NE(::mkdtemp(dir_template), nullptr);
    const fs::path dir = dir_template;
    struct Remove {
        fs::path dir;
        ~Remove() { fs::remove_all(dir); }
    } remove{dir};
    fs::create_directories(dir / "prism/launcher");
    fs::copy_file(upstream, dir / kFileName);
    const std::string set_file = (dir / "set.pb").string();
    const std::string proto_path = "--proto_path=" + dir.string();
    const std::string out = "--descriptor_set_out=" + set_file;
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        ::execl(PL_PROTOC, PL_PROTOC, proto_path.c_str(), out.c_str(), kFileName, nullptr);
        ::_exit(127);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << PL_PROTOC << " failed on " << upstream;
    gp::FileDescriptorSet set;
    std::ifstream in(set_file, std::ios::binary);
    ASSERT_TRUE(set.ParseFromIstream(&in));
    ASSERT_EQ(set.file_size(), 1);

    BuiltFile real, table;
    build(set.file(0), real);
    build(reference_proto(), table);
    const std::vector<std::string> missing = differences(*real.file, *table.file);
    EXPECT_TRUE(missing.empty()) << "the table lacks or differs from:" << joined(missing);
    const std::vector<std::string> extra = differences(*table.file, *real.file);
    EXPECT_TRUE(extra.empty()) << "the table has what Prism does not:" << joined(extra);
    // Nor does it add anything (differences() allows additions).
    for (int i = 0; i < real.file->message_type_count(); ++i) {
        const gp::Descriptor& m = *real.file->message_type(i);
        EXPECT_EQ(m.field_count(), table.file->FindMessageTypeByName(m.name())->field_count())
            << m.name();
    }
    EXPECT_EQ(real.file->message_type_count(), table.file->message_type_count());
    EXPECT_EQ(real.file->enum_type_count(), table.file->enum_type_count());
    for (int i = 0; i < real.file->enum_type_count(); ++i)
        EXPECT_EQ(real.file->enum_type(i)->value_count(),
                  table.file->FindEnumTypeByName(real.file->enum_type(i)->name())->value_count());
    EXPECT_EQ(real.file->service(0)->method_count(), table.file->service(0)->method_count());
}

}  // namespace
