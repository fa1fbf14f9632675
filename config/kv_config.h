#pragma once
// KV-cache sizing: the block size the scheduler's block manager and the backend's paged
// attention share, and how much memory the pool takes. Flags: add_kv_flags (config/flags.h).
#include <cstdint>

#include "core/kv_dtype.h"

namespace troupe {

struct KvCacheConfig {
  int64_t block_size = 16;      // tokens per KV block
  int64_t kv_cache_bytes = 0;   // 0: enough for max_num_seqs full-length sequences, capped at 25% of RAM
  // Stored element type of K and V (core/kv_dtype.h). F32 stays the default until the
  // others are measured on a quiet machine.
  KvDtype dtype = KvDtype::F32;
};

}  // namespace troupe
