#include "export/yaml_writer.h"

#include <gtest/gtest.h>

namespace launcher {
namespace {

using nlohmann::ordered_json;

TEST(YamlWriter, MappingsAndSequencesInBlockStyleInInsertionOrder) {
    ordered_json v = {{"b", 1}, {"a", {{"x", true}, {"list", {"one", "two"}}}}};
    EXPECT_EQ(to_yaml(v), "b: 1\na:\n  x: true\n  list:\n  - one\n  - two\n");
}

TEST(YamlWriter, MappingsInASequenceStartOnTheDashLine) {
    ordered_json v = {{"items", {{{"name", "a"}, {"port", 80}}, {{"name", "b"}, {"tags", {"x"}}}}}};
    EXPECT_EQ(to_yaml(v), "items:\n- name: a\n  port: 80\n- name: b\n  tags:\n  - x\n");
}

TEST(YamlWriter, StringsThatAReaderCouldTakeForSomethingElseAreQuoted) {
    // YAML 1.1 booleans and nulls, numbers, octal, indicators, spaces, empty.
    for (const char* s : {"on", "Off", "y", "NO", "true", "null", "~", "1.0", "0755", "1e3", "-x",
                          "a: b", "#c", "", " lead", "*ref", "x y", "2", ".inf"}) {
        const std::string out = to_yaml(ordered_json{{"k", s}});
        EXPECT_EQ(out, "k: " + ordered_json(s).dump() + "\n") << s;
    }
    for (const char* s : {"info", "app.kubernetes.io/name", "/healthz", "prism/echo", "ALL", "TCP"})
        EXPECT_EQ(to_yaml(ordered_json{{"k", s}}), std::string("k: ") + s + "\n") << s;
}

TEST(YamlWriter, EscapesAndEmptyContainers) {
    ordered_json v = {
        {"text", "a\nb\"c"}, {"m", ordered_json::object()}, {"l", ordered_json::array()}};
    EXPECT_EQ(to_yaml(v), "text: \"a\\nb\\\"c\"\nm: {}\nl: []\n");
}

TEST(YamlWriter, KeysThatAreNotPlainAreQuotedToo) {
    EXPECT_EQ(to_yaml(ordered_json{{"on", 1}, {"a b", 2}}), "\"on\": 1\n\"a b\": 2\n");
}

TEST(YamlWriter, AStreamSeparatesDocuments) {
    EXPECT_EQ(to_yaml_stream({ordered_json{{"a", 1}}, ordered_json{{"b", 2}}}),
              "a: 1\n---\nb: 2\n");
}

}  // namespace
}  // namespace launcher
