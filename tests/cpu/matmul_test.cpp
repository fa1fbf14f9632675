// matmul (both strategies) against the scalar reference.
#include <catch2/catch.hpp>
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/half.h"
#include "cpu/host_tuning.h"
#include "cpu/kernels.h"
#include "cpu/kernels_internal.h"
#include "cpu/reference.h"
#include "test_data.h"

using namespace troupe;
using namespace troupe::cpu;
using troupe::test::random_floats;
using troupe::test::random_matrix;

namespace {

using MatmulFn = void (*)(ThreadPool&, const float*, int64_t, const TensorView&, float*,
                          const float*);

void plain_matmul(ThreadPool& pool, const float* x, int64_t T, const TensorView& W, float* y,
                  const float* bias) {
  matmul(pool, x, T, W, y, bias);
}

// matmul on W repacked into MatrixLayout::Panels (as the CPU backend runs it), padding
// rows filled with NaN so that a kernel reading them into an output shows.
void panel_matmul(ThreadPool& pool, const float* x, int64_t T, const TensorView& W, float* y,
                  const float* bias) {
  const int64_t bytes = panel_bytes(W.dtype, W.rows(), W.cols());
  std::vector<uint8_t> buf(static_cast<size_t>(bytes), 0xff);  // 0xffff...: NaN in F32, F16, BF16
  pack_panels(pool, W, 0, buf.data());
  TensorView P = W;
  P.data = buf.data();
  P.layout = MatrixLayout::Panels;
  matmul(pool, x, T, P, y, bias);
}

// Checks y against the reference with an error bound relative to sum_i |x_i w_i| (the
// scale of the rounding error of any summation order; the result itself may cancel).
void check_matmul(MatmulFn fn, ThreadPool& pool, DType dt, int64_t out, int64_t in, int64_t T,
                  bool with_bias, uint32_t seed) {
  INFO(dtype_name(dt) << " out " << out << " in " << in << " T " << T << " bias " << with_bias
                      << " threads " << pool.size());
  const auto W = random_matrix(dt, out, in, seed);
  const auto x = random_floats(T * in, seed + 1);
  const auto bias = random_floats(out, seed + 2);
  std::vector<float> y(T * out, NAN), want(T * out);
  fn(pool, x.data(), T, W.view, y.data(), with_bias ? bias.data() : nullptr);
  ref::matmul(x.data(), T, W.view, want.data(), with_bias ? bias.data() : nullptr);

  // |x| . |w| via the reference on absolute values.
  std::vector<float> ax(x.size());
  for (size_t i = 0; i < x.size(); ++i) ax[i] = std::fabs(x[i]);
  auto Wabs = W;
  Wabs.view.data = Wabs.bytes.data();
  for (int64_t i = 0; i < out * in; ++i) {
    if (dt == DType::F32) {
      float v;
      std::memcpy(&v, Wabs.bytes.data() + 4 * i, 4);
      v = std::fabs(v);
      std::memcpy(Wabs.bytes.data() + 4 * i, &v, 4);
    } else {
      Wabs.bytes[2 * i + 1] &= 0x7f;  // clear the sign bit of the half
    }
  }
  std::vector<float> scale(T * out);
  ref::matmul(ax.data(), T, Wabs.view, scale.data());
  const double rel = 1e-5;
  for (int64_t i = 0; i < T * out; ++i) {
    const double tol = rel * (scale[i] + (with_bias ? std::fabs(bias[i % out]) : 0.0)) + 1e-30;
    if (!(std::fabs(double(y[i]) - double(want[i])) <= tol)) {
      FAIL("y[" << i / out << "," << i % out << "] = " << y[i] << ", want " << want[i]
                << " (tol " << tol << ")");
    }
  }
}

// Batch invariance at the kernel: every row of fn's T-token calls, T in ts, compared bit for
// bit with the same token run alone (solo_t copies of it per call); checks no bit differs.
// With a bias when with_bias (it is added after the sums, so it takes part in the rounding).
void check_rows_whatever_t(MatmulFn fn, ThreadPool& pool, DType dt, int64_t out, int64_t in,
                           uint32_t seed, int64_t solo_t, const std::vector<int64_t>& ts,
                           bool with_bias = false) {
  const auto W = random_matrix(dt, out, in, seed);
  const int64_t max_t = *std::max_element(ts.begin(), ts.end());
  const auto x = random_floats(max_t * in, seed + 1);
  const auto bias_values = random_floats(out, seed + 2);
  const float* bias = with_bias ? bias_values.data() : nullptr;
  std::vector<float> alone(max_t * out), xs(solo_t * in), ys(solo_t * out);
  for (int64_t t = 0; t < max_t; ++t) {
    for (int64_t c = 0; c < solo_t; ++c) std::copy_n(x.data() + t * in, in, xs.data() + c * in);
    fn(pool, xs.data(), solo_t, W.view, ys.data(), bias);
    std::copy_n(ys.data(), out, alone.data() + t * out);
  }
  for (int64_t T : ts) {
    INFO(dtype_name(dt) << " out " << out << " in " << in << " T " << T);
    std::vector<float> y(T * out);
    fn(pool, x.data(), T, W.view, y.data(), bias);
    int64_t differ = 0;
    for (int64_t i = 0; i < T * out; ++i) differ += std::memcmp(&y[i], &alone[i], 4) != 0;
    CHECK(differ == 0);
  }
}

}  // namespace

