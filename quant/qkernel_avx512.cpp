// AVX-512 VNNI kernels (compiled with -mavx512{f,bw,vl,dq,vnni}; called only after the
// cpuid check in qmatmul.cpp).
//
// One tile = 16 output rows = the 16 int32 lanes of a zmm. For each block of 32 inputs a
// token needs 8 vpdpbusd: each multiplies 64 packed weight bytes (4 inputs x 16 rows, see
// qtensor.h) by the same 4 activation bytes broadcast to every lane (GCC 12 emits one
// vpbroadcastd load per broadcast, not an embedded-broadcast operand: folding it measured
// no faster, docs/benchmarks.md session 17), so the 16 row sums come out in lanes with no
// horizontal reduction.
// Float work is one convert + FMA per block per token (plus a scale FMA per Int4 group).
//
// GEMV (T = 1) reads each weight byte once, ~1/8 (4-bit) or ~1/4 (8-bit) of F32's bytes;
// the two interleaved accumulator chains per block keep vpdpbusd latency off the critical
// path. GEMM (T > 1) runs two tiles x 2-5 tokens per pass (`tile_pair_tokens`, see run()):
// each broadcast activation word feeds both tiles' vpdpbusd, so a dot product costs 0.75
// loads instead of 1.25 at 4 tokens (4-bit: 0.625 instead of 1.125), and a pair ran at
// 0.6-0.9 of the peak where one tile at a time ran at 0.5-0.7 of it (docs/benchmarks.md,
// session 18). An odd tile, and T = 1, take the one-tile kernel. Both kernels do the same
// integer sums and the same float operations in the same order, so a token's result does
// not depend on which kernel (or batch position) computed it.
//
// Offsets: vpdpbusd multiplies unsigned by signed bytes. Weights are the unsigned side
// (4-bit q, or 8-bit q + 128); the constant offset (128, or Q4_0's 8) is removed exactly by
// starting the block accumulator at -offset * sum(xq) (precomputed: QAct::off). Int4's
// per-row zero point is removed per group in float: z * s * sum_b(d_b * sum_b).
// GCC 12 warns about the deliberately undefined pass-through operand
// (_mm512_undefined_*) inside its own intrinsics (cvtepi32_ps, cvtph_ps, ...).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include "cpu/prefetch_share.h"
#include "quant/qkernel.h"

