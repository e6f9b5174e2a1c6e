// Cold starts beyond max_concurrent_starts wait here for a slot; they never
// fail for it. FIFO; a key leaves when it starts or is terminated. Pure, so
// that the limit is tested directly (tests/unit/core_policy_test).
#pragma once

#include <cstddef>
#include <deque>
#include <string>

namespace launcher {

class StartQueue {
public:
    explicit StartQueue(int max_concurrent) : max_(max_concurrent < 1 ? 1 : max_concurrent) {}

    // May `id` start now, with `in_flight` starts under way? If not, it is
    // queued (once) and the answer is false.
    bool admit(const std::string& id, int in_flight);
    // The next queued key that may start with `in_flight` starts under way;
    // empty if none may.
    std::string next(int in_flight);
    void remove(const std::string& id);
    bool contains(const std::string& id) const;
    std::size_t size() const { return queue_.size(); }
    int max_concurrent() const { return max_; }

private:
    int max_;
    std::deque<std::string> queue_;
};

}  // namespace launcher