TEST_CASE("matmul: GEMV and small-T multi-row GEMV", "[cpu][matmul]") {
  test::for_each_target([&] {
    ThreadPool pool(3);
    uint32_t seed = 1;
    for (DType dt : {DType::F32, DType::F16})
      for (auto [out, in] : {std::pair<int64_t, int64_t>{1, 1}, {7, 13}, {33, 100}, {64, 768},
                             {130, 257}, {300, 512}, {37, 9000}})  // 9000: chunked over K from T = 4
        for (int64_t T : {1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 20})
          check_matmul(detail::matmul_multirow, pool, dt, out, in, T, T % 2 == 1, seed++);
  });
}

// Batch invariance at the kernel: a token's outputs must not depend on how many other
// tokens share the call (speculative verification runs 1 + k rows where decode runs 1, and
// greedy speculative output must equal plain decoding), for F32 and F16 alike.
TEST_CASE("matmul: multi-row GEMV rows are bit-identical whatever T", "[cpu][matmul]") {
  test::for_each_target([&] {
    ThreadPool pool(2);
    uint32_t seed = 100;
    for (DType dt : {DType::F32, DType::F16})
      for (auto [out, in] : {std::pair<int64_t, int64_t>{33, 100}, {130, 257}, {64, 768}, {40, 2048},
                             {37, 9000}, {18, 16400}}) {  // chunked over K from T = 4 / 2
        std::vector<int64_t> ts;
        for (int64_t T = 1; T <= 13; ++T) ts.push_back(T);
        check_rows_whatever_t(detail::matmul_multirow, pool, dt, out, in, seed, 1, ts);
        seed += 2;
      }
  });
}

TEST_CASE("matmul: weights in panels", "[cpu][matmul][panels]") {
  test::for_each_target([&] {
    ThreadPool pool(3);
    uint32_t seed = 500;
    for (DType dt : {DType::F32, DType::F16, DType::BF16})
      for (auto [out, in] : {std::pair<int64_t, int64_t>{1, 1}, {7, 13}, {64, 100}, {130, 257},
                             {300, 512}, {37, 9000}})
        for (int64_t T : {1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 13, 32, 33, 70})
          check_matmul(panel_matmul, pool, dt, out, in, T, T % 2 == 1, seed++);
  });
}

// Every (token, row) sum in panels is the same FMA sequence whether it runs in one pass
// (T up to the token group, or with AVX-512 up to 10 F32 / 9 16-bit tokens, the sums past
// the 6th in an L1 buffer), in token groups over input slices (more tokens), or on
// another thread: so any token's outputs are the same bits at every T, the decode step's,
// a verification run's and a prefill chunk's alike. Shapes end in a partial panel and,
// for in = 300 and 2100, in a partial input slice. Under each host tuning table
// (cpu/host_tuning.h), whose F32 steps differ only in their no-ops (1-3 tokens), in the
// cache level they fetch into (2-10 tokens in one pass; in slices, the next slice) and in
// the slices' size (AVX-512, 11-16 tokens: 64 inputs with AMD's table, 128 with Intel's).
TEST_CASE("matmul: rows in panels are bit-identical whatever T", "[cpu][matmul][panels]") {
  const HostTuning saved = host_tuning();
  for (const HostTuning& tuning : {amd_host_tuning(), intel_host_tuning()}) {
    set_host_tuning(tuning);
    INFO(tuning.name << " tuning");
    test::for_each_target([&] {
      ThreadPool pool(2);
      uint32_t seed = 600;
      for (DType dt : {DType::F32, DType::F16, DType::BF16})
        for (auto [out, in] : {std::pair<int64_t, int64_t>{100, 300}, {64, 128}, {200, 2100}}) {
          for (bool with_bias : {false, true})
            check_rows_whatever_t(panel_matmul, pool, dt, out, in, seed, 1,
                                  {2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 16, 17, 32, 33, 64, 100}, with_bias);
          seed += 2;
        }
    });
  }
  set_host_tuning(saved);
}

