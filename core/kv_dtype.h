#pragma once
// Element type of the KV cache (--kv-cache-dtype). The attention math is float whatever is
// stored: the kernels convert K and V rows to float as they load them.
//   F32:  4 bytes per element (the default; the exact path).
//   F16, BF16: 2 bytes per element, rounded to nearest even when written.
//   Int8: 1 byte per element plus one float scale per token per KV head, for K and for V
//         (symmetric absmax: scale = max|x| / 127 over the head's head_dim values, q =
//         round(x / scale); the value read back is q * scale). The scale is computed when
//         the token's row is written, so a block never needs requantizing.
#include <cstdint>
#include <string_view>

namespace troupe {

enum class KvDtype : uint8_t { F32, F16, BF16, Int8 };

// "f32", "f16", "bf16", "int8" (the flag's spelling).
std::string_view kv_dtype_name(KvDtype t);
// Inverse of kv_dtype_name; throws troupe::Error naming the allowed values otherwise.
KvDtype parse_kv_dtype(std::string_view s);
// Bytes of one stored element (the Int8 scales are counted by kv_bytes_per_token).
int64_t kv_dtype_elem_bytes(KvDtype t);
// Bytes of K and V for one token of `num_layers` layers, `num_kv_heads` x `head_dim` each,
// scales included: what the pool spends per cached token.
int64_t kv_bytes_per_token(KvDtype t, int64_t num_layers, int64_t num_kv_heads, int64_t head_dim);

}  // namespace troupe
