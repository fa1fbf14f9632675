#include "cpu/cpu_backend.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "cpu/kernels.h"

namespace troupe::cpu {

namespace {

// Converts a tensor the kernels cannot run as stored (BF16, Q8_0, Q4_0 matrices; any norm
// or bias that is not F32) into an owned F32 copy.
void make_f32(ModelWeights& w, TensorView& t, bool matrix) {
  if (t.empty()) return;
  const bool ok = t.dtype == DType::F32 || (matrix && t.dtype == DType::F16);
  if (ok) return;
  std::vector<float> buf(static_cast<size_t>(t.numel()));
  to_f32(t, buf.data());
  t.data = w.own(std::move(buf));
  t.dtype = DType::F32;
  t.nbytes = t.numel() * 4;
}

}  // namespace

// Activations of one step, grown to the largest step seen (steps reuse them).
struct CpuBackend::Scratch {
  int64_t cap_tokens = 0;
  std::vector<float> x, xb, q, k, v, att, gate, up;
  std::vector<int32_t> pos;        // absolute position of each token in the step
  std::vector<int32_t> seq_of;     // index into batch.seqs of each token
  std::vector<std::vector<float>> scores;  // per thread: attention scores

  void reserve(const ModelConfig& c, int64_t T) {
    if (T <= cap_tokens) return;
    cap_tokens = T;
    x.resize(T * c.hidden_size);
    xb.resize(T * std::max(c.hidden_size, c.q_dim()));
    q.resize(T * c.q_dim());
    k.resize(T * c.kv_dim());
    v.resize(T * c.kv_dim());
    att.resize(T * c.q_dim());
    gate.resize(T * c.intermediate_size);
    up.resize(T * c.intermediate_size);
  }
};

CpuBackend::CpuBackend(ModelWeights weights, const CpuBackendOptions& opts)
    : w_(std::move(weights)), pool_(opts.num_threads), scratch_(std::make_unique<Scratch>()) {
  const auto& c = w_.config;
  c.validate(w_.source);
  for (auto& L : w_.layers) {
    for (TensorView* m : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down})
      make_f32(w_, *m, true);
    for (TensorView* v : {&L.attn_norm, &L.ffn_norm, &L.bq, &L.bk, &L.bv, &L.q_norm, &L.k_norm})
      make_f32(w_, *v, false);
  }
  make_f32(w_, w_.final_norm, false);
  const bool tied = w_.lm_head.data == w_.tok_embeddings.data;
  make_f32(w_, w_.lm_head, true);
  if (tied && w_.tok_embeddings.dtype != w_.lm_head.dtype && w_.lm_head.dtype == DType::F32)
    w_.tok_embeddings = w_.lm_head;  // share the converted copy instead of converting twice

  kv_shape_.block_size = opts.block_size;
  if (opts.block_size <= 0) fail("KV block size must be positive, got {}", opts.block_size);
  kv_shape_.bytes_per_block = 2 * c.num_layers * opts.block_size * c.kv_dim() * int64_t(sizeof(float));
  kv_shape_.num_blocks = opts.num_blocks > 0 ? opts.num_blocks
                                             : opts.kv_cache_bytes / kv_shape_.bytes_per_block;
  if (kv_shape_.num_blocks < 1)
    fail("KV cache budget of {} bytes holds no block ({} bytes each)", opts.kv_cache_bytes,
         kv_shape_.bytes_per_block);
  const size_t per_cache = static_cast<size_t>(c.num_layers * kv_shape_.num_blocks *
                                               opts.block_size * c.kv_dim());
  k_cache_.assign(per_cache, 0.0f);
  v_cache_.assign(per_cache, 0.0f);
  scratch_->scores.resize(pool_.size());
}

CpuBackend::~CpuBackend() = default;

std::string CpuBackend::name() const {
  return fmt::format("cpu ({} threads)", pool_.size());
}

