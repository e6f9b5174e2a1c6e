#include "core/start_queue.h"

#include <algorithm>

namespace launcher {

bool StartQueue::admit(const std::string& id, int in_flight) {
    // Keys already waiting go first: a newcomer does not overtake them.
    if (in_flight < max_ && queue_.empty()) return true;
    if (!contains(id)) queue_.push_back(id);
    return false;
}

std::string StartQueue::next(int in_flight) {
    if (in_flight >= max_ || queue_.empty()) return {};
    std::string id = std::move(queue_.front());
    queue_.pop_front();
    return id;
}

void StartQueue::remove(const std::string& id) {
    std::erase(queue_, id);
}

bool StartQueue::contains(const std::string& id) const {
    return std::find(queue_.begin(), queue_.end(), id) != queue_.end();
}

}  // namespace launcher
