// prompt_logprobs from the engine against a full-vocabulary log-softmax (float64) of the
// logits the plain CPU forward pass gives for the whole prompt at once: through chunked
// prefill, with prefix caching on and the prompt repeated, and under preemption.
#include <algorithm>
#include <cmath>
#include <map>
#include <mutex>

#include "cpu/cpu_backend.h"
#include "engine_harness.h"
#include "model/weights.h"
#include "reference_logprobs.h"
#include "test_util.h"

using namespace troupe;
using troupe::test::Collector;
using troupe::test::greedy_request;

namespace {

constexpr double kTolerance = 1e-4;

using test::reference_logprobs;

// Every event's prompt_logprobs, by request (they must come once).
class PromptCollector {
 public:
  TokenSink sink() {
    return [this, inner = col.sink()](const TokenEvent& ev) {
      {
        std::lock_guard lk(mu_);
        if (!ev.prompt_logprobs.empty()) got_[ev.request_id].push_back(ev.prompt_logprobs);
      }
      inner(ev);
    };
  }
  std::vector<std::vector<TokenLogprobs>> get(int64_t id) {
    std::lock_guard lk(mu_);
    return got_[id];
  }
  Collector col;

 private:
  std::mutex mu_;
  std::map<int64_t, std::vector<std::vector<TokenLogprobs>>> got_;
};

// One entry per prompt token; the first has none; each logprob, rank and top-n list equals
// the reference's at its position.
void check_against_reference(const std::vector<TokenLogprobs>& got, const std::vector<int32_t>& prompt,
                             const std::vector<std::vector<double>>& ref, size_t top_n) {
  REQUIRE(got.size() == prompt.size());
  CHECK(got[0].token == prompt[0]);
  CHECK(got[0].rank == 0);
  for (size_t i = 1; i < prompt.size(); ++i) {
    INFO("prompt position " << i);
    const auto& row = ref[i - 1];
    const TokenLogprobs& e = got[i];
    CHECK(e.token == prompt[i]);
    const double want = row[size_t(prompt[i])];
    CHECK(std::abs(e.logprob - want) < kTolerance);
    CHECK(e.logprob <= 0.0f);
    // The rank: 1 + tokens more likely (unless another token is within the tolerance).
    int32_t above = 0;
    bool near_tie = false;
    for (size_t v = 0; v < row.size(); ++v) {
      above += row[v] > want;
      near_tie = near_tie || (int32_t(v) != prompt[i] && std::abs(row[v] - want) < kTolerance);
    }
    if (!near_tie) CHECK(e.rank == above + 1);
    CHECK(e.rank >= 1);
    std::vector<int32_t> order(row.size());
    for (size_t v = 0; v < row.size(); ++v) order[v] = int32_t(v);
    std::partial_sort(order.begin(), order.begin() + ptrdiff_t(top_n), order.end(),
                      [&](int32_t a, int32_t b) { return row[size_t(a)] > row[size_t(b)]; });
    REQUIRE(e.top.size() == top_n);
    for (size_t k = 0; k < top_n; ++k) {
      CHECK(std::abs(e.top[k].logprob - row[size_t(order[k])]) < kTolerance);
      if (k + 1 < top_n && std::abs(row[size_t(order[k])] - row[size_t(order[k + 1])]) > kTolerance &&
          (k == 0 || std::abs(row[size_t(order[k - 1])] - row[size_t(order[k])]) > kTolerance))
        CHECK(e.top[k].id == order[k]);
    }
  }
}

GenerateRequest with_prompt_logprobs(std::vector<int32_t> prompt, int32_t n, int max_tokens = 4) {
  GenerateRequest r = greedy_request(std::move(prompt), max_tokens);
  r.params.prompt_logprobs = n;
  return r;
}

const char* kStory =
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park "
    "with her friends. One day, she saw a big red ball under a tree and she ran to get it.";

}  // namespace

TEST_CASE("prompt logprobs match the reference forward pass through chunked prefill and the prefix cache",
          "[actors][prompt_logprobs]") {
  const auto model = test::model_path("tinystories-656k");
  EngineConfig cfg;
  cfg.model = model;
  cfg.scheduler.max_num_seqs = 8;
  cfg.scheduler.max_num_batched_tokens = 8;  // the prompt prefills in several chunks
  cfg.scheduler.enable_prefix_caching = true;
  Engine engine(cfg);
  const std::vector<int32_t> prompt = engine.tokenizer().encode(kStory, true);
  REQUIRE(prompt.size() > 20);
  const auto ref = reference_logprobs(model, prompt, KvDtype::F32);

  PromptCollector pc;
  const int64_t first = engine.submit(with_prompt_logprobs(prompt, 5), pc.sink());
  pc.col.wait_done(1);
  auto got = pc.get(first);
  REQUIRE(got.size() == 1);  // sent once, with the first token
  check_against_reference(got[0], prompt, ref, 5);
  CHECK(pc.col.get(first).ids.size() == 4);

  SECTION("the same prompt again: the prefix cache holds it, the values are computed all the same") {
    // Without prompt_logprobs the repeated prompt is served from the cache...
    const int64_t plain = engine.submit(greedy_request(prompt, 2), pc.sink());
    pc.col.wait_done(2);
    CHECK(pc.col.get(plain).final_event.usage.cached_prompt_tokens > 0);
    CHECK(pc.get(plain).empty());
    // ...with them, no cached block is skipped.
    const int64_t again = engine.submit(with_prompt_logprobs(prompt, 3), pc.sink());
    pc.col.wait_done(3);
    CHECK(pc.col.get(again).final_event.usage.cached_prompt_tokens == 0);
    got = pc.get(again);
    REQUIRE(got.size() == 1);
    check_against_reference(got[0], prompt, ref, 3);
  }
  SECTION("prompt_logprobs 0: no alternatives; a one-token prompt has only the null entry") {
    const int64_t zero = engine.submit(with_prompt_logprobs(prompt, 0), pc.sink());
    const int64_t single = engine.submit(with_prompt_logprobs({prompt[0]}, 2), pc.sink());
    pc.col.wait_done(3);
    got = pc.get(zero);
    REQUIRE(got.size() == 1);
    check_against_reference(got[0], prompt, ref, 0);
    got = pc.get(single);
    REQUIRE(got.size() == 1);
    REQUIRE(got[0].size() == 1);
    CHECK(got[0][0].rank == 0);
  }
  SECTION("a request that ends at its first token still gets them (the final event)") {
    GenerateRequest r = with_prompt_logprobs(prompt, 2, 1);
    const int64_t id = engine.submit(r, pc.sink());
    pc.col.wait_done(2);
    got = pc.get(id);
    REQUIRE(got.size() == 1);
    check_against_reference(got[0], prompt, ref, 2);
  }
}

