// `troupe bench peak`: how close a batched decode step comes to this machine's float FMA
// peak. Batched decode (and prefill) steps are compute-bound, so their ceiling is the FMA
// rate, not the read bandwidth that bounds batch 1 (`bench decode`).
//
//   peak       measure_fma_peak(): independent FMA chains in registers on every pool thread
//              (the same thread count as the model), FLOP/s = 2 per FMA lane.
//   step       one decode step of --batch sequences (1 new token each, after a --prompt-len
//              prefill), median and best of --steps timed steps.
//   GFLOP/s    2 * (linear-layer parameters, LM head included) * batch / step time: the
//              matrix work only (attention over the short context is left out of the
//              numerator but not out of the time).
//   int8 peak  quant::measure_int8_dot_peak(): the same for int8 dot products (vpdpbusd, 4
//              multiply-adds per lane), where the CPU has AVX-512 VNNI. When the model's
//              linears run quantized, the step's multiply-adds are also given as a fraction
//              of it: the ceiling of int8 x int8/int4 arithmetic, ~4x the float one.
//   paired     --steps more steps, each after a short probe of the peak(s): the median of
//              the per-step fractions, which other load on the machine moves far less.
//   versus     --versus-quantization Q: the same model with quantization Q, its steps taken
//              in turns with the first configuration's; the median ratio of adjacent steps.
// Also prints the pool barriers (parallel regions) per step at batch 1 and at --batch.
#include <boost/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <vector>

#include "app/commands.h"
#include "app/loaded_model.h"
#include "config/flags.h"
#include "cpu/kernels.h"
#include "model/tensor_names.h"
#include "quant/options.h"
#include "quant/qmatmul.h"

namespace troupe::app {
namespace {

struct PeakOpts {
  std::string model, json_path;
  int threads = 0;
  int batch = 32;
  int prompt_len = 32;
  int steps = 24;
  bool fuse_linears = true;
  KvDtype kv_dtype = KvDtype::F32;  // the flag's default (f16) replaces this
  quant::Options quantization;
  std::string versus;  // --versus-quantization: a second configuration, timed in turns
};

// Multiply-adds per token of the linear layers and the LM head.
double linear_params(const ModelConfig& c) {
  const double H = double(c.hidden_size), I = double(c.intermediate_size);
  const double per_layer = H * double(c.q_dim() + 2 * c.kv_dim()) + double(c.q_dim()) * H + 3 * H * I;
  return per_layer * double(c.num_layers) + double(c.vocab_size) * H;
}

struct BatchedSteps {
  double median_s = 0, best_s = 0;
  uint64_t barriers_per_step = 0;
};

// `batch` sequences prefilled with prompt_len tokens each (KV from block 0 of the cache:
// a new one overwrites an earlier one's), then stepped one decode token per sequence at a
// time, with logits for every sequence as a real decode step asks.
class BatchedDecode {
 public:
  BatchedDecode(cpu::CpuBackend& be, int batch, int prompt_len, int max_steps) : be_(be) {
    const ModelConfig& c = be.config();
    const int64_t bs = be.kv_shape().block_size;
    const int64_t blocks_per_seq = (prompt_len + max_steps + 1 + bs - 1) / bs;
    for (int i = 0; i < batch; ++i) {
      StepSeq s;
      s.seq_id = i;
      for (int j = 0; j < prompt_len; ++j) s.tokens.push_back(int32_t((7 * i + 13 * j + 1) % c.vocab_size));
      for (int64_t k = 0; k < blocks_per_seq; ++k) s.block_table.push_back(int32_t(i * blocks_per_seq + k));
      s.logit_rows = {int32_t(prompt_len - 1)};
      b_.seqs.push_back(std::move(s));
    }
    be_.run_step(b_, out_);
  }
  // One decode step; returns its wall time in seconds.
  double step() {
    const ModelConfig& c = be_.config();
    for (size_t i = 0; i < b_.seqs.size(); ++i) {
      StepSeq& s = b_.seqs[i];
      s.start_pos += int32_t(s.tokens.size());
      s.tokens = {int32_t((3 * int64_t(i) + steps_ + 2) % c.vocab_size)};
      s.logit_rows = {0};
    }
    ++steps_;
    const uint64_t b0 = be_.pool().barriers();
    const auto t0 = std::chrono::steady_clock::now();
    be_.run_step(b_, out_);
    const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    barriers_ = be_.pool().barriers() - b0;
    return t;
  }
  uint64_t barriers() const { return barriers_; }  // of the last step

