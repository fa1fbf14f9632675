// `troupe bench decode | throughput | serve` on TinyStories-656K with tiny workloads: each
// exits 0 and its --json holds every field that docs/benchmarks.md ("The commands and their
// JSON output") lists, with the documented type and sane values (counts equal what was
// asked, rates > 0, percentiles ordered, ratios finite). Speeds themselves are not judged.
// `bench serve` runs against a `troupe serve` child process on a free loopback port.
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "client/http_client.h"
#include "serve_process.h"
#include "test_util.h"

extern char** environ;

using namespace troupe;
namespace json = boost::json;

namespace {

using test::shell_quote;

std::string model() { return test::model_path("tinystories-656k"); }

test::CommandResult bench(const std::string& args) {
  return test::run_command(shell_quote(test::troupe_bin()) + " bench " + args);
}

json::object read_json(const std::string& path) {
  const std::string text = test::read_file(path);
  INFO(path << ": " << text);
  REQUIRE(!text.empty());
  return json::parse(text).as_object();
}

// `troupe bench ARGS` must exit 0; returns the JSON it wrote to `js`.
json::object bench_json(const std::string& args, const std::string& js) {
  auto r = bench(args);
  INFO(r.out);
  REQUIRE(r.status == 0);
  return read_json(js);
}

// A field that must be present, as a finite number (int64, uint64 or double).
double num(const json::object& o, const char* key) {
  INFO("field " << key << " in " << json::serialize(o));
  REQUIRE(o.contains(key));
  REQUIRE(o.at(key).is_number());
  const double v = o.at(key).to_number<double>();
  CHECK(std::isfinite(v));
  return v;
}
int64_t integer(const json::object& o, const char* key) {
  INFO("field " << key << " in " << json::serialize(o));
  REQUIRE(o.contains(key));
  REQUIRE((o.at(key).is_int64() || o.at(key).is_uint64()));
  return o.at(key).to_number<int64_t>();
}
std::string str(const json::object& o, const char* key) {
  INFO("field " << key << " in " << json::serialize(o));
  REQUIRE(o.contains(key));
  REQUIRE(o.at(key).is_string());
  return std::string(o.at(key).as_string());
}
const json::object& obj(const json::object& o, const char* key) {
  INFO("field " << key << " in " << json::serialize(o));
  REQUIRE(o.contains(key));
  REQUIRE(o.at(key).is_object());
  return o.at(key).as_object();
}
const json::array& arr(const json::object& o, const char* key) {
  INFO("field " << key << " in " << json::serialize(o));
  REQUIRE(o.contains(key));
  REQUIRE(o.at(key).is_array());
  return o.at(key).as_array();
}

// {"mean", "p50", "p95", "p99", "max"} in ms, ordered; `positive`: every value > 0.
void check_latency(const json::object& parent, const char* key, bool positive) {
  const json::object& s = obj(parent, key);
  INFO(key << ": " << json::serialize(s));
  const double mean = num(s, "mean"), p50 = num(s, "p50"), p95 = num(s, "p95"), p99 = num(s, "p99"),
               mx = num(s, "max");
  CHECK(p50 >= 0);
  CHECK(p50 <= p95);
  CHECK(p95 <= p99);
  CHECK(p99 <= mx);
  CHECK(mean <= mx);
  if (positive) CHECK(p50 > 0);
}

// One run's result (bench_stats to_json): every request done, tokens as asked.
void check_result(const json::object& r, int64_t requests, int64_t output_tokens, bool engine_side) {
  INFO(json::serialize(r));
  CHECK(integer(r, "requests") == requests);
  CHECK(integer(r, "failed") == 0);
  CHECK(num(r, "duration_s") > 0);
  CHECK(integer(r, "output_tokens") == output_tokens);
  CHECK(integer(r, "prompt_tokens") >= requests);
  const double out_tps = num(r, "output_tokens_per_s");
  CHECK(out_tps > 0);
  CHECK(num(r, "total_tokens_per_s") > out_tps);
  CHECK(num(r, "requests_per_s") > 0);
  check_latency(r, "ttft_ms", true);
  check_latency(r, "tpot_ms", true);
  check_latency(r, "itl_ms", false);
  check_latency(r, "e2e_ms", true);
  CHECK(obj(r, "ttft_ms").at("p50").to_number<double>() <= obj(r, "e2e_ms").at("max").to_number<double>());
  if (engine_side) {
    CHECK(integer(r, "steps") > 0);
    CHECK(integer(r, "preemptions") >= 0);
    CHECK(num(r, "forward_ms_per_step") > 0);
    CHECK(std::isfinite(num(r, "actor_overhead_ms_per_step")));
  }
}

bool is_png(const std::string& path) {
  const std::string data = test::read_file(path);
  return data.size() > 100 && data.compare(0, 8, "\x89PNG\r\n\x1a\n") == 0;
}

}  // namespace