namespace troupe::quant::detail {
namespace {

// Tokens per GEMM pass over a pair of tiles (Int4: 4 unpacked weight vectors + 2 tiles x
// kTB x 3 accumulators, block, group and row = 28 of the 32 zmm). 3 and 5 tokens measured
// within ~15% of 4 either way at T = 32; one tile at a time (8 weights + 3 * kTB
// registers) read 6 and 8 tokens no faster than 4. run() still takes one 5-token pass
// where T % 4 == 1: for Int4 that asks for 34 zmm, so some spill. (A 1 + 4-row step took
// 0.88x the time with it for 110M INT4, 0.97-0.98x for the grown target's INT4, whose
// step is bound by the unpacking and group work; docs/benchmarks.md, session 21.)
constexpr int kTB = 4;
// GEMV: each weight line is fetched ahead right after the load of the line it replaces
// (`block` in tile_tokens), as the host's tuning says (cpu/host_tuning.h): into L1 8 KiB
// ahead (AMD; see below), or into L2 8 KiB ahead followed by 4 no-ops (pace_with_nops,
// cpu/prefetch_share.h; Intel). The hardware prefetcher alone left the 4-bit formats ~15%
// short of the bandwidth the 8-bit ones reach (less time between loads). Until session 27 a
// block's lines were fetched together at its top (GCC's placement of _mm_prefetch), 4 KiB
// ahead, into L1. On session 27's host (Intel, 480 MiB L3), in one binary, batch-1 decode
// with the fetches spread: llama-1b (weights from DRAM) Q8_0 +7%, INT8 +8%, INT4 +5%, Q4_0
// the same; 110M (weights in L3) Q8_0 +14-19%, INT8 +25-30%, the 4-bit formats the same
// (into L1 instead, 1B Q4_0 ran 13% slower than before). Then with 4 no-ops a line,
// llama-1b: Q4_0 +14-16%, Q8_0 +10-13%, INT8 +10-16%, INT4 +11-14%; 2 or 6 no-ops gained
// less or the same. On the Zen 5 host (session 28), in an experiment binary, that paced L2
// fetch was the slowest variant (110M Q8_0, INT8 and INT4 10-15% below the L1 fetch 4 KiB
// ahead, Q4_0 6-24%), and the L1 fetch measured the same as the fetch at the block's top
// and as L1 8 KiB ahead; with the GEMV as its own function (gemv), the Intel table runs
// the 4-bit formats at 0.95-0.99 of the AMD one there (docs/benchmarks.md, "Session 27"
// and "Session 28").
// The L1 fetch went from 4 to 8 KiB ahead in session 33, so both fetches now look 8 KiB
// ahead. Session 28 had measured the two distances the same, but at the Zen 5 host's slow
// memory level; at its fast one (the far placement of session 30: ~80 GB/s, a cache line
// ~0.2 us between the cores) 4 KiB was too short. Batch-1 decode of 110M, in turns with
// the 4 KiB build, fast level: Q4_0 1167 against 1044 tok/s (0.857 of the roofline against
// 0.776), Q8_0 664 against 635, INT8 711 against 681, INT4 1064 against 1008 (medians of 4
// runs each); slow level: the same or faster, and llama-1b Q4_0 0.918 of the roofline
// against 0.907. 12 KiB was faster still at the fast level (110M Q4_0 0.93-0.96) but cost
// llama-1b Q4_0 7% at the slow one (3-4 runs each); a second fetch into L2 12 or 20 KiB
// ahead cost both levels (docs/benchmarks.md, session 33).
constexpr int64_t kGemvAhead = 8192;
constexpr int kGemvPaceNops = 4;

inline __m512i bcast4(const int8_t* p) {
  int32_t v;
  __builtin_memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

// Int4 group g of a tile: its f16 scales s and s * z, the zero point's term.
inline void group_scales(const PackedW& W, int64_t tile, int64_t g, __m512& s, __m512& sz) {
  const int64_t k = (tile * W.ng + g) * kTileRows;
  s = _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(W.d16 + k)));
  const __m512 z = _mm512_cvtepi32_ps(
      _mm512_cvtepu8_epi32(_mm_load_si128(reinterpret_cast<const __m128i*>(W.z + k))));
  sz = _mm512_mul_ps(s, z);
}

// Q8_0 / Q4_0: the f16 scales of block b of a tile.
inline __m512 block_scales(const PackedW& W, int64_t tile, int64_t b) {
  return _mm512_cvtph_ps(
      _mm256_load_si256(reinterpret_cast<const __m256i*>(W.d16 + (tile * W.ng + b) * kTileRows)));
}

// A tile's row sums of tokens [t0, t0 + TB) into y: Int8's row scales, then the bias.
template <QFormat F, int TB>
inline void store_tile(const PackedW& W, int64_t tile, __mmask16 mask, const __m512* yacc,
                       int64_t t0, float* y, const float* bias) {
  const int64_t r0 = tile * kTileRows;
  __m512 post = _mm512_set1_ps(1.0f);
  if constexpr (F == QFormat::Int8) post = _mm512_load_ps(W.s32 + r0);
  const __m512 bv = bias ? _mm512_maskz_loadu_ps(mask, bias + r0) : _mm512_setzero_ps();
  for (int t = 0; t < TB; ++t) {
    const __m512 v = F == QFormat::Int8 ? _mm512_fmadd_ps(yacc[t], post, bv)
                                        : _mm512_add_ps(yacc[t], bv);
    _mm512_mask_storeu_ps(y + (t0 + t) * W.rows + r0, mask, v);
  }
}

// Rows of one tile for tokens [t0, t0 + TB). kFetch: the GEMV's fetch (TB = 1; gemv passes
// the host's; the one-token tail of a T >= 2 call's odd tile, a single tile, takes the
// default).
template <QFormat F, int TB, cpu::GemvFetch kFetch = cpu::GemvFetch::kL1>
inline void tile_tokens(const PackedW& W, const QAct& A, int64_t t0, int64_t tile,
                        __mmask16 mask, float* y, const float* bias) {
  constexpr bool k4 = is_4bit(F);
  constexpr int64_t BB = tile_block_bytes(F);
  constexpr bool kOffset = F != QFormat::Int4;  // block dots start at A.off (see qkernel.h)
  const uint8_t* wp = W.w + tile * W.nb * BB;
  const int8_t* xq[TB];
  const float* xd[TB];
  const int32_t* xo[TB];
  __m512 yacc[TB], gacc[TB] = {};
  for (int t = 0; t < TB; ++t) {
    xq[t] = A.q + (t0 + t) * A.stride;
    xd[t] = A.d + (t0 + t) * A.nb;
    xo[t] = A.off + (t0 + t) * A.nb;
    yacc[t] = _mm512_setzero_ps();
  }
  const __m512i lo_mask = _mm512_set1_epi8(0x0f), hi_mask = _mm512_set1_epi8(static_cast<char>(0xf0));

  // One block of 32 inputs for the TB tokens, into acc (Int4: the group's accumulators).
  auto block = [&](int64_t b, const uint8_t* wb, __m512* acc) __attribute__((always_inline)) {
    // GEMV: line j of the block kGemvAhead ahead, after this block's line j (see kGemvAhead).
    const auto fetch_ahead = [&](__m512i& loaded, int j) __attribute__((always_inline)) {
      if constexpr (TB == 1) {
        const uint8_t* ahead = wb + kGemvAhead + 64 * j;
        cpu::prefetch_after<kFetch == cpu::GemvFetch::kL1 ? 1 : 2>(loaded, ahead);
        if constexpr (kFetch == cpu::GemvFetch::kL2Paced) cpu::pace_with_nops<kGemvPaceNops>();
      }
    };
    __m512i w[8];
    if constexpr (k4) {
      // Low nibbles pair with inputs 8j..8j+3; high nibbles stay in place (x16) and pair
      // with 8j+4..8j+7 in a second accumulator that is shifted back once per block.
      for (int j = 0; j < 4; ++j) {
        __m512i v = _mm512_load_si512(wb + 64 * j);
        fetch_ahead(v, j);
        w[2 * j] = _mm512_and_si512(v, lo_mask);
        w[2 * j + 1] = _mm512_and_si512(v, hi_mask);
      }
    } else {
      for (int k = 0; k < 8; ++k) {
        w[k] = _mm512_load_si512(wb + 64 * k);
        fetch_ahead(w[k], k);
      }
    }
    __m512 ds;
    if constexpr (F == QFormat::Q8_0 || F == QFormat::Q4_0) ds = block_scales(W, tile, b);
    for (int t = 0; t < TB; ++t) {
      const int8_t* xp = xq[t] + b * kBlock;
      __m512i a0 = kOffset ? _mm512_set1_epi32(xo[t][b]) : _mm512_setzero_si512();
      __m512i a1 = _mm512_setzero_si512();
      for (int k = 0; k < 8; k += 2) {
        // 4-bit: w[k] = inputs 4k..4k+3 (k = 2j), w[k+1] = 16 * inputs 4k+4..4k+7.
        a0 = _mm512_dpbusd_epi32(a0, w[k], bcast4(xp + 4 * k));
        a1 = _mm512_dpbusd_epi32(a1, w[k + 1], bcast4(xp + 4 * k + 4));
      }
      const __m512i a = _mm512_add_epi32(a0, k4 ? _mm512_srai_epi32(a1, 4) : a1);
      const __m512 af = _mm512_cvtepi32_ps(a), dx = _mm512_set1_ps(xd[t][b]);
      if constexpr (F == QFormat::Int8 || F == QFormat::Int4)
        acc[t] = _mm512_fmadd_ps(af, dx, acc[t]);
      else
        acc[t] = _mm512_fmadd_ps(af, _mm512_mul_ps(ds, dx), acc[t]);
    }
  };

  if constexpr (F == QFormat::Int4) {
    int64_t b = 0;
    for (int64_t g = 0; g < W.ng; ++g) {
      for (int t = 0; t < TB; ++t) gacc[t] = _mm512_setzero_ps();
      for (const int64_t bend = b + W.group_blocks; b < bend; ++b, wp += BB) block(b, wp, gacc);
      __m512 s, sz;
      group_scales(W, tile, g, s, sz);
      for (int t = 0; t < TB; ++t) {
        yacc[t] = _mm512_fmadd_ps(s, gacc[t], yacc[t]);
        yacc[t] = _mm512_fnmadd_ps(sz, _mm512_set1_ps(A.gsum[(t0 + t) * A.ng + g]), yacc[t]);
      }
    }
  } else {
    // No group scales: one flat loop over the blocks (a group loop of one block each cost
    // Q4_0 / Q8_0 a loop prologue per block, with pointer reloads from the stack).
    for (int64_t b = 0; b < W.nb; ++b, wp += BB) block(b, wp, yacc);
  }

  store_tile<F, TB>(W, tile, mask, yacc, t0, y, bias);
}

// Each pass (2-5 tokens) over a tile pair fetches its share of the next pair's weights
// (cpu/prefetch_share.h). A pair's weights come from L1/L2 in every pass but the first,
// which used to wait on DRAM; now the passes over the previous pair have fetched them.
// One thread, T = 32, weights cold: 0.75-0.95x the time on the 110M shapes, 0.82-0.94x on
// K = 128, 0.94-1.01x on K = 16384 (`test_quant "quantized matmul benchmark"`; an L2 hint
// gained less; docs/benchmarks.md, session 19). Pairs over kAheadMaxBytes (the grown
// target's down projection, 256-512 KiB) are left to the hardware prefetchers: fetching
// them gained nothing (0.94-1.01x above), and the next pair beside the current one would
// fill this core's 1 MiB L2.
constexpr int64_t kAheadMaxBytes = 64 << 10;

// Rows of tiles `tile` and `tile` + 1 for tokens [t0, t0 + TB): tile_tokens's sums and
// float steps, with the k-steps outermost so one activation broadcast serves both tiles.
// Inlined into run(): called out of line, GCC 12 zeroed the spilled row sums with a
// `rep stos` per call, which cost Int4 all of its gain on K = 128 (one group per pass).
template <QFormat F, int TB, int NA = (TB <= 3 ? 2 : 1)>
__attribute__((always_inline)) inline void tile_pair_tokens(const PackedW& W, const QAct& A,
                                                            int64_t t0, int64_t tile,
                                                            __mmask16 mask1, float* y,
                                                            const float* bias, cpu::PrefetchShare ahead) {
  constexpr int NT = 2;
  constexpr bool k4 = is_4bit(F);
  constexpr int64_t BB = tile_block_bytes(F);
  constexpr bool kOffset = F != QFormat::Int4;
  const uint8_t* wp[NT] = {W.w + tile * W.nb * BB, W.w + (tile + 1) * W.nb * BB};
  const int8_t* xq[TB];
  const float* xd[TB];
  const int32_t* xo[TB];
  __m512 yacc[NT][TB], gacc[NT][TB];
  for (int t = 0; t < TB; ++t) {
    xq[t] = A.q + (t0 + t) * A.stride;
    xd[t] = A.d + (t0 + t) * A.nb;
    xo[t] = A.off + (t0 + t) * A.nb;
    for (int i = 0; i < NT; ++i) yacc[i][t] = _mm512_setzero_ps();
  }
  const __m512i lo_mask = _mm512_set1_epi8(0x0f);

  // This pass's share of the next pair, spread over its blocks.
  const int64_t ahead_per_block = ahead.per_step(W.nb);

  // One block of 32 inputs for both tiles and the TB tokens, into acc.
  auto block = [&](int64_t b, __m512 (*acc)[TB]) __attribute__((always_inline)) {
    ahead.step(ahead_per_block);
    // NA chains of integer dots per (tile, token), taking the block's k-steps in turn and
    // summed at its end (the same integer sum). One chain is 8 dependent vpdpbusd a
    // block; 4 or 5 tokens give 8-10 chains, enough to hide the latency, 2 or 3 only 4-6.
    __m512i a[NA][NT][TB];
    for (int t = 0; t < TB; ++t) {
      const __m512i init = kOffset ? _mm512_set1_epi32(xo[t][b]) : _mm512_setzero_si512();
      for (int i = 0; i < NT; ++i) {
        a[0][i][t] = init;
        if constexpr (NA == 2) a[1][i][t] = _mm512_setzero_si512();
      }
    }
    const int8_t* xb[TB];
    for (int t = 0; t < TB; ++t) xb[t] = xq[t] + b * kBlock;
    // Applies weights w[i] (inputs 4k..4k+3 of both tiles) to every token.
    auto step = [&](const __m512i* w, int k) __attribute__((always_inline)) {
      for (int t = 0; t < TB; ++t) {
        const __m512i x = bcast4(xb[t] + 4 * k);
        for (int i = 0; i < NT; ++i)
          a[k % NA][i][t] = _mm512_dpbusd_epi32(a[k % NA][i][t], w[i], x);
      }
    };
    for (int j = 0; j < (k4 ? 4 : 8); ++j) {
      __m512i lo[NT], hi[NT];
      for (int i = 0; i < NT; ++i) {
        const __m512i v = _mm512_load_si512(wp[i] + b * BB + 64 * j);
        // 4-bit: low nibbles are inputs 8j..8j+3, high nibbles 8j+4..8j+7 (tile_tokens).
        lo[i] = k4 ? _mm512_and_si512(v, lo_mask) : v;
        if constexpr (k4) hi[i] = _mm512_and_si512(_mm512_srli_epi16(v, 4), lo_mask);
      }
      step(lo, k4 ? 2 * j : j);
      if constexpr (k4) step(hi, 2 * j + 1);
    }
    for (int i = 0; i < NT; ++i) {
      __m512 ds;
      if constexpr (F == QFormat::Q8_0 || F == QFormat::Q4_0) ds = block_scales(W, tile + i, b);
      for (int t = 0; t < TB; ++t) {
        __m512i sum = a[0][i][t];
        if constexpr (NA == 2) sum = _mm512_add_epi32(sum, a[1][i][t]);
        const __m512 af = _mm512_cvtepi32_ps(sum), dx = _mm512_set1_ps(xd[t][b]);
        if constexpr (F == QFormat::Int8 || F == QFormat::Int4)
          acc[i][t] = _mm512_fmadd_ps(af, dx, acc[i][t]);
        else
          acc[i][t] = _mm512_fmadd_ps(af, _mm512_mul_ps(ds, dx), acc[i][t]);
      }
    }
  };

  if constexpr (F == QFormat::Int4) {
    int64_t b = 0;
    for (int64_t g = 0; g < W.ng; ++g) {
      for (int i = 0; i < NT; ++i)
        for (int t = 0; t < TB; ++t) gacc[i][t] = _mm512_setzero_ps();
      for (const int64_t bend = b + W.group_blocks; b < bend; ++b) block(b, gacc);
      for (int i = 0; i < NT; ++i) {
        __m512 s, sz;
        group_scales(W, tile + i, g, s, sz);
        for (int t = 0; t < TB; ++t) {
          yacc[i][t] = _mm512_fmadd_ps(s, gacc[i][t], yacc[i][t]);
          yacc[i][t] = _mm512_fnmadd_ps(sz, _mm512_set1_ps(A.gsum[(t0 + t) * A.ng + g]), yacc[i][t]);
        }
      }
    }
  } else {
    for (int64_t b = 0; b < W.nb; ++b) block(b, yacc);
  }
  store_tile<F, TB>(W, tile, 0xffff, yacc[0], t0, y, bias);
  store_tile<F, TB>(W, tile + 1, mask1, yacc[1], t0, y, bias);
}

// Tokens [t, T) of one tile, fewer than kTB (the odd tile out of a thread's range).
template <QFormat F>
inline void tail_tokens(const PackedW& W, const QAct& A, int64_t t, int64_t T, int64_t tile,
                        __mmask16 mask, float* y, const float* bias) {
  switch (T - t) {
    case 1: tile_tokens<F, 1>(W, A, t, tile, mask, y, bias); break;
    case 2: tile_tokens<F, 2>(W, A, t, tile, mask, y, bias); break;
    case 3: tile_tokens<F, 3>(W, A, t, tile, mask, y, bias); break;
    default: break;
  }
}

// One pass of `tb` (2 to 5) tokens over a tile pair.
template <QFormat F>
__attribute__((always_inline)) inline void pair_pass(int64_t tb, const PackedW& W, const QAct& A,
                                                     int64_t t0, int64_t tile, __mmask16 mask1,
                                                     float* y, const float* bias,
                                                     cpu::PrefetchShare ahead) {
  switch (tb) {
    case 2: return tile_pair_tokens<F, 2>(W, A, t0, tile, mask1, y, bias, ahead);
    case 3: return tile_pair_tokens<F, 3>(W, A, t0, tile, mask1, y, bias, ahead);
    case 4: return tile_pair_tokens<F, 4>(W, A, t0, tile, mask1, y, bias, ahead);
    case 5: return tile_pair_tokens<F, 5>(W, A, t0, tile, mask1, y, bias, ahead);
    default: break;
  }
}

inline __mmask16 row_mask(const PackedW& W, int64_t tile) {
  const int64_t left = W.rows - tile * kTileRows;
  return static_cast<__mmask16>(left >= kTileRows ? 0xffff : (1u << left) - 1);
}

// T = 1: the streaming one-tile GEMV, tile by tile.
template <QFormat F, cpu::GemvFetch kFetch>
void gemv(const PackedW& W, const QAct& A, int64_t tile0, int64_t tile1, float* y,
          const float* bias) {
  for (int64_t tile = tile0; tile < tile1; ++tile)
    tile_tokens<F, 1, kFetch>(W, A, 0, tile, row_mask(W, tile), y, bias);
}

// T >= 2.
template <QFormat F>
void run(const PackedW& W, const QAct& A, int64_t T, int64_t tile0, int64_t tile1, float* y,
         const float* bias) {
  // Token passes over a tile pair: kTB tokens each, but a T % 4 == 1 (T >= 5) starts with
  // one of 5 and a T % 4 of 2 or 3 ends with one of that many, so that every token takes
  // the pair kernel. Before, the last T % 4 tokens took the one-tile kernel, tile by tile:
  // a 1 + 4-row verification step ran a 4-token pass and then a 1-token pass per tile.
  // Steps of 3, 5, 6, 7 and 9 rows now take 0.78-0.98x the time (docs/benchmarks.md,
  // session 21). T = 1 takes the streaming one-tile GEMV (gemv). Passes of 2 or 3 tokens give
  // each (tile, token) two chains of integer dots (see `block`): with one, a lone 2-token
  // pass measured 0.85-1.11x two one-tile passes; with two, 0.83-0.94x (110M).
  const int64_t first = T >= 5 && T % kTB == 1 ? 5 : T < kTB ? T : kTB;
  const int64_t passes = 1 + (T - first + kTB - 1) / kTB;
  int64_t tile = tile0;
  const int64_t tile_bytes = W.nb * tile_block_bytes(F);
  for (; tile + 1 < tile1; tile += 2) {  // only the matrix's last tile can be partial
    const __mmask16 mask1 = row_mask(W, tile + 1);
    // Only a next pair of this thread's, and small enough to sit in L1/L2 beside this one.
    const char* next = reinterpret_cast<const char*>(W.w + (tile + 2) * tile_bytes);
    const bool fetch = tile + 3 < tile1 && 2 * tile_bytes <= kAheadMaxBytes;
    const int64_t lines = fetch ? 2 * tile_bytes / 64 : 0;
    for (int64_t t = 0, c = 0; c < passes; ++c) {
      const int64_t tb = c == 0 ? first : T - t < kTB ? T - t : kTB;
      pair_pass<F>(tb, W, A, t, tile, mask1, y, bias,
                   cpu::PrefetchShare::of(next, lines, c, passes));
      t += tb;
    }
  }
  const int64_t Tp = T / kTB * kTB;  // tokens in whole passes of kTB
  if (tile < tile1) {  // an odd tile out
    const __mmask16 mask = row_mask(W, tile);
    for (int64_t t = 0; t < Tp; t += kTB) tile_tokens<F, kTB>(W, A, t, tile, mask, y, bias);
    tail_tokens<F>(W, A, Tp, T, tile, mask, y, bias);
  }
}

inline __mmask16 first_n(int64_t n) {
  return static_cast<__mmask16>(n >= 16 ? 0xffff : n <= 0 ? 0 : (1u << n) - 1);
}

}  // namespace

