#include "net/access_log.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <atomic>

namespace troupe {

std::string format_access(const AccessRecord& r, std::chrono::steady_clock::time_point end) {
  const double e2e_ms = std::chrono::duration<double, std::milli>(end - r.start).count();
  return fmt::format("access id={} route=\"{}\" status={} prompt_tokens={} output_tokens={} ttft_ms={} e2e_ms={:.1f} finish={}",
                     r.id, r.route, r.status, r.prompt_tokens, r.output_tokens,
                     r.ttft_ms < 0 ? std::string("-") : fmt::format("{:.1f}", r.ttft_ms), e2e_ms, r.finish);
}

void log_access(const AccessRecord& r) {
  const bool probe = r.route == "GET /health" || r.route == "GET /metrics" || r.route == "HEAD /health";
  const auto level = probe ? spdlog::level::debug : spdlog::level::info;
  if (!spdlog::should_log(level)) return;
  spdlog::log(level, "{}", format_access(r, std::chrono::steady_clock::now()));
}

std::string next_request_id() {
  static std::atomic<uint64_t> n{0};
  return "req-" + std::to_string(++n);
}

}  // namespace troupe
