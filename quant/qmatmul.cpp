// qmatmul(): quantizes the activations once per call into a thread-local scratch (shared
// read-only by the pool), then splits the 16-row tiles of W over the pool.
#include "quant/qmatmul.h"

#include <algorithm>
#include <atomic>
#include <vector>

#include "core/error.h"
#include "cpu/host_tuning.h"
#include "cpu/kernels.h"
#include "quant/qkernel.h"

namespace troupe::quant {
namespace {

struct Kernels {
  detail::QuantizeActFn quantize;
  detail::TilesFn tiles;
  // Offset of the 8-bit weight bytes the kernel's integer dot sees: 128 where it multiplies
  // the stored q + 128 directly, 0 where it flips back to signed q first (AVX2).
  int32_t offset8;
};

Kernels kernels_for(QIsa isa) {
  switch (isa) {
    case QIsa::Avx512Vnni: return {detail::quantize_act_avx512, detail::tiles_avx512, 128};
    case QIsa::Avx2: return {detail::quantize_act_avx2, detail::tiles_avx2, 0};
    case QIsa::Scalar: break;
  }
  return {detail::quantize_act_scalar, detail::tiles_scalar, 128};
}

QIsa detect() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  // libgcc's checks include the OS (XCR0) enabling the ymm/zmm state.
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("fma") &&
      __builtin_cpu_supports("f16c"))
    return QIsa::Avx512Vnni;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
      __builtin_cpu_supports("f16c"))
    return QIsa::Avx2;
#endif
  return QIsa::Scalar;
}

std::atomic<QIsa>& isa_slot() {
  static std::atomic<QIsa> isa{best_qisa()};
  return isa;
}

// Activation scratch of the calling thread; grows, never shrinks.
struct Scratch {
  std::vector<int8_t> q;
  std::vector<float> d, gsum;
  std::vector<int32_t> sum, off;
};

// Below this many weights a single thread is done before the others wake up.
constexpr int64_t kMinParallelWeights = int64_t(1) << 15;
// Quantize activations on the pool only when there are many of them: ~10 us per 64K
// values on one AVX-512 core, so below this a second parallel region (a barrier, costly
// when a worker is descheduled) buys nothing.
constexpr int64_t kMinParallelActs = int64_t(1) << 18;

// Tokens per pass over a thread's tiles: the kernels run tile by tile over the tokens they
// are given, so with every token at once a long prefill re-streamed all activations (2000
// tokens x 2-8 KiB) from L3 or DRAM for each 16-row tile. In chunks whose activations stay
// in L2 the tile's weights are re-read once per chunk instead, from L2/L3 or DRAM.
constexpr int64_t kActChunkBytes = int64_t(256) << 10;
constexpr int64_t kMinTokenChunk = 32;

// qmatmul_glu's units of work: a unit is a range of channels, the gate rows and the up rows
// of the same channels, whose outputs for a chunk of tokens its thread keeps in a buffer
// in L2 (kGluBufBytes) to quantize down's input from. Units are multiples of every Int4
// group (kGluUnitAlign), so that a unit's blocks of down's input are whole groups. Steps
// of up to kGluOneChunk tokens take one chunk, so their units may be as large as the buffer
// allows (a 1B INT4 GEMV in units of 128 channels took 1.085-1.087x the time of one call
// over the whole matrix). Longer steps stream a unit's weights once per chunk, so its gate
// and up weights stay within kGluUnitWeightBytes and kMaxGluUnit channels, in L2 too (units
// of 512 on the 1B shape, 1 MiB of INT4, ran a 512-token prefill at 0.76x and 0.92x the
// speed; docs/benchmarks.md, session 22).
constexpr int64_t kGluUnitAlign = 128;
constexpr int64_t kGluBufBytes = int64_t(128) << 10;
constexpr int64_t kGluOneChunk = 32;
constexpr int64_t kMaxGluUnit = 512;
constexpr int64_t kGluUnitWeightBytes = int64_t(256) << 10;

struct GluPlan {
  int64_t unit;    // channels per unit (the last may have fewer)
  int64_t units;   // ceil(I / unit)
  int64_t tokens;  // tokens per chunk
};

