#pragma once
// Loading a model: a Hugging Face directory or a GGUF file becomes one ModelWeights, the
// canonical, format-independent set of tensors every backend consumes.
#include <any>
#include <memory>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/tensor.h"

namespace troupe {

struct LayerWeights {
  TensorView attn_norm;            // [hidden]
  TensorView wq, wk, wv, wo;       // [q_dim, hidden], [kv_dim, hidden] x2, [hidden, q_dim]
  TensorView bq, bk, bv;           // optional biases (empty() when absent)
  TensorView q_norm, k_norm;       // optional [head_dim] (Qwen3)
  TensorView ffn_norm;             // [hidden]
  TensorView w_gate, w_up, w_down; // [inter, hidden] x2, [hidden, inter]
};

struct ModelWeights {
  ModelConfig config;
  std::string source;              // path it was loaded from
  TensorView tok_embeddings;       // [vocab, hidden]
  TensorView final_norm;           // [hidden]
  TensorView lm_head;              // [vocab, hidden]; the same data as tok_embeddings when tied
  std::vector<LayerWeights> layers;
  // Keeps mapped files and converted buffers alive for the views above.
  std::vector<std::shared_ptr<const void>> owners;

  // Total bytes of weights read per decoded token (all matrices + norms + lm_head;
  // the embedding row read is negligible). Used for the bandwidth roofline.
  int64_t bytes_per_token() const;
  // Adds a buffer to `owners` and returns its data pointer.
  template <typename T>
  T* own(std::vector<T>&& buf) {
    auto p = std::make_shared<std::vector<T>>(std::move(buf));
    owners.push_back(p);
    return p->data();
  }
};

// `path` is a directory (Hugging Face: config.json + model.safetensors or
// model.safetensors.index.json) or a .gguf file. Throws troupe::Error naming the file,
// tensor and reason on any problem (missing/truncated/corrupt file, unknown architecture or
// dtype, shape mismatch). Tensors stay in their stored dtype; backends convert what they
// cannot run natively.
ModelWeights load_model(const std::string& path);

}  // namespace troupe