TEST_CASE("bench decode --json reports prefill, decode, bandwidth and the roofline", "[cli][bench]") {
  const std::string dir = test::temp_dir("bench-decode");
  const std::string js = dir + "/decode.json";
  const json::object o = bench_json("decode --model " + shell_quote(model()) +
                                         " --threads 1 --prompt-len 16 --tokens 8 --repeats 3 --json " + shell_quote(js),
                                     js);
  INFO(json::serialize(o));
  CHECK(str(o, "model") == model());
  CHECK(integer(o, "threads") == 1);
  CHECK(!str(o, "backend").empty());
  CHECK(!str(o, "quantization").empty());
  const double bytes = num(o, "weight_bytes_per_token"), bw = num(o, "read_bandwidth_bytes_per_s");
  CHECK(bytes > 1e5);  // 656K parameters: about a megabyte or more per token
  CHECK(bw > 1e8);
  CHECK(num(o, "prefill_tokens_per_s") > 0);
  const double dec = num(o, "decode_tokens_per_s"), roof = num(o, "roofline_tokens_per_s");
  CHECK(dec > 0);
  CHECK(roof == Approx(bw / bytes).epsilon(1e-6));
  CHECK(num(o, "fraction_of_roofline") == Approx(dec / roof).epsilon(1e-6));
  // Per run: its decode rate and the probes right after it (the 1 GiB one, and one of a
  // buffer the weights' size: their cache level's ceiling). The best of each is what a
  // roofline uses; a paired fraction is the median run's decode over its own probe.
  const json::array& runs_dec = o.at("run_decode_tokens_per_s").as_array();
  REQUIRE(runs_dec.size() == 3);
  double best_dec = 0;
  for (size_t i = 0; i < 3; ++i) best_dec = std::max(best_dec, runs_dec[i].to_number<double>());
  CHECK(best_dec == Approx(dec).epsilon(1e-12));
  const auto check_probe = [&](const char* runs_key, double best_bw, const char* paired_key) {
    INFO(runs_key);
    const json::array& runs_bw = o.at(runs_key).as_array();
    REQUIRE(runs_bw.size() == 3);
    std::vector<double> fractions;
    double best = 0;
    for (size_t i = 0; i < 3; ++i) {
      best = std::max(best, runs_bw[i].to_number<double>());
      fractions.push_back(runs_dec[i].to_number<double>() * bytes / runs_bw[i].to_number<double>());
    }
    CHECK(best == Approx(best_bw).epsilon(1e-12));
    std::sort(fractions.begin(), fractions.end());
    CHECK(num(o, paired_key) == Approx(fractions[1]).epsilon(1e-9));
  };
  check_probe("run_read_bandwidth_bytes_per_s", bw, "fraction_of_roofline_paired_median");
  const double sized_bw = num(o, "same_size_read_bandwidth_bytes_per_s");
  CHECK(sized_bw > 1e8);
  CHECK(num(o, "same_size_roofline_tokens_per_s") == Approx(sized_bw / bytes).epsilon(1e-6));
  CHECK(num(o, "fraction_of_same_size_roofline") == Approx(dec * bytes / sized_bw).epsilon(1e-6));
  check_probe("run_same_size_read_bandwidth_bytes_per_s", sized_bw,
              "fraction_of_same_size_roofline_paired_median");
  CHECK(num(o, "barriers_per_token") >= 0);
  // The KV cache read per decoded token: the 7 decode steps after the prefill's token see
  // contexts 17 ... 23 (16-token prompt), mean 20 positions of the default F16 cache: K and
  // V of kv_dim values per layer, 2 bytes each (the model's shape from its config.json).
  const json::object cfg = json::parse(test::read_file(model() + "/config.json")).as_object();
  const double layers = num(cfg, "num_hidden_layers"), heads = num(cfg, "num_attention_heads");
  const double kv_heads =
      cfg.contains("num_key_value_heads") ? num(cfg, "num_key_value_heads") : heads;
  const double kv_dim = num(cfg, "hidden_size") / heads * kv_heads;
  CHECK(num(o, "mean_context") == Approx(16 + (7 + 1) / 2.0));
  CHECK(num(o, "kv_bytes_per_token") == Approx(layers * 2 * kv_dim * 2 * num(o, "mean_context")));
  const double roof_kv = num(o, "roofline_with_kv_tokens_per_s");
  CHECK(roof_kv == Approx(bw / (bytes + num(o, "kv_bytes_per_token"))).epsilon(1e-6));
  CHECK(roof_kv < roof);
  CHECK(num(o, "fraction_of_roofline_with_kv") == Approx(dec / roof_kv).epsilon(1e-6));
}

TEST_CASE("bench decode --verify-rows reports the 1 + k-row step cost against the decode step", "[cli][bench]") {
  const std::string dir = test::temp_dir("bench-decode-verify");
  const std::string js = dir + "/decode.json";
  const json::object o = bench_json("decode --model " + shell_quote(model()) +
                                         " --threads 2 --prompt-len 20 --tokens 4 --repeats 1 --verify-rows 3"
                                         " --verify-rounds 5 --json " + shell_quote(js),
                                     js);
  INFO(json::serialize(o));
  CHECK(num(o, "decode_tokens_per_s") > 0);
  const json::object& v = obj(o, "verify");
  CHECK(integer(v, "context") == 20);
  CHECK(integer(v, "rounds") == 5);
  const double one_med = num(v, "single_row_step_ms_median"), one_best = num(v, "single_row_step_ms_best");
  CHECK(one_best > 0);
  CHECK(one_best <= one_med);
  const json::array& rows = arr(v, "rows");
  REQUIRE(rows.size() == 3);
  for (size_t i = 0; i < rows.size(); ++i) {
    const json::object& r = rows[i].as_object();
    CHECK(integer(r, "k") == int64_t(i) + 1);
    const double med = num(r, "step_ms_median"), best = num(r, "step_ms_best");
    CHECK(best > 0);
    CHECK(best <= med);
    CHECK(num(r, "ratio_median") > 0);
    CHECK(num(r, "ratio_best") == Approx(best / one_best).epsilon(1e-9));
  }
}

// The host tuning tables (cpu/host_tuning.h): TROUPE_HOST_TUNING picks one, the backend's
// name and the JSON say which ran, and --compare-host-tuning decodes under each in turns
// (INT8 weights: the quantized GEMV is what the tables tune).
TEST_CASE("bench decode --compare-host-tuning decodes under each table; TROUPE_HOST_TUNING picks one", "[cli][bench]") {
  const std::string dir = test::temp_dir("bench-decode-tuning");
  const std::string js = dir + "/decode.json";
  const std::string args = "decode --model " + shell_quote(model()) +
                           " --threads 2 --prompt-len 8 --tokens 4 --repeats 1 --quantization int8";
  auto r = test::run_command("TROUPE_HOST_TUNING=intel " + shell_quote(test::troupe_bin()) + " bench " + args +
                             " --compare-host-tuning 3 --json " + shell_quote(js));
  INFO(r.out);
  REQUIRE(r.status == 0);
  const json::object o = read_json(js);
  INFO(json::serialize(o));
  CHECK(str(o, "host_tuning") == "intel");
  CHECK(str(o, "backend").find("intel tuning") != std::string::npos);
  const json::array& tables = arr(o, "host_tuning_compared");
  REQUIRE(tables.size() == 2);
  CHECK(str(tables[0].as_object(), "name") == "amd");
  CHECK(str(tables[1].as_object(), "name") == "intel");
  CHECK(num(tables[0].as_object(), "ratio_median") == 1.0);
  for (const json::value& t : tables) {
    CHECK(num(t.as_object(), "tokens_per_s_median") > 0);
    CHECK(num(t.as_object(), "ratio_median") > 0);
  }
  CHECK(r.out.find("host tuning      intel in use") != std::string::npos);

  auto bad = test::run_command("TROUPE_HOST_TUNING=zen5 " + shell_quote(test::troupe_bin()) + " bench " + args);
  INFO(bad.out);
  CHECK(bad.status != 0);
  CHECK(bad.out.find("TROUPE_HOST_TUNING='zen5': expected amd or intel") != std::string::npos);
}

TEST_CASE("bench decode --verify-rows needs room for the context and the drafts", "[cli][bench]") {
  // TinyStories-656K has 512 positions: a 510-token context leaves no room for 1 + 3 rows.
  auto r = bench("decode --model " + shell_quote(model()) +
                 " --threads 1 --prompt-len 510 --tokens 2 --repeats 1 --verify-rows 3 --verify-rounds 1");
  INFO(r.out);
  CHECK(r.status != 0);
  CHECK(r.out.find("do not fit") != std::string::npos);
}

