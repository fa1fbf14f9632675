// Hidden benchmark ([.bench]; run: test_quant "[.bench]"). GEMV (T = 1) and GEMM (T = 32)
// for F32 and F16 (cpu::matmul) and the quantized formats, on decoder-layer shapes.
//
// "cold": the call cycles through enough copies of the matrix (>= 192 MiB) that every
// call streams its weights from DRAM, as in a real decode step over a model much larger
// than the L3; quantized copies on 4 KiB pages (each its own allocation, as a matrix is
// built) and, in the "2M" columns, relocated into one buffer on transparent huge pages (as
// the CPU backend places them). "hot": one copy, cache-resident when small (the compute
// ceiling).
// GB/s counts the bytes of the stored matrix (quants + scales); tok/s is calls per second
// times T, i.e. the token rate if a model consisted of this one matrix.
#include <catch2/catch.hpp>
#include <algorithm>
#include <ctime>
#include <cstdlib>
#include <cstring>
#include <cstdio>
#include <functional>
#include <string>
#include <sys/mman.h>

#include "core/half.h"
#include "cpu/kernels.h"
#include "quant/qmatmul.h"
#include "quant_test_util.h"

using namespace troupe;
using namespace troupe::quant;

namespace {

constexpr int64_t kColdBytes = int64_t(192) << 20;

double now_s(bool cpu_clock) {
  timespec ts;
  clock_gettime(cpu_clock ? CLOCK_THREAD_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

// Seconds per call over one round of calls (at least 1 ms of them); i numbers the calls.
double round_time(const std::function<void(int64_t)>& call, int64_t& i, bool cpu_clock) {
  int64_t n = 0;
  const double t0 = now_s(cpu_clock);
  double el = 0;
  do {
    call(i++);
    ++n;
    el = now_s(cpu_clock) - t0;
  } while (el < 1e-3);
  return el / static_cast<double>(n);
}

// Seconds per call: the best of many short rounds (~1 ms). The machine may be shared: a
// round that runs within one scheduler slice measures the kernel, longer ones also the
// neighbours. With one thread the clock is the thread's CPU time, which preemption does
// not advance (so calls longer than a slice are measured fairly too).
double time_call(const std::function<void(int64_t)>& call, bool cpu_clock) {
  double best = 1e30;
  int64_t i = 0;
  call(i++);  // warm-up
  const double start = now_s(cpu_clock);
  for (int round = 0; round < 400 && now_s(cpu_clock) - start < 0.6; ++round)
    best = std::min(best, round_time(call, i, cpu_clock));
  return best;
}

// Rounds of call a and of call b in turns (each ~1 ms of calls); the median of b's time
// over a's in adjacent rounds, which holds where a shared machine moves both by tens of
// percent within a second.
double paired_ratio(const std::function<void(int64_t)>& a, const std::function<void(int64_t)>& b,
                    bool cpu_clock) {
  int64_t ia = 0, ib = 0;
  a(ia++);  // warm-up
  b(ib++);
  std::vector<double> ratios;
  for (int r = 0; r < 200; ++r) {
    const double ta = round_time(a, ia, cpu_clock), tb = round_time(b, ib, cpu_clock);
    ratios.push_back(tb / ta);
  }
  std::nth_element(ratios.begin(), ratios.begin() + ratios.size() / 2, ratios.end());
  return ratios[ratios.size() / 2];
}

struct Result {
  std::string name;
  double bytes, cold, hot, huge_over_4k = 0;  // huge_over_4k: 0 where not measured
};

// n copies of m in one buffer on transparent huge pages (MADV_HUGEPAGE; best effort).
std::vector<QuantizedMatrix> copies_on_huge_pages(const QuantizedMatrix& m, int64_t n) {
  constexpr size_t kHuge = size_t(2) << 20;
  const size_t stride = static_cast<size_t>(m.storage_bytes());  // a multiple of 64
  const size_t total = (stride * static_cast<size_t>(n) + kHuge - 1) / kHuge * kHuge;
  auto* p = static_cast<uint8_t*>(std::aligned_alloc(kHuge, total));
  REQUIRE(p != nullptr);
  madvise(p, total, MADV_HUGEPAGE);
  const std::shared_ptr<uint8_t[]> arena(p, [](uint8_t* q) { std::free(q); });
  std::vector<QuantizedMatrix> copies;
  for (int64_t k = 0; k < n; ++k) copies.push_back(m.relocated(p + k * stride, arena));
  return copies;
}

// macs: multiply-adds of one call, for the hot GMAC/s column (a batched step's compute rate).
void print_table(const char* title, const std::vector<Result>& rs, int64_t T, double macs, int ref_row) {
  std::printf("\n%s\n  %-10s %10s %11s %9s %10s %11s %9s %8s %8s %8s\n", title, "format",
              "MiB", "cold us", "GB/s", "tok/s", "hot us", "GB/s", "GMAC/s", "speedup",
              "2M / 4K");
  for (const Result& r : rs) {
    std::printf("  %-10s %10.2f %11.1f %9.1f %10.0f %11.1f %9.1f %8.1f %7.2fx", r.name.c_str(),
                r.bytes / (1 << 20), r.cold * 1e6, r.bytes / r.cold / 1e9,
                static_cast<double>(T) / r.cold, r.hot * 1e6, r.bytes / r.hot / 1e9,
                macs / r.hot / 1e9, rs[ref_row].cold / r.cold);
    if (r.huge_over_4k > 0) std::printf(" %8.3f", r.huge_over_4k);
    std::printf("\n");
  }
}

}  // namespace

TEST_CASE("quantized matmul benchmark", "[.bench]") {
  // TROUPE_BENCH_THREADS overrides the thread count (default: all cores).
  const char* env = std::getenv("TROUPE_BENCH_THREADS");
  cpu::ThreadPool pool(env ? std::atoi(env) : 0);
  const bool cpu_clock = pool.size() == 1;
  std::printf("threads %d (%s clock), kernels %s, DRAM read bandwidth %.1f GB/s\n", pool.size(),
              cpu_clock ? "thread CPU" : "wall",
              std::string(qisa_name(current_qisa())).c_str(),
              cpu::measure_read_bandwidth(pool, int64_t(512) << 20) / 1e9);
  // llama-110m's down, gate/up and LM head, then the grown speculative target's fused
  // gate/up (K = 128) and down (128 output rows, K = 16384).
  for (auto [out, in] : {std::pair<int64_t, int64_t>{768, 2048}, {2048, 768}, {32000, 768},
                         {32768, 128}, {128, 16384}}) {
    const auto w = test::random_weights(out, in, 1);
    std::vector<uint16_t> w16(w.size());
    for (size_t i = 0; i < w.size(); ++i) w16[i] = f32_to_f16(w[i]);
    const int64_t Tmax = 32;
    const auto x = test::random_acts(Tmax, in, 2);
    std::vector<float> y(static_cast<size_t>(Tmax * out));

    for (int64_t T : {int64_t(1), Tmax}) {
      std::vector<Result> rs;
      // Float baselines: copies of the raw matrix (the cold set).
      for (DType dt : {DType::F32, DType::F16}) {
        const int64_t bytes = out * in * (dt == DType::F32 ? 4 : 2);
        const int64_t n = std::max<int64_t>(1, (kColdBytes + bytes - 1) / bytes);
        std::vector<std::vector<uint8_t>> copies(static_cast<size_t>(n));
        for (auto& c : copies) {
          c.resize(static_cast<size_t>(bytes));
          std::memcpy(c.data(), dt == DType::F32 ? static_cast<const void*>(w.data()) : w16.data(), bytes);
        }
        auto view = [&](int64_t k) {
          return TensorView{"w", dt, {out, in}, copies[k % n].data(), bytes};
        };
        auto cold = [&](int64_t k) { cpu::matmul(pool, x.data(), T, view(k), y.data()); };
        auto hot = [&](int64_t) { cpu::matmul(pool, x.data(), T, view(0), y.data()); };
        rs.push_back({std::string(dtype_name(dt)), static_cast<double>(bytes), time_call(cold, cpu_clock), time_call(hot, cpu_clock)});
      }
      const TensorView wv{"w", DType::F32, {out, in}, w.data(), out * in * 4};
      for (auto [name, fmt] : {std::pair<const char*, QFormat>{"int8", QFormat::Int8},
                               {"int4 g128", QFormat::Int4}, {"Q8_0", QFormat::Q8_0},
                               {"Q4_0", QFormat::Q4_0}}) {
        const QuantizedMatrix m = quantize(wv, fmt, 128);
        const int64_t n = std::max<int64_t>(1, (kColdBytes + m.nbytes() - 1) / m.nbytes());
        std::vector<QuantizedMatrix> copies;
        for (int64_t k = 0; k < n; ++k) copies.push_back(m.clone());
        auto cold = [&](int64_t k) { qmatmul(pool, x.data(), T, copies[k % n], y.data()); };
        auto hot = [&](int64_t) { qmatmul(pool, x.data(), T, m, y.data()); };
        rs.push_back({name, static_cast<double>(m.nbytes()), time_call(cold, cpu_clock), time_call(hot, cpu_clock)});
        const std::vector<QuantizedMatrix> huge = copies_on_huge_pages(m, n);
        rs.back().huge_over_4k = paired_ratio(
            cold, [&](int64_t k) { qmatmul(pool, x.data(), T, huge[k % n], y.data()); }, cpu_clock);
      }
      char title[160];
      std::snprintf(title, sizeof title, "%s %lld x %lld (out x in), T = %lld  [speedup: cold, vs %s]",
                    T == 1 ? "GEMV" : "GEMM", static_cast<long long>(out),
                    static_cast<long long>(in), static_cast<long long>(T), T == 1 ? "F32" : "F16");
      print_table(title, rs, T, static_cast<double>(out * in * T), T == 1 ? 0 : 1);
    }
  }
}

// A long prefill: T = 2000 tokens through the 1B shape's matrices, Q4_0 and INT4. The
// activations (T x in bytes, 4-16 MiB) no longer fit in L2, which is what the token chunks
// of qmatmul are for. GMAC/s = out * in * T / time.
TEST_CASE("quantized prefill GEMM benchmark", "[.bench][.prefill-bench]") {
  const char* env = std::getenv("TROUPE_BENCH_THREADS");
  cpu::ThreadPool pool(env ? std::atoi(env) : 0);
  const bool cpu_clock = pool.size() == 1;
  const int64_t T = 2000;
  std::printf("threads %d (%s clock), kernels %s, T = %lld\n", pool.size(),
              cpu_clock ? "thread CPU" : "wall", std::string(qisa_name(current_qisa())).c_str(),
              static_cast<long long>(T));
  for (auto [out, in] : {std::pair<int64_t, int64_t>{2048, 2048}, {16384, 2048}, {2048, 8192}}) {
    const auto w = test::random_weights(out, in, 1);
    const auto x = test::random_acts(T, in, 2);
    std::vector<float> y(static_cast<size_t>(T * out));
    const TensorView wv{"w", DType::F32, {out, in}, w.data(), out * in * 4};
    for (auto [name, fmt] : {std::pair<const char*, QFormat>{"Q4_0", QFormat::Q4_0},
                             {"int4 g128", QFormat::Int4}}) {
      const QuantizedMatrix m = quantize(wv, fmt, 128);
      const double s = time_call([&](int64_t) { qmatmul(pool, x.data(), T, m, y.data()); }, cpu_clock);
      std::printf("  %5lld x %5lld %-10s %9.1f ms %8.1f GMAC/s\n", static_cast<long long>(out),
                  static_cast<long long>(in), name, s * 1e3,
                  static_cast<double>(out * in * T) / s / 1e9);
    }
  }
}
