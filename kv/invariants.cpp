// BlockManager::check_invariants: recomputes every derived fact from scratch and compares.
// Used by the tests after every operation; cheap enough to call from a debug build too.
#include <algorithm>
#include <unordered_map>

#include "core/error.h"
#include "kv/block_manager.h"

namespace troupe {

void BlockManager::check_invariants() const {
  const auto n = static_cast<size_t>(num_blocks_);

  // Reference counts equal the number of block-table entries naming the block.
  std::vector<int64_t> refs(n, 0);
  for (const auto& [id, s] : seqs_) {
    if (static_cast<int64_t>(s.table.size()) < blocks_for(s.num_computed))
      fail("invariant: sequence {} table of {} blocks misses computed tokens ({})", id, s.table.size(), s.num_computed);
    if (s.writable_end < s.num_computed || s.writable_end > static_cast<int64_t>(s.table.size()) * block_size_)
      fail("invariant: sequence {} writable end {} outside [{}, table end]", id, s.writable_end, s.num_computed);
    for (size_t i = 0; i < s.table.size(); ++i) {
      const int32_t b = s.table[i];
      if (b < 0 || b >= num_blocks_) fail("invariant: sequence {} names block {}", id, b);
      ++refs[b];
      const auto idx = static_cast<int64_t>(i);
      // Blocks wholly past the computed tokens belong to this sequence alone and hold nothing cached.
      if (idx >= blocks_for(s.num_computed) && (blocks_[b].ref != 1 || blocks_[b].prefix_id != 0))
        fail("invariant: sequence {} scratch block {} is shared or cached", id, b);
      // Its full computed blocks are cached, each under the one before it.
      if (prefix_caching_ && idx < s.num_computed / block_size_) {
        const uint64_t parent = i > 0 ? blocks_[s.table[i - 1]].prefix_id : 0;
        if (blocks_[b].prefix_id == 0 || blocks_[b].parent_id != parent)
          fail("invariant: sequence {} block {} (#{}) is not cached under its parent", id, b, i);
      }
    }
  }

  // Every block is exactly one of referenced / evictable (on the LRU) / free (on the list).
  std::vector<uint8_t> where(n, 0);  // 1 = LRU, 2 = free list
  int64_t lru_count = 0;
  for (int32_t b = lru_head_, prev = -1; b >= 0; prev = b, b = blocks_[b].lru_next) {
    if (where[b] || ++lru_count > num_blocks_) fail("invariant: LRU list has a cycle at block {}", b);
    if (blocks_[b].lru_prev != prev) fail("invariant: LRU back link of block {} is broken", b);
    where[b] = 1;
  }
  if (lru_count != lru_size_) fail("invariant: LRU holds {} blocks, counted {}", lru_count, lru_size_);
  if (lru_count > 0 && blocks_[lru_tail_].lru_next != -1) fail("invariant: LRU tail is not last");
  for (int32_t b : free_list_) {
    if (where[b]) fail("invariant: free block {} is listed twice", b);
    where[b] = 2;
  }
  int64_t cached = 0;
  for (size_t b = 0; b < n; ++b) {
    const Block& blk = blocks_[b];
    if (blk.ref != refs[b]) fail("invariant: block {} ref count {} but {} tables hold it", b, blk.ref, refs[b]);
    const bool is_cached = blk.prefix_id != 0;
    cached += is_cached;
    const uint8_t expect = blk.ref > 0 ? 0 : is_cached ? 1 : 2;
    if (where[b] != expect) fail("invariant: block {} (ref {}, cached {}) is in the wrong list", b, blk.ref, is_cached);
    if (is_cached && !prefix_caching_) fail("invariant: block {} cached with prefix caching off", b);
  }

  // The hash index holds exactly the cached blocks, and equal keys share one prefix id.
  if (cached != num_cached_) fail("invariant: {} cached blocks, counter says {}", cached, num_cached_);
  int64_t indexed = 0;
  std::unordered_map<uint64_t, int32_t> holder;  // prefix id -> first block seen with it
  for (const auto& [hash, head] : by_hash_) {
    for (int32_t b = head, prev = -1; b >= 0; prev = b, b = blocks_[b].chain_next) {
      if (++indexed > cached) fail("invariant: hash chains hold more blocks than are cached");
      const Block& blk = blocks_[b];
      if (blk.prefix_id == 0 || blk.hash != hash || blk.chain_prev != prev)
        fail("invariant: block {} is misfiled in the hash index", b);
      const int32_t first = find_cached(hash, blk.parent_id, cached_tokens(b));
      if (first < 0 || blocks_[first].prefix_id != blk.prefix_id)
        fail("invariant: block {} and an identical cached block have different prefix ids", b);
      // ... and one prefix id names one key.
      auto [it, fresh] = holder.try_emplace(blk.prefix_id, b);
      if (!fresh) {
        const Block& other = blocks_[it->second];
        auto a = cached_tokens(b), o = cached_tokens(it->second);
        if (other.parent_id != blk.parent_id || !std::equal(a.begin(), a.end(), o.begin()))
          fail("invariant: blocks {} and {} share prefix id {} but hold different prefixes", b, it->second, blk.prefix_id);
      }
    }
  }
  if (indexed != cached) fail("invariant: hash index holds {} blocks, {} are cached", indexed, cached);
}

}  // namespace troupe