TEST_CASE("bench peak --json reports the FMA peak, the batched step and the barriers", "[cli][bench]") {
  const std::string dir = test::temp_dir("bench-peak");
  const std::string js = dir + "/peak.json";
  const json::object o = bench_json("peak --model " + shell_quote(model()) +
                                         " --threads 2 --batch 4 --prompt-len 8 --steps 3 --json " + shell_quote(js),
                                     js);
  INFO(json::serialize(o));
  CHECK(integer(o, "threads") == 2);
  CHECK(integer(o, "batch") == 4);
  const double peak = num(o, "fma_peak_flops"), gflops = num(o, "step_gflops_median");
  CHECK(peak > 1e9);
  CHECK(num(o, "linear_params") > 1e5);
  CHECK(gflops == Approx(2 * num(o, "linear_params") * 4 / num(o, "step_median_s") / 1e9).epsilon(1e-6));
  CHECK(num(o, "fraction_of_peak") == Approx(gflops * 1e9 / peak).epsilon(1e-6));
  CHECK(num(o, "step_best_s") <= num(o, "step_median_s"));
  CHECK(integer(o, "barriers_per_step_batch1") >= 0);
  CHECK(str(o, "kv_cache_dtype") == "f16");  // the commands' default KV cache
  CHECK(o.at("versus").is_null());
  // --steps more steps, each against a probe of the peak run just before it.
  const json::object& paired = obj(o, "paired");
  CHECK(integer(paired, "steps") == 3);
  CHECK(num(paired, "fraction_of_peak_median") > 0);
  CHECK(num(paired, "fraction_of_peak_median") < 4);  // a float step cannot beat the FMA peak 4x
  CHECK(paired.at("fraction_of_int8_peak_median").is_null());  // float linears
  const json::object o8 = bench_json("peak --model " + shell_quote(model()) +
                                          " --threads 1 --batch 2 --prompt-len 4 --steps 1 --kv-cache-dtype int8 --json " +
                                          shell_quote(js),
                                      js);
  CHECK(str(o8, "kv_cache_dtype") == "int8");
  CHECK(num(o8, "step_median_s") > 0);

  // Float linears: the int8 dot-product peak is reported where the CPU has the probe
  // (null elsewhere), the fraction of it only for quantized linears.
  CHECK_FALSE(o.at("quantized_linears").as_bool());
  CHECK(o.at("fraction_of_int8_peak").is_null());
  const json::object q = bench_json("peak --model " + shell_quote(model()) +
                                        " --threads 2 --batch 4 --prompt-len 8 --steps 2 --quantization int8 --json " +
                                        shell_quote(js),
                                    js);
  INFO(json::serialize(q));
  CHECK(q.at("quantized_linears").as_bool());
  if (q.at("int8_dot_peak_macs").is_null()) {
    CHECK(q.at("fraction_of_int8_peak").is_null());
  } else {
    const double dot = num(q, "int8_dot_peak_macs");
    CHECK(dot > 1e9);
    CHECK(num(q, "fraction_of_int8_peak") == Approx(num(q, "step_gflops_median") * 1e9 / 2 / dot).epsilon(1e-6));
  }
  const json::object& qp = obj(q, "paired");
  CHECK(integer(qp, "steps") == 2);
  CHECK(num(qp, "fraction_of_peak_median") > 0);
  if (q.at("int8_dot_peak_macs").is_null())
    CHECK(qp.at("fraction_of_int8_peak_median").is_null());
  else
    CHECK(num(qp, "fraction_of_int8_peak_median") > 0);
}

TEST_CASE("bench peak --versus-quantization times a second configuration in turns", "[cli][bench]") {
  const std::string dir = test::temp_dir("bench-peak-versus");
  const std::string js = dir + "/peak.json";
  auto run = [&](const std::string& flags) {
    return bench_json("peak --model " + shell_quote(model()) +
                          " --threads 2 --batch 3 --prompt-len 6 --steps 5 " + flags + " --json " + shell_quote(js),
                      js);
  };
  const json::object o = run("--versus-quantization int4 --group-size 64");
  INFO(json::serialize(o));
  const json::object& v = obj(o, "versus");
  CHECK(str(v, "quantization") == "int4-g64");  // the group size applies to the second model too
  CHECK(integer(v, "pairs") == 5);
  CHECK(num(v, "step_median_s") > 0);
  CHECK(num(v, "self_step_median_s") > 0);
  CHECK(num(v, "ratio_median") > 0);
  CHECK_FALSE(o.at("quantized_linears").as_bool());  // the first configuration's, as stored
  // The other way round: the first configuration quantized, the second as stored.
  const json::object q = run("--quantization int8 --versus-quantization none");
  CHECK(q.at("quantized_linears").as_bool());
  CHECK(str(obj(q, "versus"), "quantization") == "none");
  // Prompt + steps + 1 filling whole KV blocks: the versus run's extra warm-up step must
  // still find a block.
  const json::object edge = bench_json("peak --model " + shell_quote(model()) +
                                           " --threads 1 --batch 1 --prompt-len 14 --steps 1 --versus-quantization int8 "
                                           "--json " + shell_quote(js),
                                       js);
  CHECK(integer(obj(edge, "versus"), "pairs") == 1);
  // An unknown configuration is refused before any model is loaded.
  auto bad = bench("peak --model " + shell_quote(model()) + " --steps 1 --versus-quantization int3");
  CHECK(bad.status != 0);
  CHECK(bad.out.find("int3") != std::string::npos);
}