 private:
  cpu::CpuBackend& be_;
  StepBatch b_;
  StepOutput out_;
  int64_t steps_ = 0;
  uint64_t barriers_ = 0;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Prefills, then times `steps` decode steps.
BatchedSteps time_batched_steps(cpu::CpuBackend& be, int batch, int prompt_len, int steps) {
  BatchedDecode d(be, batch, prompt_len, steps);
  std::vector<double> times;
  BatchedSteps r;
  for (int st = 0; st < steps; ++st) {
    times.push_back(d.step());
    r.barriers_per_step = d.barriers();
  }
  r.median_s = median(times);
  r.best_s = *std::min_element(times.begin(), times.end());
  return r;
}

// Each step's rate against the peak measured just before it. The fraction above compares
// the median step with the best probe pass of the run, and on a shared host other tenants
// slow the steps for minutes at a time (the same core's other hardware thread, memory):
// that fraction then says as much about them as about the kernels. A probe taken right
// before each step sees the same neighbours, so the per-step ratio holds where the step
// times drift. Reported beside the plain fraction, not instead of it.
struct PairedFractions {
  int steps = 0;
  double of_fma_peak = 0;   // median over steps of (step FLOP/s) / (probe FLOP/s)
  double of_int8_peak = 0;  // the same against the int8 dot probe (0: not measured)
};

PairedFractions time_steps_against_probes(cpu::CpuBackend& be, int batch, int prompt_len, int steps,
                                          double flops, bool int8) {
  BatchedDecode d(be, batch, prompt_len, steps);
  std::vector<double> fma, dot;
  for (int st = 0; st < steps; ++st) {
    // measure_fma_peak(pool, 0) and the int8 probe: the best of at least 3 passes each,
    // ~15-30 ms apiece, in registers only (the step's weights and KV stay where they were).
    const double peak = cpu::measure_fma_peak(be.pool(), 0.0);
    const double dot_peak = int8 ? quant::measure_int8_dot_peak(be.pool(), 0.0) : 0.0;
    const double rate = flops / d.step();
    fma.push_back(rate / peak);
    if (int8 && dot_peak > 0) dot.push_back(rate / 2 / dot_peak);
  }
  return {steps, median(fma), dot.empty() ? 0.0 : median(dot)};
}

// The same steps of two backends (the model in two configurations), taken in turns A B,
// B A, A B, ... so that the machine's drift (other tenants, on a shared host) hits both
// alike: step times swing by tens of percent from minute to minute here, while the ratio
// of two adjacent steps holds within a few percent. Both pools keep their threads; the
// idle one's workers spin for at most ~100 us after its step (cpu/thread_pool.cpp), in
// both orders alike.
struct VersusSteps {
  double a_median_s = 0, b_median_s = 0, ratio_median = 0;  // ratio: B / A per pair
  int pairs = 0;
};
VersusSteps time_versus_steps(cpu::CpuBackend& a, cpu::CpuBackend& b, int batch, int prompt_len,
                              int steps) {
  BatchedDecode da(a, batch, prompt_len, steps + 1), db(b, batch, prompt_len, steps + 1);
  da.step();  // warm-up: scratch sized for the step, pages touched
  db.step();
  std::vector<double> ta, tb, ratio;
  for (int i = 0; i < steps; ++i) {
    double t_a, t_b;
    if (i % 2 == 0) {
      t_a = da.step();
      t_b = db.step();
    } else {
      t_b = db.step();
      t_a = da.step();
    }
    ta.push_back(t_a);
    tb.push_back(t_b);
    ratio.push_back(t_b / t_a);
  }
  return {median(ta), median(tb), median(ratio), steps};
}

void run_peak_bench(const PeakOpts& o) {
  cpu::CpuBackendOptions bo;
  bo.num_threads = o.threads;
  bo.quantization = o.quantization;
  bo.fuse_linears = o.fuse_linears;
  bo.kv_dtype = o.kv_dtype;
  // KV for every sequence of the batched run (the batch-1 run reuses the first blocks),
  // whose longest, the --versus run, takes a warm-up step and `steps` more after the prompt.
  const int64_t blocks_per_seq = (o.prompt_len + o.steps + 2 + bo.block_size - 1) / bo.block_size;
  bo.num_blocks = int64_t(o.batch) * blocks_per_seq;
  LoadedModel m = load_cpu_model(o.model, bo);
  auto& be = *m.backend;

  std::unique_ptr<LoadedModel> versus;
  quant::Options vq = o.quantization;
  if (!o.versus.empty()) {
    vq.method = quant::parse_method(o.versus);
    cpu::CpuBackendOptions vo = bo;
    vo.quantization = vq;
    versus = std::make_unique<LoadedModel>(load_cpu_model(o.model, vo));
  }
  const BatchedSteps one = time_batched_steps(be, 1, o.prompt_len, std::min(4, o.steps + 1));
  time_batched_steps(be, o.batch, o.prompt_len, 2);  // warm-up: scratch sized, pages touched
  // Peak probes on both sides of the timed steps, each at least a second of passes; the
  // best pass counts (a busy moment lowers a pass, nothing raises one).
  constexpr double kProbeSeconds = 1.0;
  const double peak0 = cpu::measure_fma_peak(be.pool(), kProbeSeconds);
  const double dot0 = quant::measure_int8_dot_peak(be.pool(), kProbeSeconds);
  const BatchedSteps st = time_batched_steps(be, o.batch, o.prompt_len, o.steps);
  const VersusSteps vs = versus ? time_versus_steps(be, *versus->backend, o.batch, o.prompt_len, o.steps)
                                : VersusSteps{};
  const double peak = std::max(peak0, cpu::measure_fma_peak(be.pool(), kProbeSeconds));
  const double dot_peak = std::max(dot0, quant::measure_int8_dot_peak(be.pool(), kProbeSeconds));
  // Quantized linears multiply int8 activations by int8/int4 weights: their ceiling is the
  // dot-product peak (where this CPU has the probe), not the float one.
  const bool quantized_linears = be.quantized(be.layers().begin, kLinQ) != nullptr;
  const double flops = 2.0 * linear_params(be.config()) * o.batch;
  const double gflops = flops / st.median_s / 1e9, best_gflops = flops / st.best_s / 1e9;
  const PairedFractions paired = time_steps_against_probes(
      be, o.batch, o.prompt_len, o.steps, flops, quantized_linears && dot_peak > 0);

  std::printf("model            %s\n", o.model.c_str());
  std::printf("backend          %s\n", be.name().c_str());
  std::printf("KV cache         %s\n", std::string(kv_dtype_name(o.kv_dtype)).c_str());
  std::printf("FMA peak         %.1f GFLOP/s (F32, %d threads, independent FMA chains in registers)\n",
              peak / 1e9, be.pool().size());
  std::printf("linear params    %.1f M (matmul FLOPs/token = 2 x params)\n", linear_params(be.config()) / 1e6);
  std::printf("decode step      batch %d: %.2f ms median, %.2f ms best of %d (after a %d-token prefill)\n",
              o.batch, st.median_s * 1e3, st.best_s * 1e3, o.steps, o.prompt_len);
  std::printf("step GFLOP/s     %.1f median, %.1f best\n", gflops, best_gflops);
  std::printf("fraction of peak %.3f median, %.3f best\n", gflops * 1e9 / peak, best_gflops * 1e9 / peak);
  if (dot_peak > 0) {
    std::printf("int8 dot peak    %.1f G multiply-adds/s (vpdpbusd, %d threads, chains in registers)\n",
                dot_peak / 1e9, be.pool().size());
    if (quantized_linears)
      std::printf("of int8 peak     %.3f median, %.3f best (the step's multiply-adds over the dot-product peak)\n",
                  gflops * 1e9 / 2 / dot_peak, best_gflops * 1e9 / 2 / dot_peak);
  }
  std::printf("paired           %.3f of the FMA peak", paired.of_fma_peak);
  if (paired.of_int8_peak > 0) std::printf(", %.3f of the int8 peak", paired.of_int8_peak);
  std::printf(" (medians over %d more steps, each against a probe run just before it)\n",
              paired.steps);
  if (versus)
    std::printf("versus           %s / %s, %d steps each in turns: %.2f / %.2f ms (medians), paired ratio %.3f (median)\n",
                quant::describe(vq).c_str(), quant::describe(o.quantization).c_str(), vs.pairs,
                vs.b_median_s * 1e3, vs.a_median_s * 1e3, vs.ratio_median);
  std::printf("pool barriers    %llu per step at batch 1, %llu at batch %d\n",
              static_cast<unsigned long long>(one.barriers_per_step),
              static_cast<unsigned long long>(st.barriers_per_step), o.batch);
  if (!o.json_path.empty()) {
    boost::json::object obj{{"model", o.model},
                            {"threads", be.pool().size()},
                            {"backend", be.name()},
                            {"quantization", quant::describe(o.quantization)},
                            {"kv_cache_dtype", std::string(kv_dtype_name(o.kv_dtype))},
                            {"fma_peak_flops", peak},
                            {"linear_params", linear_params(be.config())},
                            {"batch", o.batch},
                            {"step_median_s", st.median_s},
                            {"step_best_s", st.best_s},
                            {"step_gflops_median", gflops},
                            {"step_gflops_best", best_gflops},
                            {"fraction_of_peak", gflops * 1e9 / peak},
                            {"quantized_linears", quantized_linears},
                            {"barriers_per_step_batch1", one.barriers_per_step},
                            {"barriers_per_step_batch", st.barriers_per_step}};
    // Null where this CPU has no dot-product probe; the fraction only for quantized linears.
    obj["int8_dot_peak_macs"] = dot_peak > 0 ? boost::json::value(dot_peak) : boost::json::value(nullptr);
    obj["fraction_of_int8_peak"] = dot_peak > 0 && quantized_linears
                                       ? boost::json::value(gflops * 1e9 / 2 / dot_peak)
                                       : boost::json::value(nullptr);
    obj["paired"] = boost::json::object{
        {"steps", paired.steps},
        {"fraction_of_peak_median", paired.of_fma_peak},
        {"fraction_of_int8_peak_median", paired.of_int8_peak > 0
                                             ? boost::json::value(paired.of_int8_peak)
                                             : boost::json::value(nullptr)}};
    if (versus)
      obj["versus"] = boost::json::object{{"quantization", quant::describe(vq)},
                                          {"pairs", vs.pairs},
                                          {"step_median_s", vs.b_median_s},
                                          {"self_step_median_s", vs.a_median_s},
                                          {"ratio_median", vs.ratio_median}};
    else
      obj["versus"] = nullptr;
    std::ofstream(o.json_path) << boost::json::serialize(obj) << "\n";
  }
}

}  // namespace

void register_bench_peak(CLI::App& bench) {
  auto o = std::make_shared<PeakOpts>();
  auto* cmd = bench.add_subcommand(
      "peak", "FMA peak GFLOP/s of this machine vs a batched decode step's matmul GFLOP/s");
  auto f = std::make_shared<config::FlagSet>(cmd);
  f->require(f->option("--model", o->model, "Model path"));
  f->add_config_flags();
  add_threads_flag(*f, o->threads);
  f->option("--batch", o->batch, "Sequences per decode step")->capture_default_str()->check(CLI::Range(1, 4096));
  f->option("--prompt-len", o->prompt_len, "Prompt tokens per sequence before the timed steps")->capture_default_str()->check(CLI::Range(1, 1 << 16));
  f->option("--steps", o->steps, "Timed decode steps (median and best are reported)")->capture_default_str()->check(CLI::Range(1, 10000));
  f->option("--json", o->json_path, "Also write the results to this JSON file");
  add_quantization_flags(*f, o->quantization);
  f->option("--versus-quantization", o->versus,
            "Also load the model with this quantization (none|int8|int4|awq; group size and LM head as above) and "
            "time its batched steps in turns with the first's (A B, B A, ...): the median ratio of adjacent steps "
            "holds where a shared machine moves each by tens of percent")
      ->check(CLI::IsMember({"none", "int8", "int4", "awq"}));
  add_fuse_linears_flag(*f, o->fuse_linears);
  add_kv_dtype_flag(*f, "--kv-cache-dtype", o->kv_dtype);
  cmd->callback([o, f] {
    if (f->finish()) return;
    run_peak_bench(*o);
  });
}

}  // namespace troupe::app
