#include "app/text_data.h"

#include <boost/json.hpp>

#include <algorithm>
#include <fstream>
#include <numeric>
#include <sstream>

#include "core/error.h"
#include "sampling/sampler.h"

namespace troupe::app {

namespace {

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

std::string json_text(const std::string& line, const std::string& path, int64_t lineno) {
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(line, ec);
  if (ec || !v.is_object()) fail("{}:{}: not a JSON object", path, lineno);
  const auto& o = v.get_object();
  auto str = [&](const char* k) -> std::string {
    auto it = o.find(k);
    if (it == o.end()) return "";
    if (!it->value().is_string()) fail("{}:{}: \"{}\" is not a string", path, lineno, k);
    return std::string(it->value().get_string());
  };
  if (o.contains("text")) return str("text");
  if (o.contains("prompt")) return str("prompt") + str("completion");
  fail("{}:{}: no \"text\" (or \"prompt\") field", path, lineno);
}

}  // namespace

std::vector<std::string> read_text_samples(const std::string& path, int64_t max_samples) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot open", path);
  std::vector<std::string> out;
  auto full = [&] { return max_samples > 0 && int64_t(out.size()) >= max_samples; };
  std::string line;
  int64_t lineno = 0;
  if (path.size() >= 6 && path.substr(path.size() - 6) == ".jsonl") {
    while (!full() && std::getline(in, line)) {
      ++lineno;
      if (trim(line).empty()) continue;
      std::string t = json_text(line, path, lineno);
      if (!trim(t).empty()) out.push_back(std::move(t));
    }
  } else {
    std::string para;
    auto flush = [&] {
      if (!trim(para).empty() && !full()) out.push_back(trim(para));
      para.clear();
    };
    while (!full() && std::getline(in, line)) {
      if (trim(line).empty()) {
        flush();
      } else {
        para += para.empty() ? "" : "\n";
        para += line;
      }
    }
    flush();
  }
  if (out.empty()) fail("{}: no text samples", path);
  return out;
}

std::vector<int32_t> sample_ids(const Tokenizer& tok, const std::string& text, int64_t max_len) {
  std::vector<int32_t> ids = tok.encode(text, true);
  if (int64_t(ids.size()) > max_len) ids.resize(static_cast<size_t>(max_len));
  return ids;
}

std::vector<float> forward_sequence(Backend& backend, const std::vector<int32_t>& ids,
                                    bool want_logits, int64_t chunk) {
  const auto kv = backend.kv_shape();
  const int64_t n = int64_t(ids.size());
  if (n > kv.num_blocks * kv.block_size)
    fail("a sequence of {} tokens does not fit the KV pool ({} tokens)", n, kv.num_blocks * kv.block_size);
  const int64_t V = backend.config().vocab_size;
  std::vector<float> logits(want_logits ? static_cast<size_t>(n * V) : 0);
  StepBatch batch;
  batch.seqs.resize(1);
  StepSeq& s = batch.seqs[0];
  s.block_table.resize(static_cast<size_t>((n + kv.block_size - 1) / kv.block_size));
  std::iota(s.block_table.begin(), s.block_table.end(), 0);
  StepOutput out;
  for (int64_t p = 0; p < n; p += chunk) {
    const int64_t m = std::min(chunk, n - p);
    s.start_pos = int32_t(p);
    s.tokens.assign(ids.begin() + p, ids.begin() + p + m);
    s.logit_rows.clear();
    if (want_logits)
      for (int64_t r = 0; r < m; ++r) s.logit_rows.push_back(int32_t(r));
    backend.run_step(batch, out);
    if (want_logits) std::copy(out.logits.begin(), out.logits.end(), logits.begin() + p * V);
  }
  return logits;
}

std::vector<std::vector<int32_t>> sample_from_model(Backend& backend, const Tokenizer& tok,
                                                    int64_t n, int64_t len, uint64_t seed,
                                                    const std::function<void(int64_t)>& progress) {
  const auto kv = backend.kv_shape();
  const int64_t per_seq = (len + kv.block_size - 1) / kv.block_size;
  if (n * per_seq > kv.num_blocks) fail("KV pool too small for {} x {} tokens", n, len);
  std::vector<std::vector<int32_t>> seqs(static_cast<size_t>(n));
  std::vector<Sampler> samplers;
  StepBatch batch;
  batch.seqs.resize(static_cast<size_t>(n));
  const int32_t first = tok.bos_id() >= 0 ? tok.bos_id() : 0;
  for (int64_t i = 0; i < n; ++i) {
    SamplingParams p;
    p.temperature = 1.0f;
    p.seed = seed + uint64_t(i);
    samplers.emplace_back(p, std::span<const int32_t>());
    seqs[i] = {first};
    StepSeq& s = batch.seqs[i];
    s.seq_id = i;
    s.tokens = {first};
    s.start_pos = 0;
    s.logit_rows = {0};
    for (int64_t b = 0; b < per_seq; ++b) s.block_table.push_back(int32_t(i * per_seq + b));
  }
  StepOutput out;
  for (int64_t step = 1; step < len; ++step) {
    backend.run_step(batch, out);
    for (int64_t i = 0; i < n; ++i) {
      const float* row = out.row(i);
      const int32_t t = samplers[i].sample({row, size_t(out.vocab_size)}).token;
      samplers[i].accept(t);
      seqs[i].push_back(t);
      batch.seqs[i].start_pos = int32_t(step);
      batch.seqs[i].tokens = {t};
    }
    if (progress) progress(step);
  }
  return seqs;
}

}  // namespace troupe::app