TEST_CASE("bench throughput --scheduling both --json --plot reports both modes and their ratio", "[cli][bench]") {
  const std::string dir = test::temp_dir("bench-throughput");
  const std::string js = dir + "/tp.json", png = dir + "/tp.png", csv = dir + "/steps.csv";
  // Fixed lengths so the token counts are known: 4 requests x 6 output tokens; three rounds
  // of the two runs, of which the median round is reported.
  const json::object o = bench_json("throughput --model " + shell_quote(model()) +
                                         " --num-prompts 4 --input-len 12 --output-len 6 --max-num-seqs 2 "
                                         "--scheduling both --compare-rounds 3 --json " + shell_quote(js) +
                                         " --plot " + shell_quote(png) + " --steps-csv " + shell_quote(csv),
                                     js);
  INFO(json::serialize(o));
  check_result(obj(o, "continuous"), 4, 24, true);
  check_result(obj(o, "static"), 4, 24, true);
  CHECK(integer(obj(o, "continuous"), "prompt_tokens") == 48);
  CHECK(integer(obj(o, "static"), "prompt_tokens") == 48);
  const double ratio = num(o, "throughput_ratio");
  CHECK(ratio > 0);
  CHECK(ratio == Approx(obj(o, "continuous").at("output_tokens_per_s").to_number<double>() /
                        obj(o, "static").at("output_tokens_per_s").to_number<double>())
                     .epsilon(1e-6));
  // Equal output lengths: static batching idles no slot, the bound is 1.
  CHECK(num(o, "static_bound_sampled") == Approx(1.0));
  CHECK(num(o, "static_bound_expected") == Approx(1.0));
  CHECK(num(o, "fraction_of_bound") == Approx(ratio));
  // Counting the prompts: the static run's prefill steps took part of its forward time, and
  // a bound of 1 stays 1.
  const json::object& st = obj(o, "static");
  CHECK(num(st, "prefill_forward_ms") > 0);
  CHECK(num(st, "prefill_forward_ms") < num(st, "forward_ms"));
  CHECK(num(o, "static_estimate_with_prefill") == Approx(1.0));
  CHECK(num(o, "fraction_of_estimate_with_prefill") == Approx(ratio));
  CHECK(num(o, "static_bound_fcfs_sampled") == Approx(1.0));
  CHECK(num(o, "static_bound_fcfs_expected") == Approx(1.0));
  CHECK(num(o, "fraction_of_fcfs_bound") == Approx(ratio));
  CHECK(num(o, "static_estimate_fcfs_with_prefill") == Approx(1.0));
  CHECK(integer(o, "rounds") == 3);
  // --steps-csv: every step of the six runs; each run computed the 48 prompt tokens and
  // generated the 24 output tokens, never more than 2 sequences a step.
  {
    std::ifstream in(csv);
    std::string line;
    REQUIRE(std::getline(in, line));
    CHECK(line.rfind("run,round,step,seqs,tokens,prefill_tokens,outputs,generated,", 0) == 0);
    std::map<std::string, std::pair<int64_t, int64_t>> per_run;  // "label/round" -> prompt, generated
    // The reported round's continuous steps: (prefill tokens, generated) each, for its drain,
    // and the forward ms of its decode steps with both slots taken.
    size_t shown = 0;
    for (size_t r = 0; r < o.at("round_ratios").as_array().size(); ++r)
      if (o.at("round_ratios").as_array()[r].to_number<double>() == ratio) shown = r;
    std::vector<std::pair<int64_t, int64_t>> shown_steps;
    std::vector<double> full_steps_ms;
    while (std::getline(in, line)) {
      std::vector<std::string> f;
      std::stringstream ss(line);
      for (std::string cell; std::getline(ss, cell, ',');) f.push_back(cell);
      REQUIRE(f.size() == 15);
      CHECK((f[0] == "continuous" || f[0] == "static"));
      CHECK(std::stoll(f[3]) <= 2);
      CHECK(std::stod(f[13]) > 0);  // forward_ms
      auto& [prompt, generated] = per_run[f[0] + "/" + f[1]];
      prompt += std::stoll(f[5]);
      generated += std::stoll(f[7]);
      if (f[0] == "continuous" && f[1] == std::to_string(shown)) {
        shown_steps.emplace_back(std::stoll(f[5]), std::stoll(f[7]));
        if (std::stoll(f[5]) == 0 && std::stoll(f[3]) == 2) full_steps_ms.push_back(std::stod(f[13]));
      }
    }
    CHECK(per_run.size() == 6);
    for (const auto& [run, totals] : per_run) {
      INFO(run);
      CHECK(totals.first == 48);
      CHECK(totals.second == 24);
    }
    // The drain: the steps after the last that computed prompt tokens, in which the last
    // request admitted generates its other 5 tokens at least.
    size_t first = 0;
    for (size_t i = 0; i < shown_steps.size(); ++i)
      if (shown_steps[i].first > 0) first = i + 1;
    int64_t drain_tokens = 0;
    for (size_t i = first; i < shown_steps.size(); ++i) drain_tokens += shown_steps[i].second;
    CHECK(integer(o, "drain_steps") == int64_t(shown_steps.size() - first));
    CHECK(integer(o, "drain_tokens") == drain_tokens);
    CHECK(integer(o, "drain_steps") >= 5);
    CHECK(integer(o, "drain_tokens") >= 5);
    CHECK(num(o, "drain_forward_ms") > 0);
    CHECK(num(o, "drain_forward_ms") < num(obj(o, "continuous"), "forward_ms"));
    // The median full step (the upper middle of an even count); none when every step with
    // both slots taken also computed a prompt, as the requests' arrival times may make it.
    std::sort(full_steps_ms.begin(), full_steps_ms.end());
    INFO(full_steps_ms.size() << " full decode steps");
    if (full_steps_ms.empty())
      CHECK(num(o, "full_step_forward_ms") == 0);
    else
      CHECK(num(o, "full_step_forward_ms") == Approx(full_steps_ms[full_steps_ms.size() / 2]).epsilon(1e-4));
  }
  std::vector<double> rounds;
  for (const auto& v : o.at("round_ratios").as_array()) rounds.push_back(v.to_number<double>());
  REQUIRE(rounds.size() == 3);
  std::sort(rounds.begin(), rounds.end());
  CHECK(ratio == Approx(rounds[1]).epsilon(1e-9));  // the reported round is the median one
  CHECK(str(o, "model") == model());
  CHECK(integer(o, "num_prompts") == 4);
  CHECK(str(o, "input_len") == "12");
  CHECK(str(o, "output_len") == "6");
  CHECK(str(o, "request_rate") == "inf");
  CHECK(integer(o, "max_num_seqs") == 2);
  CHECK(integer(o, "max_num_batched_tokens") > 0);
  CHECK(!o.contains("spec_decode"));
  CHECK(is_png(png));
  // The plot's scratch files are cleaned up.
  CHECK(test::run_command("ls " + shell_quote(dir)).out == "steps.csv\ntp.json\ntp.png\n");
}

TEST_CASE("bench throughput --schedule-policy lof: continuous batching longest first, static in arrival order",
          "[cli][bench]") {
  const std::string dir = test::temp_dir("bench-throughput-lof");
  const std::string js = dir + "/tp.json";
  const json::object o = bench_json("throughput --model " + shell_quote(model()) +
                                         " --num-prompts 6 --input-len 8 --output-len 2:14 --max-num-seqs 2 "
                                         "--scheduling both --schedule-policy lof --json " + shell_quote(js),
                                     js);
  INFO(json::serialize(o));
  CHECK(str(o, "schedule_policy") == "lof");
  const int64_t out_tokens = integer(obj(o, "continuous"), "output_tokens");  // the same workload in both
  check_result(obj(o, "continuous"), 6, out_tokens, true);
  check_result(obj(o, "static"), 6, out_tokens, true);
  CHECK(out_tokens >= 12);
  const double ratio = num(o, "throughput_ratio");
  CHECK(num(o, "static_bound_lof_sampled") >= 1.0);
  CHECK(num(o, "static_bound_lof_expected") > 1.0);  // lengths 2-14 in 2 slots
  CHECK(num(o, "fraction_of_lof_bound") == Approx(ratio / num(o, "static_bound_lof_sampled")));
  // Static batching is the arrival-order baseline: the policy is refused for it alone.
  auto bad = bench("throughput --model " + shell_quote(model()) +
                   " --num-prompts 2 --output-len 3 --scheduling static --schedule-policy lof");
  CHECK(bad.status != 0);
  CHECK(bad.out.find("static batching keeps arrival order") != std::string::npos);
}

