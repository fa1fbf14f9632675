#include "actors/engine.h"

#include <caf/all.hpp>
#include <unistd.h>

#include <algorithm>

#include "actors/admission.h"
#include "actors/drafter.h"
#include "actors/executor.h"
#include "actors/shard.h"
#include "actors/spec_setup.h"
#include "core/error.h"
#include "cpu/cpu_backend.h"
#include "model/tokenizer_loader.h"
#include "model/weights.h"

namespace troupe {

namespace {

caf::actor_system_config make_caf_config() {
  caf::actor_system_config cfg;
  // Hand-offs from non-pool threads (callers of submit(), the shard's thread) take ~100 us
  // under the default work-stealing policy and ~10 us under `sharing` (measured on CAF 0.17.6).
  cfg.set("scheduler.policy", caf::atom("sharing"));
  cfg.set("scheduler.max-threads", 2);
  cfg.set("logger.verbosity", caf::atom("quiet"));
  return cfg;
}

int64_t physical_memory_bytes() {
  return int64_t(::sysconf(_SC_PHYS_PAGES)) * int64_t(::sysconf(_SC_PAGE_SIZE));
}

}  // namespace

struct Engine::Impl {
  caf::actor_system_config caf_cfg = make_caf_config();
  caf::actor_system system{caf_cfg};
  std::shared_ptr<const Tokenizer> tokenizer;
  caf::actor shard, executor, drafter, scheduler, admission;
  std::string speculation;
  std::atomic<int64_t> next_id{1};
  std::shared_ptr<std::atomic<int64_t>> waiting = std::make_shared<std::atomic<int64_t>>(0);
  bool stopped = false;
};

Engine::Engine(EngineConfig cfg) : cfg_(std::move(cfg)), impl_(std::make_unique<Impl>()) {
  impl_->tokenizer = load_tokenizer(cfg_.model);
  Checkpoint weights = load_checkpoint(cfg_.model);  // float, GGUF or pre-quantized
  const ModelConfig mc = weights.weights.config;
  max_model_len_ = cfg_.max_model_len > 0 ? std::min(cfg_.max_model_len, mc.max_position_embeddings)
                                         : mc.max_position_embeddings;

  cpu::CpuBackendOptions bo;
  bo.num_threads = cfg_.threads;
  bo.block_size = cfg_.block_size;
  bo.quantization = cfg_.quantization;
  const int64_t bytes_per_token = 2 * mc.num_layers * mc.kv_dim() * int64_t(sizeof(float));
  bo.kv_cache_bytes = cfg_.kv_cache_bytes > 0
                          ? cfg_.kv_cache_bytes
                          : std::min(bytes_per_token * max_model_len_ * cfg_.scheduler.max_num_seqs,
                                     physical_memory_bytes() / 4);
  auto backend = std::make_shared<cpu::CpuBackend>(std::move(weights), bo);
  const KvCacheShape kv = backend->kv_shape();
  // A sequence must fit the pool on its own, or preemption could never make room for it.
  max_model_len_ = std::min(max_model_len_, kv.num_blocks * kv.block_size);

  SchedulerConfig sc = cfg_.scheduler;
  sc.max_model_len = max_model_len_;
  AdmissionConfig ac{max_model_len_, cfg_.max_waiting, mc.vocab_size};
  // Speculation is set up while the backend is still ours alone (calibration runs on it).
  SpecSetup spec;
  if (cfg_.speculative.enabled()) {
    spec = setup_speculation(cfg_, *backend, *impl_->tokenizer);
    impl_->speculation = spec.description;
  }
  auto& sys = impl_->system;
  impl_->shard = spawn_shard(sys, backend);
  spec::VerifyOptions vo;
  vo.skip_residual = cfg_.speculative.test_skip_residual;
  impl_->executor = spawn_executor(sys, impl_->shard, vo);
  if (spec.proposer) impl_->drafter = spawn_drafter(sys, impl_->executor, spec.proposer);
  impl_->scheduler = spawn_scheduler(sys, impl_->executor, sc, kv, impl_->waiting, impl_->drafter,
                                     std::move(spec.schedule));
  impl_->admission = spawn_admission(sys, impl_->scheduler, impl_->tokenizer, ac, impl_->waiting);
}

Engine::~Engine() { stop(); }

int64_t Engine::submit(GenerateRequest req, TokenSink sink) {
  const int64_t id = impl_->next_id.fetch_add(1);
  caf::anon_send(impl_->admission, AdmitRequest{id, std::move(req), std::move(sink), Clock::now()});
  return id;
}

void Engine::cancel(int64_t request_id) {
  caf::anon_send(impl_->admission, CancelRequest{request_id});
}

SchedulerStats Engine::stats() {
  caf::scoped_actor self{impl_->system};
  SchedulerStats out;
  self->request(impl_->scheduler, caf::infinite, StatsQuery{})
      .receive([&](SchedulerStats& s) { out = std::move(s); },
               [&](caf::error& e) { fail("engine stats: {}", caf::to_string(e)); });
  return out;
}

void Engine::stop() {
  if (!impl_ || impl_->stopped) return;
  impl_->stopped = true;
  for (auto* a : {&impl_->admission, &impl_->scheduler, &impl_->drafter, &impl_->executor, &impl_->shard})
    if (*a) caf::anon_send_exit(*a, caf::exit_reason::user_shutdown);
  impl_->system.await_all_actors_done();
}

const Tokenizer& Engine::tokenizer() const { return *impl_->tokenizer; }

std::string Engine::speculation() const { return impl_->speculation; }

}  // namespace troupe
