#pragma once
// A non-owning view of one weight tensor as stored (memory-mapped file or a converted buffer
// kept alive by ModelWeights::owners). Matrices are row-major [out, in]: row r holds the
// weights of output r, contiguous over the input dimension - the PyTorch/HF layout, and
// also GGUF's (ne[0] = in is the fastest dimension).
#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace troupe {

struct TensorView {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;  // outermost first: a matrix is {rows=out, cols=in}
  const void* data = nullptr;
  int64_t nbytes = 0;

  bool empty() const { return data == nullptr; }
  int64_t numel() const {
    int64_t n = 1;
    for (auto d : shape) n *= d;
    return n;
  }
  int64_t rows() const { return shape.size() >= 2 ? shape[0] : 1; }
  int64_t cols() const { return shape.empty() ? 0 : shape.back(); }
  const uint8_t* row_ptr(int64_t r) const {
    return static_cast<const uint8_t*>(data) + r * dtype_row_bytes(dtype, cols());
  }
};

}  // namespace troupe
