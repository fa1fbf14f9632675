// `troupe bench ...`: performance measurements reported as numbers and ratios.
//   decode: batch-1 prefill and decode tokens/s next to the memory-bandwidth roofline
//           (weight bytes streamed per token / measured read bandwidth), and the pool
//           barriers (parallel regions) per decoded token; with --verify-rows K also the
//           cost of a 1 + k-row verification step against a decode step (bench_verify.h);
//           with --compare-host-tuning N, decode under each host tuning table in turns
//           (bench_tuning.h).
//   peak:   FMA peak vs a batched decode step (bench_peak.cpp).
#include <boost/json.hpp>

#include <cstdio>
#include <fstream>
#include <memory>
#include <vector>

#include "app/bench_stats.h"
#include "app/bench_tuning.h"
#include "app/bench_verify.h"
#include "app/commands.h"
#include "app/loaded_model.h"
#include "app/sequence_loop.h"
#include "config/bench_config.h"
#include "config/flags.h"
#include "cpu/host_tuning.h"
#include "cpu/kernels.h"

namespace troupe::app {

namespace {

void run_decode_bench(const DecodeBenchOpts& o) {
  cpu::CpuBackendOptions bo;
  bo.num_threads = o.threads;
  bo.quantization = o.quantization;
  bo.fuse_linears = o.fuse_linears;
  bo.kv_dtype = o.kv_dtype;
  LoadedModel m = load_cpu_model(o.model, bo);
  auto& be = *m.backend;
  if (o.verify_rows > 0) check_verify_fits(be, o.prompt_len, o.verify_rows);  // before the long runs

  // A deterministic prompt of exactly prompt_len real tokens.
  auto text_ids = m.tokenizer->encode("Once upon a time, there was a little girl who loved to read books.");
  std::vector<int32_t> prompt;
  if (m.tokenizer->bos_id() >= 0) prompt.push_back(m.tokenizer->bos_id());
  while (int(prompt.size()) < o.prompt_len) prompt.push_back(text_ids[prompt.size() % text_ids.size()]);

  SamplingParams p;
  p.temperature = 0;
  p.ignore_eos = true;
  p.max_tokens = o.gen_tokens;
  run_sequence(be, *m.tokenizer, prompt, p);  // warm-up: page in weights, size scratch
  // The bandwidth probe runs after every timed run, and the best of each is compared: on a
  // shared machine bandwidth drifts from second to second, and a probe taken at another
  // moment than the decode makes the ratio swing either way.
  // Each run is also paired with the probe right after it: the median of those per-run
  // fractions does not compare one moment's decode with another moment's bandwidth.
  cpu::ReadBandwidthProbe probe(be.pool());
  // The probe's 1 GiB buffer is larger than any cache, so it gives DRAM's rate. Weights
  // that fit in the last-level cache stay there from token to token (a 480 MiB L3 holds a
  // 110M model whole, session 25) and stream faster than DRAM: against DRAM's roofline
  // such a decode reads above 1. A second probe reads a buffer of the weights' own size,
  // the same way, after the same run: the ceiling at the cache level they live in.
  const double bytes = double(be.weight_bytes_per_token());
  constexpr int64_t kProbeBytes = int64_t(1) << 30;
  std::unique_ptr<cpu::ReadBandwidthProbe> sized_probe;
  if (int64_t(bytes) < kProbeBytes) sized_probe = std::make_unique<cpu::ReadBandwidthProbe>(be.pool(), int64_t(bytes));
  double best_prefill = 0, best_decode = 0, bw = 0, sized_bw = 0;
  int64_t decode_steps = 0;
  std::vector<double> run_decode, run_bw, run_sized_bw;
  for (int i = 0; i < o.repeats; ++i) {
    SequenceResult r = run_sequence(be, *m.tokenizer, prompt, p);
    decode_steps = r.decode_steps;
    best_prefill = std::max(best_prefill, double(prompt.size()) / r.prefill_s);
    run_decode.push_back(double(r.decode_steps) / r.decode_s);
    run_bw.push_back(probe.measure());
    run_sized_bw.push_back(sized_probe ? sized_probe->measure() : run_bw.back());
    best_decode = std::max(best_decode, run_decode.back());
    bw = std::max(bw, run_bw.back());
    sized_bw = std::max(sized_bw, run_sized_bw.back());
  }
  // Barriers per decoded token: the difference between a long and a short run cancels the
  // prefill's.
  auto barriers_of = [&](int tokens) {
    SamplingParams q = p;
    q.max_tokens = tokens;
    const uint64_t b0 = be.pool().barriers();
    const SequenceResult r = run_sequence(be, *m.tokenizer, prompt, q);
    return std::pair(be.pool().barriers() - b0, r.decode_steps);
  };
  const auto [b_short, steps_short] = barriers_of(2);
  const auto [b_long, steps_long] = barriers_of(o.gen_tokens);
  const double barriers_per_token =
      steps_long > steps_short ? double(b_long - b_short) / double(steps_long - steps_short) : 0.0;
  const double roofline = bw / bytes, sized_roofline = sized_bw / bytes;
  // Besides the weights, a decode step reads the K and V of every cached position (all
  // layers): at a long context as much as the weights or more, and not in the roofline
  // above. Averaged over the timed run, whose steps see contexts prompt + 1 ... prompt + n.
  const KvCacheShape kv = be.kv_shape();
  const double mean_context = double(prompt.size()) + double(decode_steps + 1) / 2.0;
  const double kv_bytes = double(kv.bytes_per_block) / double(kv.block_size) * mean_context;
  const double roofline_kv = bw / (bytes + kv_bytes);
  // The median over runs of a run's decode rate over the roofline of its own probe.
  const auto paired_median = [&](const std::vector<double>& run_probe_bw) {
    std::vector<double> fractions;
    for (size_t i = 0; i < run_decode.size(); ++i) fractions.push_back(run_decode[i] * bytes / run_probe_bw[i]);
    return LatencyStats::of(fractions).p50;
  };
  const double paired_fraction = paired_median(run_bw), sized_paired_fraction = paired_median(run_sized_bw);
  std::printf("model            %s\n", o.model.c_str());
  std::printf("backend          %s\n", be.name().c_str());
  std::printf("weights/token    %.1f MB\n", bytes / 1e6);
  std::printf("read bandwidth   %.2f GB/s (measured, %d threads, best of %d probes between the runs)\n",
              bw / 1e9, be.pool().size(), o.repeats);
  std::printf("prefill          %.1f tokens/s (%d-token prompt)\n", best_prefill, o.prompt_len);
  std::printf("decode           %.2f tokens/s (batch 1, best of %d x %d tokens)\n", best_decode, o.repeats, o.gen_tokens);
  std::printf("roofline         %.2f tokens/s\n", roofline);
  std::printf("decode/roofline  %.3f\n", best_decode / roofline);
  std::printf("paired           %.3f of the roofline (median of %d runs, each against the probe right after it)\n",
              paired_fraction, o.repeats);
  std::printf("same-size read   %.2f GB/s (a buffer of the weights' size, read the same way after each run%s)\n",
              sized_bw / 1e9, sized_probe ? "" : "; the weights are over 1 GiB, so this is the probe above");
  std::printf("roofline there   %.2f tokens/s; decode %.3f of it, paired %.3f (where the weights stay in cache)\n",
              sized_roofline, best_decode / sized_roofline, sized_paired_fraction);
  std::printf("KV read/token    %.1f MB (%s cache, mean context %.0f of the decode run)\n",
              kv_bytes / 1e6, std::string(kv_dtype_name(kv.dtype)).c_str(), mean_context);
  std::printf("roofline w+KV    %.2f tokens/s (weights and KV cache read per token)\n",
              roofline_kv);
  std::printf("decode/(w+KV)    %.3f\n", best_decode / roofline_kv);
  std::printf("pool barriers    %.1f per decoded token\n", barriers_per_token);
  VerifyCost vc;
  if (o.verify_rows > 0) {
    vc = time_verify_steps(be, o.prompt_len, o.verify_rows, o.verify_rounds);
    std::printf("verify steps     batch 1 after a %lld-token context, %d paired rounds: median (best)\n",
                static_cast<long long>(vc.context), vc.rounds);
    std::printf("  1 row          %.3f ms (%.3f) (decode step)\n", vc.single_row_ms_median, vc.single_row_ms_best);
    for (const VerifyRowCost& v : vc.rows)
      std::printf("  1+%d rows       %.3f ms (%.3f)  T(1+%d)/T(1) = %.3f (%.3f)\n", v.k, v.step_ms_median,
                  v.step_ms_best, v.k, v.ratio_median, v.ratio_best);
  }
  std::vector<TuningCompared> tunings;
  if (o.tuning_rounds > 0) {
    tunings = compare_host_tunings(be, *m.tokenizer, prompt, p, o.tuning_rounds);
    std::printf("host tuning      %s in use; decode under each table, %d paired rounds (median tok/s, of %s's):\n",
                cpu::host_tuning().name, o.tuning_rounds, tunings.front().name.c_str());
    for (const TuningCompared& t : tunings)
      std::printf("  %-14s %.2f tokens/s  %.3f\n", t.name.c_str(), t.tokens_per_s_median, t.ratio_median);
  }
  if (!o.json_path.empty()) {
    boost::json::object obj{{"model", o.model},
                            {"threads", be.pool().size()},
                            {"backend", be.name()},
                            {"quantization", quant::describe(o.quantization)},
                            {"kv_cache_dtype", std::string(kv_dtype_name(o.kv_dtype))},
                            {"weight_bytes_per_token", bytes},
                            {"read_bandwidth_bytes_per_s", bw},
                            {"prefill_tokens_per_s", best_prefill},
                            {"decode_tokens_per_s", best_decode},
                            {"roofline_tokens_per_s", roofline},
                            {"fraction_of_roofline", best_decode / roofline},
                            {"fraction_of_roofline_paired_median", paired_fraction},
                            {"run_decode_tokens_per_s", boost::json::value_from(run_decode)},
                            {"run_read_bandwidth_bytes_per_s", boost::json::value_from(run_bw)},
                            {"same_size_read_bandwidth_bytes_per_s", sized_bw},
                            {"same_size_roofline_tokens_per_s", sized_roofline},
                            {"fraction_of_same_size_roofline", best_decode / sized_roofline},
                            {"fraction_of_same_size_roofline_paired_median", sized_paired_fraction},
                            {"run_same_size_read_bandwidth_bytes_per_s", boost::json::value_from(run_sized_bw)},
                            {"kv_bytes_per_token", kv_bytes},
                            {"mean_context", mean_context},
                            {"roofline_with_kv_tokens_per_s", roofline_kv},
                            {"fraction_of_roofline_with_kv", best_decode / roofline_kv},
                            {"barriers_per_token", barriers_per_token},
                            {"host_tuning", cpu::host_tuning().name}};
    if (!tunings.empty()) {
      boost::json::array arr;
      for (const TuningCompared& t : tunings)
        arr.push_back(boost::json::object{{"name", t.name},
                                          {"tokens_per_s_median", t.tokens_per_s_median},
                                          {"ratio_median", t.ratio_median}});
      obj["host_tuning_compared"] = std::move(arr);
    }
    if (o.verify_rows > 0) {
      boost::json::array rows;
      for (const VerifyRowCost& v : vc.rows)
        rows.push_back(boost::json::object{{"k", v.k},
                                           {"step_ms_median", v.step_ms_median},
                                           {"ratio_median", v.ratio_median},
                                           {"step_ms_best", v.step_ms_best},
                                           {"ratio_best", v.ratio_best}});
      obj["verify"] = boost::json::object{{"context", vc.context},
                                          {"rounds", vc.rounds},
                                          {"single_row_step_ms_median", vc.single_row_ms_median},
                                          {"single_row_step_ms_best", vc.single_row_ms_best},
                                          {"rows", std::move(rows)}};
    }
    std::ofstream(o.json_path) << boost::json::serialize(obj) << "\n";
  }
}

}  // namespace

void register_bench(CLI::App& app) {
  auto* bench = app.add_subcommand("bench", "Benchmarks");
  bench->require_subcommand(1);
  auto o = std::make_shared<DecodeBenchOpts>();
  auto* dec = bench->add_subcommand("decode", "Batch-1 prefill/decode tokens/s vs the bandwidth roofline");
  auto f = std::make_shared<config::FlagSet>(dec);
  f->require(f->option("--model", o->model, "Model path"));
  f->add_config_flags();
  add_threads_flag(*f, o->threads);
  f->option("--prompt-len", o->prompt_len, "Prompt tokens")->capture_default_str()->check(CLI::Range(1, 1 << 20));
  f->option("--tokens", o->gen_tokens, "Generated tokens per run")->capture_default_str()->check(CLI::Range(2, 1 << 20));
  f->option("--repeats", o->repeats, "Timed runs (best is reported)")->capture_default_str()->check(CLI::Range(1, 100));
  f->option("--verify-rows", o->verify_rows,
            "Also time batch-1 steps of 1 + k rows (k = 1..K drafts, as speculative verification runs them) "
            "after a --prompt-len context against the 1-row decode step (0 = off)")
      ->capture_default_str()->check(CLI::Range(0, 64));
  f->option("--verify-rounds", o->verify_rounds, "Paired rounds of the --verify-rows steps (medians are reported)")
      ->capture_default_str()->check(CLI::Range(1, 100000));
  f->option("--compare-host-tuning", o->tuning_rounds,
            "Also decode under each host tuning table (how streaming kernels fetch ahead and pace; "
            "TROUPE_HOST_TUNING picks one), in turns, for this many paired rounds (0 = off)")
      ->capture_default_str()->check(CLI::Range(0, 1000));
  f->option("--json", o->json_path, "Also write the results to this JSON file");
  add_quantization_flags(*f, o->quantization);
  add_kv_dtype_flag(*f, "--kv-cache-dtype", o->kv_dtype);
  add_fuse_linears_flag(*f, o->fuse_linears);
  dec->callback([o, f] {
    if (f->finish()) return;
    run_decode_bench(*o);
  });
  register_bench_throughput(*bench);
  register_bench_serve(*bench);
  register_bench_stack(*bench);
  register_bench_peak(*bench);
}

}  // namespace troupe::app
