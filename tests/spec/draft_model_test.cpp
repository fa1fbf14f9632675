// The draft-model proposer on a real model: its greedy drafts are the model's own greedy
// continuation, batched sequences do not disturb each other, and its KV cache rolls back
// to the confirmed prefix - across block boundaries - so stale draft KV is never used.
#include <catch2/catch.hpp>

#include <algorithm>
#include <numeric>

#include "cpu/cpu_backend.h"
#include "model/weights.h"
#include "spec/draft_model.h"
#include "spec/verify.h"
#include "spec_test_util.h"

using namespace troupe;
using namespace troupe::spec;

namespace {

constexpr int64_t kBlock = 4;

std::shared_ptr<cpu::CpuBackend> backend(const std::string& path) {
  cpu::CpuBackendOptions bo;
  bo.num_threads = 1;
  bo.block_size = kBlock;
  bo.num_blocks = 96;
  return std::make_shared<cpu::CpuBackend>(load_model(path), bo);
}

// Logits of the next token after `tokens`, computed from scratch (no cache reuse).
std::vector<float> fresh_logits(cpu::CpuBackend& b, const std::vector<int32_t>& tokens) {
  StepBatch batch;
  StepSeq s;
  s.tokens = tokens;
  s.block_table.resize((tokens.size() + kBlock - 1) / kBlock);
  std::iota(s.block_table.begin(), s.block_table.end(), 0);
  s.logit_rows = {int32_t(tokens.size()) - 1};
  batch.seqs.push_back(s);
  StepOutput out;
  b.run_step(batch, out);
  return out.logits;
}

std::vector<int32_t> greedy_chain(cpu::CpuBackend& b, std::vector<int32_t> tokens, int k) {
  std::vector<int32_t> out;
  for (int i = 0; i < k; ++i) {
    auto l = fresh_logits(b, tokens);
    out.push_back(int32_t(std::max_element(l.begin(), l.end()) - l.begin()));
    tokens.push_back(out.back());
  }
  return out;
}

SamplingParams greedy() {
  SamplingParams p;
  p.temperature = 0;
  return p;
}

std::vector<int32_t> cat(std::vector<int32_t> a, const std::vector<int32_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

}  // namespace

TEST_CASE("draft model: greedy drafts, batching, and KV rollback across blocks", "[spec][draft]") {
  const auto path = test::model_path("tinystories-656k");
  auto ref = backend(path);
  DraftModelProposer prop(backend(path));
  const auto fx = test::fixture_prompts("tinystories-656k");
  const auto a0 = fx[0].prompt_ids, b0 = fx[1].prompt_ids;
  Sampler sa(greedy(), a0), sb(greedy(), b0);
  std::vector<Proposal> out;

  // Two sequences at once, different k: each gets its own greedy continuation.
  {
    ProposeStats st;
    std::vector<ProposeRequest> reqs = {{1, a0, 6, &sa}, {2, b0, 3, &sb}};
    prop.propose(reqs, out, st);
    CHECK(out[0].tokens == greedy_chain(*ref, a0, 6));
    CHECK(out[1].tokens == greedy_chain(*ref, b0, 3));
    CHECK(st.passes.size() == 6);  // k passes for the longest: the first one prefills both
    CHECK(st.passes[0].tokens == int64_t(a0.size() + b0.size()));
    CHECK(st.passes[5].tokens == 1);
    // Everything fed is cached: the prompt and all drafts but the last.
    CHECK(prop.cached_tokens(1) == int64_t(a0.size()) + 5);
    CHECK(int64_t(prop.blocks().block_table(1).size()) == (int64_t(a0.size()) + 5 + kBlock - 1) / kBlock);
    prop.blocks().check_invariants();
  }
  const auto d = out[0].tokens;

  // The target accepted two drafts and corrected the third: the cache must drop the
  // rejected positions (they span a block boundary) and draft from the corrected text.
  const int32_t correction = d[2] == 100 ? 101 : 100;
  const auto a1 = cat(a0, {d[0], d[1], correction});
  REQUIRE(int64_t(a0.size()) / kBlock != (int64_t(a0.size()) + 5) / kBlock);
  {
    ProposeStats st;
    std::vector<ProposeRequest> reqs = {{1, a1, 5, &sa}};
    prop.propose(reqs, out, st);
    CHECK(out[0].tokens == greedy_chain(*ref, a1, 5));
    CHECK(st.passes[0].tokens == 1);  // only the correction: the accepted drafts were cached
    CHECK(prop.cached_tokens(1) == int64_t(a1.size()) + 4);
    prop.blocks().check_invariants();
  }

  // A sequence that shrank and diverged (e.g. recomputed with other text) rolls back further.
  const auto a2 = cat(std::vector<int32_t>(a0.begin(), a0.begin() + 5), {a0[5] == 7 ? 9 : 7, 8});
  {
    ProposeStats st;
    std::vector<ProposeRequest> reqs = {{1, a2, 4, &sa}};
    prop.propose(reqs, out, st);
    CHECK(out[0].tokens == greedy_chain(*ref, a2, 4));
    CHECK(st.passes[0].tokens == 2);
    CHECK(int64_t(prop.blocks().block_table(1).size()) == (int64_t(a2.size()) + 3 + kBlock - 1) / kBlock);
    prop.blocks().check_invariants();
  }

  // Release frees every block; a stranger sequence id is fine to release.
  prop.release(1);
  prop.release(2);
  prop.release(12345);
  CHECK(prop.blocks().num_used_blocks() == 0);
  CHECK(prop.cached_tokens(1) == 0);
}

TEST_CASE("draft model: sampled drafts come with their q and replay with the seed", "[spec][draft]") {
  const auto path = test::model_path("tinystories-656k");
  DraftModelProposer prop(backend(path));
  const auto prompt = test::fixture_prompts("tinystories-656k")[2].prompt_ids;
  SamplingParams p;
  p.temperature = 0.8f;
  p.top_k = 20;
  p.seed = 7;
  Sampler s(p, prompt);
  std::vector<Proposal> first, again;
  ProposeStats st;
  std::vector<ProposeRequest> reqs = {{3, prompt, 4, &s}};
  prop.propose(reqs, first, st);
  const int64_t vocab = 2048;
  REQUIRE(first[0].tokens.size() == 4);
  REQUIRE(first[0].probs.size() == size_t(4 * vocab));
  for (size_t i = 0; i < 4; ++i) {
    const float* q = first[0].probs.data() + i * vocab;
    double sum = 0;
    int nonzero = 0;
    for (int64_t v = 0; v < vocab; ++v) sum += q[v], nonzero += q[v] > 0;
    CHECK(sum == Approx(1.0).epsilon(1e-4));
    CHECK(nonzero <= 20);                      // top-k applied to q as to p
    CHECK(q[first[0].tokens[i]] > 0.0f);       // each draft was drawn from its q
  }
  DraftModelProposer fresh(backend(path));
  fresh.propose(reqs, again, st);
  CHECK(again[0].tokens == first[0].tokens);
}

TEST_CASE("draft model: k is limited by the draft model's positions", "[spec][draft]") {
  const auto path = test::model_path("tinystories-656k");
  cpu::CpuBackendOptions bo;
  bo.num_threads = 1;
  bo.block_size = kBlock;
  bo.num_blocks = 160;  // 640 positions, more than the model's 512
  DraftModelProposer prop(std::make_shared<cpu::CpuBackend>(load_model(path), bo));
  std::vector<int32_t> tokens(510, 5);
  Sampler s(greedy(), tokens);
  std::vector<Proposal> out;
  ProposeStats st;
  std::vector<ProposeRequest> reqs = {{1, tokens, 8, &s}};
  prop.propose(reqs, out, st);
  CHECK(out[0].tokens.size() == 3);  // inputs at positions 509..511 only
}
