#include "core/recovery_plan.h"

namespace launcher {

namespace record = pattern_launcher::state;

Resolution resolve(const record::KeyRecord& r, const RecoveryFacts& facts) {
    if (r.desired() == record::DESIRED_STOPPED) return Resolution::kFinishStop;
    switch (r.phase()) {
        case record::PHASE_FAILED:
            return facts.live_process ? Resolution::kFinishStop : Resolution::kKeepFailed;
        case record::PHASE_FINISHED:
            return facts.live_process ? Resolution::kFinishStop : Resolution::kKeepFinished;
        case record::PHASE_STOPPING:
            // A stop without desired STOPPED is a shutdown's: the key is
            // still owed a process (the shutdown never finished).
        default:
            break;
    }
    if (!facts.pattern_known) return Resolution::kFailUnknown;
    return facts.live_process ? Resolution::kAdopt : Resolution::kStartAgain;
}

const char* resolution_name(Resolution resolution) {
    switch (resolution) {
        case Resolution::kAdopt:
            return "adopted";
        case Resolution::kStartAgain:
            return "started again";
        case Resolution::kFinishStop:
            return "stop finished";
        case Resolution::kKeepFailed:
            return "kept failed";
        case Resolution::kKeepFinished:
            return "kept finished";
        case Resolution::kFailUnknown:
            return "failed: pattern unknown";
    }
    return "unknown";
}

}  // namespace launcher
