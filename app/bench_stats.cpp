#include "app/bench_stats.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <numeric>
#include <sstream>

#include "core/error.h"

namespace troupe::app {

namespace {
double ms(BenchClock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

double percentile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  const double pos = q * double(sorted.size() - 1);
  const size_t lo = size_t(pos);
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - double(lo));
}

boost::json::object stats_json(const LatencyStats& s) {
  return {{"mean", s.mean}, {"p50", s.p50}, {"p95", s.p95}, {"p99", s.p99}, {"max", s.max}};
}
}  // namespace

LatencyStats LatencyStats::of(std::vector<double> v) {
  LatencyStats s;
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  s.mean = std::accumulate(v.begin(), v.end(), 0.0) / double(v.size());
  s.p50 = percentile(v, 0.50);
  s.p95 = percentile(v, 0.95);
  s.p99 = percentile(v, 0.99);
  s.max = v.back();
  return s;
}

bool meets_slo(const Slo& slo, double ttft_ms, double tpot_ms, int64_t output_tokens) {
  const bool ttft_ok = slo.ttft_ms <= 0 || ttft_ms <= slo.ttft_ms;
  const bool tpot_ok = slo.tpot_ms <= 0 || output_tokens <= 1 || tpot_ms <= slo.tpot_ms;
  return ttft_ok && tpot_ok;
}

int64_t count_within_slo(const std::vector<RequestTrace>& traces, const Slo& slo) {
  int64_t good = 0;
  for (const auto& t : traces) {
    if (!t.ok || t.token_times.empty()) continue;
    const auto n = int64_t(t.token_times.size());
    const double tpot = n > 1 ? ms(t.token_times.back() - t.token_times.front()) / double(n - 1) : 0;
    good += meets_slo(slo, ms(t.token_times.front() - t.submit), tpot, n);
  }
  return good;
}

BenchResult summarize(const std::vector<RequestTrace>& traces, BenchClock::time_point start) {
  BenchResult r;
  std::vector<double> ttft, tpot, itl, e2e;
  BenchClock::time_point end = start;
  for (const auto& t : traces) {
    r.requests++;
    if (!t.ok) {
      r.failed++;
      continue;
    }
    end = std::max(end, t.finish);
    r.prompt_tokens += t.prompt_tokens;
    r.output_tokens += int64_t(t.token_times.size());
    e2e.push_back(ms(t.finish - t.submit));
    if (t.token_times.empty()) continue;
    ttft.push_back(ms(t.token_times.front() - t.submit));
    if (t.token_times.size() > 1)
      tpot.push_back(ms(t.token_times.back() - t.token_times.front()) / double(t.token_times.size() - 1));
    for (size_t i = 1; i < t.token_times.size(); ++i) itl.push_back(ms(t.token_times[i] - t.token_times[i - 1]));
  }
  r.duration_s = std::chrono::duration<double>(end - start).count();
  if (r.duration_s > 0) {
    r.output_tokens_per_s = double(r.output_tokens) / r.duration_s;
    r.total_tokens_per_s = double(r.output_tokens + r.prompt_tokens) / r.duration_s;
    r.requests_per_s = double(r.requests - r.failed) / r.duration_s;
  }
  r.ttft = LatencyStats::of(ttft);
  r.tpot = LatencyStats::of(tpot);
  r.itl = LatencyStats::of(itl);
  r.e2e = LatencyStats::of(e2e);
  return r;
}

