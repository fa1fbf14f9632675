#include "core/kv_dtype.h"

#include "core/error.h"

namespace troupe {

namespace {
constexpr KvDtype kAll[] = {KvDtype::F32, KvDtype::F16, KvDtype::BF16, KvDtype::Int8};
}  // namespace

std::string_view kv_dtype_name(KvDtype t) {
  switch (t) {
    case KvDtype::F32: return "f32";
    case KvDtype::F16: return "f16";
    case KvDtype::BF16: return "bf16";
    case KvDtype::Int8: return "int8";
  }
  return "?";
}

KvDtype parse_kv_dtype(std::string_view s) {
  for (KvDtype t : kAll)
    if (s == kv_dtype_name(t)) return t;
  fail("unknown KV cache dtype '{}' (allowed: f32, f16, bf16, int8)", s);
}

int64_t kv_dtype_elem_bytes(KvDtype t) {
  switch (t) {
    case KvDtype::F32: return 4;
    case KvDtype::F16: case KvDtype::BF16: return 2;
    case KvDtype::Int8: return 1;
  }
  return 4;
}

int64_t kv_bytes_per_token(KvDtype t, int64_t num_layers, int64_t num_kv_heads, int64_t head_dim) {
  const int64_t scales = t == KvDtype::Int8 ? num_kv_heads * int64_t(sizeof(float)) : 0;
  return 2 * num_layers * (num_kv_heads * head_dim * kv_dtype_elem_bytes(t) + scales);
}

}  // namespace troupe