void quantize_act_avx512(const float* x, int64_t n, int64_t nb, int8_t* q, float* d,
                         int32_t* sum) {
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t i0 = b * kBlock;
    const __m512 v0 = _mm512_maskz_loadu_ps(first_n(n - i0), x + i0);
    const __m512 v1 = _mm512_maskz_loadu_ps(first_n(n - i0 - 16), x + i0 + 16);
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
    d[b] = amax / 127.0f;
    const __m512 id = _mm512_set1_ps(amax > 0.0f ? 127.0f / amax : 0.0f);
    // cvtps rounds to nearest even (MXCSR default), like nearbyint in the reference.
    const __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(v0, id));
    const __m512i q1 = _mm512_cvtps_epi32(_mm512_mul_ps(v1, id));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + i0), _mm512_cvtsepi32_epi8(q0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + i0 + 16), _mm512_cvtsepi32_epi8(q1));
    sum[b] = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
  }
}

int64_t dot_chains_avx512(int64_t iters, int32_t* out) {
  // 16 chains: vpdpbusd has a latency of ~4-5 cycles and two ports on the cores measured
  // (2 per cycle per core), so 10 or more are needed; 16 accumulators + 2 operands fit.
  const __m512i w = _mm512_set1_epi8(1);
  const __m512i x = _mm512_set1_epi32(0x00ff0101);  // s8 bytes 1, 1, -1, 0
  __m512i acc[kDotChains];
#pragma GCC unroll 16
  for (int j = 0; j < kDotChains; ++j) acc[j] = _mm512_set1_epi32(j);
  for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 16
    for (int j = 0; j < kDotChains; ++j) acc[j] = _mm512_dpbusd_epi32(acc[j], w, x);
  }
  alignas(64) int32_t lanes[16];
  for (int j = 0; j < kDotChains; ++j) {
    _mm512_store_si512(lanes, acc[j]);
    out[j] = lanes[0];
  }
  return iters * kDotChains * 64;
}

