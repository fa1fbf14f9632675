#pragma once
// A non-owning view of one weight tensor as stored (memory-mapped file or a converted buffer
// kept alive by ModelWeights::owners). Matrices are row-major [out, in]: row r holds the
// weights of output r, contiguous over the input dimension - the PyTorch/HF layout, and
// also GGUF's (ne[0] = in is the fastest dimension). The CPU backend repacks the float
// matrices it streams into MatrixLayout::Panels at load (cpu/kernels.h: pack_panels).
#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace troupe {

// How a float matrix's elements are ordered in memory.
//  RowMajor: element (r, i) at r * in + i, as stored in model files.
//  Panels:   rows grouped kPanelRows at a time; panel p (rows [64p, 64p + 64)) is an
//            [in][64] block, element (r, i) at (r / 64) * 64 * in + i * 64 + r % 64, the
//            last panel padded with zero rows. A matrix-vector product then reads one
//            sequential stream and sums each output in SIMD lanes without a horizontal
//            reduction (cpu/kernels_panel.cpp).
enum class MatrixLayout : uint8_t { RowMajor, Panels };
constexpr int64_t kPanelRows = 64;

struct TensorView {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;  // outermost first: a matrix is {rows=out, cols=in}
  const void* data = nullptr;
  int64_t nbytes = 0;  // of the elements (without a Panels layout's padding rows)
  MatrixLayout layout = MatrixLayout::RowMajor;

  bool empty() const { return data == nullptr; }
  int64_t numel() const {
    int64_t n = 1;
    for (auto d : shape) n *= d;
    return n;
  }
  int64_t rows() const { return shape.size() >= 2 ? shape[0] : 1; }
  int64_t cols() const { return shape.empty() ? 0 : shape.back(); }
  // RowMajor only.
  const uint8_t* row_ptr(int64_t r) const {
    return static_cast<const uint8_t*>(data) + r * dtype_row_bytes(dtype, cols());
  }
};

}  // namespace troupe
