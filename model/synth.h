#pragma once
// Random-weight models of real shapes, for speed work and tests without downloads. The
// weights are N(0, 0.02)-like (a sum of four uniforms: bounded, and bit-identical on every
// platform, unlike std::normal_distribution) and the norms are 1, so activations stay in a
// sane range. Each row comes from its own counter-based stream keyed by (seed, tensor, row):
// output is deterministic per seed, and the GGUF form of a model holds exactly the weights
// of its HF form (q/k rows permuted as llama.cpp's converter does, then converted to the
// requested dtype), so both compute the same function.
#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"

namespace troupe {

struct SynthOptions {
  // tiny (64 dim, 2 layers, 4 heads, 2 kv, ffn 128), llama-110m (stories110M),
  // llama-1b (Llama-3.2-1B, tied), llama3-8b (Llama-3-8B); qwen2-tiny / qwen3-tiny (HF only:
  // 64 dim, 2 layers, 4 heads of 24, 2 kv, ffn 128, untied; Qwen2 with random q/k/v biases,
  // Qwen3 with random per-head q/k norm weights); narrow-tiny (tiny with ffn 4096: the grown
  // speculative target's kind of shape), narrow-odd-tiny (ffn 4128, not whole panels).
  std::string shape = "tiny";
  // hf: a directory (created). gguf: a path ending in .gguf, or a directory that gets
  // model.gguf.
  std::string out;
  std::string format = "hf";  // hf | gguf
  // hf: f32 | f16 | bf16. gguf: f32 | f16 | bf16 | q8_0 | q4_0 (norms stay F32, as llama.cpp).
  std::string dtype = "f32";
  // A directory with tokenizer.json (+ tokenizer_config.json) or tokenizer.model, or a .model
  // file. Empty: the shape's default under $TROUPE_MODELS (tiny: stories260k/tok512.model,
  // llama-110m: llama2-tokenizer/tokenizer.model, llama-1b / llama3-8b: ../tokenizers/llama3).
  // The vocabulary size is always the tokenizer's.
  std::string tokenizer;
  uint64_t seed = 0;
  // Positions the model is declared for (max_position_embeddings); 0: the shape's own. Weights
  // do not depend on it (RoPE has no learned positions), so a longer one only lets prompts
  // grow, e.g. llama-110m (1024) at 2048 for a 32-1024-token prompt mix plus outputs.
  int64_t context = 0;
};

// Writes the model; returns the path to give load_model() (the directory or the .gguf).
// Throws troupe::Error on a bad option or I/O failure. Streams: memory use stays a few MB
// whatever the model size.
std::string synth_model(const SynthOptions& opts);

// Names accepted in SynthOptions::shape.
std::vector<std::string> synth_shape_names();

// The config a shape gets with a tokenizer of `vocab_size` tokens (bos/eos unset).
ModelConfig synth_shape_config(const std::string& shape, int64_t vocab_size);

}  // namespace troupe
