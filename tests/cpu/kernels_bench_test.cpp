// Benchmarks (hidden: run with `test_cpu [.bench]`). Print, do not assert: numbers depend
// on the machine and its load.
//
//   pool    dispatch overhead of parallel_for / run_on_all
//   bw      measure_read_bandwidth (all pool threads, 1 GiB)
//   gemv    T=1 GB/s of weights streamed, cold (weights cycled through > 8x L3) and hot
//   small-T multi-row GEMV vs sgemm for T = 1..32 (the crossover in kernels_gemm.cpp)
//   gemm    GFLOP/s for T = 32/128/512
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <hwy/targets.h>

#include "cpu/kernels.h"
#include "cpu/kernels_internal.h"
#include "test_data.h"

using namespace troupe;
using namespace troupe::cpu;
using Clock = std::chrono::steady_clock;

namespace {

// TROUPE_BENCH_TARGET=AVX2 forces Highway's dispatch to AVX2 (compare kernels of equal
// width with OpenBLAS's Haswell kernel).
struct ForceTarget {
  ForceTarget() {
    const char* e = std::getenv("TROUPE_BENCH_TARGET");
    if (e && std::string(e) == "AVX2") hwy::SetSupportedTargetsForTest(HWY_AVX2);
  }
  ~ForceTarget() { hwy::SetSupportedTargetsForTest(0); }
};

int bench_threads() {
  const char* e = std::getenv("TROUPE_BENCH_THREADS");
  return e ? std::atoi(e) : 0;
}

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Best-of-`reps` time of fn() in seconds, each rep running fn `inner` times.
template <typename Fn>
double best_time(int reps, int inner, Fn fn) {
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = Clock::now();
    for (int i = 0; i < inner; ++i) fn(i);
    best = std::min(best, seconds_since(t0) / inner);
  }
  return best;
}

struct Shape {
  int64_t out, in;
};
const Shape kShapes[] = {{768, 2048}, {2048, 768}, {32000, 768}, {2048, 2048}};

}  // namespace

TEST_CASE("bench: pool dispatch", "[.bench][.pool-bench]") {
  ForceTarget force_target;
  ThreadPool pool(bench_threads());
  const int n = 100000;
  const double empty = best_time(3, n, [&](int) {
    pool.parallel_for(pool.size(), 1, [](int, int64_t, int64_t) {});
  });
  const double roa = best_time(3, n, [&](int) { pool.run_on_all([](int) {}); });
  // Each chunk spins for 10 us: the overhead is what the call costs beyond that.
  const auto work = std::chrono::microseconds(10);
  const double busy = best_time(3, n / 10, [&](int) {
    pool.parallel_for(pool.size(), 1, [&](int, int64_t, int64_t) {
      const auto t0 = Clock::now();
      while (Clock::now() - t0 < work) {
      }
    });
  });
  std::printf("pool(%d threads): parallel_for empty %.2f us, with 10 us per chunk %.2f us "
              "overhead; run_on_all empty %.2f us\n",
              pool.size(), empty * 1e6, busy * 1e6 - 10, roa * 1e6);
}

TEST_CASE("bench: bandwidth and GEMV", "[.bench][.gemv-bench]") {
  ForceTarget force_target;
  ThreadPool pool(bench_threads());
  const double bw = measure_read_bandwidth(pool);
  std::printf("read bandwidth (%d threads): %.1f GB/s\n", pool.size(), bw / 1e9);
  for (DType dt : {DType::F32, DType::F16}) {
    for (const Shape& s : kShapes) {
      // Enough distinct copies that each call reads its weights from DRAM, as in decode
      // where every layer's matrices are touched once per token.
      const int64_t bytes = dtype_row_bytes(dt, s.in) * s.out;
      const int copies = int(std::max<int64_t>(1, (int64_t(512) << 20) / bytes));
      std::vector<test::OwnedMatrix> W;
      for (int c = 0; c < copies; ++c) W.push_back(test::random_matrix(dt, s.out, s.in, c));
      const auto x = test::random_floats(s.in, 9);
      std::vector<float> y(s.out);
      const int inner = std::max(copies, 20);
      const double cold = best_time(3, inner, [&](int i) {
        matmul(pool, x.data(), 1, W[i % copies].view, y.data());
      });
      const double hot = best_time(3, 50, [&](int) { matmul(pool, x.data(), 1, W[0].view, y.data()); });
      std::printf("gemv %-4s %5ldx%-5ld %7.1f MB: cold %6.1f GB/s (%3.0f%% of bw) %7.1f us | hot %6.1f GB/s\n",
                  std::string(dtype_name(dt)).c_str(), long(s.out), long(s.in), bytes / 1e6,
                  bytes / cold / 1e9, 100 * bytes / cold / bw, cold * 1e6, bytes / hot / 1e9);
    }
  }
}

