// How a launcher that was restarted settles each key it finds a record of:
// a pure decision from the record and what the cgroup and pid checks found,
// so that every case is tested without processes (tests/unit/core_policy_test).
// recovery.cc carries the decisions out.
#pragma once

#include <string>

#include "pattern_launcher/state.pb.h"

namespace launcher {

enum class Resolution {
    kAdopt,         // a live process the checks vouch for: take it back
    kStartAgain,    // owed a process, none alive: start one (back-off continues)
    kFinishStop,    // a terminate was under way: finish it (kill what is left), forget
    kKeepFailed,    // listed as FAILED (circuit open) with its reason; nothing runs
    kKeepFinished,  // listed as FINISHED; nothing runs
    kFailUnknown,   // its pattern is gone: kill what runs, list it FAILED with that reason
};

struct RecoveryFacts {
    bool live_process = false;   // record, cgroup, pid and ids agree (and orphan_policy adopt)
    bool pattern_known = false;  // the pattern is still discovered
};

Resolution resolve(const pattern_launcher::state::KeyRecord& record, const RecoveryFacts& facts);
const char* resolution_name(Resolution resolution);

}  // namespace launcher
