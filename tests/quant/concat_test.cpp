// concat_rows / row_slice: stacking the matrices of linear layers that share one input
// (q/k/v, gate/up) so they run as one qmatmul. The stack must hold every part's weights,
// scales and zero points unchanged (checked element by element, the scalar view of the
// packed layout), and one qmatmul over it must give exactly the parts' outputs side by side.
#include <catch2/catch.hpp>

#include <vector>

#include "cpu/thread_pool.h"
#include "quant/qmatmul.h"
#include "quant/qtensor.h"
#include "quant_test_util.h"

using namespace troupe;
using namespace troupe::quant;

namespace {

QuantizedMatrix make(QFormat f, int64_t out, int64_t in, uint32_t seed) {
  const auto w = test::random_weights(out, in, seed);
  switch (f) {
    case QFormat::Int8: return quantize_int8(w.data(), out, in);
    case QFormat::Int4: return quantize_int4(w.data(), out, in, 64);
    default: break;
  }
  TensorView v;
  v.dtype = DType::F32;
  v.shape = {out, in};
  v.data = w.data();
  v.nbytes = out * in * 4;
  return quantize(v, f);  // Q8_0 / Q4_0 from floats
}

void require_same_elements(const QuantizedMatrix& a, int64_t ra, const QuantizedMatrix& b, int64_t rb) {
  for (int64_t i = 0; i < a.cols(); ++i) {
    REQUIRE(a.q(ra, i) == b.q(rb, i));
    REQUIRE(a.zero(ra, i) == b.zero(rb, i));
    REQUIRE(a.scale(ra, i) == b.scale(rb, i));
  }
}

}  // namespace

TEST_CASE("concat_rows stacks quantized matrices exactly", "[quant][concat]") {
  cpu::ThreadPool pool(2);
  const int64_t in = 128;
  // Whole tiles except the last part (a partial tile is allowed only at the end).
  const std::vector<int64_t> rows = {64, 32, 20};
  for (QFormat f : {QFormat::Int8, QFormat::Int4, QFormat::Q8_0, QFormat::Q4_0}) {
    INFO("format " << qformat_name(f));
    std::vector<QuantizedMatrix> parts;
    for (size_t p = 0; p < rows.size(); ++p) parts.push_back(make(f, rows[p], in, uint32_t(10 + p)));
    std::vector<const QuantizedMatrix*> ptrs;
    for (auto& p : parts) ptrs.push_back(&p);
    const QuantizedMatrix stack = concat_rows(ptrs);
    REQUIRE(stack.rows() == 116);
    REQUIRE(stack.cols() == in);
    REQUIRE(stack.format() == f);
    REQUIRE(stack.group() == parts[0].group());

    int64_t r0 = 0, bytes = 0;
    for (const auto& p : parts) {
      for (int64_t r = 0; r < p.rows(); ++r) require_same_elements(p, r, stack, r0 + r);
      const QuantizedMatrix slice = stack.row_slice(r0, r0 + p.rows());
      REQUIRE(slice.rows() == p.rows());
      REQUIRE(slice.nbytes() == p.nbytes());  // weight_bytes_per_token stays the same
      for (int64_t r = 0; r < p.rows(); ++r) require_same_elements(p, r, slice, r);
      const QuantizedMatrix copy = slice.clone();  // a slice clones its own rows only
      REQUIRE(copy.nbytes() == p.nbytes());
      for (int64_t r = 0; r < p.rows(); ++r) require_same_elements(p, r, copy, r);
      r0 += p.rows();
      bytes += p.nbytes();
    }

    // One qmatmul over the stack == the parts' qmatmuls side by side, bit for bit.
    std::vector<float> bias(116);
    for (size_t i = 0; i < bias.size(); ++i) bias[i] = 0.01f * float(i) - 0.3f;
    for (int64_t T : {1, 3, 8}) {
      const auto x = test::random_acts(T, in, 5);
      std::vector<float> y(size_t(T * 116));
      qmatmul(pool, x.data(), T, stack, y.data(), bias.data());
      int64_t c0 = 0;
      for (const auto& p : parts) {
        std::vector<float> yp(size_t(T * p.rows()));
        qmatmul(pool, x.data(), T, p, yp.data(), bias.data() + c0);
        for (int64_t t = 0; t < T; ++t)
          for (int64_t r = 0; r < p.rows(); ++r)
            REQUIRE(y[size_t(t * 116 + c0 + r)] == yp[size_t(t * p.rows() + r)]);
        c0 += p.rows();
      }
    }
  }
}

TEST_CASE("concat_rows refuses what cannot be stacked", "[quant][concat]") {
  const QuantizedMatrix a = make(QFormat::Int8, 20, 64, 1), b = make(QFormat::Int8, 16, 64, 2);
  const QuantizedMatrix c = make(QFormat::Int4, 16, 64, 3), d = make(QFormat::Int8, 16, 96, 4);
  auto stack = [](std::vector<const QuantizedMatrix*> v) { return concat_rows(v); };
  CHECK(stack({&a, &b}).empty());   // a partial tile before the last part
  CHECK(!stack({&b, &a}).empty());  // ... is fine at the end
  CHECK(stack({&b, &c}).empty());   // formats differ
  CHECK(stack({&b, &d}).empty());   // input sizes differ
  CHECK_THROWS(b.row_slice(8, 16));  // not whole tiles
}