// A matrix of fewer than kInputSplitBelowPanels panels and enough inputs is summed in parts
// of its inputs (panel_input_parts): still within the reference's rounding, and still the
// same bits at every T and every pool size.
TEST_CASE("matmul: narrow panel matrices are summed in parts of their inputs", "[cpu][matmul][panels]") {
  CHECK(panel_input_parts(128, 16384) == 8);  // the grown target's down_proj
  CHECK(panel_input_parts(128, 4096) == 2);
  CHECK(panel_input_parts(64, 6144) == 3);
  CHECK(panel_input_parts(128, 4100) == 2);   // parts of 2050
  CHECK(panel_input_parts(128, 4095) == 1);   // fewer than 2 x kInputPartMin inputs
  CHECK(panel_input_parts(128, 6145) == 1);   // 3 parts would not divide it
  CHECK(panel_input_parts(256, 16384) == 1);  // 4 panels: split by rows
  CHECK(panel_input_parts(768, 2048) == 1);   // the 110M shape's down_proj
  test::for_each_target([&] {
    uint32_t seed = 900;
    ThreadPool pool(2);
    for (DType dt : {DType::F32, DType::F16, DType::BF16})
      for (auto [out, in] : {std::pair<int64_t, int64_t>{128, 16384}, {100, 4100}, {64, 6144}})
        for (int64_t T : {1, 5, 7})  // one pass; token groups over input slices
          check_matmul(panel_matmul, pool, dt, out, in, T, T != 5, seed++);
    for (DType dt : {DType::F32, DType::F16})
      check_rows_whatever_t(panel_matmul, pool, dt, 128, 16384, seed++, 1, {2, 5, 7, 32}, true);
    // Pool sizes 1-3: the same bits, in one pass (T = 5) and in token groups (T = 32).
    ThreadPool one(1), two(2), three(3);
    for (DType dt : {DType::F32, DType::F16})
      for (int64_t T : {5, 32}) {
        INFO(dtype_name(dt) << " T " << T);
        const auto W = random_matrix(dt, 128, 16384, seed);
        const auto x = random_floats(T * 16384, seed + 1);
        std::vector<float> want(size_t(T * 128)), got(want.size());
        panel_matmul(one, x.data(), T, W.view, want.data(), nullptr);
        for (ThreadPool* p : {&two, &three}) {
          panel_matmul(*p, x.data(), T, W.view, got.data(), nullptr);
          CHECK(std::memcmp(got.data(), want.data(), want.size() * 4) == 0);
        }
        seed += 2;
      }
  });
}