void CpuBackend::check_batch(const StepBatch& batch) const {
  const auto& c = w_.config;
  for (const auto& s : batch.seqs) {
    if (s.tokens.empty()) fail("step: sequence {} has no tokens", s.seq_id);
    const int64_t end = int64_t(s.start_pos) + int64_t(s.tokens.size());
    if (s.start_pos < 0 || end > c.max_position_embeddings)
      fail("step: sequence {} spans positions [{}, {}) beyond the model's {} positions",
           s.seq_id, s.start_pos, end, c.max_position_embeddings);
    const int64_t need = (end + kv_shape_.block_size - 1) / kv_shape_.block_size;
    if (int64_t(s.block_table.size()) < need)
      fail("step: sequence {} needs {} KV blocks, block table has {}", s.seq_id, need,
           s.block_table.size());
    for (int64_t b = 0; b < need; ++b)
      if (s.block_table[b] < 0 || s.block_table[b] >= kv_shape_.num_blocks)
        fail("step: sequence {} uses KV block {} outside the pool of {}", s.seq_id,
             s.block_table[b], kv_shape_.num_blocks);
    for (int32_t t : s.tokens)
      if (t < 0 || t >= c.vocab_size)
        fail("step: sequence {} has token id {} outside the vocabulary of {}", s.seq_id, t,
             c.vocab_size);
    for (int32_t r : s.logit_rows)
      if (r < 0 || r >= int32_t(s.tokens.size()))
        fail("step: sequence {} asks logits for row {} of {}", s.seq_id, r, s.tokens.size());
  }
}

void CpuBackend::run_step(const StepBatch& batch, StepOutput& out) {
  check_batch(batch);
  const auto& c = w_.config;
  const int64_t T = batch.num_tokens();
  const int64_t H = c.hidden_size;
  Scratch& s = *scratch_;
  s.reserve(c, T);
  s.pos.resize(T);
  s.seq_of.resize(T);

  int64_t t = 0;
  for (size_t i = 0; i < batch.seqs.size(); ++i) {
    const auto& sq = batch.seqs[i];
    for (size_t j = 0; j < sq.tokens.size(); ++j, ++t) {
      s.pos[t] = sq.start_pos + int32_t(j);
      s.seq_of[t] = int32_t(i);
      embedding_row(w_.tok_embeddings, sq.tokens[j], s.x.data() + t * H);
    }
  }

  for (int64_t l = 0; l < c.num_layers; ++l) forward_layer(l, batch, s);

  // Final norm + LM head only on the rows whose logits were asked for.
  const int64_t R = batch.num_logit_rows();
  out.vocab_size = c.vocab_size;
  out.logits.resize(static_cast<size_t>(R * c.vocab_size));
  if (R == 0) return;
  int64_t r = 0, base = 0;
  for (const auto& sq : batch.seqs) {
    for (int32_t row : sq.logit_rows) {
      rmsnorm(s.x.data() + (base + row) * H, static_cast<const float*>(w_.final_norm.data),
              s.xb.data() + r * H, H, c.rms_norm_eps);
      ++r;
    }
    base += int64_t(sq.tokens.size());
  }
  matmul(pool_, s.xb.data(), R, w_.lm_head, out.logits.data());
}

