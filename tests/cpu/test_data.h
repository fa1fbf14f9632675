#pragma once
// Random inputs and tensor builders for the CPU kernel tests.
#include <cstdint>
#include <hwy/targets.h>

#include <catch2/catch.hpp>
#include <algorithm>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "core/half.h"
#include "cpu/kernels.h"
#include "model/tensor.h"

namespace troupe::test {

inline std::vector<float> random_floats(int64_t n, uint32_t seed, float lo = -1.0f,
                                        float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = dist(rng);
  return v;
}

// K and V of `n_ctx` positions in a pool with `spare` unused blocks, behind a block table
// that is a random permutation of the pool, so positions are scattered.
struct ScatteredKv {
  std::vector<int32_t> table;
  std::vector<float> k, v;
  ScatteredKv(int64_t n_ctx, int64_t bs, int64_t n_kv, int64_t hd, int64_t spare, uint32_t seed) {
    const int64_t used = (n_ctx + bs - 1) / bs, n_blocks = used + spare;
    std::vector<int32_t> perm(n_blocks);
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), std::mt19937(seed));
    table.assign(perm.begin(), perm.begin() + used);
    k = random_floats(n_blocks * bs * n_kv * hd, seed + 1);
    v = random_floats(n_blocks * bs * n_kv * hd, seed + 2);
  }
  cpu::PagedKv view(int64_t bs, int64_t n_kv, int64_t hd) const { return {k.data(), v.data(), table.data(), bs, n_kv, hd}; }
};

// A ScatteredKv pool written as `dtype` token row by token row (as the backend writes it),
// and the same pool read back as floats.
struct StoredKv {
  KvDtype dtype;
  std::vector<uint8_t> k, v;
  std::vector<float> k_scale, v_scale;  // Int8: one per (position slot, KV head)
  std::vector<float> k_deq, v_deq;
  StoredKv(const ScatteredKv& f, int64_t n_kv, int64_t hd, KvDtype dt) : dtype(dt) {
    const int64_t row = n_kv * hd, rows = int64_t(f.k.size()) / row;
    const int64_t row_bytes = row * kv_dtype_elem_bytes(dt);
    k.resize(size_t(rows * row_bytes));
    v.resize(size_t(rows * row_bytes));
    k_scale.resize(size_t(rows * n_kv));
    v_scale.resize(size_t(rows * n_kv));
    k_deq.resize(f.k.size());
    v_deq.resize(f.v.size());
    for (int64_t r = 0; r < rows; ++r) {
      cpu::kv_store_row(dt, f.k.data() + r * row, n_kv, hd, k.data() + r * row_bytes, k_scale.data() + r * n_kv);
      cpu::kv_store_row(dt, f.v.data() + r * row, n_kv, hd, v.data() + r * row_bytes, v_scale.data() + r * n_kv);
      cpu::kv_load_row(dt, k.data() + r * row_bytes, k_scale.data() + r * n_kv, n_kv, hd, k_deq.data() + r * row);
      cpu::kv_load_row(dt, v.data() + r * row_bytes, v_scale.data() + r * n_kv, n_kv, hd, v_deq.data() + r * row);
    }
  }
  cpu::PagedKv stored(const ScatteredKv& f, int64_t bs, int64_t n_kv, int64_t hd) const {
    return {k.data(), v.data(), f.table.data(), bs, n_kv, hd, dtype, k_scale.data(), v_scale.data()};
  }
  cpu::PagedKv dequantized(const ScatteredKv& f, int64_t bs, int64_t n_kv, int64_t hd) const {
    return {k_deq.data(), v_deq.data(), f.table.data(), bs, n_kv, hd};
  }
};

// A matrix [rows, cols] of dtype F32 or F16 with random values, owning its bytes.
struct OwnedMatrix {
  std::vector<uint8_t> bytes;
  TensorView view;
};

inline OwnedMatrix random_matrix(DType dt, int64_t rows, int64_t cols, uint32_t seed) {
  OwnedMatrix m;
  const auto vals = random_floats(rows * cols, seed);
  m.bytes.resize(static_cast<size_t>(dtype_row_bytes(dt, cols) * rows));
  for (int64_t i = 0; i < rows * cols; ++i) {
    if (dt == DType::F32) {
      std::memcpy(m.bytes.data() + 4 * i, &vals[i], 4);
    } else {
      const uint16_t h = dt == DType::F16 ? f32_to_f16(vals[i]) : f32_to_bf16(vals[i]);
      std::memcpy(m.bytes.data() + 2 * i, &h, 2);
    }
  }
  m.view.name = "test";
  m.view.dtype = dt;
  m.view.shape = {rows, cols};
  m.view.data = m.bytes.data();
  m.view.nbytes = static_cast<int64_t>(m.bytes.size());
  return m;
}

// Runs fn once per SIMD target the kernels are compiled for and this CPU supports
// (AVX-512, AVX2, scalar fallback), forcing Highway's dispatch to it, so every code path
// is tested on one machine.
template <typename Fn>
void for_each_target(Fn fn) {
  struct Reset {
    ~Reset() { hwy::SetSupportedTargetsForTest(0); }
  } reset;
  const int64_t supported = hwy::SupportedTargets();
  for (int64_t t : {int64_t(HWY_AVX3), int64_t(HWY_AVX2), int64_t(HWY_SCALAR)}) {
    if (!(supported & t)) continue;
    hwy::SetSupportedTargetsForTest(t);
    INFO("target " << hwy::TargetName(t));
    fn();
  }
}

}  // namespace troupe::test
