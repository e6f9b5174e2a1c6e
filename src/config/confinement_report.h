// What a manifest gives up of the default confinement: logged by the daemon
// at launch, shown by `patternctl validate`, `pattern-launcher check` and in
// the process status. Pure (no kernel, no daemon), for the CLI too.
#pragma once

#include <string>
#include <vector>

#include "config/manifest.h"

namespace launcher {

// One sentence each; empty for a manifest without a `sandbox` section and
// without `accept_any_config: true`.
std::vector<std::string> confinement_weakenings(const Manifest& manifest);

}  // namespace launcher
