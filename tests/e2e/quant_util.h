#pragma once
// Helpers of the quantization end-to-end tests: running the troupe binary, greedy decoding
// on a backend, sampling text from a model, and building "fake-quantized" float models (the
// dequantized weights run through the float kernels).
#include <catch2/catch.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "cpu/cpu_backend.h"
#include "tokenizer/tokenizer.h"

namespace troupe::test {

// Runs `troupe <args>` (stdout+stderr to a log in `dir`); FAILs with the log on a non-zero
// exit. Returns the log.
std::string run_troupe(const std::string& args, const std::string& dir);

struct Greedy {
  std::vector<int32_t> ids;
  std::vector<float> margins;       // top-1 minus top-2 logit at each step
  std::vector<std::vector<float>> logits;  // per step (when kept)
};
// Greedy continuation of `prompt` for n tokens as one sequence (prefill, then decode). With
// `forced` non-empty, feeds those tokens instead of its own picks (teacher forcing), so two
// models can be compared step by step on the same path.
Greedy greedy(Backend& be, const std::vector<int32_t>& prompt, int n,
              const std::vector<int32_t>& forced = {}, bool keep_logits = false);

// n texts sampled from BOS at temperature 1 with seeds seed, seed+1, ...; each stops at EOS
// or max_tokens.
std::vector<std::string> sample_texts(Backend& be, const Tokenizer& tok, int n, int max_tokens,
                                      uint64_t seed);
// Writes texts as .jsonl ({"text": ...} per line).
void write_jsonl(const std::string& path, const std::vector<std::string>& texts);

// The float model of a quantized backend: `base` (any ModelWeights with the same config,
// e.g. the checkpoint's float tensors) with every quantized linear layer - and the LM head
// if quantized - replaced by an F32 copy of its dequantized weights.
ModelWeights fake_quantized(const cpu::CpuBackend& q, ModelWeights base);

}  // namespace troupe::test
