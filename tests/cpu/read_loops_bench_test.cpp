// A benchmark, hidden from normal runs: `test_cpu "[.read-loops-bench]"`. How fast the pool's
// threads read a 1 GiB buffer (huge pages) in loops of different shapes: the measurements
// behind prefetch_after and pace_with_nops (cpu/prefetch_share.h) and the read probe's two
// loops (docs/benchmarks.md, session 27). AVX-512 hosts only (skipped elsewhere); it prints and
// does not assert. TROUPE_BENCH_THREADS sets the pool size (default: all hardware threads).
//
// The loops are written with intrinsics in an AVX-512 region of this file, so the fetch and
// the no-ops are spelled out here rather than taken from cpu/prefetch_share.h, whose templates
// are compiled for the baseline target.
// GCC 12 warns about the deliberately undefined pass-through operands inside its own
// intrinsics (as in quant/qkernel_avx512.cpp).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#include <sys/mman.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "cpu/thread_pool.h"

namespace {

#pragma GCC push_options
#pragma GCC target("avx512f")

// prefetcht1 of p after `v` is loaded and before its uses (as cpu::prefetch_after<2>).
#define TROUPE_FETCH_AFTER(v, p) asm volatile("prefetcht1 %a1" : "+v"(v) : "p"(p))

template <int kNops>
inline void nops() {
  for (int n = 0; n < kNops; ++n) asm volatile("nop");
}

enum class Shape { kAdd, kAddMemorySums, kFma, kHalves, kHalvesFetchAtTop };

// Sum of [p, p + bytes) read 512 bytes a step in the given shape; kAhead: fetch distance in
// bytes (0: no software fetch); kNops: no-ops after each line's work.
template <Shape kShape, int kAhead, int kNops>
float read_loop(const char* p, size_t bytes) {
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
  volatile __m512 mem[8] = {a0, a0, a0, a0, a0, a0, a0, a0};
  const __m512 one = _mm512_set1_ps(1.0f);
  for (size_t i = 0; i + 512 <= bytes; i += 512) {
    const char* q = p + i;
    if constexpr (kShape == Shape::kAdd || kShape == Shape::kFma) {
      __m512* acc[8] = {&a0, &a1, &a2, &a3, &a4, &a5, &a6, &a7};
      for (int j = 0; j < 8; ++j) {
        __m512 w = _mm512_load_ps(reinterpret_cast<const float*>(q + 64 * j));
        if constexpr (kAhead > 0) TROUPE_FETCH_AFTER(w, q + kAhead + 64 * j);
        // kFma: 4 sums, as a one-token F32 matmul step keeps 4 vectors of rows.
        if constexpr (kShape == Shape::kAdd)
          *acc[j] = _mm512_add_ps(*acc[j], w);
        else
          *acc[j % 4] = _mm512_fmadd_ps(w, one, *acc[j % 4]);
        nops<kNops>();
      }
    } else if constexpr (kShape == Shape::kAddMemorySums) {
      for (int j = 0; j < 8; ++j) {
        __m512 w = _mm512_load_ps(reinterpret_cast<const float*>(q + 64 * j));
        if constexpr (kAhead > 0) TROUPE_FETCH_AFTER(w, q + kAhead + 64 * j);
        mem[j] = _mm512_add_ps(mem[j], w);
      }
    } else {  // 16-bit halves widened, two conversions and FMAs a line
      for (int l = 0; l < 8; ++l) {
        const char* r = q + 64 * l;
        if constexpr (kShape == Shape::kHalvesFetchAtTop && kAhead > 0) {
          if (l % 2 == 0) {  // both lines of a 128-byte step, one after the other
            asm volatile("prefetcht1 %a0" ::"p"(r + kAhead));
            asm volatile("prefetcht1 %a0" ::"p"(r + kAhead + 64));
          }
        }
        __m512 w0 = _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(r)));
        if constexpr (kShape == Shape::kHalves && kAhead > 0) TROUPE_FETCH_AFTER(w0, r + kAhead);
        a0 = _mm512_fmadd_ps(w0, one, a0);
        const __m512 w1 =
            _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(r + 32)));
        a1 = _mm512_fmadd_ps(w1, one, a1);
      }
    }
  }
  __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                           _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
  for (int j = 0; j < 8; ++j) s = _mm512_add_ps(s, mem[j]);
  return _mm512_reduce_add_ps(s);
}