// matmul_glu_pairs on gate and up packed by pack_panels_paired: the bits of the two
// matmuls in panels and then silu_mul_to, for every T, dtype and pool size.
TEST_CASE("matmul_glu_pairs: the bits of gate and up in panels then silu_mul_to", "[cpu][matmul][panels]") {
  test::for_each_target([&] {
    uint32_t seed = 950;
    for (int threads : {1, 2, 3}) {
      ThreadPool pool(threads);
      for (DType dt : {DType::F32, DType::F16, DType::BF16})
        for (auto [I, in] : {std::pair<int64_t, int64_t>{64, 100}, {192, 128}, {1024, 300}}) {
          INFO(dtype_name(dt) << " I " << I << " in " << in << " threads " << threads);
          const auto G = random_matrix(dt, I, in, seed), U = random_matrix(dt, I, in, seed + 1);
          std::vector<uint8_t> paired(static_cast<size_t>(panel_bytes(dt, 2 * I, in)), 0xff);
          pack_panels_paired(pool, G.view, U.view, paired.data());
          TensorView P = G.view;
          P.shape = {2 * I, in};
          P.data = paired.data();
          P.layout = MatrixLayout::Panels;
          for (int64_t T : {1, 5, 7, 9, 10, 32, 70}) {
            INFO("T " << T);
            const auto x = random_floats(T * in, seed + 2 + uint32_t(T));
            std::vector<float> g(T * I), u(T * I), want(T * I), got(T * I, NAN);
            panel_matmul(pool, x.data(), T, G.view, g.data(), nullptr);
            panel_matmul(pool, x.data(), T, U.view, u.data(), nullptr);
            for (int64_t t = 0; t < T; ++t) silu_mul_to(want.data() + t * I, g.data() + t * I, u.data() + t * I, I);
            matmul_glu_pairs(pool, x.data(), T, P, got.data());
            CHECK(std::memcmp(got.data(), want.data(), want.size() * 4) == 0);
          }
          seed += 100;
        }
    }
  });
  ThreadPool pool(2);
  const auto A = random_matrix(DType::F32, 64, 32, 1), B = random_matrix(DType::F32, 128, 32, 2);
  const auto C = random_matrix(DType::F16, 64, 32, 3), D = random_matrix(DType::F32, 40, 32, 4);
  std::vector<uint8_t> buf(static_cast<size_t>(panel_bytes(DType::F32, 256, 32)));
  CHECK_THROWS_AS(pack_panels_paired(pool, A.view, B.view, buf.data()), troupe::Error);  // shapes
  CHECK_THROWS_AS(pack_panels_paired(pool, A.view, C.view, buf.data()), troupe::Error);  // dtypes
  CHECK_THROWS_AS(pack_panels_paired(pool, D.view, D.view, buf.data()), troupe::Error);  // a part panel
  TensorView rows = A.view;  // row-major, not pairs of panels
  std::vector<float> x(32), act(32);
  CHECK_THROWS_AS(matmul_glu_pairs(pool, x.data(), 1, rows, act.data()), troupe::Error);
  // Gate and up that alone would be summed in parts of their inputs (64 rows, 4096 inputs):
  // the pairs sum them whole, which would not be matmul's bits, so they are refused.
  const auto G = random_matrix(DType::F32, 64, 4096, 5), U = random_matrix(DType::F32, 64, 4096, 6);
  REQUIRE(panel_input_parts(64, 4096) > 1);
  std::vector<uint8_t> narrow(static_cast<size_t>(panel_bytes(DType::F32, 128, 4096)));
  pack_panels_paired(pool, G.view, U.view, narrow.data());
  TensorView N = G.view;
  N.shape = {128, 4096};
  N.data = narrow.data();
  N.layout = MatrixLayout::Panels;
  std::vector<float> xn(4096, 0.5f), actn(64);
  CHECK_THROWS_AS(matmul_glu_pairs(pool, xn.data(), 1, N, actn.data()), troupe::Error);
}

TEST_CASE("matmul: pack_panels stacks matrices and rejects other layouts", "[cpu][matmul][panels]") {
  ThreadPool pool(2);
  // Two members of 40 and 50 rows packed as rows [0, 40) and [40, 90) of one stack run as
  // the stack does when packed whole.
  const auto A = random_matrix(DType::F16, 40, 70, 1), B = random_matrix(DType::F16, 50, 70, 2);
  std::vector<uint8_t> both(A.bytes);
  both.insert(both.end(), B.bytes.begin(), B.bytes.end());
  TensorView whole = A.view;
  whole.shape = {90, 70};
  whole.data = both.data();
  std::vector<uint8_t> p1(static_cast<size_t>(panel_bytes(DType::F16, 90, 70)), 0);
  std::vector<uint8_t> p2(p1.size(), 0);
  pack_panels(pool, whole, 0, p1.data());
  pack_panels(pool, A.view, 0, p2.data());
  pack_panels(pool, B.view, 40, p2.data());
  CHECK(p1 == p2);
  TensorView P = whole;
  P.data = p1.data();
  P.layout = MatrixLayout::Panels;
  // to_f32 reads a panel matrix back in row-major order.
  std::vector<float> a(90 * 70), b(90 * 70);
  to_f32(whole, a.data());
  to_f32(P, b.data());
  CHECK(a == b);
  std::vector<float> row(70);
  CHECK_THROWS_AS(embedding_row(P, 0, row.data()), troupe::Error);
  CHECK_THROWS_AS(pack_panels(pool, P, 0, p2.data()), troupe::Error);
  // A BF16 panel matrix (no row-major kernel) with no tokens is a no-op, not an error.
  const auto Bf = random_matrix(DType::BF16, 40, 70, 3);
  std::vector<uint8_t> pb(static_cast<size_t>(panel_bytes(DType::BF16, 40, 70)), 0);
  pack_panels(pool, Bf.view, 0, pb.data());
  TensorView PB = Bf.view;
  PB.data = pb.data();
  PB.layout = MatrixLayout::Panels;
  std::vector<float> x0(70, 1.0f), y0(40, 5.0f);
  CHECK_NOTHROW(matmul(pool, x0.data(), 0, PB, y0.data()));
  CHECK(y0[0] == 5.0f);
  TensorView q8 = A.view;  // a block-quantized matrix has no panel form
  q8.dtype = DType::Q8_0;
  q8.shape = {4, 32};
  CHECK_THROWS_AS(pack_panels(pool, q8, 0, p2.data()), troupe::Error);
}

