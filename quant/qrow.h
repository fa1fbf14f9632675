#pragma once
// Vectorised row helpers for the load-time quantizers (Highway, runtime dispatch): the
// plain loops do not vectorise at the baseline ISA (float max reductions and rounding).
#include <cstdint>

namespace troupe::quant::detail {

float row_absmax(const float* x, int64_t n);
void row_minmax(const float* x, int64_t n, float* lo, float* hi);
// q[i] = round_to_nearest_even(clamp(x[i] * mul + add, lo, hi)); lo, hi within int8.
void row_quantize(const float* x, int64_t n, float mul, float add, float lo, float hi,
                  int8_t* q);

}  // namespace troupe::quant::detail