TEST_CASE("bench throughput with one scheduling reports that mode only", "[cli][bench]") {
  const std::string dir = test::temp_dir("bench-throughput-one");
  for (const std::string mode : {"continuous", "static"}) {
    const std::string js = dir + "/" + mode + ".json", png = dir + "/" + mode + ".png";
    auto r = bench("throughput --model " + shell_quote(model()) + " --num-prompts 3 --input-len 4:10 --output-len 5 " +
                   "--request-rate 200 --scheduling " + mode + " --json " + shell_quote(js) + " --plot " +
                   shell_quote(png));
    INFO(mode << ": " << r.out);
    REQUIRE(r.status == 0);
    const json::object o = read_json(js);
    INFO(json::serialize(o));
    check_result(obj(o, mode.c_str()), 3, 15, true);
    CHECK(o.size() == 9);  // the mode and the workload, nothing of the other mode
    CHECK(!o.contains("throughput_ratio"));
    CHECK(num(o, "request_rate") == 200);
    CHECK(integer(o, "num_prompts") == 3);
    CHECK(is_png(png));
  }
}

TEST_CASE("bench throughput with speculation reports the speculative run and its metrics", "[cli][bench]") {
  const std::string dir = test::temp_dir("bench-spec");
  const std::string js = dir + "/spec.json";
  auto r = bench("throughput --model " + shell_quote(model()) +
                 " --speculative-method ngram --num-speculative-tokens 2 --num-prompts 3 --input-len 10 --output-len 8"
                 " --json " + shell_quote(js));
  INFO(r.out);
  REQUIRE(r.status == 0);
  const json::object o = read_json(js);
  INFO(json::serialize(o));
  check_result(obj(o, "speculative"), 3, 24, true);
  CHECK(!o.contains("continuous"));
  CHECK(str(o, "speculation").find("n-gram") != std::string::npos);
  const json::object& s = obj(o, "spec_decode");
  CHECK(integer(s, "num_speculative_tokens") == 2);
  CHECK(arr(s, "k_histogram").size() == 3);
  CHECK(integer(o, "num_prompts") == 3);
}

TEST_CASE("bench throughput --compare-no-spec (n-gram) reports both modes and the theory", "[cli][bench]") {
  const std::string dir = test::temp_dir("bench-compare");
  const std::string js = dir + "/cmp.json";
  auto r = bench("throughput --model " + shell_quote(model()) +
                 " --speculative-method ngram --num-speculative-tokens 3 --compare-no-spec --compare-rounds 2"
                 " --num-prompts 4 --input-len 16 --output-len 24 --max-num-seqs 2 --json " + shell_quote(js));
  INFO(r.out);
  REQUIRE(r.status == 0);
  const json::object o = read_json(js);
  INFO(json::serialize(o));
  CHECK(str(o, "model") == model());
  CHECK(str(o, "speculation").find("n-gram") != std::string::npos);
  CHECK(integer(o, "rounds") == 2);
  CHECK(integer(o, "wave") == 2);
  CHECK(integer(o, "num_prompts") == 4);
  CHECK(str(o, "input_len") == "16");
  CHECK(str(o, "output_len") == "24");
  CHECK(str(o, "request_rate") == "inf");
  CHECK(integer(o, "max_num_seqs") == 2);
  CHECK(integer(o, "max_num_batched_tokens") > 0);
  const double off = num(o, "tokens_per_s_no_spec"), on = num(o, "tokens_per_s_spec");
  CHECK(off > 0);
  CHECK(on > 0);
  CHECK(num(o, "speedup") == Approx(on / off).epsilon(1e-6));
  CHECK(num(o, "forward_ms_per_step_no_spec") > 0);
  CHECK(num(o, "forward_ms_per_step_spec") > 0);
  const double alpha = num(o, "alpha");
  CHECK(alpha >= 0);
  CHECK(alpha <= 1);
  CHECK(num(o, "cost_ratio_c") >= 0);  // 0 for n-gram: no draft model pass
  const double k = num(o, "mean_k");
  CHECK(k >= 0);
  CHECK(k <= 3);
  CHECK(num(o, "theoretical_speedup_K") > 0);
  CHECK(num(o, "theoretical_speedup_mean_k") > 0);

  const json::object& s = obj(o, "spec_decode");
  INFO(json::serialize(s));
  CHECK(integer(s, "num_speculative_tokens") == 3);
  const int64_t drafts = integer(s, "num_drafts"), drafted = integer(s, "num_draft_tokens"),
                accepted = integer(s, "num_accepted_tokens");
  CHECK(drafts >= 0);
  CHECK(accepted <= drafted);
  const double rate = num(s, "acceptance_rate");
  CHECK(rate >= 0);
  CHECK(rate <= 1);
  CHECK(num(s, "mean_accepted_length") >= 0);
  CHECK(num(s, "alpha") == Approx(alpha));
  CHECK(num(s, "cost_ratio") >= 0);
  CHECK(arr(s, "acceptance_rate_per_pos").size() == 3);
  CHECK(arr(s, "drafted_per_pos").size() == 3);
  CHECK(arr(s, "accepted_per_pos").size() == 3);
  int64_t drafted_sum = 0;
  for (auto& v : arr(s, "drafted_per_pos")) drafted_sum += v.to_number<int64_t>();
  CHECK(drafted_sum == drafted);
  CHECK(arr(s, "k_histogram").size() == 4);  // k = 0..K
  int64_t spec_mode_steps = 0;  // decode steps of the speculative mode, whatever k they asked for
  for (auto& v : arr(s, "k_histogram")) spec_mode_steps += v.to_number<int64_t>();
  CHECK(spec_mode_steps > 0);
  CHECK(num(s, "mean_k") >= 0);
  CHECK(integer(s, "spec_steps") >= 0);
  CHECK(integer(s, "draft_passes") >= 0);
  CHECK(num(s, "draft_ms_total") >= 0);
  CHECK(arr(s, "target_step_ms").size() <= 4);
}

