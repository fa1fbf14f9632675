#pragma once
// Between the tensors of a pre-quantized checkpoint (model/quantized_checkpoint.h) and the
// kernels' QuantizedMatrix: repacking at load, and the export side for writers.
#include <cstdint>
#include <string>
#include <vector>

#include "cpu/thread_pool.h"
#include "model/checkpoint_writer.h"
#include "model/quantized_checkpoint.h"
#include "quant/qtensor.h"

namespace troupe::quant {

// A stored AutoAWQ or troupe INT8 linear layer, repacked (bit-exact: same q, zeros, scales).
QuantizedMatrix from_stored(const StoredQuantLinear& s, cpu::ThreadPool* pool = nullptr);

// troupe INT8: q [out, in] row-major, s [out]; w[o][i] = q[o][i] * s[o].
QuantizedMatrix from_int8(const int8_t* q, const float* s, int64_t out, int64_t in,
                          cpu::ThreadPool* pool = nullptr);
struct Int8Tensors {
  std::vector<int8_t> q;
  std::vector<float> s;
};
Int8Tensors to_int8(const QuantizedMatrix& m);  // m must be Int8

// The tensors of linear layer `module` ("model.layers.0.self_attn.q_proj") in a checkpoint of
// `bits` (model/checkpoint_writer.h): 4, AutoAWQ qweight/qzeros/scales (m must be Int4 with
// group `group`); 8, troupe INT8 qweight/scales (m must be Int8).
std::vector<StoredTensor> stored_tensors(const std::string& module, const QuantizedMatrix& m, int bits,
                                         int group);

}  // namespace troupe::quant
