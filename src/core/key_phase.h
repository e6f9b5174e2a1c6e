// A key's life as one explicit state machine (the anchor is systemd's
// service_set_state()): the phase says what the launcher is doing for the
// key; every change goes through Launcher::set_phase(), which checks it
// against transition_allowed(), drops the timer and watches of the old
// phase, persists the key's record and tells the observers. The API's
// ProcessState is derived from the phase (public_state()), never stored.
//
//   kQueued ──► kStarting ──► kRunning
//      │            │  ▲          │
//      │            ▼  │          ▼
//      │        kDraining ◄── kStopping (SIGTERM, grace period)
//      │         │  │  │
//      │         │  │  └──► kBackoff ──► kStarting (a restart)
//      │         │  └─────► kFailed / kFinished (listed, no resources)
//      └─────────┴────────► gone (terminated, or a cold start failed)
//
// A session pool's process (session_pool.cc) becomes kPooled instead of
// kRunning; a claim takes it back to kStarting under its session's key,
// where it waits for the pattern's READY=1 on the claim socket:
//
//   kStarting ──► kPooled ──► kStarting (claimed) ──► kRunning
//                    └──────► kStopping / kDraining (then forgotten)
//
// kDraining kills what is left in the key's cgroup and waits, through the
// loop, until its process has exited and the cgroup is empty; what follows
// is data (AfterDrain), not a stored continuation.
#pragma once

#include "core/launcher_types.h"
#include "pattern_launcher/state.pb.h"

namespace launcher {

enum class Phase {
    kQueued,    // accepted, waiting for a max_concurrent_starts slot
    kStarting,  // spawned, not yet healthy (timer: readiness retry / start_timeout)
    kRunning,   // healthy (timer: next liveness check)
    kBackoff,   // between two incarnations (timer: the restart)
    kStopping,  // SIGTERM sent (timer: the grace period)
    kDraining,  // killed; waiting for the process and the cgroup (timer: rmdir retry)
    kFailed,    // circuit breaker open or cold start failed; nothing runs
    kFinished,  // ended and not restarted (restart policy); nothing runs
    kPooled,    // a session pool's process, healthy, waiting for a claim
};

// Where a drain leads once the key's cgroup is empty.
enum class AfterDrain {
    kRestart,  // kBackoff, then a new incarnation
    kFail,     // kFailed, resources released, the key stays listed
    kFinish,   // kFinished, resources released, the key stays listed
    kForget,   // resources and record released, the key is gone
};

const char* phase_name(Phase phase);
const char* after_drain_name(AfterDrain after);

// The edges of the diagram above (plus X -> X for a phase re-armed).
bool transition_allowed(Phase from, Phase to);

// What the API shows for a key in `phase` (`after`: only for kDraining).
ProcessState public_state(Phase phase, AfterDrain after);

// Whether the key holds its resources (cgroup, sockets, identity) in it.
bool holds_resources(Phase phase);

// The record's enum, both ways.
pattern_launcher::state::Phase to_record(Phase phase);
Phase from_record(pattern_launcher::state::Phase phase);

}  // namespace launcher
