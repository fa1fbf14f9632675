#pragma once
// KV-cache sizing: the block size the scheduler's block manager and the backend's paged
// attention share, and how much memory the pool takes. Flags: add_kv_flags (config/flags.h).
#include <cstdint>

#include "core/kv_dtype.h"

namespace troupe {

struct KvCacheConfig {
  int64_t block_size = 16;      // tokens per KV block
  int64_t kv_cache_bytes = 0;   // 0: enough for max_num_seqs full-length sequences, capped at 25% of RAM
  // Stored element type of K and V (core/kv_dtype.h). The struct's default is f32, so a
  // library user (and the tests that hold the float model to float64 references) gets the
  // float cache unless they ask; the commands default to kCommandKvDtype.
  KvDtype dtype = KvDtype::F32;
};

// The commands' --kv-cache-dtype default, as llama.cpp's cache: f16 holds twice f32's tokens
// and, read in place by the attention kernels, is faster, at ~3e-7 nats/token on
// TinyStories-656K (docs/benchmarks.md, session 12).
inline constexpr KvDtype kCommandKvDtype = KvDtype::F16;

}  // namespace troupe
