// The pipeline builder without troupe::Engine: a user wires the stages from parts, with a
// shard of their own (here one that counts steps and delegates to troupe's shard, standing
// in for a remote or custom device), and gets exactly the engine's tokens.
#include <catch2/catch.hpp>

#include <atomic>

#include "actors/pipeline.h"
#include "actors/shard.h"
#include "backends/backend_factory.h"
#include "engine_harness.h"
#include "model/tokenizer_loader.h"
#include "model/quantized_checkpoint.h"
#include "test_util.h"

using namespace troupe;
using troupe::test::Collector;
using troupe::test::greedy_request;

TEST_CASE("a hand-built pipeline with a user's shard gives the engine's tokens", "[actors][pipeline]") {
  const std::string model = test::model_path("stories260k/stories260K.gguf");
  std::vector<GenerateRequest> reqs;
  for (int i = 0; i < 4; ++i) {
    std::vector<int32_t> prompt = {1};
    for (int j = 0; j < 4 + 5 * i; ++j) prompt.push_back(3 + (i * 37 + j * 11) % 500);
    reqs.push_back(greedy_request(prompt, 20));
  }
  EngineConfig ec;
  ec.model = model;
  const auto reference = test::run_alone(ec, reqs);

  caf::actor_system_config cfg;
  caf::actor_system sys{configure_actor_system(cfg)};
  auto tok = load_tokenizer(model);
  BackendOptions bo;
  bo.kv_cache_bytes = int64_t(16) << 20;
  std::shared_ptr<Backend> backend = make_backend(load_checkpoint(model), bo);
  const KvCacheShape kv = backend->kv_shape();

  shard_actor inner = spawn_shard(sys, backend);
  auto steps = std::make_shared<std::atomic<int>>(0);
  shard_actor counting = sys.spawn([inner, steps](shard_actor::pointer self) -> shard_actor::behavior_type {
    return {[self, inner, steps](ShardStep& s) -> caf::result<ShardOutput> {
      steps->fetch_add(1);
      return self->delegate(inner, std::move(s));
    }};
  });
  SchedulerConfig sc;
  sc.max_num_seqs = 2;
  sc.max_model_len = 256;
  Pipeline p = PipelineBuilder(sys).tokenizer(std::move(tok)).shard(counting, kv).scheduler(sc).build();

  Collector col;
  for (size_t i = 0; i < reqs.size(); ++i) p.submit(int64_t(100 + i), reqs[i], col.sink());
  col.wait_done(reqs.size());
  for (size_t i = 0; i < reqs.size(); ++i) {
    INFO("request " << i);
    CHECK(col.get(int64_t(100 + i)).ids == reference[i]);
  }
  CHECK(steps->load() >= 20);  // every step went through the user's shard

  p.stop();
  caf::anon_send_exit(inner, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(counting, caf::exit_reason::user_shutdown);
  sys.await_all_actors_done();
}