namespace {

template <cpu::GemvFetch kFetch>
void gemv_format(const PackedW& W, const QAct& A, int64_t tile0, int64_t tile1, float* y,
                 const float* bias) {
  switch (W.fmt) {
    case QFormat::Int8: return gemv<QFormat::Int8, kFetch>(W, A, tile0, tile1, y, bias);
    case QFormat::Int4: return gemv<QFormat::Int4, kFetch>(W, A, tile0, tile1, y, bias);
    case QFormat::Q8_0: return gemv<QFormat::Q8_0, kFetch>(W, A, tile0, tile1, y, bias);
    case QFormat::Q4_0: return gemv<QFormat::Q4_0, kFetch>(W, A, tile0, tile1, y, bias);
  }
}

}  // namespace

void tiles_avx512(const PackedW& W, const QAct& A, int64_t T, int64_t tile0, int64_t tile1,
                  float* y, const float* bias, cpu::GemvFetch fetch) {
  // The fetch is a template argument: chosen per line inside the loop, it slowed every
  // variant (session 27).
  if (T == 1) {
    if (fetch == cpu::GemvFetch::kL2Paced)
      return gemv_format<cpu::GemvFetch::kL2Paced>(W, A, tile0, tile1, y, bias);
    return gemv_format<cpu::GemvFetch::kL1>(W, A, tile0, tile1, y, bias);
  }
  switch (W.fmt) {
    case QFormat::Int8: run<QFormat::Int8>(W, A, T, tile0, tile1, y, bias); break;
    case QFormat::Int4: run<QFormat::Int4>(W, A, T, tile0, tile1, y, bias); break;
    case QFormat::Q8_0: run<QFormat::Q8_0>(W, A, T, tile0, tile1, y, bias); break;
    case QFormat::Q4_0: run<QFormat::Q4_0>(W, A, T, tile0, tile1, y, bias); break;
  }
}

}  // namespace troupe::quant::detail
