#include "quant_util.h"

#include <boost/json.hpp>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <numeric>

#include "sampling/sampler.h"
#include "test_util.h"

namespace troupe::test {

std::string run_troupe(const std::string& args, const std::string& dir) {
  const std::string log = dir + "/troupe.log";
  const std::string cmd = troupe_bin() + " " + args + " > " + log + " 2>&1";
  const int rc = std::system(cmd.c_str());
  const std::string out = read_file(log);
  if (rc != 0) FAIL("`" << cmd << "` exited with " << rc << ":\n" << out);
  return out;
}

Greedy greedy(Backend& be, const std::vector<int32_t>& prompt, int n,
              const std::vector<int32_t>& forced, bool keep_logits) {
  const auto kv = be.kv_shape();
  StepBatch batch;
  batch.seqs.resize(1);
  StepSeq& s = batch.seqs[0];
  const int64_t total = int64_t(prompt.size()) + n;
  s.block_table.resize(size_t((total + kv.block_size - 1) / kv.block_size));
  std::iota(s.block_table.begin(), s.block_table.end(), 0);
  s.tokens = prompt;
  s.start_pos = 0;
  s.logit_rows = {int32_t(prompt.size()) - 1};
  Greedy g;
  StepOutput out;
  for (int i = 0; i < n; ++i) {
    be.run_step(batch, out);
    const float* row = out.row(0);
    std::vector<float> v(row, row + out.vocab_size);
    const auto top = int32_t(std::max_element(v.begin(), v.end()) - v.begin());
    float second = -INFINITY;
    for (int64_t j = 0; j < out.vocab_size; ++j)
      if (j != top) second = std::max(second, v[j]);
    g.ids.push_back(top);
    g.margins.push_back(v[top] - second);
    if (keep_logits) g.logits.push_back(std::move(v));
    const int32_t next = forced.empty() ? top : forced.at(size_t(i));
    s.start_pos += int32_t(s.tokens.size());
    s.tokens = {next};
    s.logit_rows = {0};
  }
  return g;
}

std::vector<std::string> sample_texts(Backend& be, const Tokenizer& tok, int n, int max_tokens,
                                      uint64_t seed) {
  std::vector<std::string> texts;
  const auto& eos = tok.eos_ids();
  for (int k = 0; k < n; ++k) {
    SamplingParams p;
    p.temperature = 1.0f;
    p.seed = seed + uint64_t(k);
    Sampler sampler(p, {});
    std::vector<int32_t> ids;
    const std::vector<int32_t> prompt = {tok.bos_id() >= 0 ? tok.bos_id() : 0};
    // Sampling through greedy()'s loop would pick argmax; decode one token at a time here.
    const auto kv = be.kv_shape();
    StepBatch batch;
    batch.seqs.resize(1);
    StepSeq& s = batch.seqs[0];
    s.block_table.resize(size_t((max_tokens + 1 + kv.block_size - 1) / kv.block_size));
    std::iota(s.block_table.begin(), s.block_table.end(), 0);
    s.tokens = prompt;
    s.logit_rows = {0};
    StepOutput out;
    for (int i = 0; i < max_tokens; ++i) {
      be.run_step(batch, out);
      const int32_t t = sampler.sample({out.row(0), size_t(out.vocab_size)}).token;
      sampler.accept(t);
      if (std::find(eos.begin(), eos.end(), t) != eos.end()) break;
      ids.push_back(t);
      s.start_pos += int32_t(s.tokens.size());
      s.tokens = {t};
    }
    texts.push_back(tok.decode(ids));
  }
  return texts;
}

void write_jsonl(const std::string& path, const std::vector<std::string>& texts) {
  std::ofstream f(path);
  for (const auto& t : texts) f << boost::json::serialize(boost::json::object{{"text", t}}) << "\n";
  REQUIRE(f.good());
}

ModelWeights fake_quantized(const cpu::CpuBackend& q, ModelWeights base) {
  auto dequantized = [&](const quant::QuantizedMatrix& m, const std::string& name) {
    std::vector<float> f(size_t(m.rows() * m.cols()));
    for (int64_t r = 0; r < m.rows(); ++r) m.dequantize_row(r, f.data() + r * m.cols());
    TensorView v;
    v.name = name;
    v.dtype = DType::F32;
    v.shape = {m.rows(), m.cols()};
    v.nbytes = m.rows() * m.cols() * 4;
    v.data = base.own(std::move(f));
    return v;
  };
  for (size_t l = 0; l < base.layers.size(); ++l)
    for (int i = 0; i < kNumLinears; ++i)
      if (const auto* m = q.quantized(int64_t(l), i))
        linear_view(base.layers[l], i) = dequantized(*m, linear_module_name(i));
  if (const auto* m = q.quantized_lm_head()) base.lm_head = dequantized(*m, "lm_head");
  return base;
}

}  // namespace troupe::test
