#pragma once
// What each tensor of a model is called in a Hugging Face checkpoint and in a GGUF file
// (llama.cpp's names), and which ModelWeights view it fills: the one table the loaders go by.
#include <cstdint>
#include <string>

#include "model/config.h"
#include "model/weights.h"

namespace troupe {

// The seven linear layers of a block, in this order wherever they are indexed.
constexpr int kNumLinears = 7;
enum LinearIndex : int { kLinQ, kLinK, kLinV, kLinO, kLinGate, kLinUp, kLinDown };

// The tensors outside the blocks.
struct ModelTensorNames {
  const char* embeddings;
  const char* final_norm;
  const char* lm_head;
};
inline constexpr ModelTensorNames kHfModelTensors{"model.embed_tokens.weight", "model.norm.weight",
                                                  "lm_head.weight"};
inline constexpr ModelTensorNames kGgufModelTensors{"token_embd.weight", "output_norm.weight",
                                                    "output.weight"};

// One tensor of a transformer block.
struct BlockTensor {
  enum class When : uint8_t { Always, AttentionBias, QkNorm };  // which configs have it
  TensorView LayerWeights::*view;
  const char* hf;    // after hf_block_prefix()
  const char* gguf;  // after gguf_block_prefix()
  When when = When::Always;
  int linear = -1;   // the LinearIndex of the seven linear weights, -1 for the rest
};

// In the order the loaders take them, which decides the missing tensor an error names first.
inline constexpr BlockTensor kBlockTensors[] = {
    {&LayerWeights::attn_norm, "input_layernorm.weight", "attn_norm.weight"},
    {&LayerWeights::wq, "self_attn.q_proj.weight", "attn_q.weight", BlockTensor::When::Always, kLinQ},
    {&LayerWeights::wk, "self_attn.k_proj.weight", "attn_k.weight", BlockTensor::When::Always, kLinK},
    {&LayerWeights::wv, "self_attn.v_proj.weight", "attn_v.weight", BlockTensor::When::Always, kLinV},
    {&LayerWeights::wo, "self_attn.o_proj.weight", "attn_output.weight", BlockTensor::When::Always, kLinO},
    {&LayerWeights::bq, "self_attn.q_proj.bias", "attn_q.bias", BlockTensor::When::AttentionBias},
    {&LayerWeights::bk, "self_attn.k_proj.bias", "attn_k.bias", BlockTensor::When::AttentionBias},
    {&LayerWeights::bv, "self_attn.v_proj.bias", "attn_v.bias", BlockTensor::When::AttentionBias},
    {&LayerWeights::q_norm, "self_attn.q_norm.weight", "attn_q_norm.weight", BlockTensor::When::QkNorm},
    {&LayerWeights::k_norm, "self_attn.k_norm.weight", "attn_k_norm.weight", BlockTensor::When::QkNorm},
    {&LayerWeights::ffn_norm, "post_attention_layernorm.weight", "ffn_norm.weight"},
    {&LayerWeights::w_gate, "mlp.gate_proj.weight", "ffn_gate.weight", BlockTensor::When::Always, kLinGate},
    {&LayerWeights::w_up, "mlp.up_proj.weight", "ffn_up.weight", BlockTensor::When::Always, kLinUp},
    {&LayerWeights::w_down, "mlp.down_proj.weight", "ffn_down.weight", BlockTensor::When::Always, kLinDown},
};

// A derived buffer old HF exports store per block (after hf_block_prefix()); loaders ignore it.
inline constexpr const char* kHfRotaryInvFreq = "self_attn.rotary_emb.inv_freq";

std::string hf_block_prefix(int64_t layer);    // "model.layers.<layer>."
std::string gguf_block_prefix(int64_t layer);  // "blk.<layer>."
// Whether a model of config `c` has tensor `t` in every block.
bool has_block_tensor(const ModelConfig& c, const BlockTensor& t);
// The table entry of `view`, and its full names in block `layer`
// ("model.layers.3.self_attn.q_proj.weight", "blk.3.attn_q.weight").
const BlockTensor& block_tensor(TensorView LayerWeights::*view);
std::string hf_tensor_name(int64_t layer, TensorView LayerWeights::*view);
std::string gguf_tensor_name(int64_t layer, TensorView LayerWeights::*view);
// "self_attn.q_proj", ..., "mlp.down_proj": the HF module of linear layer `i`.
std::string linear_module_name(int i);

}  // namespace troupe
