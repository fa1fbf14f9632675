#include "actors/remote/model_identity.h"

#include <fmt/format.h>
#include <xxhash.h>

namespace troupe {

namespace {

void add_tensor(std::string& canon, const TensorView& t, int64_t& count) {
  if (t.empty()) return;
  ++count;
  canon += fmt::format("{}:{}:{};", t.name, dtype_name(t.dtype), fmt::join(t.shape, "x"));
}

}  // namespace

std::string quantization_name(const quant::Options& q) {
  std::string s(quant::method_name(q.method));
  if (q.method == quant::Method::Int4) s += fmt::format(" g{}", q.group_size);
  if (q.lm_head != quant::LmHead::Auto) s += fmt::format(", lm_head {}", quant::lm_head_name(q.lm_head));
  return s;
}

ModelIdentity model_identity(const ModelWeights& w, const quant::Options& q) {
  const ModelConfig& c = w.config;
  // Everything the forward pass depends on; the file's path and format do not matter.
  std::string canon = fmt::format(
      "{}|v{}|h{}|i{}|l{}|nh{}|kv{}|hd{}|pos{}|eps{}|theta{}|rope{}|tie{}|bias{}|qkn{}|",
      c.arch_name, c.vocab_size, c.hidden_size, c.intermediate_size, c.num_layers, c.num_heads,
      c.num_kv_heads, c.head_dim, c.max_position_embeddings, c.rms_norm_eps, c.rope_theta,
      int(c.rope_style), c.tie_word_embeddings, c.attention_bias, c.qk_norm);
  int64_t count = 0;
  add_tensor(canon, w.tok_embeddings, count);
  add_tensor(canon, w.final_norm, count);
  add_tensor(canon, w.lm_head, count);
  for (const LayerWeights& L : w.layers)
    for (const TensorView* t : {&L.attn_norm, &L.wq, &L.wk, &L.wv, &L.wo, &L.bq, &L.bk, &L.bv, &L.q_norm,
                                &L.k_norm, &L.ffn_norm, &L.w_gate, &L.w_up, &L.w_down})
      add_tensor(canon, *t, count);
  ModelIdentity id;
  id.hash = XXH3_64bits(canon.data(), canon.size());
  id.summary = fmt::format("{}, {} layers, hidden {}, vocab {}, {} tensors, hash {:016x}", c.arch_name,
                           c.num_layers, c.hidden_size, c.vocab_size, count, id.hash);
  id.quantization = quantization_name(q);
  return id;
}

std::string identity_difference(const ModelIdentity& head, const ModelIdentity& worker) {
  if (head.hash != worker.hash)
    return fmt::format("model differs: head has {}, worker has {}", head.summary, worker.summary);
  if (head.quantization != worker.quantization)
    return fmt::format("quantization differs: head runs {}, worker would run {}", head.quantization,
                       worker.quantization);
  return "";
}

}  // namespace troupe
