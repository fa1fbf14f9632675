#pragma once
// How a model's weights are quantized when a backend loads it: the `--quantization`,
// `--group-size` and `--lm-head` flags (add_quantization_flags, config/flags.h) and
// EngineConfig::quantization. Plain values with no other troupe header, so quant/ (whose
// loaders take them) can include this without depending on the rest of config/; names,
// parsing and validation are in quant/options.h.
#include <cstdint>

namespace troupe::quant {

enum class Method : uint8_t {
  None,  // run the weights as stored (F32/F16 float kernels; GGUF Q8_0/Q4_0 natively)
  Int8,  // round-to-nearest INT8 per output channel of the 7 linear layers, at load
  Int4,  // round-to-nearest INT4, group-wise asymmetric (group_size), at load
  Awq,   // a pre-quantized checkpoint (AutoAWQ 4-bit GEMM, or troupe's INT8 format)
};

// What happens to the LM head (the [vocab, hidden] output projection).
enum class LmHead : uint8_t {
  Auto,   // Int8 / Int4: INT8. Measured (docs/benchmarks.md, TinyStories-656K): an INT8
          //   head adds ~0.0002 nats of KL to FP32, an INT4 one ~0.024 (a quarter of what all
          //   INT4 g128 layers cost), while INT8 already takes the head from 4 to ~1 byte per
          //   weight. None / Awq: as stored (AutoAWQ keeps the head in float).
  Float,  // always as stored
  Int8,   // INT8 per row
  Int4,   // INT4 with group_size
};

struct Options {
  Method method = Method::None;
  int group_size = 128;  // Int4: 32, 64 or 128
  LmHead lm_head = LmHead::Auto;
};

}  // namespace troupe::quant
