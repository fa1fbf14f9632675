// Who prepares a step's K/V rows (the Qwen3 per-head norms, RoPE, the store into the
// cache): where every sequence of the step is one short attention tile (decode,
// verification, prompt chunks of up to 8 rows), the thread that attends a head does its
// rows itself; a longer prompt chunk has the calling thread do all rows first. Either way
// every value must be the same: a prompt prefilled as one long chunk and as short chunks,
// on 2 threads and on 1, gives the same logits bit for bit, and so do the decode and
// 1 + 4-row steps after it, for each KV-cache dtype.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "cpu/cpu_backend.h"
#include "model/synth.h"
#include "model/weights.h"
#include "test_util.h"

using namespace troupe;
namespace fs = std::filesystem;

namespace {

constexpr int32_t kPrompt = 200;  // more than one attention tile (<= 64 rows) of any model
constexpr int32_t kBlocks = 16;   // per sequence: 256 positions of 16

StepSeq seq(int64_t id, int32_t start, int32_t n, int64_t vocab) {
  StepSeq s;
  s.seq_id = id;
  s.start_pos = start;
  for (int32_t i = 0; i < n; ++i) s.tokens.push_back(int32_t((id * 131 + (start + i) * 17 + 3) % vocab));
  for (int32_t b = 0; b < kBlocks; ++b) s.block_table.push_back(int32_t(id) * kBlocks + b);
  for (int32_t i = 0; i < n; ++i) s.logit_rows.push_back(i);
  return s;
}

// Logits by (sequence, position).
using Logits = std::map<std::pair<int64_t, int32_t>, std::vector<float>>;

// Sequence 0's prompt in chunks of `chunk` tokens (sequence 1's 6 tokens ride with the
// first), then two decode steps and a 1 + 4-row step (sequence 0) beside a decode row.
Logits run(const std::string& path, KvDtype kv, int threads, int32_t chunk) {
  cpu::CpuBackendOptions o;
  o.num_threads = threads;
  o.num_blocks = 2 * kBlocks;
  o.kv_dtype = kv;
  cpu::CpuBackend be(load_model(path), o);
  const int64_t vocab = be.config().vocab_size;
  std::vector<StepBatch> steps;
  for (int32_t p = 0; p < kPrompt; p += chunk) {
    StepBatch b{{seq(0, p, std::min(chunk, kPrompt - p), vocab)}};
    if (p == 0) b.seqs.push_back(seq(1, 0, 6, vocab));
    steps.push_back(b);
  }
  steps.push_back({{seq(0, kPrompt, 1, vocab), seq(1, 6, 1, vocab)}});
  steps.push_back({{seq(0, kPrompt + 1, 1, vocab), seq(1, 7, 1, vocab)}});
  steps.push_back({{seq(0, kPrompt + 2, 5, vocab), seq(1, 8, 1, vocab)}});
  Logits out;
  for (const StepBatch& b : steps) {
    StepOutput so;
    be.run_step(b, so);
    size_t row = 0;
    for (const StepSeq& s : b.seqs)
      for (int32_t r : s.logit_rows) {
        const float* l = so.logits.data() + row++ * size_t(vocab);
        out[{s.seq_id, s.start_pos + r}] = std::vector<float>(l, l + vocab);
      }
  }
  return out;
}

std::string qwen3_tiny() {
  static const std::string dir = test::temp_dir("attention_rows");
  SynthOptions s;
  s.shape = "qwen3-tiny";  // GQA and the per-head q/k norms
  s.format = "hf";
  s.dtype = "f32";
  s.out = (fs::path(dir) / "qwen3-tiny").string();
  return fs::exists(s.out) ? s.out : synth_model(s);
}

}  // namespace

TEST_CASE("K/V rows prepared by the attending thread or by one thread: the same bits",
          "[e2e][attention]") {
  for (const std::string& path : {test::model_path("tinystories-656k"), qwen3_tiny()}) {
    for (KvDtype kv : {KvDtype::F32, KvDtype::F16, KvDtype::Int8}) {
      INFO(path << ", kv " << kv_dtype_name(kv));
      const Logits whole = run(path, kv, 2, kPrompt);  // the prompt: one thread prepares
      const Logits chunks = run(path, kv, 2, 4);       // the attending threads prepare
      const Logits one = run(path, kv, 1, kPrompt);
      REQUIRE(whole.size() == size_t(kPrompt + 1 + 1 + 5 + 6 + 3));
      REQUIRE(chunks.size() == whole.size());
      REQUIRE(one.size() == whole.size());
      for (const auto& [key, logits] : whole) {
        INFO("sequence " << key.first << ", position " << key.second);
        REQUIRE(chunks.at(key) == logits);
        REQUIRE(one.at(key) == logits);
      }
    }
  }
}
