#include "app/sequence_loop.h"

#include <algorithm>
#include <chrono>

#include "actors/text_stream.h"
#include "core/error.h"

namespace troupe::app {

namespace {
double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

SequenceResult run_sequence(Backend& backend, const Tokenizer& tok,
                            std::vector<int32_t> prompt_ids, const SamplingParams& params,
                            const std::function<void(const std::string&)>& on_text) {
  params.validate();
  const auto& cfg = backend.config();
  const auto kv = backend.kv_shape();
  if (prompt_ids.empty()) fail("the prompt is empty");
  const int64_t max_len = std::min<int64_t>(cfg.max_position_embeddings, kv.num_blocks * kv.block_size);
  if (int64_t(prompt_ids.size()) >= max_len)
    fail("prompt of {} tokens does not fit the model length of {} tokens", prompt_ids.size(), max_len);
  const int64_t max_new = std::min<int64_t>(params.max_tokens, max_len - int64_t(prompt_ids.size()));

  SequenceResult res;
  res.prompt_ids = prompt_ids;
  Sampler sampler(params, prompt_ids);
  TextStream text(tok, params.stop);  // the output stage's detokenizer and stop strings
  auto emit = [&](const std::string& out) {
    res.text += out;
    if (on_text && !out.empty()) on_text(out);
  };

  // One sequence owns blocks 0..n-1 of the pool in order.
  StepSeq seq;
  seq.seq_id = 0;
  const int64_t total = int64_t(prompt_ids.size()) + max_new;
  for (int64_t b = 0; b < (total + kv.block_size - 1) / kv.block_size; ++b)
    seq.block_table.push_back(int32_t(b));
  seq.tokens = std::move(prompt_ids);
  seq.start_pos = 0;
  seq.logit_rows = {int32_t(seq.tokens.size()) - 1};

  StepBatch batch;
  StepOutput out;
  const auto t0 = std::chrono::steady_clock::now();
  auto t_decode = t0;
  res.finish_reason = FinishReason::Length;
  for (int64_t i = 0; i < max_new; ++i) {
    batch.seqs = {seq};
    backend.run_step(batch, out);
    if (i == 0) {
      res.prefill_s = res.ttft_s = seconds_since(t0);
      t_decode = std::chrono::steady_clock::now();
    } else {
      ++res.decode_steps;
    }
    SampleResult r = sampler.sample({out.row(0), size_t(out.vocab_size)});
    sampler.accept(r.token);
    if (is_stop_token(params, tok.eos_ids(), r.token)) {
      res.finish_reason = FinishReason::Stop;
      break;
    }
    res.token_ids.push_back(r.token);
    emit(text.push(r.token));
    if (text.stopped()) {
      res.finish_reason = FinishReason::Stop;
      break;
    }
    seq.start_pos += int32_t(seq.tokens.size());
    seq.tokens = {r.token};
    seq.logit_rows = {0};
  }
  res.decode_s = seconds_since(t_decode);
  emit(text.finish());
  return res;
}

}  // namespace troupe::app