TEST_CASE("bench: small T, multi-row GEMV vs sgemm", "[.bench][.gemm-bench]") {
  ForceTarget force_target;
  ThreadPool pool(bench_threads());
  for (DType dt : {DType::F32, DType::F16}) {
    const Shape s{2048, 2048};
    const int64_t bytes = dtype_row_bytes(dt, s.in) * s.out;
    const int copies = int(std::max<int64_t>(1, (int64_t(256) << 20) / bytes));
    std::vector<test::OwnedMatrix> W;
    for (int c = 0; c < copies; ++c) W.push_back(test::random_matrix(dt, s.out, s.in, c));
    for (int64_t T : {1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 128, 512}) {
      const auto x = test::random_floats(T * s.in, 3);
      std::vector<float> y(T * s.out);
      const double mr = best_time(3, copies, [&](int i) {
        detail::matmul_multirow(pool, x.data(), T, W[i % copies].view, y.data(), nullptr);
      });
      const double sg = best_time(3, copies, [&](int i) {
        detail::matmul_sgemm(pool, x.data(), T, W[i % copies].view, y.data(), nullptr);
      });
      const double tl = best_time(3, copies, [&](int i) {
        detail::matmul_tiled(pool, x.data(), T, W[i % copies].view, y.data(), nullptr);
      });
      const double flop = 2.0 * T * s.out * s.in;
      std::printf("%s %ldx%ld T=%3ld: multirow %8.1f us (%6.1f GFLOP/s)  sgemm %8.1f us (%6.1f GFLOP/s)  tiled %8.1f us (%6.1f GFLOP/s)\n",
                  std::string(dtype_name(dt)).c_str(), long(s.out), long(s.in), long(T), mr * 1e6,
                  flop / mr / 1e9, sg * 1e6, flop / sg / 1e9, tl * 1e6, flop / tl / 1e9);
    }
  }
}

TEST_CASE("bench: GEMM", "[.bench][.gemm-bench]") {
  ForceTarget force_target;
  ThreadPool pool(bench_threads());
  for (DType dt : {DType::F32, DType::F16})
    for (const Shape& s : kShapes)
      for (int64_t T : {32, 128, 512}) {
        const auto W = test::random_matrix(dt, s.out, s.in, 1);
        const auto x = test::random_floats(T * s.in, 2);
        std::vector<float> y(T * s.out);
        const double flop = 2.0 * T * s.out * s.in;
        const int inner = std::max(1, int(2e9 / flop));
        const double t = best_time(3, inner, [&](int) { matmul(pool, x.data(), T, W.view, y.data()); });
        std::printf("gemm %-4s %5ldx%-5ld T=%3ld: %8.2f ms  %6.1f GFLOP/s\n",
                    std::string(dtype_name(dt)).c_str(), long(s.out), long(s.in), long(T),
                    t * 1e3, flop / t / 1e9);
      }
}

TEST_CASE("bench: attention", "[.bench][.attention-bench]") {
  ForceTarget force_target;
  const int64_t hd = 128, n_kv = 8, n_heads = 32, bs = 16;
  for (int64_t n_ctx : {128, 1024, 4096}) {
    const int64_t nb = (n_ctx + bs - 1) / bs;
    std::vector<int32_t> table(nb);
    for (int64_t i = 0; i < nb; ++i) table[i] = int32_t(i);
    const auto k = test::random_floats(nb * bs * n_kv * hd, 1);
    const auto v = test::random_floats(nb * bs * n_kv * hd, 2);
    const auto q = test::random_floats(n_heads * hd, 3);
    PagedKv kv{k.data(), v.data(), table.data(), bs, n_kv, hd};
    std::vector<float> out(n_heads * hd), scratch(n_ctx);
    const double t = best_time(3, 20, [&](int) {
      attention_one(q.data(), n_heads, kv, n_ctx, 0.088f, out.data(), scratch.data());
    });
    const double bytes = 2.0 * n_heads * n_ctx * hd * 4;  // K and V read once per q head
    std::printf("attention 1 thread, %ld heads / %ld kv, hd %ld, n_ctx %5ld: %8.1f us (%5.1f GB/s of K/V reads)\n",
                long(n_heads), long(n_kv), long(hd), long(n_ctx), t * 1e6, bytes / t / 1e9);
  }
}
