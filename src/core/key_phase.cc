#include "core/key_phase.h"

namespace launcher {

namespace record = pattern_launcher::state;

const char* phase_name(Phase phase) {
    switch (phase) {
        case Phase::kQueued:
            return "queued";
        case Phase::kStarting:
            return "starting";
        case Phase::kRunning:
            return "running";
        case Phase::kBackoff:
            return "backoff";
        case Phase::kStopping:
            return "stopping";
        case Phase::kDraining:
            return "draining";
        case Phase::kFailed:
            return "failed";
        case Phase::kFinished:
            return "finished";
        case Phase::kPooled:
            return "pooled";
    }
    return "unknown";
}

const char* after_drain_name(AfterDrain after) {
    switch (after) {
        case AfterDrain::kRestart:
            return "restart";
        case AfterDrain::kFail:
            return "fail";
        case AfterDrain::kFinish:
            return "finish";
        case AfterDrain::kForget:
            return "forget";
    }
    return "unknown";
}

bool transition_allowed(Phase from, Phase to) {
    if (from == to) return true;
    switch (from) {
        case Phase::kQueued:
            return to == Phase::kStarting || to == Phase::kDraining;
        case Phase::kStarting:
            return to == Phase::kRunning || to == Phase::kPooled || to == Phase::kStopping ||
                   to == Phase::kDraining;
        case Phase::kPooled:
            return to == Phase::kStarting || to == Phase::kStopping || to == Phase::kDraining;
        case Phase::kRunning:
            return to == Phase::kStopping || to == Phase::kDraining;
        case Phase::kBackoff:
            return to == Phase::kStarting || to == Phase::kDraining;
        case Phase::kStopping:
            return to == Phase::kDraining;
        case Phase::kDraining:
            return to == Phase::kBackoff || to == Phase::kFailed || to == Phase::kFinished;
        case Phase::kFailed:
        case Phase::kFinished:
            // Only forgetting (terminate) or a fresh launch of a FINISHED key,
            // which starts over from kQueued.
            return to == Phase::kDraining || to == Phase::kQueued;
    }
    return false;
}

ProcessState public_state(Phase phase, AfterDrain after) {
    switch (phase) {
        case Phase::kQueued:
        case Phase::kStarting:
        case Phase::kBackoff:
            return ProcessState::kStarting;
        case Phase::kRunning:
        case Phase::kPooled:
            return ProcessState::kRunning;
        case Phase::kStopping:
            return ProcessState::kTerminating;
        case Phase::kDraining:
            switch (after) {
                case AfterDrain::kRestart:
                    return ProcessState::kStarting;
                case AfterDrain::kFail:
                    return ProcessState::kFailed;
                case AfterDrain::kFinish:
                    return ProcessState::kFinished;
                case AfterDrain::kForget:
                    return ProcessState::kTerminating;
            }
            return ProcessState::kTerminating;
        case Phase::kFailed:
            return ProcessState::kFailed;
        case Phase::kFinished:
            return ProcessState::kFinished;
    }
    return ProcessState::kFailed;
}

bool holds_resources(Phase phase) {
    return phase != Phase::kQueued && phase != Phase::kFailed && phase != Phase::kFinished;
}

record::Phase to_record(Phase phase) {
    switch (phase) {
        case Phase::kQueued:
            return record::PHASE_QUEUED;
        case Phase::kStarting:
            return record::PHASE_STARTING;
        case Phase::kRunning:
            return record::PHASE_RUNNING;
        case Phase::kBackoff:
            return record::PHASE_BACKOFF;
        case Phase::kStopping:
            return record::PHASE_STOPPING;
        case Phase::kDraining:
            return record::PHASE_DRAINING;
        case Phase::kFailed:
            return record::PHASE_FAILED;
        case Phase::kFinished:
            return record::PHASE_FINISHED;
        case Phase::kPooled:
            return record::PHASE_POOLED;
    }
    return record::PHASE_UNSPECIFIED;
}

Phase from_record(record::Phase phase) {
    switch (phase) {
        case record::PHASE_QUEUED:
            return Phase::kQueued;
        case record::PHASE_STARTING:
            return Phase::kStarting;
        case record::PHASE_RUNNING:
            return Phase::kRunning;
        case record::PHASE_BACKOFF:
            return Phase::kBackoff;
        case record::PHASE_STOPPING:
            return Phase::kStopping;
        case record::PHASE_DRAINING:
            return Phase::kDraining;
        case record::PHASE_FAILED:
            return Phase::kFailed;
        case record::PHASE_FINISHED:
            return Phase::kFinished;
        case record::PHASE_POOLED:
            return Phase::kPooled;
        default:
            // Unknown (a newer launcher's phase): the key is owed a process;
            // recovery judges by what it finds.
            return Phase::kStarting;
    }
}

}  // namespace launcher
