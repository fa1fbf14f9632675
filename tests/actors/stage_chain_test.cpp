// Pipeline parallelism in one process: the model's layers split over shard stages behind a
// stage chain give exactly the single-shard engine's greedy tokens (with every message,
// hidden states included, forced through the wire serializer), and a stage that goes down
// fails the steps in flight with its name, then serves again once it is back.
#include <catch2/catch.hpp>

#include "actors/pipeline.h"
#include "actors/shard.h"
#include "actors/stage_chain.h"
#include "backends/backend_factory.h"
#include "engine_harness.h"
#include "model/quantized_checkpoint.h"
#include "model/tokenizer_loader.h"
#include "test_util.h"

using namespace troupe;
using troupe::test::Collector;
using troupe::test::greedy_request;

namespace {

std::vector<GenerateRequest> mixed_requests(int n, int vocab) {
  std::vector<GenerateRequest> reqs;
  for (int i = 0; i < n; ++i) {
    std::vector<int32_t> prompt = {1};
    for (int j = 0; j < 3 + (i * 7) % 40; ++j) prompt.push_back(3 + (i * 37 + j * 11) % (vocab - 3));
    reqs.push_back(greedy_request(prompt, 8 + (i * 5) % 24));
  }
  return reqs;
}

// Each request alone on a one-thread engine over the whole model: what the stages must give.
std::vector<std::vector<int32_t>> single_shard_tokens(const std::string& model, const std::vector<GenerateRequest>& reqs) {
  EngineConfig ec;
  ec.model = model;
  ec.threads = 1;
  return test::run_alone(ec, reqs);
}

// Stage backends over `ranges` of the model's layers, all with the same block pool.
std::vector<shard_actor> spawn_stages(caf::actor_system& sys, const std::string& model,
                                      const std::vector<LayerRange>& ranges, KvCacheShape* kv) {
  std::vector<shard_actor> stages;
  for (const LayerRange& r : ranges) {
    BackendOptions bo;
    bo.num_threads = 1;
    bo.num_blocks = 256;
    bo.layers = r;
    auto backend = make_backend(load_checkpoint(model), bo);
    REQUIRE(backend->layers() == r);
    *kv = backend->kv_shape();
    stages.push_back(spawn_shard(sys, std::move(backend)));
  }
  return stages;
}

}  // namespace

TEST_CASE("layers split over stages give the single-shard tokens", "[actors][pipeline][stages]") {
  struct Case {
    const char* model;
    std::vector<LayerRange> ranges;
  };
  for (const Case& c : {Case{"tinystories-656k", {{0, 1}, {1, 2}}},
                        Case{"stories260k/stories260K.gguf", {{0, 2}, {2, 3}, {3, 5}}}}) {
    const std::string model = test::model_path(c.model);
    INFO(c.model);
    std::shared_ptr<const Tokenizer> tok = load_tokenizer(model);
    const auto reqs = mixed_requests(12, int(tok->vocab_size()));
    const auto reference = single_shard_tokens(model, reqs);

    caf::actor_system_config cfg;
    caf::actor_system sys{configure_actor_system(cfg)};
    KvCacheShape kv;
    auto stages = spawn_stages(sys, model, c.ranges, &kv);
    stage_chain_actor chain = spawn_stage_chain(sys, stages);
    SchedulerConfig sc;
    sc.max_num_seqs = 8;
    sc.max_model_len = 256;
    Pipeline p = PipelineBuilder(sys).tokenizer(tok).shard(chain, kv).scheduler(sc).serialize_messages().build();
    Collector col;
    for (size_t i = 0; i < reqs.size(); ++i) p.submit(int64_t(i), reqs[i], col.sink());
    col.wait_done(reqs.size());
    for (size_t i = 0; i < reqs.size(); ++i) {
      INFO("request " << i);
      CHECK(col.get(int64_t(i)).ids == reference[i]);
    }
    p.stop();
    for (auto& s : stages) caf::anon_send_exit(s, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(chain, caf::exit_reason::user_shutdown);
    sys.await_all_actors_done();
  }
}

TEST_CASE("a stage going down fails its steps by name; back up, it serves exactly again",
          "[actors][pipeline][stages]") {
  const std::string model = test::model_path("tinystories-656k");
  std::shared_ptr<const Tokenizer> tok = load_tokenizer(model);
  const auto reqs = mixed_requests(4, int(tok->vocab_size()));
  const auto reference = single_shard_tokens(model, reqs);

  caf::actor_system_config cfg;
  caf::actor_system sys{configure_actor_system(cfg)};
  KvCacheShape kv;
  auto stages = spawn_stages(sys, model, {{0, 1}, {1, 2}}, &kv);
  stage_chain_actor chain = spawn_stage_chain(sys, std::vector<std::string>{"first", "second"});
  caf::anon_send(chain, StageUp{0, stages[0], false});
  SchedulerConfig sc;
  sc.max_model_len = 256;
  Pipeline p = PipelineBuilder(sys).tokenizer(tok).shard(chain, kv).scheduler(sc).build();
  caf::anon_send(chain, ChainLinks{p.scheduler});

  // Stage 1 never came up: the request fails, naming it.
  Collector col;
  p.submit(1, reqs[0], col.sink());
  col.wait_done(1);
  const TokenEvent failed = col.get(1).final_event;
  CHECK(failed.finish_reason == FinishReason::Error);
  CHECK_THAT(failed.error, Catch::Contains("pipeline stage 1 (second) is unavailable"));

  // Up: requests run, and their prefixes enter the prefix cache.
  caf::anon_send(chain, StageUp{1, stages[1], false});
  for (size_t i = 0; i < reqs.size(); ++i) p.submit(int64_t(10 + i), reqs[i], col.sink());
  col.wait_done(1 + reqs.size());
  for (size_t i = 0; i < reqs.size(); ++i) CHECK(col.get(int64_t(10 + i)).ids == reference[i]);

  // Down, then rebuilt empty (a fresh backend, as a restarted worker would have): the same
  // prompts must not reuse cached prefixes whose KV the new stage never computed.
  caf::anon_send(chain, StageDown{1, "worker lost"});
  p.submit(20, reqs[0], col.sink());
  col.wait_done(2 + reqs.size());
  CHECK_THAT(col.get(20).final_event.error, Catch::Contains("worker lost"));
  KvCacheShape kv2;
  auto rebuilt = spawn_stages(sys, model, {{1, 2}}, &kv2);
  caf::anon_send(chain, StageUp{1, rebuilt[0], true});
  for (size_t i = 0; i < reqs.size(); ++i) p.submit(int64_t(30 + i), reqs[i], col.sink());
  col.wait_done(2 + 2 * reqs.size());
  for (size_t i = 0; i < reqs.size(); ++i) {
    INFO("request " << i << " after the rebuild");
    CHECK(col.get(int64_t(30 + i)).ids == reference[i]);
  }

  p.stop();
  for (auto& s : stages) caf::anon_send_exit(s, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(rebuilt[0], caf::exit_reason::user_shutdown);
  caf::anon_send_exit(chain, caf::exit_reason::user_shutdown);
  sys.await_all_actors_done();
}