TEST_CASE("matmul: sgemm path", "[cpu][matmul]") {
  ThreadPool pool(2);
  uint32_t seed = 100;
  for (DType dt : {DType::F32, DType::F16})
    for (auto [out, in] : {std::pair<int64_t, int64_t>{1, 1}, {7, 13}, {33, 100}, {130, 257},
                           {600, 384}})
      for (int64_t T : {2, 17, 33, 64})
        check_matmul(detail::matmul_sgemm, pool, dt, out, in, T, T % 2 == 1, seed++);
}

TEST_CASE("matmul: tiled Highway GEMM", "[cpu][matmul]") {
  test::for_each_target([&] {
    ThreadPool pool(2);
    uint32_t seed = 300;
    for (DType dt : {DType::F32, DType::F16})
      for (auto [out, in] : {std::pair<int64_t, int64_t>{1, 1}, {7, 13}, {33, 100}, {130, 257},
                             {200, 600}, {97, 1030}})
        for (int64_t T : {1, 2, 17, 33, 64, 100})
          check_matmul(detail::matmul_tiled, pool, dt, out, in, T, T % 2 == 1, seed++);
  });
}

// The same for the tiled GEMM: up to one token block (32 tokens with AVX-512) it reads F32
// weights in place and widens F16 a panel at a time, above that it packs W blocks; a
// token's outputs must be the same bits either way (the blocks of 12 rows end in a
// partial panel for out = 100 and 37, K = 600 ends in a partial slice).
TEST_CASE("matmul: tiled GEMM rows are bit-identical whatever T", "[cpu][matmul]") {
  test::for_each_target([&] {
    ThreadPool pool(2);
    uint32_t seed = 400;
    for (DType dt : {DType::F32, DType::F16})
      for (auto [out, in] : {std::pair<int64_t, int64_t>{100, 600}, {37, 256}, {200, 1030}}) {
        for (bool with_bias : {false, true})
          check_rows_whatever_t(detail::matmul_tiled, pool, dt, out, in, seed, 1,
                                {2, 15, 16, 17, 32, 33, 48, 64, 70}, with_bias);
        seed += 2;
      }
  });
}

TEST_CASE("matmul: public entry point across the crossover and pool sizes", "[cpu][matmul]") {
  test::for_each_target([&] {
    uint32_t seed = 200;
    for (int threads : {1, 2, 4}) {
      ThreadPool pool(threads);
      for (DType dt : {DType::F32, DType::F16})
        for (int64_t T : {1, 2, 8, 12, 13, 16, 17, 24, 25, 40, 48, 49, 70})
          check_matmul(plain_matmul, pool, dt, 97, 131, T, true, seed++);
      // Large enough to split over threads.
      check_matmul(plain_matmul, pool, DType::F16, 1000, 96, 1, false, seed++);
      check_matmul(plain_matmul, pool, DType::F32, 1000, 96, 3, false, seed++);
    }
  });
}

TEST_CASE("matmul: rejects unsupported weight dtypes", "[cpu][matmul]") {
  ThreadPool pool(1);
  const auto W = random_matrix(DType::BF16, 4, 8, 7);
  std::vector<float> x(8, 1.0f), y(4);
  CHECK_THROWS_AS(matmul(pool, x.data(), 1, W.view, y.data()), troupe::Error);
}

// The probe's two loops read every element: their sums equal a plain sum (small integers,
// exact in floats), tails past whole vectors included, on every compiled SIMD target.
TEST_CASE("read probe loops sum every element", "[cpu][bandwidth]") {
  test::for_each_target([&] {
    for (const int64_t n : {int64_t(0), int64_t(5), int64_t(1000), int64_t(4096 + 37)}) {
      std::vector<float> f(static_cast<size_t>(n));
      std::vector<uint16_t> h(static_cast<size_t>(n));
      double want = 0;
      for (int64_t i = 0; i < n; ++i) {
        f[i] = static_cast<float>(i % 7);
        h[i] = f32_to_f16(f[i]);
        want += f[i];
      }
      CHECK(detail::read_sum(f.data(), n) == Approx(want));
      CHECK(detail::read_halves_sum(h.data(), n) == Approx(want));
    }
  });
}

TEST_CASE("measure_read_bandwidth returns a plausible rate", "[cpu][bandwidth]") {
  ThreadPool pool(2);
  const double bw = measure_read_bandwidth(pool, int64_t(64) << 20);
  CHECK(bw > 1e8);   // > 0.1 GB/s
  CHECK(bw < 1e13);  // < 10 TB/s
}