void print_result(const BenchResult& r) {
  std::printf("\n== %s ==\n", r.label.c_str());
  std::printf("requests            %lld (%lld failed) in %.2f s\n", (long long)r.requests, (long long)r.failed, r.duration_s);
  std::printf("output throughput   %.1f tokens/s\n", r.output_tokens_per_s);
  std::printf("total throughput    %.1f tokens/s (prompt + output)\n", r.total_tokens_per_s);
  std::printf("request throughput  %.2f requests/s\n", r.requests_per_s);
  if (r.goodput_requests_per_s >= 0) std::printf("goodput             %.2f requests/s within the SLO\n", r.goodput_requests_per_s);
  std::printf("%-6s %10s %10s %10s %10s (ms)\n", "", "mean", "p50", "p95", "p99");
  for (auto [name, s] : {std::pair{"TTFT", &r.ttft}, {"TPOT", &r.tpot}, {"ITL", &r.itl}, {"E2E", &r.e2e}})
    std::printf("%-6s %10.1f %10.1f %10.1f %10.1f\n", name, s->mean, s->p50, s->p95, s->p99);
  if (r.steps > 0)
    std::printf("steps %lld, preemptions %lld, forward %.2f ms/step, actor overhead %.3f ms/step (%.2f%%)\n",
                (long long)r.steps, (long long)r.preemptions, r.forward_ms_per_step, r.actor_overhead_ms_per_step,
                r.forward_ms_per_step > 0 ? 100.0 * r.actor_overhead_ms_per_step / r.forward_ms_per_step : 0.0);
}

boost::json::object to_json(const BenchResult& r) {
  boost::json::object o{{"requests", r.requests},
                        {"failed", r.failed},
                        {"duration_s", r.duration_s},
                        {"output_tokens", r.output_tokens},
                        {"prompt_tokens", r.prompt_tokens},
                        {"output_tokens_per_s", r.output_tokens_per_s},
                        {"total_tokens_per_s", r.total_tokens_per_s},
                        {"requests_per_s", r.requests_per_s},
                        {"ttft_ms", stats_json(r.ttft)},
                        {"tpot_ms", stats_json(r.tpot)},
                        {"itl_ms", stats_json(r.itl)},
                        {"e2e_ms", stats_json(r.e2e)}};
  if (r.steps > 0) {
    o["steps"] = r.steps;
    o["preemptions"] = r.preemptions;
    o["forward_ms_per_step"] = r.forward_ms_per_step;
    o["actor_overhead_ms_per_step"] = r.actor_overhead_ms_per_step;
    o["forward_ms"] = r.forward_ms;
    o["prefill_forward_ms"] = r.prefill_forward_ms;
  }
  if (r.goodput_requests_per_s >= 0) o["goodput_requests_per_s"] = r.goodput_requests_per_s;
  return o;
}

void run_gnuplot(const std::string& png_path, const std::string& data,
                 const std::function<std::string(const std::string& dat_path)>& script) {
  const std::string dat = png_path + ".dat", gp = png_path + ".gp";
  std::ofstream(dat) << data;
  std::ofstream(gp) << script(dat);
  const std::string cmd = "gnuplot '" + gp + "' 2>&1";
  if (std::system(cmd.c_str()) != 0) fail("gnuplot failed to write {} (is gnuplot installed?)", png_path);
  std::remove(dat.c_str());
  std::remove(gp.c_str());
  std::printf("plot written to %s\n", png_path.c_str());
}

void plot_results(const std::vector<BenchResult>& results, const std::string& png_path) {
  // A bar chart of throughput and latency percentiles per mode: one data row per result.
  std::ostringstream d;
  d << "# label tokens_per_s ttft_p50 ttft_p95 e2e_p50 e2e_p95\n";
  for (const auto& r : results)
    d << r.label << " " << r.output_tokens_per_s << " " << r.ttft.p50 << " " << r.ttft.p95 << " " << r.e2e.p50 << " "
      << r.e2e.p95 << "\n";
  run_gnuplot(png_path, d.str(), [&](const std::string& dat) {
    std::ostringstream f;
    f << "set terminal pngcairo size 1000,420\nset output '" << png_path << "'\n"
      << "set multiplot layout 1,2\nset style data histograms\nset style fill solid 0.8 border -1\n"
      << "set boxwidth 0.8\nset grid ytics\nset yrange [0:*]\n"
      << "set title 'output throughput (tokens/s)'\nplot '" << dat << "' using 2:xtic(1) notitle lc rgb '#4477aa'\n"
      << "set title 'latency (ms)'\nset key top left\n"
      << "plot '" << dat << "' using 3:xtic(1) title 'TTFT p50', '' using 4 title 'TTFT p95', "
      << "'' using 5 title 'E2E p50', '' using 6 title 'E2E p95'\nunset multiplot\n";
    return f.str();
  });
}

}  // namespace troupe::app