TEST_CASE("bench throughput --compare-no-spec refuses what it cannot do instead of ignoring it", "[cli][bench]") {
  const std::string dir = test::temp_dir("bench-compare-refuse");
  const std::string base = "throughput --model " + shell_quote(model()) + " --num-prompts 2 --input-len 8 --output-len 4 ";
  {
    auto r = bench(base + "--speculative-method ngram --num-speculative-tokens 2 --compare-no-spec --plot " +
                   shell_quote(dir + "/p.png"));
    INFO(r.out);
    CHECK(r.status == 1);
    CHECK(r.out.find("error:") != std::string::npos);
    CHECK(r.out.find("--plot") != std::string::npos);
  }
  {
    auto r = bench(base + "--speculative-method ngram --num-speculative-tokens 2 --compare-no-spec --steps-csv " +
                   shell_quote(dir + "/s.csv"));
    INFO(r.out);
    CHECK(r.status == 1);
    CHECK(r.out.find("--steps-csv") != std::string::npos);
  }
  {
    // No speculation configured (K = 0): nothing to compare against.
    auto r = bench(base + "--speculative-method ngram --compare-no-spec");
    INFO(r.out);
    CHECK(r.status == 1);
    CHECK(r.out.find("--num-speculative-tokens") != std::string::npos);
  }
}

TEST_CASE("bench throughput --json-schema reports the grammar's costs and paired waves of both modes",
          "[cli][bench]") {
  const std::string dir = test::temp_dir("bench-schema");
  const std::string js = dir + "/g.json";
  const std::string schema = test::write_file(dir, "s.json", R"({"type":"object","properties":{"name":{"type":"string","maxLength":6},)"
                           R"("n":{"type":"integer"}},"required":["name","n"],"additionalProperties":false})");
  const json::object o = bench_json("throughput --model " + shell_quote(model()) + " --json-schema " +
                                         shell_quote(schema) + " --compare-rounds 2 --num-prompts 4 --input-len 8 "
                                         "--output-len 6 --max-num-seqs 2 --json " + shell_quote(js),
                                     js);
  INFO(json::serialize(o));
  CHECK(integer(o, "rounds") == 2);
  CHECK(integer(o, "wave") == 2);
  CHECK(integer(o, "num_prompts") == 4);
  const json::object &plain = obj(o, "unconstrained"), &constrained = obj(o, "constrained");
  for (const json::object* m : {&plain, &constrained}) {
    INFO(json::serialize(*m));
    CHECK(integer(*m, "output_tokens") == 2 * 4 * 6);  // rounds x prompts x output length (ignore_eos)
    CHECK(num(*m, "seconds") > 0);
    CHECK(num(*m, "output_tokens_per_s") == Approx(num(*m, "output_tokens") / num(*m, "seconds")).epsilon(1e-6));
    CHECK(integer(*m, "steps") >= 2 * 2 * 6);  // each wave of 2 takes >= 6 steps, twice per round
    CHECK(num(*m, "forward_ms_per_step") > 0);
  }
  CHECK(num(o, "throughput_ratio") ==
        Approx(num(constrained, "output_tokens_per_s") / num(plain, "output_tokens_per_s")).epsilon(1e-6));
  const json::object& g = obj(o, "grammar");
  CHECK(num(g, "compile_ms") > 0);
  CHECK(integer(g, "vocab") > 0);
  CHECK(integer(g, "tokens") > 0);
  CHECK(integer(g, "precomputed_entries") > 0);
  check_latency(g, "mask_us", false);
  check_latency(g, "mask_us_first_walk", false);
  check_latency(g, "mask_us_precomputed", false);

  auto r = bench("throughput --model " + shell_quote(model()) + " --json-schema " + shell_quote(schema) +
                 " --num-prompts 2 --input-len 8 --output-len 4 --request-rate 5");
  INFO(r.out);
  CHECK(r.status == 1);
  CHECK(r.out.find("--request-rate") != std::string::npos);
}

