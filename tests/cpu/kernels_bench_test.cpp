// Benchmarks, hidden from normal runs: `test_cpu "[.bench]"` runs them all, or one of
// "[.pool-bench]", "[.panel-cpu-bench]", "[.gemv-bench]", "[.gemm-bench]", "[.attention-bench]". They print and
// do not assert: numbers depend on the machine and its load. TROUPE_BENCH_THREADS sets
// the pool size (default: all hardware threads), TROUPE_BENCH_TARGET=AVX2 forces the AVX2
// kernels on an AVX-512 machine.
//
//   pool       dispatch overhead of parallel_for / run_on_all (median and mean per call)
//   gemv       measure_read_bandwidth, then T=1 GB/s of weights streamed from DRAM (copies
//              cycled through > 8x L3) for F32/F16, on huge and on 4 KiB pages
//   small T    multi-row GEMV vs sgemm vs tiled GEMM for T = 1..512 (the crossover)
//   gemm       matmul GFLOP/s for T = 32/128/512
//   attention  attention_one over 128..4096 cached positions; a prefill chunk one row at a
//              time vs attention_causal_tile
//   silu       silu_mul_to in the pieces a batched quantized step feeds it ("[.silu-bench]")
#include <sys/mman.h>
#include <time.h>

#include <hwy/targets.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "cpu/host_tuning.h"
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

// This thread's CPU time of fn(0) in seconds: preemption by other processes (a shared
// machine) does not count, cache misses and stalls do.
template <typename Fn>
double thread_cpu_time(Fn fn) {
  timespec t0{}, t1{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
  fn(0);
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
  return double(t1.tv_sec - t0.tv_sec) + 1e-9 * double(t1.tv_nsec - t0.tv_nsec);
}

struct Shape {
  int64_t out, in;
};
// A benchmarked matrix: its name in the printout, weight type and shape.
struct NamedShape {
  const char* name;
  DType dt;
  Shape s;
};
// The start of a matrix's line in a benchmark's printout.
void print_shape(const NamedShape& v) {
  std::printf("%-14s %-3s %5ldx%-5ld", v.name, std::string(dtype_name(v.dt)).c_str(),
              long(v.s.out), long(v.s.in));
}
const Shape kShapes[] = {{768, 2048}, {2048, 768}, {32000, 768}, {2048, 2048}};

}  // namespace

// Median and mean of per-call times (seconds) of fn over n calls. The median is the
// dispatch cost; the mean also counts preemptions by other processes.
template <typename Fn>
std::pair<double, double> per_call(int n, Fn fn) {
  std::vector<double> t(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    const auto t0 = Clock::now();
    fn();
    t[i] = seconds_since(t0);
  }
  double sum = 0;
  for (double v : t) sum += v;
  std::nth_element(t.begin(), t.begin() + n / 2, t.end());
  return {t[n / 2], sum / n};
}

TEST_CASE("bench: pool dispatch", "[.bench][.pool-bench]") {
  ForceTarget force_target;
  ThreadPool pool(bench_threads());
  const int n = 100000;
  const auto empty = per_call(n, [&] { pool.parallel_for(pool.size(), 1, [](int, int64_t, int64_t) {}); });
  const auto roa = per_call(n, [&] { pool.run_on_all([](int) {}); });
  // Every thread spins for 10 us: the overhead is what the call costs beyond that.
  const auto work = std::chrono::microseconds(10);
  const auto busy = per_call(n / 10, [&] {
    pool.run_on_all([&](int) {
      const auto t0 = Clock::now();
      while (Clock::now() - t0 < work) {
      }
    });
  });
  // The same with one 10 us chunk a thread, claimed as decode's matmuls claim theirs.
  const auto busy_for = per_call(n / 10, [&] {
    pool.parallel_for(pool.size(), 1, [&](int, int64_t, int64_t) {
      const auto t0 = Clock::now();
      while (Clock::now() - t0 < work) {
      }
    });
  });
  std::printf("pool(%d threads), median / mean per call: parallel_for empty %.2f / %.2f us; "
              "run_on_all empty %.2f / %.2f us; with 10 us per thread, overhead: run_on_all "
              "%.2f / %.2f us, parallel_for %.2f / %.2f us\n",
              pool.size(), empty.first * 1e6, empty.second * 1e6, roa.first * 1e6,
              roa.second * 1e6, busy.first * 1e6 - 10, busy.second * 1e6 - 10,
              busy_for.first * 1e6 - 10, busy_for.second * 1e6 - 10);
}

