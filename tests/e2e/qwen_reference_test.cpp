// Qwen2 and Qwen3 forward passes against an independent float64 reference
// (tests/e2e/qwen_reference.py: numpy, its own safetensors reader, the transformers
// definitions). `troupe synth` writes tiny random models of both shapes: head_dim 24 != 64 / 4
// heads, grouped-query attention, an untied head, their own RoPE bases; Qwen2 with random
// q/k/v biases, Qwen3 with random per-head q/k RMSNorm weights. The CPU backend's logits must
// match the reference's at every position within 1e-3, whole-prompt and token by token
// (the KV-cache path), so a dropped bias, a skipped or misplaced q/k norm (it comes before
// RoPE), a wrong head_dim, RoPE base or head fails here rather than only loading.
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>

#include "cpu/cpu_backend.h"
#include "model/weights.h"
#include "test_util.h"

using namespace troupe;

namespace {

// A python3 that has numpy: $TROUPE_PYTHON, the system python3 (Debian's python3-numpy), or
// the first python3 on PATH. None is a failure, not a skip: this is the only check of these
// forward passes.
std::string python_with_numpy() {
  std::vector<std::string> candidates;
  if (const char* p = std::getenv("TROUPE_PYTHON"); p && *p) candidates.emplace_back(p);
  candidates.emplace_back("/usr/bin/python3");
  candidates.emplace_back("python3");
  for (const auto& py : candidates) {
    if (test::run_command(test::shell_quote(py) + " -c 'import numpy' 2>/dev/null").status == 0) return py;
  }
  FAIL("no python3 with numpy (install python3-numpy, or set TROUPE_PYTHON): the Qwen reference needs it");
  return {};
}

std::string reference_script() { return test::source_path("tests/e2e/qwen_reference.py"); }

std::vector<std::vector<double>> reference_logits(const std::string& dir, const std::vector<int32_t>& ids) {
  std::string cmd = test::shell_quote(python_with_numpy()) + " " + test::shell_quote(reference_script()) + " " +
                    test::shell_quote(dir);
  for (auto t : ids) {
    cmd += ' ';
    cmd += std::to_string(t);
  }
  const auto r = test::run_command(cmd + " 2>&1");
  INFO(r.out.substr(0, 2000));
  REQUIRE(r.status == 0);
  std::vector<std::vector<double>> out;
  const boost::json::value root = boost::json::parse(r.out);
  for (const auto& row : root.at("logits").as_array()) {
    out.emplace_back();
    for (const auto& x : row.as_array()) out.back().push_back(x.is_double() ? x.as_double() : double(x.as_int64()));
  }
  REQUIRE(out.size() == ids.size());
  return out;
}

// Logits of every position: the whole sequence in one step (chunk = ids.size()) or in
// chunks of `chunk` tokens over the KV cache (block size 4, so attention crosses blocks).
std::vector<std::vector<float>> troupe_logits(const std::string& dir, const std::vector<int32_t>& ids, size_t chunk) {
  cpu::CpuBackendOptions opts;
  opts.block_size = 4;
  opts.num_blocks = 16;
  cpu::CpuBackend be(load_model(dir), opts);
  StepSeq s;
  s.seq_id = 0;
  for (int32_t b = 0; b < 16; ++b) s.block_table.push_back(b);
  std::vector<std::vector<float>> out;
  StepOutput so;
  for (size_t done = 0; done < ids.size();) {
    const size_t n = std::min(chunk, ids.size() - done);
    s.start_pos = int32_t(done);
    s.tokens.assign(ids.begin() + ptrdiff_t(done), ids.begin() + ptrdiff_t(done + n));
    s.logit_rows.clear();
    for (size_t j = 0; j < n; ++j) s.logit_rows.push_back(int32_t(j));
    StepBatch batch;
    batch.seqs.push_back(s);
    be.run_step(batch, so);
    for (size_t j = 0; j < n; ++j) out.emplace_back(so.row(int64_t(j)), so.row(int64_t(j)) + so.vocab_size);
    done += n;
  }
  return out;
}

void check_against_reference(const std::string& shape) {
  const std::string dir = test::temp_dir("qwen-ref-" + shape);
  const auto [rc, msg] = test::run_troupe("synth --shape " + shape + " --seed 3 --out " + test::shell_quote(dir));
  INFO(msg);
  REQUIRE(rc == 0);
  const ModelWeights w = load_model(dir);
  // The shape this test is about: what the loader made of the synthesized config.
  REQUIRE(w.config.head_dim == 24);
  REQUIRE(w.config.head_dim * w.config.num_heads != w.config.hidden_size);
  REQUIRE(w.config.num_kv_heads < w.config.num_heads);
  REQUIRE_FALSE(w.config.tie_word_embeddings);
  REQUIRE(w.config.attention_bias == (shape == "qwen2-tiny"));
  REQUIRE(w.config.qk_norm == (shape == "qwen3-tiny"));

  const std::vector<int32_t> ids = {1, 37, 402, 5, 260, 99, 511, 14, 300, 42, 7, 128, 64};
  const auto ref = reference_logits(dir, ids);
  double spread = 0;  // the logits' own scale, to show the tolerance is tight
  for (const auto& row : ref)
    for (double x : row) spread = std::max(spread, std::abs(x));
  CHECK(spread > 0.1);
  for (size_t chunk : {ids.size(), size_t(1), size_t(5)}) {
    const auto got = troupe_logits(dir, ids, chunk);
    REQUIRE(got.size() == ref.size());
    double worst = 0;
    size_t worst_pos = 0;
    for (size_t p = 0; p < ref.size(); ++p) {
      REQUIRE(got[p].size() == ref[p].size());
      for (size_t v = 0; v < ref[p].size(); ++v) {
        const double d = std::abs(double(got[p][v]) - ref[p][v]);
        if (d > worst) worst = d, worst_pos = p;
      }
    }
    INFO(shape << ", chunks of " << chunk << ": worst |troupe - reference| " << worst << " at position "
               << worst_pos << " (logits up to " << spread << ")");
    CHECK(worst < 1e-3);
  }
}

}  // namespace

TEST_CASE("Qwen2 forward pass (q/k/v biases, head_dim != hidden/heads, GQA, untied) matches the float64 reference",
          "[e2e][qwen]") {
  check_against_reference("qwen2-tiny");
}

TEST_CASE("Qwen3 forward pass (per-head q/k RMSNorm before RoPE, head_dim != hidden/heads, GQA, untied) matches the "
          "float64 reference",
          "[e2e][qwen]") {
  check_against_reference("qwen3-tiny");
}