// I channels, T tokens; row_bytes: one gate or up row's packed weights. The pool deals out
// whole units in equal counts, so there are a multiple of `threads` of them, as few as the
// cap allows, and of nearly equal size (units of the cap and a remainder left one grown
// target thread 9600 channels and the other 6784): at least two per thread where compute
// bound (balance), one at T = 1, where each is two weight streams to ramp up on (grown
// INT4 GEMV steps took 0.89-0.92x the time of the three-step path with one unit a thread,
// 0.93-0.95x with two; 110M 1.00-1.02x and 1.01-1.03x; docs/benchmarks.md, session 22).
GluPlan plan_glu(int64_t I, int64_t T, int threads, int64_t row_bytes) {
  const bool one_chunk = T <= kGluOneChunk;
  const int64_t cap = one_chunk ? kGluBufBytes / (2 * int64_t(sizeof(float)) * T)
                                : std::min(kMaxGluUnit, kGluUnitWeightBytes / (2 * row_bytes));
  const int64_t cap_aligns = std::max<int64_t>(1, cap / kGluUnitAlign);
  const int64_t aligns = (I + kGluUnitAlign - 1) / kGluUnitAlign;
  const int64_t per_thread =
      std::max<int64_t>(T == 1 ? 1 : 2, (aligns + threads * cap_aligns - 1) / (threads * cap_aligns));
  const int64_t unit = kGluUnitAlign * ((aligns + threads * per_thread - 1) / (threads * per_thread));
  // A multiple of 16 tokens when chunked, as run_qmatmul's chunks.
  const int64_t tokens =
      one_chunk ? T : std::max<int64_t>(16, kGluBufBytes / (2 * unit * int64_t(sizeof(float))) / 16 * 16);
  return {unit, (I + unit - 1) / unit, tokens};
}

}  // namespace

std::string_view qisa_name(QIsa isa) {
  switch (isa) {
    case QIsa::Scalar: return "scalar";
    case QIsa::Avx2: return "avx2";
    case QIsa::Avx512Vnni: return "avx512-vnni";
  }
  return "?";
}

QIsa best_qisa() {
  static const QIsa best = detect();
  return best;
}

QIsa current_qisa() { return isa_slot().load(std::memory_order_relaxed); }

void set_qisa(QIsa isa) {
  if (static_cast<int>(isa) > static_cast<int>(best_qisa()))
    fail("qmatmul: this CPU cannot run the {} kernels (best: {})", qisa_name(isa),
         qisa_name(best_qisa()));
  isa_slot().store(isa, std::memory_order_relaxed);
}

