// Writing token rows into the KV cache in its stored dtype, and reading them back as float
// (kv_store_row / kv_load_row in kernels.h); the conversions are in kv_convert-inl.h,
// shared with the attention kernels.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "cpu/kernels_kv.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include "cpu/kernels.h"
#include "cpu/kv_convert-inl.h"

HWY_BEFORE_NAMESPACE();
namespace troupe::cpu::detail {
namespace HWY_NAMESPACE {

void KvStoreRow(KvDtype dtype, const float* src, int64_t n_heads, int64_t hd, void* dst,
                float* scales, int64_t head_stride) {
  if (head_stride != 1) {  // each head a row of its own
    const int64_t step = head_stride * hd * kv_dtype_elem_bytes(dtype);
    for (int64_t h = 0; h < n_heads; ++h)
      KvStoreRow(dtype, src + h * hd, 1, hd, static_cast<char*>(dst) + h * step,
                 scales ? scales + h * head_stride : nullptr, 1);
    return;
  }
  const int64_t n = n_heads * hd;
  switch (dtype) {
    case KvDtype::F32: std::copy_n(src, n, static_cast<float*>(dst)); return;
    case KvDtype::F16: return KvStoreF16(src, static_cast<uint16_t*>(dst), n);
    case KvDtype::BF16: return KvStoreBF16(src, static_cast<uint16_t*>(dst), n);
    case KvDtype::Int8:
      for (int64_t h = 0; h < n_heads; ++h)
        scales[h] = KvStoreI8(src + h * hd, static_cast<int8_t*>(dst) + h * hd, hd);
      return;
  }
}

void KvLoadRow(KvDtype dtype, const void* src, const float* scales, int64_t n_heads, int64_t hd,
               float* dst) {
  const int64_t elem = kv_dtype_elem_bytes(dtype);
  for (int64_t h = 0; h < n_heads; ++h)
    KvLoadHead(dtype, static_cast<const char*>(src) + h * hd * elem,
               dtype == KvDtype::Int8 ? scales[h] : 0.0f, hd, dst + h * hd);
}

}  // namespace HWY_NAMESPACE
}  // namespace troupe::cpu::detail
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace troupe::cpu {
namespace detail {
HWY_EXPORT(KvStoreRow);
HWY_EXPORT(KvLoadRow);
}  // namespace detail

void kv_store_row(KvDtype dtype, const float* src, int64_t n_heads, int64_t head_dim, void* dst,
                  float* scales, int64_t head_stride) {
  HWY_DYNAMIC_DISPATCH(detail::KvStoreRow)(dtype, src, n_heads, head_dim, dst, scales, head_stride);
}

void kv_load_row(KvDtype dtype, const void* src, const float* scales, int64_t n_heads,
                 int64_t head_dim, float* dst) {
  HWY_DYNAMIC_DISPATCH(detail::KvLoadRow)(dtype, src, scales, n_heads, head_dim, dst);
}

}  // namespace troupe::cpu
#endif  // HWY_ONCE
