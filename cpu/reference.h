#pragma once
// Plain scalar references for every kernel in kernels.h: obviously correct, slow, used
// only by tests. Same signatures, minus the thread pool.
#include <cstdint>

#include "cpu/kernels.h"

namespace troupe::cpu::ref {

void matmul(const float* x, int64_t T, const TensorView& W, float* y, const float* bias = nullptr);
void rmsnorm(const float* x, const float* w, float* out, int64_t n, float eps);
void rope(float* v, int64_t n_heads, int64_t head_dim, int64_t pos, float theta, RopeStyle style);
void silu_mul(float* gate, const float* up, int64_t n);
void softmax(float* x, int64_t n);
void embedding_row(const TensorView& table, int64_t row, float* out);
void attention_one(const float* q, int64_t n_heads, const PagedKv& kv, int64_t n_ctx,
                   float scale, float* out);

}  // namespace troupe::cpu::ref