TEST_CASE("bench serve --json against a running troupe serve", "[cli][bench]") {
  const std::string dir = test::temp_dir("bench-serve");
  const std::string js = dir + "/serve.json";
  test::ServeProcess serve({"--model", model(), "--warmup", "0"}, dir + "/serve.log");
  const uint16_t port = serve.port();

  const std::string url = "http://127.0.0.1:" + std::to_string(port);
  auto r = bench("serve --url " + url + " --num-prompts 5 --request-rate inf --input-len 4:8 --output-len 6 "
                 "--slo-ttft-ms 60000 --slo-tpot-ms 60000 --seed 3 --json " + shell_quote(js));
  INFO(r.out);
  REQUIRE(r.status == 0);
  const json::object o = read_json(js);
  INFO(json::serialize(o));
  check_result(o, 5, 30, false);
  CHECK(!o.contains("steps"));  // client side: no engine counters
  CHECK(str(o, "url") == url);
  CHECK(str(o, "endpoint") == "/v1/completions");
  CHECK(!str(o, "model").empty());
  CHECK(integer(o, "num_prompts") == 5);
  CHECK(str(o, "request_rate") == "inf");
  CHECK(integer(o, "max_concurrency") == 0);
  CHECK(str(o, "input_len") == "4:8");
  CHECK(str(o, "output_len") == "6");
  CHECK(num(o, "first_ttft_over_median") > 0);
  CHECK(num(o, "slo_ttft_ms") == 60000);
  CHECK(num(o, "slo_tpot_ms") == 60000);
  CHECK(integer(o, "good_requests") == 5);  // a minute per token: every request meets it
  CHECK(num(o, "goodput_requests_per_s") == Approx(num(o, "requests_per_s")));

  // The chat endpoint at a finite rate, without SLOs: no goodput fields.
  const std::string js2 = dir + "/chat.json";
  auto r2 = bench("serve --url " + url + " --endpoint /v1/chat/completions --num-prompts 3 --request-rate 50 "
                  "--max-concurrency 2 --input-len 5 --output-len 4 --json " + shell_quote(js2));
  INFO(r2.out);
  REQUIRE(r2.status == 0);
  const json::object o2 = read_json(js2);
  INFO(json::serialize(o2));
  check_result(o2, 3, 12, false);
  CHECK(str(o2, "endpoint") == "/v1/chat/completions");
  CHECK(num(o2, "request_rate") == 50);
  CHECK(integer(o2, "max_concurrency") == 2);
  CHECK(!o2.contains("goodput_requests_per_s"));
  CHECK(!o2.contains("good_requests"));

  // A sweep: one run per rate, each with its own figures; --plot draws it beside another
  // sweep (--plot-with), and --plot-only redraws from the files without running.
  const std::string js3 = dir + "/sweep.json", png = dir + "/sweep.png", png2 = dir + "/again.png";
  auto r3 = bench("serve --url " + url + " --num-prompts 3 --request-rate 40,inf --input-len 4 --output-len 3 "
                  "--slo-ttft-ms 60000 --slo-tpot-ms 60000 --label tiny --json " + shell_quote(js3) + " --plot " +
                  shell_quote(png) + " --plot-with " + shell_quote(js));
  INFO(r3.out);
  REQUIRE(r3.status == 0);
  const json::object o3 = read_json(js3);
  INFO(json::serialize(o3));
  CHECK(str(o3, "label") == "tiny");
  const auto& runs = o3.at("runs").as_array();
  REQUIRE(runs.size() == 2);
  CHECK(runs[0].at("request_rate").to_number<double>() == 40);
  CHECK(runs[1].at("request_rate").as_string() == "inf");
  for (const auto& run : runs) {
    check_result(run.as_object(), 3, 9, false);
    CHECK(run.at("good_requests").as_int64() == 3);
  }
  CHECK(!o3.contains("requests"));  // a sweep keeps its figures per run
  CHECK(is_png(png));
  auto r4 = bench("serve --plot-only " + shell_quote(js3) + " --plot " + shell_quote(png2));
  INFO(r4.out);
  CHECK(r4.status == 0);
  CHECK(is_png(png2));
  auto bad = bench("serve --url " + url + " --request-rate 5,0");
  CHECK(bad.status != 0);
  CHECK(bad.out.find("request rates must be positive") != std::string::npos);

  // --burstiness: gamma gaps of shape k at the same mean rate, so their coefficient of
  // variation is 1 / sqrt(k): ~2 at k = 0.25, ~1 for Poisson (the default), ~0.5 at k = 4.
  // 60 arrivals per run; the thresholds leave room for the sample's spread.
  std::map<std::string, double> cv;
  for (const char* k : {"0.25", "1", "4"}) {
    const std::string jk = dir + "/burst" + k + ".json";
    auto rb = bench("serve --url " + url + " --num-prompts 60 --request-rate 300 --input-len 2 --output-len 1 "
                    "--seed 5 --burstiness " + k + " --json " + shell_quote(jk));
    INFO(rb.out);
    REQUIRE(rb.status == 0);
    const json::object ob = read_json(jk);
    CHECK(num(ob, "burstiness") == std::stod(k));
    CHECK(integer(ob, "requests") == 60);
    cv[k] = num(ob, "arrival_gap_cv");
  }
  CHECK(cv["0.25"] > 1.4);
  CHECK(cv["1"] > 0.7);
  CHECK(cv["1"] < 1.3);
  CHECK(cv["4"] < 0.7);
  auto bad_burst = bench("serve --url " + url + " --burstiness 0");
  CHECK(bad_burst.status != 0);
  CHECK(bad_burst.out.find("burstiness") != std::string::npos);

  INFO(serve.log_text());
  CHECK(serve.stop());  // SIGTERM: exits by itself with status 0
}

// `bench stack`: every rung of the ladder, in order, with every field docs/benchmarks.md lists
// ("The stack: cost per 1M tokens"); the values are checked for consistency with each other
// (cost = core-hours x price, capacity <= the offline rate, quality only where weights are
// quantized), never for speed.
namespace {

void check_percentiles(const json::object& parent, const char* key) {
  const json::object& s = obj(parent, key);
  INFO(key << ": " << json::serialize(s));
  CHECK(num(s, "p50") >= 0);
  CHECK(num(s, "p50") <= num(s, "p95"));
  CHECK(num(s, "p95") <= num(s, "p99"));
}

void check_stack_rung(const json::object& r, const std::string& name, const json::object& top) {
  INFO("rung " << name << ": " << json::serialize(r));
  CHECK(str(r, "name") == name);
  CHECK(str(r, "model") == model());
  CHECK(str(r, "scheduling") == (name == "naive" ? "static" : "continuous"));
  const std::string q = str(r, "quantization");
  const bool quantized = name == "+int8" || name == "+int4" || name == "stacked";
  CHECK((q == "none") == !quantized);
  const bool speculative = name == "+spec" || name == "stacked";
  CHECK(str(r, "speculation").empty() == !speculative);
  CHECK(r.contains("spec_decode") == speculative);
  const double tps = num(r, "output_tokens_per_s"), rps = num(r, "requests_per_s");
  CHECK(tps > 0);
  CHECK(rps > 0);
  const double cores = num(top, "cores"), price = num(top, "core_hour_price_usd"), mean_out = num(top, "mean_output_len");
  CHECK(num(r, "tokens_per_core_s") == Approx(tps / cores));
  CHECK(num(r, "cost_per_1m_output_tokens_offline") == Approx(cores * price * 1e6 / (tps * 3600)));
  check_percentiles(r, "ttft_ms");
  check_percentiles(r, "tpot_ms");
  check_result(obj(r, "offline"), 4, integer(obj(r, "offline"), "output_tokens"), true);
  // The offline rate is the best of the all-at-once passes.
  const json::array& passes = arr(r, "offline_passes_requests_per_s");
  CHECK(int64_t(passes.size()) == integer(top, "offline_rounds"));
  double best_pass = 0;
  for (const auto& x : passes) best_pass = std::max(best_pass, x.to_number<double>());
  CHECK(rps == Approx(best_pass));
  CHECK(integer(obj(r, "offline"), "output_tokens") == integer(obj(top.at("rungs").as_array()[0].as_object(), "offline"), "output_tokens"));
  const json::object& regimes = obj(r, "regimes");
  CHECK(regimes.size() == 2);
  for (const char* g : {"interactive", "batch"}) {
    const json::object& x = obj(regimes, g);
    INFO("regime " << g);
    CHECK(num(x, "goodput_requests_per_s_offline") >= 0);
    const double cap = num(x, "capacity_requests_per_s");
    CHECK(cap >= 0);
    CHECK(cap <= rps * (1 + 1e-9));
    CHECK(num(x, "capacity_output_tokens_per_s") == Approx(cap * mean_out));
    const json::array& probed = arr(x, "probed_rates");
    REQUIRE(!probed.empty());
    CHECK(probed[0].to_number<double>() == Approx(rps));  // the search starts at the offline rate
    CHECK(int64_t(probed.size()) <= 1 + integer(top, "search_steps"));
    if (cap > 0) {
      CHECK(num(x, "attainment") >= num(top, "slo_attainment"));
      CHECK(num(x, "goodput_requests_per_s") > 0);
      const double hours = num(x, "core_hours_per_1m_output_tokens");
      CHECK(hours == Approx(cores * 1e6 / (cap * mean_out * 3600)));
      CHECK(num(x, "cost_per_1m_output_tokens") == Approx(hours * price));
      check_percentiles(x, "ttft_ms");
      check_percentiles(x, "tpot_ms");
    } else {  // no probed rate met the SLOs: no price, and the lowest rate tried instead
      for (const char* k : {"attainment", "goodput_requests_per_s", "core_hours_per_1m_output_tokens",
                            "cost_per_1m_output_tokens", "ttft_ms", "tpot_ms"})
        CHECK(x.at(k).is_null());
      CHECK(num(x, "lowest_rate_probed") > 0);
    }
  }
  REQUIRE(r.contains("quality"));
  if (quantized) {
    const json::object& qual = obj(r, "quality");
    CHECK(num(qual, "kl_mean") >= 0);
    CHECK(num(qual, "kl_p99") >= 0);
    const double top1 = num(qual, "top1_agreement");
    CHECK(top1 >= 0);
    CHECK(top1 <= 1);
    CHECK(integer(qual, "tokens") > 0);
  } else {
    CHECK(r.at("quality").is_null());
  }
  CHECK(str(r, "summary").rfind(name + ": ", 0) == 0);
}

}  // namespace