TEST_CASE("prompt logprobs come once and exact when sequences are preempted and recomputed",
          "[actors][prompt_logprobs][preemption]") {
  const auto model = test::model_path("tinystories-656k");
  EngineConfig cfg;
  cfg.model = model;
  cfg.scheduler.max_num_seqs = 16;
  cfg.scheduler.max_num_batched_tokens = 32;
  cfg.kv.block_size = 4;
  // 2 KiB per token (see continuous_batching_test): 40 blocks of 4 tokens hold 160 tokens,
  // far less than 8 requests of ~50 prompt + 40 generated tokens.
  cfg.kv.kv_cache_bytes = 40 * 4 * 2048;
  Engine engine(cfg);
  auto& tok = engine.tokenizer();
  const char* tails[] = {" Then she went home.", " Her mom was happy.", " The ball was red.", " Tom laughed.",
                         " It was a sunny day.", " A bird sang.", " They ate cake.", " The end came soon."};
  PromptCollector pc;
  std::vector<std::vector<int32_t>> prompts;
  std::vector<int64_t> ids;
  for (const char* t : tails) {
    prompts.push_back(tok.encode(std::string(kStory).substr(0, 120) + t, true));
    ids.push_back(engine.submit(with_prompt_logprobs(prompts.back(), 2, 40), pc.sink()));
  }
  pc.col.wait_done(ids.size());
  CHECK(engine.stats().preemptions > 0);
  for (size_t i = 0; i < ids.size(); ++i) {
    INFO("request " << i);
    const auto got = pc.get(ids[i]);
    REQUIRE(got.size() == 1);
    check_against_reference(got[0], prompts[i], reference_logprobs(model, prompts[i], KvDtype::F32), 2);
    CHECK(pc.col.get(ids[i]).ids.size() == 40);
  }
  CHECK(engine.stats().kv.used_blocks == 0);
}

TEST_CASE("prompt logprobs are the same with every message serialized, as across processes",
          "[actors][prompt_logprobs][protocol]") {
  const auto model = test::model_path("tinystories-656k");
  EngineConfig cfg;
  cfg.model = model;
  cfg.scheduler.max_num_batched_tokens = 8;  // chunked: entries come back over several steps
  EngineHooks hooks;
  hooks.customize = [](PipelineBuilder& b, caf::actor_system&) { b.serialize_messages(); };
  Engine engine(cfg, hooks);
  const std::vector<int32_t> prompt = engine.tokenizer().encode(kStory, true);
  PromptCollector pc;
  const int64_t id = engine.submit(with_prompt_logprobs(prompt, 4), pc.sink());
  pc.col.wait_done(1);
  const auto got = pc.get(id);
  REQUIRE(got.size() == 1);
  check_against_reference(got[0], prompt, reference_logprobs(model, prompt, KvDtype::F32), 4);
}

TEST_CASE("prompt logprobs under static batching", "[actors][prompt_logprobs]") {
  const auto model = test::model_path("tinystories-656k");
  EngineConfig cfg;
  cfg.model = model;
  cfg.scheduler.scheduling = Scheduling::Static;
  cfg.scheduler.max_num_seqs = 2;
  Engine engine(cfg);
  const std::vector<int32_t> prompt = engine.tokenizer().encode(kStory, true);
  const std::vector<int32_t> shorter(prompt.begin(), prompt.begin() + 10);
  PromptCollector pc;
  const int64_t a = engine.submit(with_prompt_logprobs(prompt, 2), pc.sink());
  const int64_t b = engine.submit(with_prompt_logprobs(shorter, 2), pc.sink());
  pc.col.wait_done(2);
  REQUIRE(pc.get(a).size() == 1);
  REQUIRE(pc.get(b).size() == 1);
  check_against_reference(pc.get(a)[0], prompt, reference_logprobs(model, prompt, KvDtype::F32), 2);
  check_against_reference(pc.get(b)[0], shorter, reference_logprobs(model, shorter, KvDtype::F32), 2);
}
