// StopMatcher: stop strings over streamed text. Only the longest tail of the text that could
// still grow into a stop string is held back, so streaming stays as live as possible and the
// held text is always shorter than the longest stop string.
#include <algorithm>
#include <utility>

#include "core/error.h"
#include "sampling/sampler.h"

namespace troupe {

namespace {

// Length of the longest suffix of `text` that is a proper prefix of some stop string: the
// part that must not be emitted yet.
size_t pending_suffix(const std::string& text, const std::vector<std::string>& stops) {
  size_t keep = 0;
  for (const std::string& stop : stops) {
    for (size_t len = std::min(stop.size() - 1, text.size()); len > keep; --len) {
      if (text.compare(text.size() - len, len, stop, 0, len) == 0) {
        keep = len;
        break;
      }
    }
  }
  return keep;
}

}  // namespace

StopMatcher::StopMatcher(std::vector<std::string> stops) : stops_(std::move(stops)) {
  for (size_t i = 0; i < stops_.size(); ++i) {
    // An empty stop string would match before any text: always a client mistake.
    if (stops_[i].empty()) fail("stop strings must be non-empty, stop[{}] is empty", i);
  }
}

std::string StopMatcher::push(std::string_view text) {
  if (stopped_) return {};
  held_.append(text);

  // The stop that completes first wins (ties: the one starting earlier). Judging by the end
  // rather than the start makes the result independent of how the text was chunked: streamed
  // piece by piece, generation would have stopped as soon as the first stop was complete.
  size_t best_start = std::string::npos;
  size_t best_end = std::string::npos;
  const std::string* best = nullptr;
  for (const std::string& stop : stops_) {
    const size_t pos = held_.find(stop);
    if (pos == std::string::npos) continue;
    const size_t end = pos + stop.size();
    if (end < best_end || (end == best_end && pos < best_start)) {
      best_start = pos;
      best_end = end;
      best = &stop;
    }
  }
  if (best != nullptr) {
    std::string out = held_.substr(0, best_start);
    matched_ = *best;
    stopped_ = true;
    held_.clear();
    return out;
  }

  const size_t emit = held_.size() - pending_suffix(held_, stops_);
  std::string out = held_.substr(0, emit);
  held_.erase(0, emit);
  return out;
}

std::string StopMatcher::flush() {
  if (stopped_) return {};
  return std::exchange(held_, std::string());
}

}  // namespace troupe
