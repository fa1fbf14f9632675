#pragma once
// Progress of a long command (quantize, bench, eval) on stderr, suited to where stderr goes.
// On a terminal: one line redrawn in place (\r) when its bar moves or a tenth of a second
// passed. Anywhere else (a pipe, a log file): plain lines, one every `log_interval_s` and one
// at the end, so a log gets a bounded number of lines whatever the step count.
#include <chrono>
#include <cstdint>
#include <string>

namespace troupe::app {

class Progress {
 public:
  Progress(std::string label, int64_t total, double log_interval_s = 10);
  // `done` of `total` steps; `detail` follows the count ("12 samples, 3072 tokens").
  void update(int64_t done, const std::string& detail = "");
  // Ends the display: the terminal line is closed, a log gets the final count if it lacks it.
  void finish(const std::string& detail = "");

 private:
  using Clock = std::chrono::steady_clock;
  std::string line(int64_t done, const std::string& detail) const;

  std::string label_;
  int64_t total_;
  double log_interval_s_;
  bool tty_;
  int64_t done_ = 0, printed_done_ = -1;
  std::string detail_, last_bar_;
  Clock::time_point last_print_;
  bool drawn_ = false, finished_ = false;
};

}  // namespace troupe::app