namespace {

// Sizes s for T tokens of P's input; returns the row stride of s.q, rounded to 64 bytes so
// every token's blocks start on a cache line.
int64_t size_scratch(Scratch& s, const detail::PackedW& P, int64_t T) {
  const int64_t stride = (P.nb * kBlock + 63) / 64 * 64;
  s.q.resize(static_cast<size_t>(T * stride));
  s.d.resize(static_cast<size_t>(T * P.nb));
  s.sum.resize(static_cast<size_t>(T * P.nb));
  s.off.resize(static_cast<size_t>(T * P.nb));
  s.gsum.resize(static_cast<size_t>(T * P.ng));
  return stride;
}

detail::QAct act_view(const Scratch& s, const detail::PackedW& P, int64_t stride, int64_t t0) {
  return {s.q.data() + t0 * stride, stride, s.d.data() + t0 * P.nb, s.off.data() + t0 * P.nb,
          s.gsum.data() + t0 * P.ng, P.nb, P.ng};
}

// Quantizes the activations of one call into the calling thread's scratch, then runs the
// tiles. `quantize_all(k, s, stride)` fills s.q, s.d and s.sum for every token.
template <typename QuantizeAll>
void run_qmatmul(cpu::ThreadPool& pool, int64_t T, const QuantizedMatrix& W, float* y,
                 const float* bias, const QuantizeAll& quantize_all) {
  const int64_t out = W.rows();
  const detail::PackedW P = W.packed();
  const Kernels k = kernels_for(current_qisa());
  const cpu::GemvFetch fetch = cpu::host_tuning().gemv_fetch;

  // A reference, not the thread_local itself: the pool's workers must see the caller's.
  thread_local Scratch tls;
  Scratch& s = tls;
  const int64_t stride = size_scratch(s, P, T);
  quantize_all(k, s, stride);

  const int64_t grain = out * W.cols() * T < kMinParallelWeights ? P.tiles : 1;
  // A multiple of 16 tokens, so no chunk but the last ends in a short pass of the kernels'
  // token blocks over a tile's weights.
  const int64_t chunk = std::max<int64_t>(kMinTokenChunk, kActChunkBytes / stride / 16 * 16);
  pool.parallel_for(P.tiles, grain, [&](int, int64_t t0, int64_t t1) {
    for (int64_t c0 = 0; c0 < T; c0 += chunk)
      k.tiles(P, act_view(s, P, stride, c0), std::min(chunk, T - c0), t0, t1, y + c0 * out, bias,
              fetch);
  });
}

// Blocks [b0, b1) of token t, already quantized: their integer dots' start values
// (removing a constant weight offset; 0 for Int4) and, for Int4, the zero-point sums of the
// groups they cover (b0 and b1 on group boundaries).
void finish_blocks(const detail::PackedW& P, const Kernels& k, Scratch& s, int64_t t, int64_t b0,
                   int64_t b1) {
  const float* d = s.d.data() + t * P.nb;
  const int32_t* sum = s.sum.data() + t * P.nb;
  int32_t* off = s.off.data() + t * P.nb;
  if (P.fmt != QFormat::Int4) {
    const int32_t offset = P.fmt == QFormat::Q4_0 ? 8 : k.offset8;
    for (int64_t b = b0; b < b1; ++b) off[b] = -offset * sum[b];
    return;
  }
  // Zeros for Int4: the AVX2 kernel adds the start value for every format, and the scratch
  // holds whatever the thread's last matrix left (a Q4_0 matrix's -8 * sums made the next
  // Int4 matmul on that thread wrong).
  std::fill(off + b0, off + b1, 0);
  for (int64_t g = b0 / P.group_blocks; g < b1 / P.group_blocks; ++g) {  // z * s * this is Int4's zero-point term
    float gs = 0.0f;
    for (int64_t b = g * P.group_blocks; b < (g + 1) * P.group_blocks; ++b)
      gs += d[b] * static_cast<float>(sum[b]);
    s.gsum[t * P.ng + g] = gs;
  }
}

// Quantizes the T rows of x ([T, in]) for P into s (sized, stride as size_scratch gives).
void quantize_rows(cpu::ThreadPool& pool, const Kernels& k, const detail::PackedW& P,
                   const float* x, int64_t T, int64_t in, Scratch& s, int64_t stride) {
  auto quantize = [&](int, int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      k.quantize(x + t * in, in, P.nb, s.q.data() + t * stride, s.d.data() + t * P.nb,
                 s.sum.data() + t * P.nb);
      finish_blocks(P, k, s, t, 0, P.nb);
    }
  };
  if (T * in >= kMinParallelActs)
    pool.parallel_for(T, 1, quantize);
  else
    quantize(0, 0, T);
}

// A view of tiles [tile0, tile1) of P as a matrix of their rows (whole tiles only).
detail::PackedW tile_rows(const detail::PackedW& P, int64_t tile0, int64_t tile1) {
  detail::PackedW v = P;
  v.rows = (tile1 - tile0) * kTileRows;
  v.tiles = tile1 - tile0;
  v.w = P.w + tile0 * P.nb * tile_block_bytes(P.fmt);
  if (P.d16) v.d16 = P.d16 + tile0 * P.ng * kTileRows;
  if (P.s32) v.s32 = P.s32 + tile0 * kTileRows;
  if (P.z) v.z = P.z + tile0 * P.ng * kTileRows;
  return v;
}

}  // namespace

int int8_dot_chains_count() { return detail::kDotChains; }

int64_t int8_dot_chains(int64_t iters, int32_t* out) {
  return current_qisa() == QIsa::Avx512Vnni ? detail::dot_chains_avx512(iters, out) : 0;
}

double measure_int8_dot_peak(cpu::ThreadPool& pool, double seconds) {
  if (current_qisa() != QIsa::Avx512Vnni) return 0;
  // ~5 ms per pass per thread at ~7 G dot products per second, as the FMA probe.
  constexpr int64_t kIters = int64_t(1) << 21;
  std::vector<std::vector<int32_t>> sink(static_cast<size_t>(pool.size()),
                                         std::vector<int32_t>(detail::kDotChains));
  return cpu::best_pass_rate(pool, seconds, [&](int th) {
    return detail::dot_chains_avx512(kIters, sink[size_t(th)].data());
  });
}

