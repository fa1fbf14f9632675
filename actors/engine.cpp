#include "actors/engine.h"

#include <caf/all.hpp>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <optional>

#include "actors/remote/cluster_protocol.h"
#include "actors/remote/pipeline_stages.h"
#include "backends/backend_factory.h"
#include "core/error.h"
#include "model/tokenizer_loader.h"
#include "model/weights.h"
#include "spec/calibrate.h"
#include "spec/spec_setup.h"

namespace troupe {

namespace {

int64_t physical_memory_bytes() {
  return int64_t(::sysconf(_SC_PHYS_PAGES)) * int64_t(::sysconf(_SC_PAGE_SIZE));
}

// The steps SLO-aware scheduling's step-time model is fitted to at startup: chunks of
// every size up to the token budget (at most 512) after a short context, where the cost per
// token is measured; then the same chunk sizes and decode rows deep into the model's
// positions, where attention over the context adds its own cost. Without the deep ones the
// context term started from a guess, and the first long prompts after startup got steps
// that overran the TPOT target until the model had learned it.
std::vector<TimedStep> time_steps_for_slo(Backend& backend, int64_t max_num_batched_tokens) {
  const int64_t largest = std::min<int64_t>(max_num_batched_tokens, 512);
  const int64_t deep = std::min<int64_t>(backend.config().max_position_embeddings - 64, 2048);
  std::vector<spec::StepTiming> timed = spec::time_steps(backend, spec::calibration_sizes(largest), 128, 64, 2);
  if (deep > 4 * 128) {
    const int64_t chunks[] = {16, 64}, decodes[] = {1, 4, 16};
    for (const auto& t : spec::time_steps(backend, chunks, deep, 64, 3)) timed.push_back(t);
    for (const auto& t : spec::time_steps(backend, decodes, deep, 1, 3)) timed.push_back(t);
  }
  std::vector<TimedStep> out;
  for (const auto& t : timed) out.push_back({{double(t.tokens), t.context}, t.ms});
  return out;
}

}  // namespace

struct Engine::Impl {
  caf::actor_system_config caf_cfg;
  std::unique_ptr<caf::actor_system> system;
  std::shared_ptr<const Tokenizer> tokenizer;
  Pipeline pipeline;
  std::optional<PipelineStages> stages;  // --pipeline-workers
  std::optional<ReplicaSet> replicas;    // --replica-workers
  std::string speculation;
  std::string startup_step_time;
  std::atomic<int64_t> next_id{1};
  bool stopped = false;
};

Engine::Engine(EngineConfig cfg, EngineHooks hooks) : cfg_(std::move(cfg)), impl_(std::make_unique<Impl>()) {
  check_scheduler_config(cfg_.scheduler);  // before the model loads
  configure_actor_system(impl_->caf_cfg);
  if (cfg_.cluster.enabled()) configure_remoting(impl_->caf_cfg, cfg_.cluster.tls);
  impl_->system = std::make_unique<caf::actor_system>(impl_->caf_cfg);
  impl_->tokenizer = load_tokenizer(cfg_.model);
  Checkpoint weights = load_checkpoint(cfg_.model);  // float, GGUF or pre-quantized
  const ModelConfig mc = weights.weights.config;
  max_model_len_ = cfg_.max_model_len > 0 ? std::min(cfg_.max_model_len, mc.max_position_embeddings)
                                         : mc.max_position_embeddings;

  BackendOptions bo;
  bo.num_threads = cfg_.threads;
  bo.block_size = cfg_.kv.block_size;
  bo.quantization = cfg_.quantization;
  bo.kv_dtype = cfg_.kv.dtype;
  const int64_t bytes_per_token = kv_bytes_per_token(cfg_.kv.dtype, mc.num_layers, mc.num_kv_heads, mc.head_dim);
  bo.kv_cache_bytes = cfg_.kv.kv_cache_bytes > 0
                          ? cfg_.kv.kv_cache_bytes
                          : std::min(bytes_per_token * max_model_len_ * cfg_.scheduler.max_num_seqs,
                                     physical_memory_bytes() / 4);
  PipelineBuilder builder(*impl_->system);
  std::shared_ptr<Backend> backend;
  KvCacheShape kv;
  const ClusterConfig& cc = cfg_.cluster;
  if (cc.enabled()) {
    if (cfg_.speculative.enabled())
      fail("speculative decoding does not run with --pipeline-workers or --replica-workers yet; drop one of them");
    if (!cc.pipeline_workers.empty() && !cc.replica_workers.empty())
      fail("--pipeline-workers and --replica-workers cannot be combined yet");
    const int64_t block_bytes = bytes_per_token * bo.block_size;
    kv = KvCacheShape{bo.kv_cache_bytes / block_bytes, bo.block_size, block_bytes};
  }
  if (!cc.pipeline_workers.empty()) {
    impl_->stages = start_pipeline_stages(*impl_->system, cfg_, weights.weights, kv.num_blocks);
    builder.shard(impl_->stages->chain, kv);
  } else if (cc.replica_workers.empty()) {
    backend = make_backend(std::move(weights), bo);
    kv = backend->kv_shape();
  }
  if (kv.num_blocks < 1) fail("the KV cache budget of {} bytes holds no block", bo.kv_cache_bytes);
  // A sequence must fit the pool on its own, or preemption could never make room for it.
  max_model_len_ = std::min(max_model_len_, kv.num_blocks * kv.block_size);

  SchedulerConfig sc = cfg_.scheduler;
  sc.max_model_len = max_model_len_;
  if (!cc.pipeline_workers.empty())
    sc.max_steps_in_flight = cc.pipeline_depth > 0 ? cc.pipeline_depth : int64_t(cc.pipeline_workers.size());
  else if (cc.pipeline_depth > 1)
    fail("--pipeline-depth {} needs --pipeline-workers (one in-process shard runs one step at a time)", cc.pipeline_depth);
  AdmissionConfig ac{max_model_len_, cfg_.max_waiting, mc.vocab_size,
                     sc.slo_ttft_ms, sc.slo_tpot_ms, sc.slo_min_ttft_ms, sc.slo_min_tpot_ms};
  if (!cc.replica_workers.empty()) {
    impl_->replicas = start_replicas(*impl_->system, cfg_, weights.weights, kv.num_blocks, sc);
    builder.scheduler_stage(impl_->replicas->router);
  }
  // Calibration runs while the backend is still ours alone. SLO-aware scheduling's
  // step-time model starts from steps timed here (remote stages and replicas learn theirs
  // from the steps they run).
  if (sc.slo_aware() && backend) {
    std::vector<TimedStep> timings = time_steps_for_slo(*backend, sc.max_num_batched_tokens);
    StepTimeModel fitted;  // as the scheduler will fit it, for the log
    fitted.fit(timings);
    const auto& c = fitted.coefficients();
    impl_->startup_step_time = fmt::format("{:.2f} ms + {:.4f} ms per token + {:.4f} ms per 1K context ({} steps timed)",
                                           c[0], c[1], c[2], timings.size());
    builder.step_timings(std::move(timings));
  }
  if (cfg_.speculative.enabled()) {
    spec::SpecSetup setup = spec::setup_speculation(cfg_, *backend, *impl_->tokenizer);
    impl_->speculation = setup.description;
    builder.speculation(std::move(setup.proposer),
                        SpecSchedule{setup.controller, std::move(setup.target_calibration),
                                     std::move(setup.draft_calibration), {}});
  }
  spec::VerifyOptions vo;
  vo.skip_residual = cfg_.speculative.test_skip_residual;
  builder.tokenizer(impl_->tokenizer).scheduler(sc).admission(ac).verify_options(vo);
  if (backend) builder.backend(std::move(backend));
  if (hooks.customize) hooks.customize(builder, *impl_->system);
  impl_->pipeline = builder.build();
  if (impl_->stages) caf::anon_send(impl_->stages->chain, ChainLinks{impl_->pipeline.scheduler});
}

Engine::~Engine() { stop(); }

int64_t Engine::submit(GenerateRequest req, TokenSink sink) {
  const int64_t id = impl_->next_id.fetch_add(1);
  impl_->pipeline.submit(id, std::move(req), std::move(sink));
  return id;
}

void Engine::cancel(int64_t request_id) { impl_->pipeline.cancel(request_id); }

SchedulerStats Engine::stats() {
  caf::scoped_actor self{*impl_->system};
  SchedulerStats out;
  self->request(impl_->pipeline.scheduler, caf::infinite, StatsQuery{})
      .receive([&](SchedulerStats& s) { out = std::move(s); },
               [&](caf::error& e) { fail("engine stats: {}", caf::to_string(e)); });
  return out;
}

void Engine::stop() {
  if (!impl_ || impl_->stopped) return;
  impl_->stopped = true;
  impl_->pipeline.stop();
  if (impl_->stages)
    for (auto& a : impl_->stages->owned) caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  if (impl_->replicas)
    for (auto& a : impl_->replicas->owned) caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  impl_->system->await_all_actors_done();
}

const Tokenizer& Engine::tokenizer() const { return *impl_->tokenizer; }

std::string Engine::speculation() const { return impl_->speculation; }
std::string Engine::startup_step_time() const { return impl_->startup_step_time; }

const Pipeline& Engine::pipeline() const { return impl_->pipeline; }

std::shared_ptr<const ClusterStatus> Engine::cluster() const {
  if (impl_->stages) return impl_->stages->status;
  return impl_->replicas ? impl_->replicas->status : nullptr;
}

caf::actor_system& Engine::system() { return *impl_->system; }

}  // namespace troupe
