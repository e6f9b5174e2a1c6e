// Fuzz target: identifiers and process ids (is_valid_identifier,
// identifier_problem, parse_isolation, parse_process_id). All are total
// functions; the properties are that they agree with each other and that a
// parsed process id prints back as itself. Input: "<session namespace>\n<id>"
// (without a newline, the whole input is the id).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/isolation_key.h"
#include "fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view input(reinterpret_cast<const char*>(data), size);
    std::string_view session_namespace;
    if (const auto nl = input.find('\n'); nl != std::string_view::npos) {
        session_namespace = input.substr(0, nl);
        input.remove_prefix(nl + 1);
    }
    const bool valid = launcher::is_valid_identifier(input);
    fuzz::check(valid == launcher::identifier_problem("id", input).empty(),
                "is_valid_identifier and identifier_problem disagree", std::string(input));
    if (valid) {
        fuzz::check(input.size() <= 63 && input.find('/') == std::string_view::npos &&
                        input != "." && input != "..",
                    "an identifier unsafe as a path component", std::string(input));
    }
    if (const auto level = launcher::parse_isolation(input)) {
        fuzz::check(input == launcher::isolation_name(*level), "isolation name round trip");
    }
    if (const auto key = launcher::parse_process_id(input, session_namespace)) {
        fuzz::check(key->process_id() == input, "process id round trip", std::string(input));
        fuzz::check(launcher::is_valid_identifier(key->pattern), "invalid pattern in key");
        // A session key's namespace is the caller's (session_namespace), not parsed.
        if (key->level == launcher::Isolation::kNamespace) {
            fuzz::check(launcher::is_valid_identifier(key->namespace_id),
                        "invalid namespace in key", key->namespace_id);
        }
        if (key->level == launcher::Isolation::kSession) {
            fuzz::check(launcher::is_valid_identifier(key->session_id), "invalid session in key");
        }
    }
    return 0;
}