// `copies` copies of one random matrix laid out back to back in one arena, on 2 MiB
// pages (transparent huge pages) or on ordinary 4 KiB pages: streaming at tens of GB/s
// walks the page tables every 4 KiB, which alone costs 10-30% of bandwidth here.
struct MatrixArena {
  std::unique_ptr<uint8_t, decltype(&std::free)> mem{nullptr, &std::free};
  std::vector<TensorView> views;
  MatrixArena(DType dt, const Shape& s, int copies, bool huge) {
    const auto one = test::random_matrix(dt, s.out, s.in, 1);
    const size_t bytes = one.bytes.size(), stride = (bytes + 4095) / 4096 * 4096;
    constexpr size_t kHuge = size_t(2) << 20;
    const size_t total = (stride * copies + kHuge - 1) / kHuge * kHuge;
    mem.reset(static_cast<uint8_t*>(std::aligned_alloc(kHuge, total)));
    madvise(mem.get(), total, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
    for (int c = 0; c < copies; ++c) {
      std::memcpy(mem.get() + c * stride, one.bytes.data(), bytes);
      views.push_back(one.view);
      views.back().data = mem.get() + c * stride;
    }
  }
};

TEST_CASE("bench: bandwidth and GEMV", "[.bench][.gemv-bench]") {
  ForceTarget force_target;
  ThreadPool pool(bench_threads());
  const double bw = measure_read_bandwidth(pool);
  std::printf("read bandwidth (%d threads): %.1f GB/s\n", pool.size(), bw / 1e9);
  // Memory bandwidth on a shared host drifts by tens of percent from one second to the
  // next, so each GEMV pass is paired with a plain read pass over the same bytes with the
  // same split ("stream"), alternating; the ratio is the kernel's efficiency.
  for (bool huge : {true, false})
    for (DType dt : {DType::F32, DType::F16})
      for (const Shape& s : kShapes) {
        // Enough distinct copies that each call reads its weights from DRAM, as in decode
        // where every layer's matrices are touched once per token.
        const int64_t bytes = dtype_row_bytes(dt, s.in) * s.out;
        const int copies = int(std::max<int64_t>(4, (int64_t(512) << 20) / bytes));
        MatrixArena W(dt, s, copies, huge);
        const auto x = test::random_floats(s.in, 9);
        std::vector<float> y(s.out);
        std::vector<float> sink(pool.size());
        const int64_t row_bytes = dtype_row_bytes(dt, s.in);
        double gemv = 1e30, stream = 1e30;
        for (int rep = 0; rep < 5; ++rep) {
          gemv = std::min(gemv, best_time(1, copies, [&](int i) {
            matmul(pool, x.data(), 1, W.views[i], y.data());
          }));
          stream = std::min(stream, best_time(1, copies, [&](int i) {
            pool.parallel_for(s.out, 16, [&](int th, int64_t r0, int64_t r1) {
              sink[th] += detail::read_sum(reinterpret_cast<const float*>(W.views[i].row_ptr(r0)),
                                           (r1 - r0) * row_bytes / 4);
            });
          }));
        }
        const double hot = best_time(3, 50, [&](int) { matmul(pool, x.data(), 1, W.views[0], y.data()); });
        std::printf("gemv %-4s %5ldx%-5ld %5.1f MB %s pages: %5.1f GB/s = %3.0f%% of measured bw, "
                    "%3.0f%% of a plain read of the same bytes (%5.1f GB/s); %7.1f us | in cache %5.1f GB/s\n",
                    std::string(dtype_name(dt)).c_str(), long(s.out), long(s.in), bytes / 1e6,
                    huge ? "2M" : "4K", bytes / gemv / 1e9, 100 * bytes / gemv / bw,
                    100 * stream / gemv, bytes / stream / 1e9, gemv * 1e6, bytes / hot / 1e9);
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

// The last `chunk` positions of an n_ctx-token prompt (one prefill chunk), one thread, for
// every KV head: one row at a time (attention_head per token and head, the pre-tile
// backend path) against attention_causal_tile over tiles of 64 query rows (what the
// backend runs). The two alternate, best of several rounds each, so load drifts hit both;
// times are this thread's CPU time, so that preemption by other processes (a shared
// machine) does not count, while cache misses still do.
// GFLOP/s counts the 4 * head_dim flops per (row, visible position) of QK^T and PV.
TEST_CASE("bench: causal attention tile vs per row", "[.bench][.attention-bench]") {
  ForceTarget force_target;
  struct Model {
    const char* name;
    int64_t n_heads, n_kv;
  };
  const int64_t hd = 64, bs = 16, chunk = 128;
  for (const Model m : {Model{"llama-110m", 12, 12}, Model{"llama-1b", 32, 8}})
    for (int64_t n_ctx : {128, 512, 1024, 2048}) {
      const int64_t nb = (n_ctx + bs - 1) / bs, first = n_ctx - chunk, QD = m.n_heads * hd;
      const int64_t G = m.n_heads / m.n_kv, tile = std::max<int64_t>(1, 64 / G);
      std::vector<int32_t> table(nb);
      for (int64_t i = 0; i < nb; ++i) table[i] = int32_t((i * 7) % nb);  // scattered
      const auto k = test::random_floats(nb * bs * m.n_kv * hd, 1);
      const auto v = test::random_floats(nb * bs * m.n_kv * hd, 2);
      const auto q = test::random_floats(chunk * QD, 3);
      PagedKv kv{k.data(), v.data(), table.data(), bs, m.n_kv, hd};
      std::vector<float> out(chunk * QD);
      auto per_row = [&](int) {
        for (int64_t t = 0; t < chunk; ++t)
          for (int64_t h = 0; h < m.n_heads; ++h)
            attention_head(q.data() + t * QD + h * hd, h, m.n_heads, kv, first + t + 1, 0.125f,
                           out.data() + t * QD + h * hd, nullptr);
      };
      auto tiled = [&](int) {
        for (int64_t t0 = 0; t0 < chunk; t0 += tile)
          for (int64_t g = 0; g < m.n_kv; ++g)
            attention_causal_tile(q.data() + t0 * QD, QD, g, m.n_heads, kv, first + t0,
                                  std::min(tile, chunk - t0), 0.125f, out.data() + t0 * QD, QD);
      };
      double a = 1e30, b = 1e30;
      for (int r = 0; r < 5; ++r) {
        a = std::min(a, thread_cpu_time(per_row));
        b = std::min(b, thread_cpu_time(tiled));
      }
      const double flop = 4.0 * hd * m.n_heads * chunk * (first + (chunk + 1) / 2.0);
      std::printf("causal attention %-10s chunk %ld at %4ld: per row %8.2f ms (%5.1f GFLOP/s)  tile %8.2f ms (%5.1f GFLOP/s)  %.2fx\n",
                  m.name, long(chunk), long(n_ctx), a * 1e3, flop / a / 1e9, b * 1e3,
                  flop / b / 1e9, a / b);
    }
}

// One decode token at depth n_ctx of the llama-1b shape (32 heads, 8 KV heads, head_dim 64),
// one thread: every head on its own (attention_head, the pre-tile backend path: each KV
// head's K/V read 4 times) against attention_kv_group (read once for its 4 query heads).
// Thread CPU time, alternating, best of 20 each; GB/s counts the K/V bytes of one pass.
TEST_CASE("bench: decode attention per head vs per KV group", "[.bench][.attention-bench]") {
  ForceTarget force_target;
  const int64_t hd = 64, n_kv = 8, n_heads = 32, bs = 16;
  for (int64_t n_ctx : {128, 512, 1024, 2048}) {
    const int64_t nb = (n_ctx + bs - 1) / bs;
    std::vector<int32_t> table(nb);
    for (int64_t i = 0; i < nb; ++i) table[i] = int32_t((i * 7) % nb);
    // 16 layers' worth of KV, cycled, so that each call reads K/V from DRAM as in a step
    constexpr int kLayers = 16;
    std::vector<std::vector<float>> k, v;
    for (int l = 0; l < kLayers; ++l) {
      k.push_back(test::random_floats(nb * bs * n_kv * hd, 1 + l));
      v.push_back(test::random_floats(nb * bs * n_kv * hd, 100 + l));
    }
    const auto q = test::random_floats(n_heads * hd, 3);
    std::vector<float> out(n_heads * hd);
    auto per_head = [&](int) {
      for (int l = 0; l < kLayers; ++l) {
        PagedKv kv{k[l].data(), v[l].data(), table.data(), bs, n_kv, hd};
        for (int64_t h = 0; h < n_heads; ++h)
          attention_head(q.data() + h * hd, h, n_heads, kv, n_ctx, 0.125f, out.data() + h * hd, nullptr);
      }
    };
    auto per_group = [&](int) {
      for (int l = 0; l < kLayers; ++l) {
        PagedKv kv{k[l].data(), v[l].data(), table.data(), bs, n_kv, hd};
        for (int64_t g = 0; g < n_kv; ++g)
          attention_kv_group(q.data(), g, n_heads, kv, n_ctx, 0.125f, out.data());
      }
    };
    double a = 1e30, b = 1e30;
    for (int r = 0; r < 20; ++r) {
      a = std::min(a, thread_cpu_time(per_head));
      b = std::min(b, thread_cpu_time(per_group));
    }
    const double bytes = 2.0 * kLayers * n_ctx * n_kv * hd * 4;
    std::printf("decode attention llama-1b 16 layers at %4ld: per head %7.3f ms  per group %7.3f ms (%5.1f GB/s of K/V)  %.2fx\n",
                long(n_ctx), a * 1e3, b * 1e3, bytes / b / 1e9, a / b);
  }
}

// Decode attention (one position, all KV heads: attention_kv_group, what the backend runs
// for a decode row) over a cache stored as f32 / f16 / bf16 / int8, one thread, this
// thread's CPU time. The dtypes alternate round by round, best of 7, so load drifts hit all.
// The non-F32 kernels convert each block of K/V rows to float before the F32 math: this
// prices that conversion against the bytes it saves.
TEST_CASE("bench: decode attention per KV dtype", "[.bench][.attention-bench]") {
  ForceTarget force_target;
  struct Model {
    const char* name;
    int64_t n_heads, n_kv;
  };
  const int64_t hd = 64, bs = 16;
  const KvDtype dtypes[] = {KvDtype::F32, KvDtype::F16, KvDtype::BF16, KvDtype::Int8};
  for (const Model m : {Model{"llama-110m", 12, 12}, Model{"llama-1b", 32, 8}})
    for (int64_t n_ctx : {512, 2048}) {
      const test::ScatteredKv f(n_ctx, bs, m.n_kv, hd, 0, 11);
      std::vector<test::StoredKv> stored;
      for (KvDtype dt : dtypes) stored.emplace_back(f, m.n_kv, hd, dt);
      const auto q = test::random_floats(m.n_heads * hd, 3);
      std::vector<float> out(m.n_heads * hd);
      const int inner = int(std::max<int64_t>(1, 200000 / n_ctx));
      double best[4] = {1e30, 1e30, 1e30, 1e30};
      for (int r = 0; r < 7; ++r)
        for (size_t i = 0; i < 4; ++i) {
          const PagedKv kv = dtypes[i] == KvDtype::F32 ? f.view(bs, m.n_kv, hd) : stored[i].stored(f, bs, m.n_kv, hd);
          best[i] = std::min(best[i], thread_cpu_time([&](int) {
                               for (int it = 0; it < inner; ++it)
                                 for (int64_t g = 0; g < m.n_kv; ++g)
                                   attention_kv_group(q.data(), g, m.n_heads, kv, n_ctx, 0.125f, out.data());
                             }) / inner);
        }
      std::printf("decode attention %-10s at %4ld: f32 %7.1f us  f16 %7.1f us (%.2fx)  bf16 %7.1f us (%.2fx)  int8 %7.1f us (%.2fx)\n",
                  m.name, long(n_ctx), best[0] * 1e6, best[1] * 1e6, best[1] / best[0], best[2] * 1e6,
                  best[2] / best[0], best[3] * 1e6, best[3] / best[0]);
    }
}

// The matrices of a speculative verification step (issue 19): the multi-row GEMV with
// T = 1..5 token rows on the llama-110m shape (F32, and F16 for Q/K/V, gate/up and down;
// Q/K/V and gate/up fused as the backend runs them) and on the grown speculative target
// (F16, hidden 128, intermediate 16384),
// weights cycled through copies so each call streams them from DRAM, as one layer's
// matrices are per step. One thread, timed in this thread's CPU time (preemption by other
// processes on a shared machine does not count; cache misses and stalls do). Each round
// times every T once over all copies, alternating the order; the best round per T is
// printed, and T(t) / T(1) of those.
TEST_CASE("bench: verification rows T = 1..5", "[.bench][.verify-bench]") {
  ForceTarget force_target;
  const NamedShape shapes[] = {
      {"110m qkv", DType::F32, {2304, 768}},     {"110m o", DType::F32, {768, 768}},
      {"110m gate_up", DType::F32, {4096, 768}}, {"110m down", DType::F32, {768, 2048}},
      {"110m lm_head", DType::F32, {32000, 768}}, {"110m qkv", DType::F16, {2304, 768}},
      {"110m gate_up", DType::F16, {4096, 768}}, {"110m down", DType::F16, {768, 2048}},
      {"grown qkv", DType::F16, {256, 128}},
      {"grown o", DType::F16, {128, 128}},       {"grown gate_up", DType::F16, {32768, 128}},
      {"grown down", DType::F16, {128, 16384}},   {"grown lm_head", DType::F16, {2048, 128}},
  };
  constexpr int kMaxT = 5, kRounds = 7;
  for (const NamedShape& v : shapes) {
    const int64_t bytes = dtype_row_bytes(v.dt, v.s.in) * v.s.out;
    const int copies = int(std::max<int64_t>(4, (int64_t(128) << 20) / bytes));
    MatrixArena W(v.dt, v.s, copies, true);
    const auto x = test::random_floats(kMaxT * v.s.in, 9);
    std::vector<float> y(kMaxT * v.s.out);
    double best[kMaxT];
    std::fill(best, best + kMaxT, 1e30);
    for (int r = 0; r < kRounds; ++r)
      for (int j = 0; j < kMaxT; ++j) {
        const int T = r % 2 ? kMaxT - j : j + 1;
        best[T - 1] = std::min(best[T - 1], thread_cpu_time([&](int) {
          for (int i = 0; i < copies; ++i) {
            if (v.dt == DType::F32)
              detail::gemv_rows_f32(x.data(), T, static_cast<const float*>(W.views[i].data), v.s.in, 0,
                                    v.s.out, y.data(), v.s.out);
            else
              detail::gemv_rows_f16(x.data(), T, static_cast<const uint16_t*>(W.views[i].data), v.s.in, 0,
                                    v.s.out, y.data(), v.s.out);
          }
        }) / copies);
      }
    print_shape(v);
    std::printf(" 1 thread: T=1 %7.1f us (%5.1f GB/s) | T(t)/T(1):", best[0] * 1e6, bytes / best[0] / 1e9);
    for (int T = 1; T < kMaxT; ++T) std::printf("  %d: %.3f", T + 1, best[T] / best[0]);
    std::printf("\n");
  }
}

// Weights in panels (kernels_panel.cpp) against the row-major kernels matmul() picks for
// them (multi-row GEMV, tiled GEMM), 2 threads by default: per T, the best of alternating
// rounds over copies of the matrix cycled through > 128 MiB (weights from DRAM, as in a
// step), µs per call and row-major ÷ panels.
namespace {

// The matrices the panel kernel runs in a step of llama-110m and of the grown target.
const NamedShape kPanelShapes[] = {
    {"110m qkv", DType::F32, {2304, 768}},       {"110m gate_up", DType::F32, {4096, 768}},
    {"110m down", DType::F32, {768, 2048}},      {"110m lm_head", DType::F32, {32000, 768}},
    {"110m qkv", DType::F16, {2304, 768}},       {"110m gate_up", DType::F16, {4096, 768}},
    {"110m down", DType::F16, {768, 2048}},      {"110m lm_head", DType::F16, {32000, 768}},
    {"grown gate_up", DType::F16, {32768, 128}}, {"grown down", DType::F16, {128, 16384}},
    {"grown lm_head", DType::F16, {2048, 128}},
};

// Every copy in `dst` becomes `src` packed in panels.
void fill_with_panels(ThreadPool& pool, const TensorView& src, MatrixArena& dst) {
  std::vector<uint8_t> tmp(static_cast<size_t>(panel_bytes(src.dtype, src.rows(), src.cols())), 0);
  pack_panels(pool, src, 0, tmp.data());
  for (auto& view : dst.views) {
    std::memcpy(const_cast<void*>(view.data), tmp.data(), tmp.size());
    view.layout = MatrixLayout::Panels;
  }
}

}  // namespace

TEST_CASE("bench: weights in panels vs row-major", "[.bench][.panel-bench]") {
  ForceTarget force_target;
  ThreadPool pool(bench_threads());
  const int64_t ts[] = {1, 2, 4, 6, 7, 8, 9, 10, 12, 16, 32, 128, 512};
  for (const NamedShape& v : kPanelShapes) {
    const int64_t bytes = dtype_row_bytes(v.dt, v.s.in) * v.s.out;
    REQUIRE(panel_bytes(v.dt, v.s.out, v.s.in) == bytes);  // these shapes need no padding
    const int copies = int(std::max<int64_t>(4, (int64_t(128) << 20) / bytes));
    MatrixArena R(v.dt, v.s, copies, true);
    MatrixArena P(v.dt, v.s, copies, true);
    fill_with_panels(pool, R.views[0], P);
    const auto x = test::random_floats(512 * v.s.in, 9);
    std::vector<float> y(512 * v.s.out);
    print_shape(v);
    for (int64_t T : ts) {
      const int calls = T >= 128 ? std::min(copies, 8) : copies;
      double tr = 1e30, tp = 1e30;
      for (int r = 0; r < 5; ++r)
        for (int which = 0; which < 2; ++which) {
          MatrixArena& A = (which ^ (r & 1)) ? P : R;
          const auto t0 = Clock::now();
          for (int i = 0; i < calls; ++i) matmul(pool, x.data(), T, A.views[i], y.data());
          const double t = seconds_since(t0) / calls;
          (&A == &P ? tp : tr) = std::min(&A == &P ? tp : tr, t);
        }
      std::printf(" | T=%ld %.0f/%.0f us %.2fx", long(T), tr * 1e6, tp * 1e6, tr / tp);
    }
    std::printf("\n");
  }
}

// A shape's weights in panels, copied through 1 GiB (more than any L3: 128 MiB until session
// 25, which a host with a 480 MiB L3 kept in cache) so that a pass over the copies reads them
// from DRAM, with inputs and outputs for up to 128 tokens.
struct ColdPanels {
  int copies;
  MatrixArena arena;
  std::vector<float> x, y;
  ColdPanels(ThreadPool& pool, const NamedShape& v)
      : copies(int(std::max<int64_t>(2, (int64_t(1024) << 20) / panel_bytes(v.dt, v.s.out, v.s.in)))),
        arena(v.dt, v.s, copies, true),
        x(test::random_floats(128 * v.s.in, 9)),
        y(static_cast<size_t>(128 * v.s.out)) {
    fill_with_panels(pool, arena.views[0], arena);
  }
  // T tokens over copy `i` (its weights cold when the copies are taken in turn).
  void matmul_copy(ThreadPool& pool, int64_t T, int i) { matmul(pool, x.data(), T, arena.views[i], y.data()); }
};

// The panel kernel alone on one thread, in thread CPU time (a neighbour's preemption does
// not count; its memory traffic does): per shape and T, G multiply-adds/s with the weights
// cold (ColdPanels, the copies in turn) and hot (one copy, in L2/L3), best of 7 passes.
// Cold / hot is how much of the step the weight fetch from DRAM still costs.
TEST_CASE("bench: panels on one thread, cold and hot", "[.bench][.panel-cpu-bench]") {
  ForceTarget force_target;
  ThreadPool pool(1);
  for (const NamedShape& v : kPanelShapes) {
    ColdPanels P(pool, v);
    print_shape(v);
    for (int64_t T : {1, 5, 32, 128}) {
      const int calls = P.copies;
      double cold = 1e30, hot = 1e30;
      for (int r = 0; r < 7; ++r) {
        cold = std::min(cold, thread_cpu_time([&](int) {
                          for (int i = 0; i < calls; ++i) P.matmul_copy(pool, T, i);
                        }) / calls);
        hot = std::min(hot, thread_cpu_time([&](int) {
                         for (int i = 0; i < calls; ++i) P.matmul_copy(pool, T, 0);
                       }) / calls);
      }
      const double macs = double(T) * double(v.s.out) * double(v.s.in);
      std::printf(" | T=%ld cold %.0f us %.0f G, hot %.0f us %.0f G", long(T), cold * 1e6,
                  macs / cold / 1e9, hot * 1e6, macs / hot / 1e9);
    }
    std::printf("\n");
  }
}

// The next slice fetched into L1 (HostTuning::float_slices_l1, with 16 KiB slices for F32
// steps of 11-16 tokens) against into L2, in turns on the same cold weights in one process
// (the Zen 5 host's memory speed differs from one allocation to the next by up to 1.7x, so
// separate runs compare poorly): two threads, best of 9 turns each, time and G
// multiply-adds/s. The 16-bit shapes run the same code either way: their ratio is the noise.
TEST_CASE("bench: next slice into L1 or L2", "[.bench][.share-bench]") {
  const HostTuning saved = host_tuning();
  HostTuning l1 = saved, l2 = saved;
  l1.float_slices_l1 = true;
  l2.float_slices_l1 = false;
  ThreadPool pool(bench_threads() ? bench_threads() : 2);
  for (const NamedShape& v : kPanelShapes) {
    ColdPanels P(pool, v);
    print_shape(v);
    for (int64_t T : {12, 16, 24, 32, 128}) {
      double best[2] = {1e30, 1e30};  // L2, L1
      for (int r = 0; r < 18; ++r) {
        const int k = (r + r / 2) % 2;  // L2 L1, L1 L2, ...
        set_host_tuning(k ? l1 : l2);
        best[k] = std::min(best[k], best_time(1, 1, [&](int) {
                             for (int i = 0; i < P.copies; ++i) P.matmul_copy(pool, T, i);
                           }) / P.copies);
      }
      const double macs = double(T) * double(v.s.out) * double(v.s.in);
      std::printf(" | T=%ld L2 %.0f us %.0f G, L1 %.0f us %.0f G, L1/L2 %.2f", long(T), best[0] * 1e6,
                  macs / best[0] / 1e9, best[1] * 1e6, macs / best[1] / 1e9, best[1] / best[0]);
    }
    std::printf("\n");
  }
  set_host_tuning(saved);
}

// How far a second thread speeds up the F32 panel matmul, in turns in one process: one and
// two threads, weights hot (one copy, in L2/L3) and cold (ColdPanels' copies in turn), wall
// time, best of 5 turns each, G multiply-adds/s. On the Zen 5 guest two threads ran 1.9-2.0x
// one thread's rate in most runs of session 38 and 1.4-1.6x in others, hot and cold alike,
// minutes apart (one thread's rate the same in both); the batched steps, prefill and the
// continuous/static ratio moved with it. This bench tells the two states apart before a
// comparison is read.
TEST_CASE("bench: one thread against two on the panel matmul", "[.bench][.scaling-bench]") {
  ThreadPool p1(1), p2(2);
  for (const NamedShape& v : kPanelShapes) {
    if (v.dt != DType::F32) continue;
    ColdPanels P(p1, v);
    print_shape(v);
    for (int64_t T : {32, 128}) {
      double best[4] = {1e30, 1e30, 1e30, 1e30};  // hot 1t, hot 2t, cold 1t, cold 2t
      for (int r = 0; r < 5; ++r)
        for (int k = 0; k < 4; ++k) {
          ThreadPool& pool = k % 2 ? p2 : p1;
          const bool cold = k >= 2;
          const int calls = cold ? P.copies : 8;
          best[k] = std::min(best[k], best_time(1, calls, [&](int i) {
                               P.matmul_copy(pool, T, cold ? i : 0);
                             }));
        }
      const double macs = double(T) * double(v.s.out) * double(v.s.in);
      std::printf(" | T=%ld hot %.0f / %.0f G (%.2fx), cold %.0f / %.0f G (%.2fx)", long(T),
                  macs / best[0] / 1e9, macs / best[1] / 1e9, best[0] / best[1],
                  macs / best[2] / 1e9, macs / best[3] / 1e9, best[2] / best[3]);
    }
    std::printf("\n");
  }
}

// silu_mul_to as a batched quantized step runs it: 2048-value pieces of each token's
// [gate | up] row into an L1 buffer, over 32 tokens of the grown target's 16384-wide
// intermediate. Thread CPU time, best of 20 passes; ns per value.
TEST_CASE("bench: silu_mul pieces", "[.bench][.silu-bench]") {
  ForceTarget force;
  constexpr int64_t T = 32, I = 16384, kPiece = 2048;
  std::vector<float> gate_up(size_t(T * 2 * I));
  for (size_t i = 0; i < gate_up.size(); ++i) gate_up[i] = float(int64_t(i * 2654435761u % 2001) - 1000) / 100.0f;
  alignas(64) static float buf[kPiece];
  double best = 1e30;
  for (int pass = 0; pass < 20; ++pass)
    best = std::min(best, thread_cpu_time([&](int) {
      for (int64_t t = 0; t < T; ++t)
        for (int64_t i0 = 0; i0 < I; i0 += kPiece)
          silu_mul_to(buf, gate_up.data() + t * 2 * I + i0, gate_up.data() + t * 2 * I + I + i0, kPiece);
    }));
  std::printf("silu_mul_to, %lld x %lld in pieces of %lld: %.3f ms per pass, %.3f ns per value (buf[7] = %g)\n",
              (long long)T, (long long)I, (long long)kPiece, best * 1e3, best * 1e9 / double(T * I), double(buf[7]));
}
