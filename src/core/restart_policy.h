// What happens after a key's process ends: restart with back-off, open the
// circuit breaker, or finish. Pure functions of the key's counters and the
// time, so that they are tested in microseconds (tests/unit/core_policy_test).
#pragma once

#include <chrono>

#include "config/manifest.h"

namespace launcher {

struct RestartSettings {
    RestartPolicy policy = RestartPolicy::kOnFailure;
    int circuit_breaker_threshold = 5;
    std::chrono::milliseconds backoff_period{30000};  // the cap of the back-off
    std::chrono::milliseconds backoff_base{100};      // the first restart's delay
};

enum class ExitVerdict {
    kRestart,      // the policy wants it and the breaker is closed
    kCircuitOpen,  // the policy wants it, but too many failures in a row
    kFinish,       // the policy does not restart it (FINISHED, or FAILED on failure)
};

// `consecutive_failures` already counts this exit if it was a failure.
ExitVerdict judge_exit(const RestartSettings& settings, bool failure, int consecutive_failures,
                       bool shutting_down);

// The delay before restart number `consecutive_failures` (>= 1 doubles
// from backoff_base), capped by backoff_period, times `jitter` (0.8..1.2,
// so that keys that failed together do not restart together), capped again.
std::chrono::milliseconds backoff_delay(const RestartSettings& settings, int consecutive_failures,
                                        double jitter);

// Consecutive failures are forgiven once a process has stayed healthy for
// the stability period (max(backoff_period, 1 s)): a crash loop never gets
// that far, a process that ran for a day and then crashed starts over.
std::chrono::milliseconds stability_period(const RestartSettings& settings);
int failures_before_exit(const RestartSettings& settings, int consecutive_failures,
                         std::chrono::steady_clock::time_point running_since,
                         std::chrono::steady_clock::time_point now);

}  // namespace launcher