void CpuBackend::forward_layer(int64_t l, const StepBatch& batch, Scratch& s) {
  const auto& c = w_.config;
  const auto& L = w_.layers[l];
  const int64_t T = batch.num_tokens();
  const int64_t H = c.hidden_size, QD = c.q_dim(), KVD = c.kv_dim(), HD = c.head_dim;
  const int64_t I = c.intermediate_size;
  const auto f32 = [](const TensorView& v) { return static_cast<const float*>(v.data); };

  // --- attention ---
  for (int64_t t = 0; t < T; ++t)
    rmsnorm(s.x.data() + t * H, f32(L.attn_norm), s.xb.data() + t * H, H, c.rms_norm_eps);
  matmul(pool_, s.xb.data(), T, L.wq, s.q.data(), L.bq.empty() ? nullptr : f32(L.bq));
  matmul(pool_, s.xb.data(), T, L.wk, s.k.data(), L.bk.empty() ? nullptr : f32(L.bk));
  matmul(pool_, s.xb.data(), T, L.wv, s.v.data(), L.bv.empty() ? nullptr : f32(L.bv));

  const int64_t bs = kv_shape_.block_size;
  const size_t layer_off = static_cast<size_t>(l * kv_shape_.num_blocks * bs * KVD);
  float* kc = k_cache_.data() + layer_off;
  float* vc = v_cache_.data() + layer_off;
  for (int64_t t = 0; t < T; ++t) {
    float* q = s.q.data() + t * QD;
    float* k = s.k.data() + t * KVD;
    if (c.qk_norm) {  // Qwen3: per-head RMSNorm before RoPE
      for (int64_t h = 0; h < c.num_heads; ++h)
        rmsnorm(q + h * HD, f32(L.q_norm), q + h * HD, HD, c.rms_norm_eps);
      for (int64_t h = 0; h < c.num_kv_heads; ++h)
        rmsnorm(k + h * HD, f32(L.k_norm), k + h * HD, HD, c.rms_norm_eps);
    }
    rope(q, c.num_heads, HD, s.pos[t], c.rope_theta, c.rope_style);
    rope(k, c.num_kv_heads, HD, s.pos[t], c.rope_theta, c.rope_style);
    const auto& sq = batch.seqs[s.seq_of[t]];
    const int64_t slot = int64_t(sq.block_table[s.pos[t] / bs]) * bs + s.pos[t] % bs;
    std::copy_n(k, KVD, kc + slot * KVD);
    std::copy_n(s.v.data() + t * KVD, KVD, vc + slot * KVD);
  }

  // Causal attention: token t of a sequence sees positions [0, pos[t]] of that sequence.
  const float scale = 1.0f / std::sqrt(float(HD));
  const int64_t max_ctx = *std::max_element(s.pos.begin(), s.pos.begin() + T) + 1;
  pool_.parallel_for(T * c.num_heads, 1, [&](int th, int64_t begin, int64_t end) {
    auto& sc = s.scores[th];
    if (int64_t(sc.size()) < max_ctx) sc.resize(max_ctx);
    for (int64_t i = begin; i < end; ++i) {
      const int64_t t = i / c.num_heads, h = i % c.num_heads;
      const auto& sq = batch.seqs[s.seq_of[t]];
      PagedKv kv{kc, vc, sq.block_table.data(), bs, c.num_kv_heads, HD};
      attention_head(s.q.data() + t * QD + h * HD, h, c.num_heads, kv, s.pos[t] + 1, scale,
                     s.att.data() + t * QD + h * HD, sc.data());
    }
  });
  matmul(pool_, s.att.data(), T, L.wo, s.xb.data());
  add_inplace(s.x.data(), s.xb.data(), T * H);

  // --- SwiGLU feed-forward ---
  for (int64_t t = 0; t < T; ++t)
    rmsnorm(s.x.data() + t * H, f32(L.ffn_norm), s.xb.data() + t * H, H, c.rms_norm_eps);
  matmul(pool_, s.xb.data(), T, L.w_gate, s.gate.data());
  matmul(pool_, s.xb.data(), T, L.w_up, s.up.data());
  silu_mul(s.gate.data(), s.up.data(), T * I);
  matmul(pool_, s.gate.data(), T, L.w_down, s.xb.data());
  add_inplace(s.x.data(), s.xb.data(), T * H);
}

void CpuBackend::copy_block(int32_t src, int32_t dst) {
  if (src < 0 || dst < 0 || src >= kv_shape_.num_blocks || dst >= kv_shape_.num_blocks)
    fail("copy_block: block {} -> {} outside the pool of {}", src, dst, kv_shape_.num_blocks);
  const auto& c = w_.config;
  const int64_t blk = kv_shape_.block_size * c.kv_dim();
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const int64_t base = l * kv_shape_.num_blocks * blk;
    std::copy_n(k_cache_.data() + base + src * blk, blk, k_cache_.data() + base + dst * blk);
    std::copy_n(v_cache_.data() + base + src * blk, blk, v_cache_.data() + base + dst * blk);
  }
}

}  // namespace troupe::cpu
