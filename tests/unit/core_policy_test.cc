// The core's decisions, without processes or root: the state machine's
// edges, restart policy and back-off, the circuit breaker, the stability
// rule, the start queue and how a restarted launcher settles each record.
#include <gtest/gtest.h>

#include <set>

#include "core/key_phase.h"
#include "core/recovery_plan.h"
#include "core/restart_policy.h"
#include "core/start_queue.h"

namespace launcher {
namespace {

using std::chrono::milliseconds;
using Steady = std::chrono::steady_clock;
namespace rec = pattern_launcher::state;

constexpr Phase kAllPhases[] = {Phase::kQueued,  Phase::kStarting, Phase::kRunning,
                                Phase::kBackoff, Phase::kStopping, Phase::kDraining,
                                Phase::kFailed,  Phase::kFinished, Phase::kPooled};

TEST(KeyPhase, OnlyADrainLeadsOutOfARunningProcess) {
    // Every way out of a phase with a live process passes kDraining (or
    // kStopping first): no key forgets its process.
    for (Phase to : kAllPhases) {
        if (to == Phase::kRunning || to == Phase::kStopping || to == Phase::kDraining) continue;
        EXPECT_FALSE(transition_allowed(Phase::kRunning, to)) << phase_name(to);
    }
    EXPECT_FALSE(transition_allowed(Phase::kStopping, Phase::kRunning));
    EXPECT_FALSE(transition_allowed(Phase::kDraining, Phase::kRunning));
    EXPECT_FALSE(transition_allowed(Phase::kFailed, Phase::kStarting));
    EXPECT_TRUE(transition_allowed(Phase::kDraining, Phase::kBackoff));
    EXPECT_TRUE(transition_allowed(Phase::kBackoff, Phase::kStarting));
}

TEST(KeyPhase, APooledProcessIsClaimedOrDrainedNeverRunningWithoutAClaim) {
    // A pool's process gets a session's identity only through a claim
    // (kStarting, waiting for its READY=1): kPooled never becomes kRunning
    // directly, and only a drain (or a stop) ends it.
    for (Phase to : kAllPhases) {
        const bool allowed = to == Phase::kPooled || to == Phase::kStarting ||
                             to == Phase::kStopping || to == Phase::kDraining;
        EXPECT_EQ(transition_allowed(Phase::kPooled, to), allowed) << phase_name(to);
    }
    EXPECT_TRUE(transition_allowed(Phase::kStarting, Phase::kPooled));
    EXPECT_FALSE(transition_allowed(Phase::kRunning, Phase::kPooled));
    EXPECT_FALSE(transition_allowed(Phase::kQueued, Phase::kPooled));
    EXPECT_EQ(public_state(Phase::kPooled, AfterDrain::kForget), ProcessState::kRunning);
}

TEST(KeyPhase, EveryPhaseIsReachableFromQueued) {
    std::set<Phase> seen{Phase::kQueued};
    for (bool grew = true; grew;) {
        grew = false;
        for (Phase from : std::set<Phase>(seen))
            for (Phase to : kAllPhases)
                if (transition_allowed(from, to) && seen.insert(to).second) grew = true;
    }
    EXPECT_EQ(seen.size(), std::size(kAllPhases));
}

TEST(KeyPhase, ThePublicStateIsDerived) {
    EXPECT_EQ(public_state(Phase::kBackoff, AfterDrain::kForget), ProcessState::kStarting);
    EXPECT_EQ(public_state(Phase::kQueued, AfterDrain::kForget), ProcessState::kStarting);
    EXPECT_EQ(public_state(Phase::kDraining, AfterDrain::kRestart), ProcessState::kStarting);
    EXPECT_EQ(public_state(Phase::kDraining, AfterDrain::kForget), ProcessState::kTerminating);
    EXPECT_EQ(public_state(Phase::kDraining, AfterDrain::kFail), ProcessState::kFailed);
    EXPECT_EQ(public_state(Phase::kStopping, AfterDrain::kForget), ProcessState::kTerminating);
    EXPECT_EQ(public_state(Phase::kFinished, AfterDrain::kForget), ProcessState::kFinished);
}

TEST(KeyPhase, RecordPhasesRoundTripAndUnknownOnesAreOwedAProcess) {
    for (Phase phase : kAllPhases)
        EXPECT_EQ(from_record(to_record(phase)), phase) << phase_name(phase);
    EXPECT_EQ(from_record(static_cast<rec::Phase>(42)), Phase::kStarting);
}

RestartSettings settings(RestartPolicy policy, int threshold = 5,
                         milliseconds cap = milliseconds(30000)) {
    RestartSettings s;
    s.policy = policy;
    s.circuit_breaker_threshold = threshold;
    s.backoff_period = cap;
    return s;
}

TEST(RestartPolicy, ThePolicyDecidesWhetherAnExitRestarts) {
    EXPECT_EQ(judge_exit(settings(RestartPolicy::kAlways), false, 0, false), ExitVerdict::kRestart);
    EXPECT_EQ(judge_exit(settings(RestartPolicy::kOnFailure), false, 0, false),
              ExitVerdict::kFinish);
    EXPECT_EQ(judge_exit(settings(RestartPolicy::kOnFailure), true, 1, false),
              ExitVerdict::kRestart);
    EXPECT_EQ(judge_exit(settings(RestartPolicy::kNever), true, 1, false), ExitVerdict::kFinish);
    // Nothing restarts while the launcher shuts down.
    EXPECT_EQ(judge_exit(settings(RestartPolicy::kAlways), true, 1, true), ExitVerdict::kFinish);
}

TEST(RestartPolicy, TheCircuitOpensAtTheThreshold) {
    const RestartSettings s = settings(RestartPolicy::kOnFailure, 3);
    EXPECT_EQ(judge_exit(s, true, 1, false), ExitVerdict::kRestart);
    EXPECT_EQ(judge_exit(s, true, 2, false), ExitVerdict::kRestart);
    EXPECT_EQ(judge_exit(s, true, 3, false), ExitVerdict::kCircuitOpen);
    EXPECT_EQ(judge_exit(s, true, 9, false), ExitVerdict::kCircuitOpen);
}

TEST(RestartPolicy, BackoffDoublesFromTheBaseUpToTheCap) {
    const RestartSettings s = settings(RestartPolicy::kAlways, 5, milliseconds(1000));
    EXPECT_EQ(backoff_delay(s, 1, 1.0), milliseconds(100));
    EXPECT_EQ(backoff_delay(s, 2, 1.0), milliseconds(200));
    EXPECT_EQ(backoff_delay(s, 3, 1.0), milliseconds(400));
    EXPECT_EQ(backoff_delay(s, 4, 1.0), milliseconds(800));
    EXPECT_EQ(backoff_delay(s, 5, 1.0), milliseconds(1000));
    EXPECT_EQ(backoff_delay(s, 60, 1.0), milliseconds(1000));  // no overflow
    EXPECT_EQ(backoff_delay(s, 0, 1.0), milliseconds(100));
}

TEST(RestartPolicy, JitterStaysWithinTwentyPercentAndUnderTheCap) {
    const RestartSettings s = settings(RestartPolicy::kAlways, 5, milliseconds(1000));
    EXPECT_EQ(backoff_delay(s, 2, 0.8), milliseconds(160));
    EXPECT_EQ(backoff_delay(s, 2, 1.2), milliseconds(240));
    EXPECT_EQ(backoff_delay(s, 2, 5.0), milliseconds(240));  // clamped
    EXPECT_EQ(backoff_delay(s, 5, 1.2), milliseconds(1000));
}

TEST(RestartPolicy, AProcessThatStayedUpIsForgivenItsFailures) {
    const RestartSettings s = settings(RestartPolicy::kAlways, 5, milliseconds(2000));
    const Steady::time_point t0 = Steady::time_point() + std::chrono::hours(1);
    EXPECT_EQ(stability_period(s), milliseconds(2000));
    EXPECT_EQ(failures_before_exit(s, 4, t0, t0 + milliseconds(1999)), 4);
    EXPECT_EQ(failures_before_exit(s, 4, t0, t0 + milliseconds(2000)), 0);
    // Never healthy: nothing to forgive.
    EXPECT_EQ(failures_before_exit(s, 4, Steady::time_point{}, t0), 4);
    EXPECT_EQ(stability_period(settings(RestartPolicy::kAlways, 5, milliseconds(10))),
              milliseconds(1000));
}

TEST(StartQueue, NoMoreThanMaxStartsRunAtOnce) {
    StartQueue queue(2);
    EXPECT_TRUE(queue.admit("a", 0));
    EXPECT_TRUE(queue.admit("b", 1));
    EXPECT_FALSE(queue.admit("c", 2));
    EXPECT_FALSE(queue.admit("d", 2));
    EXPECT_FALSE(queue.admit("c", 2));  // queued once
    EXPECT_EQ(queue.size(), 2u);
    EXPECT_EQ(queue.next(2), "");  // still full
    EXPECT_EQ(queue.next(1), "c");
    // A newcomer does not overtake a waiting key, even with a free slot.
    EXPECT_FALSE(queue.admit("e", 1));
    EXPECT_EQ(queue.next(1), "d");
    queue.remove("e");  // terminated while waiting
    EXPECT_EQ(queue.next(0), "");
    EXPECT_EQ(StartQueue(0).max_concurrent(), 1);
}

rec::KeyRecord record(rec::Desired desired, rec::Phase phase) {
    rec::KeyRecord r;
    r.set_process_id("ns:a:echo");
    r.set_desired(desired);
    r.set_phase(phase);
    return r;
}

TEST(RecoveryPlan, EveryRecordIsSettled) {
    const RecoveryFacts alive{true, true}, dead{false, true};
    const RecoveryFacts alive_unknown{true, false}, dead_unknown{false, false};
    for (rec::Phase phase : {rec::PHASE_QUEUED, rec::PHASE_STARTING, rec::PHASE_RUNNING,
                             rec::PHASE_BACKOFF, rec::PHASE_DRAINING, rec::PHASE_STOPPING}) {
        const rec::KeyRecord r = record(rec::DESIRED_RUNNING, phase);
        EXPECT_EQ(resolve(r, alive), Resolution::kAdopt) << phase;
        // The keys that a launcher used to forget: between two incarnations.
        EXPECT_EQ(resolve(r, dead), Resolution::kStartAgain) << phase;
        EXPECT_EQ(resolve(r, alive_unknown), Resolution::kFailUnknown) << phase;
        EXPECT_EQ(resolve(r, dead_unknown), Resolution::kFailUnknown) << phase;
    }
    EXPECT_EQ(resolve(record(rec::DESIRED_STOPPED, rec::PHASE_STOPPING), alive),
              Resolution::kFinishStop);
    EXPECT_EQ(resolve(record(rec::DESIRED_STOPPED, rec::PHASE_RUNNING), dead),
              Resolution::kFinishStop);
    EXPECT_EQ(resolve(record(rec::DESIRED_RUNNING, rec::PHASE_FAILED), dead),
              Resolution::kKeepFailed);
    EXPECT_EQ(resolve(record(rec::DESIRED_RUNNING, rec::PHASE_FINISHED), dead),
              Resolution::kKeepFinished);
    // A record from a newer launcher, with a phase this one does not know.
    EXPECT_EQ(resolve(record(rec::DESIRED_RUNNING, static_cast<rec::Phase>(42)), alive),
              Resolution::kAdopt);
    EXPECT_EQ(resolve(record(rec::DESIRED_UNSPECIFIED, rec::PHASE_RUNNING), dead),
              Resolution::kStartAgain);
}

}  // namespace
}  // namespace launcher
