#include "core/restart_policy.h"

#include <algorithm>
#include <cstdint>

namespace launcher {

using std::chrono::milliseconds;

ExitVerdict judge_exit(const RestartSettings& settings, bool failure, int consecutive_failures,
                       bool shutting_down) {
    const bool wanted = settings.policy == RestartPolicy::kAlways ||
                        (settings.policy == RestartPolicy::kOnFailure && failure);
    if (!wanted || shutting_down) return ExitVerdict::kFinish;
    if (consecutive_failures >= settings.circuit_breaker_threshold)
        return ExitVerdict::kCircuitOpen;
    return ExitVerdict::kRestart;
}

milliseconds backoff_delay(const RestartSettings& settings, int consecutive_failures,
                           double jitter) {
    const milliseconds cap = settings.backoff_period;
    const int doublings = std::clamp(consecutive_failures - 1, 0, 20);
    const milliseconds delay =
        std::min(cap, settings.backoff_base * (std::int64_t{1} << doublings));
    const double factor = std::clamp(jitter, 0.8, 1.2);
    return std::min(
        cap, milliseconds(static_cast<std::int64_t>(static_cast<double>(delay.count()) * factor)));
}

milliseconds stability_period(const RestartSettings& settings) {
    return std::max(settings.backoff_period, milliseconds(1000));
}

int failures_before_exit(const RestartSettings& settings, int consecutive_failures,
                         std::chrono::steady_clock::time_point running_since,
                         std::chrono::steady_clock::time_point now) {
    if (running_since == std::chrono::steady_clock::time_point{}) return consecutive_failures;
    return now - running_since >= stability_period(settings) ? 0 : consecutive_failures;
}

}  // namespace launcher