#undef TROUPE_FETCH_AFTER
#pragma GCC pop_options

using Loop = float (*)(const char*, size_t);

}  // namespace

TEST_CASE("bench: read loops of different shapes", "[.bench][.read-loops-bench]") {
  if (!__builtin_cpu_supports("avx512f")) {
    WARN("no AVX-512 here: skipped");
    return;
  }
  const char* env = std::getenv("TROUPE_BENCH_THREADS");
  const int threads = env ? std::atoi(env) : static_cast<int>(std::thread::hardware_concurrency());
  troupe::cpu::ThreadPool pool(threads);
  const size_t bytes = size_t(1) << 30;
  constexpr size_t kAlign = size_t(2) << 20;
  auto* buf = static_cast<char*>(std::aligned_alloc(kAlign, bytes));
  REQUIRE(buf);
  madvise(buf, bytes, MADV_HUGEPAGE);
  const int64_t grain = 1 << 20;  // whole 1 MiB pieces, a contiguous range per thread
  const int64_t pieces = static_cast<int64_t>(bytes) / grain;
  pool.parallel_for(pieces, 1, [&](int, int64_t b, int64_t e) {
    for (int64_t k = b; k < e; ++k) {
      float* f = reinterpret_cast<float*>(buf + k * grain);
      std::fill(f, f + grain / 4, 1.0f);
    }
  });
  struct Variant {
    const char* name;
    Loop loop;
  };
  const Variant variants[] = {
      {"load + add", read_loop<Shape::kAdd, 0, 0>},
      {"load + add, fetch 8 KiB ahead after each load", read_loop<Shape::kAdd, 8192, 0>},
      {"load + add, fetch 32 KiB ahead after each load", read_loop<Shape::kAdd, 32768, 0>},
      {"load + add, sums in memory", read_loop<Shape::kAddMemorySums, 0, 0>},
      {"load + add, sums in memory, fetch 8 KiB ahead", read_loop<Shape::kAddMemorySums, 8192, 0>},
      {"load + fetch + FMA", read_loop<Shape::kFma, 8192, 0>},
      {"load + fetch + FMA + 2 nop", read_loop<Shape::kFma, 8192, 2>},
      {"load + fetch + FMA + 4 nop", read_loop<Shape::kFma, 8192, 4>},
      {"load + fetch + FMA + 8 nop", read_loop<Shape::kFma, 8192, 8>},
      {"load + fetch + FMA + 16 nop", read_loop<Shape::kFma, 8192, 16>},
      {"halves, fetch after each line's first load", read_loop<Shape::kHalves, 8192, 0>},
      {"halves, a 128-byte step's fetches together", read_loop<Shape::kHalvesFetchAtTop, 8192, 0>},
      {"halves, no software fetch", read_loop<Shape::kHalves, 0, 0>},
  };
  std::vector<float> sink(static_cast<size_t>(pool.size()));
  std::printf("read loops, %d threads, 1 GiB, best of 3 passes (GB/s)\n", pool.size());
  for (const Variant& v : variants) {
    double best = 0;
    for (int pass = 0; pass < 3; ++pass) {
      const auto t0 = std::chrono::steady_clock::now();
      pool.parallel_for(pieces, 1, [&](int th, int64_t b, int64_t e) {
        sink[static_cast<size_t>(th)] +=
            v.loop(buf + b * grain, static_cast<size_t>((e - b) * grain));
      });
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      best = std::max(best, double(bytes) / s / 1e9);
    }
    std::printf("  %-50s %6.2f\n", v.name, best);
  }
  std::free(buf);
  float total = 0;
  for (float f : sink) total += f;
  CHECK(total > 0);
}
