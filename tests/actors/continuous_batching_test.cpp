// The actor pipeline on the real models: batch invariance, preemption, prefix caching,
// cancellation, overload and bad input - each checked against the plain single-request path.
#include <boost/json.hpp>

#include <numeric>
#include <random>
#include <thread>

#include "engine_harness.h"
#include "test_util.h"

using namespace troupe;
using troupe::test::Collector;
using troupe::test::greedy_request;
using troupe::test::run_alone;

namespace {

std::vector<std::vector<int32_t>> fixture_prompts(const std::string& key) {
  auto root = boost::json::parse(test::read_file(test::fixture_path("greedy_reference.json")));
  std::vector<std::vector<int32_t>> out;
  for (auto& e : root.at(key).as_array()) {
    std::vector<int32_t> ids;
    for (auto& x : e.at("prompt_ids").as_array()) ids.push_back(int32_t(x.as_int64()));
    out.push_back(ids);
  }
  REQUIRE(!out.empty());
  return out;
}

EngineConfig config_for(const std::string& model) {
  EngineConfig c;
  c.model = model;
  c.scheduler.max_num_seqs = 32;
  c.scheduler.max_num_batched_tokens = 256;
  return c;
}

// A mixed workload around the fixture prompts: random lengths, shared prefixes (the
// fixture prompts themselves are repeated) and staggered arrivals.
std::vector<GenerateRequest> mixed_batch(const std::vector<std::vector<int32_t>>& fixtures, int vocab, int n) {
  std::mt19937 rng(1234);
  std::vector<GenerateRequest> reqs;
  for (auto& f : fixtures) reqs.push_back(greedy_request(f, 40));
  while (int(reqs.size()) < n) {
    std::vector<int32_t> ids = fixtures[rng() % fixtures.size()];  // shares a prefix
    const int extra = int(rng() % 60);
    for (int i = 0; i < extra; ++i) ids.push_back(3 + int(rng() % (vocab - 3)));
    reqs.push_back(greedy_request(ids, 8 + int(rng() % 40)));
  }
  return reqs;
}

}  // namespace

TEST_CASE("greedy outputs are batch invariant on both real models", "[actors][batching]") {
  for (auto [model, key, vocab] : {std::tuple{test::model_path("tinystories-656k"), "tinystories-656k", 2048},
                                   std::tuple{test::model_path("stories260k/stories260K.gguf"), "stories260k", 512}}) {
    INFO(model);
    auto fixtures = fixture_prompts(key);
    auto reqs = mixed_batch(fixtures, vocab, 32);
    auto cfg = config_for(model);
    const auto alone = run_alone(cfg, {reqs.begin(), reqs.begin() + fixtures.size()});

    Engine engine(cfg);
    Collector col;
    std::vector<int64_t> ids;
    for (size_t i = 0; i < reqs.size(); ++i) {
      ids.push_back(engine.submit(reqs[i], col.sink()));
      if (i % 5 == 4) std::this_thread::sleep_for(std::chrono::milliseconds(3));  // staggered arrivals
    }
    col.wait_done(reqs.size());
    for (size_t i = 0; i < fixtures.size(); ++i) {
      INFO("fixture prompt " << i);
      CHECK(col.get(ids[i]).ids == alone[i]);
    }
    for (size_t i = 0; i < reqs.size(); ++i) {
      auto o = col.get(ids[i]);
      CHECK(o.final_event.finish_reason == FinishReason::Length);
      CHECK(int(o.ids.size()) == reqs[i].params.max_tokens);
    }
    auto st = engine.stats();
    CHECK(st.finished == int64_t(reqs.size()));
    CHECK(st.kv.used_blocks == 0);  // every finished sequence released its blocks
  }
}

TEST_CASE("preemption under a tiny KV budget still completes every request identically", "[actors][preemption]") {
  const auto model = test::model_path("tinystories-656k");
  auto fixtures = fixture_prompts("tinystories-656k");
  auto reqs = mixed_batch(fixtures, 2048, 16);
  for (auto& r : reqs) r.params.max_tokens = 60;
  auto cfg = config_for(model);
  const auto alone = run_alone(cfg, reqs);

  cfg.kv.block_size = 4;
  // 2 layers x 4 kv heads x 32 dims x 2 (K,V) x 4 bytes = 2 KiB per token; 48 blocks of 4
  // tokens hold 192 tokens - far less than 16 requests x ~100 tokens.
  cfg.kv.kv_cache_bytes = 48 * 4 * 2048;
  Engine engine(cfg);
  Collector col;
  std::vector<int64_t> ids;
  for (auto& r : reqs) ids.push_back(engine.submit(r, col.sink()));
  col.wait_done(reqs.size());
  for (size_t i = 0; i < reqs.size(); ++i) {
    INFO("request " << i);
    CHECK(col.get(ids[i]).ids == alone[i]);
  }
  auto st = engine.stats();
  CHECK(st.preemptions > 0);
  CHECK(st.kv.used_blocks == 0);
}