void qmatmul(cpu::ThreadPool& pool, const float* x, int64_t T, const QuantizedMatrix& W,
             float* y, const float* bias) {
  const int64_t in = W.cols();
  if (T <= 0 || W.rows() <= 0) return;
  const detail::PackedW P = W.packed();
  run_qmatmul(pool, T, W, y, bias, [&](const Kernels& k, Scratch& s, int64_t stride) {
    quantize_rows(pool, k, P, x, T, in, s, stride);
  });
}

bool qmatmul_glu_fits(const QuantizedMatrix& gate, const QuantizedMatrix& up,
                      const QuantizedMatrix& down) {
  const int64_t I = down.cols();
  return gate.format() == up.format() && gate.group() == up.group() && gate.cols() == up.cols() &&
         gate.rows() == I && up.rows() == I && I % kTileRows == 0;
}

void qmatmul_glu(cpu::ThreadPool& pool, const float* x, int64_t T, const QuantizedMatrix& gate,
                 const QuantizedMatrix& up, GluFn glu, const QuantizedMatrix& down, float* y,
                 const float* bias) {
  const int64_t I = down.cols();
  if (!qmatmul_glu_fits(gate, up, down))
    fail("qmatmul_glu: gate [{}, {}] and up [{}, {}] must be alike, with as many rows as down "
         "has inputs ({}), a multiple of {}", gate.rows(), gate.cols(), up.rows(), up.cols(), I,
         kTileRows);
  if (T <= 0 || down.rows() <= 0) return;
  // G and U share their activation blocks (the same format, group and width).
  const detail::PackedW G = gate.packed(), U = up.packed(), D = down.packed();
  const int64_t in = gate.cols();
  const GluPlan plan = plan_glu(I, T, pool.size(), G.nb * tile_block_bytes(G.fmt) / kTileRows);
  const int64_t unit = plan.unit, units = plan.units, tc = plan.tokens;
  const cpu::GemvFetch fetch = cpu::host_tuning().gemv_fetch;
  run_qmatmul(pool, T, down, y, bias, [&](const Kernels& k, Scratch& s, int64_t stride) {
    thread_local Scratch gu_tls;  // gate's and up's input; s (the caller's) is down's
    Scratch& g = gu_tls;
    const int64_t gstride = size_scratch(g, G, T);
    quantize_rows(pool, k, G, x, T, in, g, gstride);
    pool.parallel_for(units, 1, [&](int, int64_t u0, int64_t u1) {
      // This thread's gate and up outputs of a chunk, and one row of down's input.
      thread_local std::vector<float> buf, row;
      buf.resize(static_cast<size_t>(2 * std::min(tc, T) * unit));
      row.resize(static_cast<size_t>(unit));
      for (int64_t u = u0; u < u1; ++u) {
        const int64_t c0 = u * unit, n = std::min(unit, I - c0), tiles = n / kTileRows;
        const detail::PackedW gate_unit = tile_rows(G, c0 / kTileRows, c0 / kTileRows + tiles);
        const detail::PackedW up_unit = tile_rows(U, c0 / kTileRows, c0 / kTileRows + tiles);
        // The last unit also zero-fills the padding blocks past I, as qmatmul's
        // quantization of the whole row does.
        const int64_t b0 = c0 / kBlock, b1 = u == units - 1 ? D.nb : b0 + n / kBlock;
        for (int64_t t0 = 0; t0 < T; t0 += tc) {
          const int64_t tn = std::min(tc, T - t0);
          float* gy = buf.data();
          float* uy = buf.data() + tn * n;
          const detail::QAct A = act_view(g, G, gstride, t0);
          k.tiles(gate_unit, A, tn, 0, tiles, gy, nullptr, fetch);
          k.tiles(up_unit, A, tn, 0, tiles, uy, nullptr, fetch);
          for (int64_t t = t0; t < t0 + tn; ++t) {
            glu(row.data(), gy + (t - t0) * n, uy + (t - t0) * n, n);
            k.quantize(row.data(), n, b1 - b0, s.q.data() + t * stride + c0,
                       s.d.data() + t * D.nb + b0, s.sum.data() + t * D.nb + b0);
            finish_blocks(D, k, s, t, b0, b1);
          }
        }
      }
    });
  });
}

}  // namespace troupe::quant
