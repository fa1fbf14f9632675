#pragma once
// How a model's weights are quantized when a backend loads it: the `--quantization` flag
// of `troupe generate / bench / eval` and EngineConfig::quantization. Kept free of other
// troupe headers so the Engine API can carry it without pulling in the kernels.
#include <cstdint>
#include <string>
#include <string_view>

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

std::string_view method_name(Method m);
std::string_view lm_head_name(LmHead h);
// "none" | "int8" | "int4" | "awq"; throws troupe::Error on anything else.
Method parse_method(std::string_view s);
// "auto" | "float" | "int8" | "int4".
LmHead parse_lm_head(std::string_view s);
// Throws troupe::Error on an unsupported group size.
void validate(const Options& o);
// "none", "int8", "int4-g128", "awq" (+ ", lm_head int8" when not the default).
std::string describe(const Options& o);

}  // namespace troupe::quant
