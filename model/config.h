#pragma once
// Architecture description of a Llama-family decoder, independent of file format.
#include <cstdint>
#include <string>
#include <vector>

namespace troupe {

enum class Arch { Llama, Mistral, Qwen2, Qwen3 };

// How RoPE pairs dimensions inside a head.
//  Halves:   (i, i + d/2)   - Hugging Face checkpoints ("rotate_half")
//  Adjacent: (2i, 2i + 1)   - GGUF llama / llama2.c (weights permuted by the converter)
enum class RopeStyle { Halves, Adjacent };

struct ModelConfig {
  Arch arch = Arch::Llama;
  std::string arch_name = "llama";  // as found in the file
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;        // model dim
  int64_t intermediate_size = 0;  // FFN hidden dim
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;           // usually hidden_size / num_heads (Qwen3 may differ)
  int64_t max_position_embeddings = 2048;
  float rms_norm_eps = 1e-5f;
  float rope_theta = 10000.0f;
  RopeStyle rope_style = RopeStyle::Halves;
  bool tie_word_embeddings = false;
  bool attention_bias = false;    // q/k/v biases (Qwen2)
  bool qk_norm = false;           // per-head RMSNorm on q and k (Qwen3)
  int32_t bos_token_id = -1;
  std::vector<int32_t> eos_token_ids;

  int64_t q_dim() const { return num_heads * head_dim; }
  int64_t kv_dim() const { return num_kv_heads * head_dim; }
  // Throws troupe::Error (naming `source`) if the numbers are inconsistent.
  void validate(const std::string& source) const;
};

const char* arch_name(Arch a);

}  // namespace troupe
