#pragma once
// CPU compute kernels. Each has a plain scalar reference in reference.h and a test against
// it. The fast versions use Highway with runtime dispatch (AVX-512 / AVX2 / SSE4 chosen at
// run time) and are single-threaded unless they take a ThreadPool.
#include <cstdint>
#include <functional>

#include "core/kv_dtype.h"
#include "cpu/thread_pool.h"
#include "model/config.h"
#include "model/tensor.h"

namespace troupe::cpu {

// y[t, o] = sum_i x[t, i] * W[o, i]  for t < T, with W [out, in] of dtype F32 or F16.
// Row-major W: small T is a multithreaded SIMD multi-row GEMV (memory bound: W is streamed
// once), larger T a GEMM (OpenBLAS sgemm where it has this CPU's widest kernel, else the
// tiled Highway GEMM; F16 rows converted tile by tile, never a full float copy).
// y may not alias x. `bias` (length out, F32) is added if non-null.
// W in MatrixLayout::Panels (what the CPU backend runs; F32, F16 or BF16) takes one kernel
// for every T (kernels_panel.cpp), whose outputs are the same bits whatever T is and
// whatever the pool's size. A narrow panel matrix (panel_input_parts > 1) is summed in
// parts of its inputs, added in order.
void matmul(ThreadPool& pool, const float* x, int64_t T, const TensorView& W, float* y,
            const float* bias = nullptr);

// How many parts of its inputs a panel matrix of `out` rows and `in` inputs is summed in:
// 1, or for fewer than kInputSplitBelowPanels panels (too few to spread over a pool) and at
// least 2 x kInputPartMin inputs, min(kInputPartsMax, in / kInputPartMin) when that divides
// `in`. Each part is one FMA chain over its inputs, as a whole row is otherwise; the parts'
// sums are then added in order. A function of the shape alone, so every T and every pool
// size gives the same bits (but not the bits of a stack it is a member of: the CPU backend
// stacks no such matrix). Why: the grown speculative target's down_proj (128 rows, 16384
// inputs) is 2 panels, so a pool of any size ran it on at most 2 threads, each reading every
// input column; in parts, the pool's halves usually read the columns their own
// matmul_glu_pairs wrote (chunk c is pool thread c's unless its worker is late and the
// caller runs it, cpu/thread_pool.h; docs/benchmarks.md, session 30).
constexpr int64_t kInputSplitBelowPanels = 4;
constexpr int64_t kInputPartMin = 2048;
constexpr int64_t kInputPartsMax = 8;
int64_t panel_input_parts(int64_t out, int64_t in);

// The SwiGLU feed-forward's first half: act[t * I + i] = silu(gate[t, i]) * up[t, i] for
// t < T, i < I, with W the 2I-row panel matrix of gate and up made by pack_panels_paired
// (its panels alternate: gate's j-th, then up's j-th). The pool splits the panel pairs, and
// each thread applies SiLU to a pair's sums in its own buffer, so the sums never pass
// between threads and each column of act is written by the thread that summed it. Where the
// two threads of a pool sit far apart (the host's fast-memory placement, session 30: a cache
// line's round trip 360-420 ns against 80-130), the separate silu_mul_to pass over a
// [gate | up] stack took 63k cycles a layer in a 1 + 4-row step of the grown target, 26k
// with the threads close. The same bits as matmul of gate and of up, then silu_mul_to; so
// gate and up must each be summed whole (panel_input_parts(I, in) == 1; else this fails).
void matmul_glu_pairs(ThreadPool& pool, const float* x, int64_t T, const TensorView& W, float* act);

// Bytes of a [rows, cols] F32, F16 or BF16 matrix in MatrixLayout::Panels (padding included).
int64_t panel_bytes(DType dtype, int64_t rows, int64_t cols);
// The row-major elements (same dtype) of a panel-layout matrix, rows() x cols() of them.
void unpack_panels(const TensorView& src, void* dst);
// Writes the rows of the row-major matrix `src` as rows [row0, row0 + src.rows()) of a
// panel-layout matrix at dst (of the same dtype and cols), with the pool. Rows of dst it
// does not cover are left as they are: zero them first (the padding of the last panel
// must read as zeros, and stacked matrices are packed one member at a time).
void pack_panels(ThreadPool& pool, const TensorView& src, int64_t row0, void* dst);
// Writes the row-major matrices a and b (the same shape and dtype, whole panels of rows) as
// one panel matrix of 2 x a.rows() rows whose panels alternate: a's panel j is panel 2j, b's
// panel 2j + 1 (matmul_glu_pairs' layout).
void pack_panels_paired(ThreadPool& pool, const TensorView& a, const TensorView& b, void* dst);

// out[i] = x[i] / rms(x) * w[i];  w is F32. out may alias x.
void rmsnorm(const float* x, const float* w, float* out, int64_t n, float eps);

// Rotates `n_heads` heads of `head_dim` in place for position `pos`.
void rope(float* v, int64_t n_heads, int64_t head_dim, int64_t pos, float theta, RopeStyle style);

// x[i] = silu(gate[i]) * up[i]   (gate overwritten)
void silu_mul(float* gate, const float* up, int64_t n);
// out[i] = silu(gate[i]) * up[i]: the same values as silu_mul; out may alias gate.
void silu_mul_to(float* out, const float* gate, const float* up, int64_t n);

// y[i] += x[i]
void add_inplace(float* y, const float* x, int64_t n);

// Numerically stable in-place softmax.
void softmax(float* x, int64_t n);

// out = row `row` of an embedding table (F32, F16, BF16, Q8_0 or Q4_0) as float.
void embedding_row(const TensorView& table, int64_t row, float* out);

// Converts a whole tensor to F32 (used at load for dtypes the backend has no kernel for).
void to_f32(const TensorView& t, float* out);

// The index of the head_dim-element row of KV head `head` at `slot` of pool block `block`:
// its elements start at row * head_dim, its Int8 scale is scales[row].
inline int64_t kv_head_row(int64_t block, int64_t slot, int64_t head, int64_t block_size,
                           int64_t n_kv_heads) {
  return (block * n_kv_heads + head) * block_size + slot;
}

// Paged attention for one query token of one sequence over its first n_ctx cached
// positions. The cache of one layer is [num_blocks][n_kv_heads][block_size][head_dim]
// elements of `dtype` for K and for V: within a block, each KV head's rows are one run
// (kv_head_row), so a head's walk over the positions reads whole runs in order rather than
// a head_dim piece of every token's row. Position p lives in block block_table[p /
// block_size], slot p % block_size. Head h reads KV head h / (n_heads / n_kv_heads) (GQA).
// With dtype Int8, k_scale / v_scale hold one float per head row, at the same index
// (core/kv_dtype.h). The kernels convert K and V to float as they load them (kv_load_row's
// values exactly); the math is float whatever the dtype.
// q: [n_heads * head_dim]; out: [n_heads * head_dim]; scratch: >= n_ctx floats.
struct PagedKv {
  const void* k = nullptr;
  const void* v = nullptr;
  const int32_t* block_table = nullptr;
  int64_t block_size = 16;
  int64_t n_kv_heads = 0;
  int64_t head_dim = 0;
  KvDtype dtype = KvDtype::F32;
  const float* k_scale = nullptr;  // Int8 only
  const float* v_scale = nullptr;
};

// Writes one token's K or V row ([n_heads][head_dim] floats) into the cache as `dtype`:
// dst gets n_heads * head_dim elements; with Int8 also scales[h] for each head (absmax /
// 127, 0 for an all-zero head). F16 / BF16 round to nearest even. With head_stride > 1,
// head h goes head_stride rows further on (dst + h * head_stride * head_dim elements,
// scales[h * head_stride]): a token's heads into their runs of a cache block, whose
// head_stride is the block size (kv_head_row).
void kv_store_row(KvDtype dtype, const float* src, int64_t n_heads, int64_t head_dim,
                  void* dst, float* scales, int64_t head_stride = 1);
// The float values a stored row reads back as (what the attention kernels compute with):
// n_heads * head_dim floats from src (and scales for Int8).
void kv_load_row(KvDtype dtype, const void* src, const float* scales, int64_t n_heads,
                 int64_t head_dim, float* dst);
// (The kernels use a one-pass online softmax: `scratch` is no longer read or written and
// may be null; it stays in the signatures for compatibility.)
void attention_one(const float* q, int64_t n_heads, const PagedKv& kv, int64_t n_ctx,
                   float scale, float* out, float* scratch);
// Same for one head only.
void attention_head(const float* q_head, int64_t head, int64_t n_heads, const PagedKv& kv,
                    int64_t n_ctx, float scale, float* out_head, float* scratch);
// All query heads that share KV head `kv_head` (heads [kv_head * G, (kv_head + 1) * G),
// G = n_heads / n_kv_heads); q and out are the full [n_heads * head_dim] rows. Reads that
// KV head's K and V once for the whole group instead of G times (the decode path; the
// backend runs it as attention_causal_tile with one position).
void attention_kv_group(const float* q, int64_t kv_head, int64_t n_heads, const PagedKv& kv,
                        int64_t n_ctx, float scale, float* out);
// Causal attention for n_pos consecutive positions first_pos, first_pos + 1, ... of one
// sequence (a prefill chunk or a 1 + k verification run), the query heads of KV head
// `kv_head` only: row i is the full [n_heads * head_dim] query at q + i * q_stride, sees
// positions [0, first_pos + i] (their K/V already in the cache) and writes its group's heads
// of out + i * out_stride. The tile reads each KV block once for all its rows. Each row's
// result is bit-identical to attention_kv_group with n_ctx = first_pos + i + 1, whatever
// tile it is part of (batch invariance).
void attention_causal_tile(const float* q, int64_t q_stride, int64_t kv_head, int64_t n_heads,
                           const PagedKv& kv, int64_t first_pos, int64_t n_pos, float scale,
                           float* out, int64_t out_stride);

// Streams a large buffer with all pool threads and returns the measured read bandwidth
// in bytes/s (best of a few passes) - the denominator of the decode roofline.
double measure_read_bandwidth(ThreadPool& pool, int64_t bytes = int64_t(1) << 30);

// The same probe with its buffer kept (allocated and first touched once), so that a
// benchmark can interleave probes with the runs it compares against them: on a shared
// machine bandwidth drifts by tens of percent from one second to the next.
class ReadBandwidthProbe {
 public:
  explicit ReadBandwidthProbe(ThreadPool& pool, int64_t bytes = int64_t(1) << 30);
  ~ReadBandwidthProbe();
  ReadBandwidthProbe(const ReadBandwidthProbe&) = delete;
  ReadBandwidthProbe& operator=(const ReadBandwidthProbe&) = delete;
  // Best of `passes` whole passes over the buffer with each of two loops (float adds, and
  // halves widened with a fetch after each line: cpu/kernels_gemv.cpp), every pool thread
  // reading its slice, in bytes/s.
  double measure(int passes = 5);

 private:
  ThreadPool& pool_;
  float* buf_ = nullptr;
  int64_t n_ = 0;  // floats
};

// The FMA peak probe (kernels_peak.cpp): float multiply-add FLOP/s (2 per FMA lane) with
// every pool thread running independent FMA chains in registers, best pass of at least 3
// and at least `seconds` in all - the ceiling for compute-bound steps.
double measure_fma_peak(ThreadPool& pool, double seconds = 0.3);
// The peak probes' timing: passes of pass(thread) on every pool thread (each call returns
// the operations it did), at least 3 and at least `seconds` in all; the best pass's rate in
// operations per second (a busy moment lowers a pass, nothing raises one).
double best_pass_rate(ThreadPool& pool, double seconds, const std::function<int64_t(int)>& pass);
// The probe's loop on the calling thread (for tests): fma_chains_count() chains, chain j
// starting at j in every lane, `iters` times acc = fma(acc, m, a); writes lane 0 of each
// chain to out and returns the FMA lanes done.
int fma_chains_count();
int64_t fma_chains(int64_t iters, float m, float a, float* out);

}  // namespace troupe::cpu
