// Kubernetes names and label values made from the launcher's identifiers.
// A pattern name, namespace id or session id is [a-z0-9][a-z0-9._-]{0,62}
// (isolation_key.h); Kubernetes wants less: a namespace or Service name is
// an RFC 1123 / RFC 1035 label ([a-z0-9-], alphanumeric at both ends, a
// Service's starting with a letter), a label value ends alphanumeric. Where
// an identifier has to change to fit, a hash of the original is appended, so
// that two identifiers never map to one name ("a.b" and "a_b" differ).
#pragma once

#include <string>
#include <string_view>

namespace launcher::kubernetes {

// An RFC 1123 label of at most `max` characters (63 for a label; less when
// the caller appends a suffix): the text itself when it is one, else '.'
// and '_' turned into '-', trimmed, with "-<8 hex digits>" of its FNV-1a
// hash. `letter_first` (RFC 1035, Services): a name that would start with a
// digit gets a "p" in front.
std::string dns_label(std::string_view text, bool letter_first = false, std::size_t max = 63);

// A label value (at most 63 of [A-Za-z0-9._-], alphanumeric at both ends):
// the text when it is one, else dns_label(text).
std::string label_value(std::string_view text);

}  // namespace launcher::kubernetes