TEST_CASE("bench stack --json --plot reports every rung of the ladder with cost, capacity and quality", "[cli][bench]") {
  const std::string dir = test::temp_dir("bench-stack");
  const std::string js = dir + "/stack.json", png = dir + "/stack.png";
  const std::string args = "stack --model " + shell_quote(model()) +
                           " --num-prompts 4 --input-len 8:16 --output-len 4:8 --max-num-seqs 4 --search-steps 1 "
                           "--speculative-method ngram --num-speculative-tokens 2 --threads 2 --json " +
                           shell_quote(js) + " --plot " + shell_quote(png);
  const json::object o = bench_json(args, js);
  INFO(json::serialize(o));
  CHECK(str(o, "model") == model());
  CHECK(integer(o, "num_prompts") == 4);
  CHECK(str(o, "input_len") == "8:16");
  CHECK(str(o, "output_len") == "4:8");
  CHECK(integer(o, "max_num_seqs") == 4);
  CHECK(integer(o, "cores") == 2);
  CHECK(integer(o, "search_steps") == 1);
  CHECK(integer(o, "offline_rounds") == 2);
  CHECK(num(o, "slo_attainment") == Approx(0.9));
  CHECK(num(o, "core_hour_price_usd") == Approx(0.08925 / 2));
  const double mean_out = num(o, "mean_output_len");
  CHECK(mean_out >= 4);
  CHECK(mean_out <= 8);
  const json::object& regimes = obj(o, "regimes");
  CHECK(num(obj(regimes, "interactive"), "slo_tpot_ms") == 50);
  CHECK(num(obj(regimes, "interactive"), "slo_ttft_ms") == 1000);
  CHECK(num(obj(regimes, "batch"), "slo_tpot_ms") > num(obj(regimes, "interactive"), "slo_tpot_ms"));
  CHECK(num(obj(regimes, "batch"), "slo_ttft_ms") > num(obj(regimes, "interactive"), "slo_ttft_ms"));
  const json::array& rungs = arr(o, "rungs");
  const std::vector<std::string> names{"naive", "+continuous", "+int8", "+int4", "+spec", "stacked"};
  REQUIRE(rungs.size() == names.size());
  for (size_t i = 0; i < names.size(); ++i) check_stack_rung(rungs[i].as_object(), names[i], o);
  // Each summary's verdict per regime follows from the two costs (the base of every rung
  // after +continuous is +continuous).
  for (size_t i = 1; i < names.size(); ++i) {
    const json::object& r = rungs[i].as_object();
    const json::object& base = rungs[i == 1 ? 0 : 1].as_object();
    const std::string summary = str(r, "summary");
    INFO(summary);
    for (const char* g : {"interactive", "batch"}) {
      const auto cost = [&](const json::object& x) { return obj(obj(x, "regimes"), g).at("cost_per_1m_output_tokens"); };
      const std::string in = std::string(" in the ") + g + " regime";
      if (cost(r).is_number() && cost(base).is_number()) {
        char x[32];
        std::snprintf(x, sizeof x, "x%.2f)", cost(r).to_number<double>() / cost(base).to_number<double>());
        CHECK(summary.find(x + in) != std::string::npos);
      } else if (cost(r).is_number()) {
        CHECK(summary.find("helped (met the SLOs, where its base did at no probed rate)" + in) != std::string::npos);
      } else if (cost(base).is_number()) {
        CHECK(summary.find("hurt (met the SLOs at no probed rate, where its base did)" + in) != std::string::npos);
      } else {
        CHECK(summary.find("no verdict (neither met the SLOs at a probed rate)" + in) != std::string::npos);
      }
    }
  }
  // The stacked rung runs the last quantization rung's weights.
  CHECK(str(rungs[5].as_object(), "quantization") == str(rungs[3].as_object(), "quantization"));
  const json::object& ratio = obj(o, "stacked_over_naive_cost");
  const json::object& below = obj(o, "stacked_over_naive_cost_below");
  for (const char* g : {"interactive", "batch"}) {
    const auto regime = [&](size_t i) -> const json::object& { return obj(obj(rungs[i].as_object(), "regimes"), g); };
    const auto cost = [&](size_t i) { return regime(i).at("cost_per_1m_output_tokens"); };
    REQUIRE(ratio.contains(g));
    REQUIRE(below.contains(g));
    if (cost(0).is_number() && cost(5).is_number())
      CHECK(ratio.at(g).to_number<double>() == Approx(cost(5).to_number<double>() / cost(0).to_number<double>()));
    else
      CHECK(ratio.at(g).is_null());
    // The bound where naive has no capacity: the lowest rate it failed at over stacked's
    // capacity.
    if (cost(0).is_null() && cost(5).is_number())
      CHECK(below.at(g).to_number<double>() ==
            Approx(num(regime(0), "lowest_rate_probed") / num(regime(5), "capacity_requests_per_s")));
    else
      CHECK(below.at(g).is_null());
  }
  CHECK(is_png(png));
  CHECK(test::run_command("ls " + shell_quote(dir)).out == "stack.json\nstack.png\n");
}

TEST_CASE("bench stack refuses what would make a rung something else than it says", "[cli][bench]") {
  // Each rung sets its own weights; an AWQ rung needs its checkpoint.
  auto r = bench("stack --model " + shell_quote(model()) + " --quantization int8 --num-prompts 1");
  CHECK(r.status != 0);
  CHECK(r.out.find("--quantization-rungs") != std::string::npos);
  r = bench("stack --model " + shell_quote(model()) + " --quantization-rungs awq --num-prompts 1");
  CHECK(r.status != 0);
  CHECK(r.out.find("--awq-model") != std::string::npos);
}
