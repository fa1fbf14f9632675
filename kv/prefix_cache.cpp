// Automatic prefix caching: finding full blocks again by the tokens they hold.
//
// A full block's KV depends on every token before it, so its key is (the prefix before it,
// its own tokens). Two parts:
//   * hash: XXH3-64 of the block's token ids seeded with the parent block's hash (chained, as
//     in vLLM), so equal tokens under a different prefix land elsewhere. Used only to find
//     candidates quickly; it is never trusted on its own.
//   * identity: each distinct cached prefix gets a prefix_id from a counter that never
//     repeats. A candidate matches only if its parent_id equals the prefix_id matched so far
//     and its stored tokens equal ours. By induction a prefix_id names exactly one token
//     prefix, so a hit is exact whatever the hash does (no 2^-64 collision risk, and no
//     reliance on XXH3 resisting prompts crafted to collide).
// Several blocks can hold the same prefix (sequences that computed it concurrently); they
// share one prefix_id and sit in the same hash chain, so children registered under either
// stay reachable while any of them is cached. A prefix_id dies when its last block leaves
// the cache; children cached under it become unreachable and simply age out of the LRU list
// (rare: a sequence's blocks are freed tail first, so children are evicted before parents).
#include <algorithm>
#include <cstring>
#include <xxhash.h>

#include "core/error.h"
#include "kv/block_manager.h"

namespace troupe {

namespace {
// Seed of the first block's hash (the "empty prefix"); any constant works.
constexpr uint64_t kRootHash = 0x9e3779b97f4a7c15ull;
}  // namespace

uint64_t BlockManager::block_hash(std::span<const int32_t> tokens, uint64_t parent_hash) {
  return XXH3_64bits_withSeed(tokens.data(), tokens.size_bytes(), parent_hash);
}

std::span<const int32_t> BlockManager::cached_tokens(int32_t b) const {
  return {cached_tokens_.data() + static_cast<size_t>(b) * static_cast<size_t>(block_size_),
          static_cast<size_t>(block_size_)};
}

int32_t BlockManager::find_cached(uint64_t hash, uint64_t parent_id, std::span<const int32_t> tokens) const {
  auto it = by_hash_.find(hash);
  if (it == by_hash_.end()) return -1;
  for (int32_t b = it->second; b >= 0; b = blocks_[b].chain_next) {
    if (blocks_[b].parent_id != parent_id) continue;
    auto held = cached_tokens(b);
    if (std::equal(held.begin(), held.end(), tokens.begin())) return b;
  }
  return -1;
}

void BlockManager::match_blocks(std::span<const int32_t> tokens, int64_t max_blocks,
                                std::vector<int32_t>& out) const {
  if (!prefix_caching_) return;
  uint64_t parent_id = 0, parent_hash = kRootHash;
  for (int64_t i = 0; i < max_blocks; ++i) {
    auto block_tokens = tokens.subspan(static_cast<size_t>(i * block_size_), static_cast<size_t>(block_size_));
    uint64_t h = block_hash(block_tokens, parent_hash);
    int32_t b = find_cached(h, parent_id, block_tokens);
    if (b < 0) return;
    out.push_back(b);
    parent_id = blocks_[b].prefix_id;
    parent_hash = h;
  }
}

void BlockManager::register_block(int32_t b, int32_t parent_block, std::span<const int32_t> tokens) {
  uint64_t parent_id = parent_block >= 0 ? blocks_[parent_block].prefix_id : 0;
  uint64_t parent_hash = parent_block >= 0 ? blocks_[parent_block].hash : kRootHash;
  Block& blk = blocks_[b];
  uint64_t h = block_hash(tokens, parent_hash);
  int32_t twin = find_cached(h, parent_id, tokens);
  blk.prefix_id = twin >= 0 ? blocks_[twin].prefix_id : next_prefix_id_++;
  blk.parent_id = parent_id;
  blk.hash = h;
  std::memcpy(cached_tokens_.data() + static_cast<size_t>(b) * static_cast<size_t>(block_size_), tokens.data(),
              tokens.size_bytes());
  // Link at the head of the hash chain.
  auto [it, inserted] = by_hash_.try_emplace(h, b);
  blk.chain_prev = -1;
  blk.chain_next = inserted ? -1 : it->second;
  if (!inserted) {
    blocks_[it->second].chain_prev = b;
    it->second = b;
  }
  ++num_cached_;
}

void BlockManager::unregister_block(int32_t b) {
  Block& blk = blocks_[b];
  if (blk.chain_prev >= 0) {
    blocks_[blk.chain_prev].chain_next = blk.chain_next;
  } else if (blk.chain_next >= 0) {
    by_hash_[blk.hash] = blk.chain_next;
  } else {
    by_hash_.erase(blk.hash);
  }
  if (blk.chain_next >= 0) blocks_[blk.chain_next].chain_prev = blk.chain_prev;
  blk.chain_prev = blk.chain_next = -1;
  blk.prefix_id = blk.parent_id = blk.hash = 0;
  --num_cached_;
}

void BlockManager::forget_cached_prefixes() {
  for (int32_t b = 0; b < int32_t(num_blocks_); ++b) {
    Block& blk = blocks_[b];
    if (blk.prefix_id == 0) continue;
    const bool evictable = blk.ref == 0;
    if (evictable) lru_unlink(b);
    unregister_block(b);
    if (evictable) free_list_.push_back(b);
  }
}

}  // namespace troupe
