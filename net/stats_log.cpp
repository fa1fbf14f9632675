#include "net/stats_log.h"

#include <fmt/format.h>

namespace troupe {

namespace {

std::string percent(int64_t part, int64_t whole) {
  return whole > 0 ? fmt::format("{:.1f}%", 100.0 * double(part) / double(whole)) : std::string("-");
}

}  // namespace

std::optional<std::string> stats_line(const SchedulerStats& prev, const SchedulerStats& now, double seconds) {
  const int64_t prompt = now.prompt_tokens_computed - prev.prompt_tokens_computed;
  const int64_t generated = now.generated_tokens - prev.generated_tokens;
  if (prompt == 0 && generated == 0 && now.running == 0 && now.waiting == 0) return std::nullopt;
  const double s = seconds > 0 ? seconds : 1;
  return fmt::format(
      "stats: prompt {:.1f} tok/s, generation {:.1f} tok/s, running {}, waiting {}, KV cache {:.1f}%, "
      "prefix-cache hits {}, speculation acceptance {}",
      double(prompt) / s, double(generated) / s, now.running, now.waiting, 100.0 * now.kv.usage(),
      percent(now.kv.prefix_hit_tokens - prev.kv.prefix_hit_tokens, now.kv.prefix_query_tokens - prev.kv.prefix_query_tokens),
      percent(now.spec.num_accepted_tokens - prev.spec.num_accepted_tokens,
              now.spec.num_draft_tokens - prev.spec.num_draft_tokens));
}

}  // namespace troupe