TEST_CASE("prefix caching: a request sharing a long prefix prefills only the new part", "[actors][prefix]") {
  const auto model = test::model_path("tinystories-656k");
  Engine engine(config_for(model));
  auto& tok = engine.tokenizer();
  const std::string shared =
      "Once upon a time, there was a little girl named Lily. She loved to play outside in the park "
      "with her friends. One day, she saw a big red ball under a tree and she ran to get it. "
      "Her brother Tom came too, and they played with the ball until the sun went down. Then "
      "they sat on the grass and looked at the clouds, and Lily told Tom a story about a dragon.";
  auto a = tok.encode(shared + " Then she went home.", true);
  auto b = tok.encode(shared + " Her mom was happy.", true);
  Collector col;
  const int64_t ida = engine.submit(greedy_request(a, 20), col.sink());
  col.wait_done(1);
  const int64_t idb = engine.submit(greedy_request(b, 20), col.sink());
  col.wait_done(2);
  const auto ob = col.get(idb);
  const int64_t common = std::mismatch(a.begin(), a.end(), b.begin()).first - a.begin();
  const int64_t cached = ob.final_event.usage.cached_prompt_tokens;
  INFO("common prefix " << common << " tokens, cached " << cached);
  CHECK(cached == common / 16 * 16);  // whole blocks of the shared prefix
  CHECK(cached >= 48);
  CHECK(ob.final_event.usage.computed_prompt_tokens == int64_t(b.size()) - cached);
  (void)ida;
  // Same output as without the cache.
  auto cfg = config_for(model);
  cfg.scheduler.enable_prefix_caching = false;
  CHECK(run_alone(cfg, {greedy_request(b, 20)})[0] == ob.ids);
  CHECK(engine.stats().kv.prefix_hit_tokens == cached);
}

TEST_CASE("cancellation frees the request's blocks within one step", "[actors][cancel]") {
  Engine engine(config_for(test::model_path("tinystories-656k")));
  Collector col;
  auto prompt = engine.tokenizer().encode("Once upon a time", true);
  const int64_t keep = engine.submit(greedy_request(prompt, 200), col.sink());
  const int64_t victim = engine.submit(greedy_request(prompt, 400), col.sink());
  col.wait_tokens(victim, 5);
  engine.cancel(victim);
  col.wait_done(1);
  auto v = col.get(victim);
  REQUIRE(v.done);
  CHECK(v.final_event.finish_reason == FinishReason::Cancelled);
  const size_t tokens_at_cancel = v.ids.size();
  // The survivor is unaffected and, right after the cancel, the only holder of blocks.
  auto st = engine.stats();
  CHECK(st.cancelled == 1);
  CHECK(st.running <= 1);
  col.wait_done(2);
  CHECK(col.get(keep).ids.size() == 200);
  CHECK(engine.stats().kv.used_blocks == 0);
  CHECK(tokens_at_cancel < 400);
}

TEST_CASE("bad requests get a clear error and do not disturb others", "[actors][errors]") {
  auto cfg = config_for(test::model_path("tinystories-656k"));
  cfg.max_model_len = 64;
  Engine engine(cfg);
  Collector col;
  auto good = engine.tokenizer().encode("Once upon a time", true);
  const int64_t ok = engine.submit(greedy_request(good, 20), col.sink());
  GenerateRequest empty;
  empty.prompt = "";
  GenerateRequest too_long = greedy_request(std::vector<int32_t>(100, 5), 4);
  GenerateRequest bad_id = greedy_request({1, 99999}, 4);
  GenerateRequest bad_param = greedy_request(good, 4);
  bad_param.params.top_p = 2.0f;
  std::vector<int64_t> bad;
  for (auto* r : {&empty, &too_long, &bad_id, &bad_param}) bad.push_back(engine.submit(*r, col.sink()));
  col.wait_done(5);
  for (int64_t id : bad) {
    auto o = col.get(id);
    CHECK(o.final_event.finish_reason == FinishReason::Error);
    CHECK(o.final_event.error_kind == ErrorKind::InvalidRequest);
    CHECK(!o.final_event.error.empty());
  }
  CHECK(col.get(bad[1]).final_event.error.find("64") != std::string::npos);
  CHECK(col.get(ok).ids.size() == 20);
}

TEST_CASE("max_waiting rejects with an overloaded error instead of queueing forever", "[actors][overload]") {
  auto cfg = config_for(test::model_path("tinystories-656k"));
  cfg.scheduler.max_num_seqs = 1;
  cfg.max_waiting = 2;
  Engine engine(cfg);
  Collector col;
  auto p = engine.tokenizer().encode("Once upon a time", true);
  std::vector<int64_t> ids;
  for (int i = 0; i < 12; ++i) ids.push_back(engine.submit(greedy_request(p, 30), col.sink()));
  col.wait_done(12);
  int overloaded = 0, completed = 0;
  for (auto id : ids) {
    auto o = col.get(id);
    if (o.final_event.error_kind == ErrorKind::Overloaded) ++overloaded;
    if (o.final_event.finish_reason == FinishReason::Length) ++completed;
  }
  CHECK(overloaded > 0);
  CHECK(completed >= 2);  // at least max_waiting got through
  CHECK(overloaded + completed == 12);
}

TEST_CASE("static batching produces the same greedy outputs", "[actors][static]") {
  const auto model = test::model_path("stories260k/stories260K.gguf");
  auto fixtures = fixture_prompts("stories260k");
  auto reqs = mixed_batch(fixtures, 512, 12);
  auto cfg = config_for(model);
  const auto alone = run_alone(cfg, reqs);
  cfg.scheduler.scheduling = Scheduling::Static;
  cfg.scheduler.max_num_seqs = 5;
  cfg.scheduler.batch_wait_ms = 20;
  Engine engine(cfg);
  Collector col;
  std::vector<int64_t> ids;
  for (auto& r : reqs) ids.push_back(engine.submit(r, col.sink()));
  col.wait_done(reqs.size());
  for (size_t i = 0; i < reqs.size(); ++i) CHECK(col.get(ids[i]).ids == alone[i]);
  CHECK(engine.stats().kv.used_blocks == 0);
}
