#include "model/config.h"

#include <cmath>

#include "core/error.h"

namespace troupe {

const char* arch_name(Arch a) {
  switch (a) {
    case Arch::Llama: return "llama";
    case Arch::Mistral: return "mistral";
    case Arch::Qwen2: return "qwen2";
    case Arch::Qwen3: return "qwen3";
  }
  return "?";
}

void ModelConfig::validate(const std::string& source) const {
  // Upper bounds are far beyond any real model; they exist so that a corrupt file cannot make
  // later size arithmetic (q_dim * hidden, vocab * hidden, ...) overflow int64.
  auto check = [&](const char* what, int64_t v, int64_t lo, int64_t hi) {
    if (v < lo || v > hi) fail("{}: {} = {} is out of range [{}, {}]", source, what, v, lo, hi);
  };
  check("vocab_size", vocab_size, 1, int64_t{1} << 24);
  check("hidden_size", hidden_size, 1, int64_t{1} << 17);
  check("intermediate_size", intermediate_size, 1, int64_t{1} << 20);
  check("num_layers", num_layers, 1, 4096);
  check("num_heads", num_heads, 1, 4096);
  check("num_kv_heads", num_kv_heads, 1, num_heads);
  check("head_dim", head_dim, 2, 4096);
  check("max_position_embeddings", max_position_embeddings, 1, int64_t{1} << 26);
  if (num_heads % num_kv_heads != 0) {
    fail("{}: num_heads {} is not a multiple of num_kv_heads {}", source, num_heads, num_kv_heads);
  }
  if (head_dim % 2 != 0) fail("{}: head_dim {} is odd (RoPE rotates pairs)", source, head_dim);
  if (!(std::isfinite(rms_norm_eps) && rms_norm_eps > 0.0f && rms_norm_eps < 1.0f)) {
    fail("{}: rms_norm_eps = {} is not a small positive number", source, rms_norm_eps);
  }
  if (!(std::isfinite(rope_theta) && rope_theta > 0.0f)) fail("{}: rope_theta = {} is not positive", source, rope_theta);
  if (bos_token_id < -1 || bos_token_id >= vocab_size) {
    fail("{}: bos_token_id {} is outside the vocabulary of {}", source, bos_token_id, vocab_size);
  }
  for (auto e : eos_token_ids) {
    if (e < 0 || e >= vocab_size) fail("{}: eos_token_id {} is outside the vocabulary of {}", source, e, vocab_size);
  }
}

}  // namespace troupe
