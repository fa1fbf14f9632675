#include "app/progress.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace troupe::app {

namespace {

std::string bar(int64_t done, int64_t total, int width = 24) {
  const int64_t k = total > 0 ? std::clamp<int64_t>(done * width / total, 0, width) : width;
  std::string out = "[";
  out.append(size_t(k), '#');
  out.append(size_t(width - k), '.');
  out += ']';
  return out;
}

}  // namespace

Progress::Progress(std::string label, int64_t total, double log_interval_s)
    : label_(std::move(label)), total_(total), log_interval_s_(log_interval_s), tty_(::isatty(2) != 0),
      last_print_(Clock::now()) {}

std::string Progress::line(int64_t done, const std::string& detail) const {
  return fmt::format("{} {} {}/{}{}{}", label_, bar(done, total_), done, total_, detail.empty() ? "" : " ", detail);
}

void Progress::update(int64_t done, const std::string& detail) {
  done_ = done;
  detail_ = detail;
  const auto now = Clock::now();
  const double since = std::chrono::duration<double>(now - last_print_).count();
  if (tty_) {
    const std::string b = bar(done, total_);
    if (b == last_bar_ && since < 0.1 && done != total_) return;
    last_bar_ = b;
    std::fprintf(stderr, "\r%s\033[K", line(done, detail).c_str());
    drawn_ = true;
  } else {
    if (since < log_interval_s_ && !(done == total_ && printed_done_ != done)) return;
    std::fprintf(stderr, "%s\n", line(done, detail).c_str());
    printed_done_ = done;
  }
  last_print_ = now;
}

void Progress::finish(const std::string& detail) {
  if (finished_) return;
  finished_ = true;
  if (!detail.empty()) detail_ = detail;
  if (tty_) {
    if (!detail.empty() || !drawn_) std::fprintf(stderr, "\r%s\033[K", line(done_, detail_).c_str());
    std::fprintf(stderr, "\n");
  } else if (printed_done_ != done_ || !detail.empty()) {
    std::fprintf(stderr, "%s\n", line(done_, detail_).c_str());
  }
}

}  // namespace troupe::app
