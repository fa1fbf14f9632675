// The physical side of the block manager: reference counts, the free list and the LRU list
// of evictable blocks. The LRU list is intrusive (prev/next block ids stored in the block
// array), so adding, removing and evicting are O(1) with no allocation.
#include "core/error.h"
#include "kv/block_manager.h"

namespace troupe {

int32_t BlockManager::take_block() {
  // Truly free blocks first: an evictable block still holds a prefix someone may ask for.
  if (!free_list_.empty()) {
    int32_t b = free_list_.back();
    free_list_.pop_back();
    blocks_[b].ref = 1;
    return b;
  }
  if (lru_head_ < 0) fail("block manager: out of KV blocks (caller skipped the capacity check)");
  int32_t b = lru_head_;
  lru_unlink(b);
  unregister_block(b);
  ++evictions_;
  blocks_[b].ref = 1;
  return b;
}

void BlockManager::release_block(int32_t b) {
  Block& blk = blocks_[b];
  if (--blk.ref > 0) return;
  // A cached block keeps its content for a later identical prefix until the pool needs it.
  if (blk.prefix_id != 0) {
    lru_push_back(b);
  } else {
    free_list_.push_back(b);
  }
}

void BlockManager::release_block_uncached(int32_t b) {
  Block& blk = blocks_[b];
  if (--blk.ref > 0) return;
  if (blk.prefix_id != 0) unregister_block(b);
  free_list_.push_back(b);
}

void BlockManager::acquire_cached(int32_t b) {
  Block& blk = blocks_[b];
  if (blk.ref == 0) lru_unlink(b);  // evictable -> referenced
  ++blk.ref;
}

void BlockManager::lru_push_back(int32_t b) {
  Block& blk = blocks_[b];
  blk.lru_prev = lru_tail_;
  blk.lru_next = -1;
  if (lru_tail_ >= 0) {
    blocks_[lru_tail_].lru_next = b;
  } else {
    lru_head_ = b;
  }
  lru_tail_ = b;
  ++lru_size_;
}

void BlockManager::lru_unlink(int32_t b) {
  Block& blk = blocks_[b];
  if (blk.lru_prev >= 0) {
    blocks_[blk.lru_prev].lru_next = blk.lru_next;
  } else {
    lru_head_ = blk.lru_next;
  }
  if (blk.lru_next >= 0) {
    blocks_[blk.lru_next].lru_prev = blk.lru_prev;
  } else {
    lru_tail_ = blk.lru_prev;
  }
  blk.lru_prev = blk.lru_next = -1;
  --lru_size_;
}

}  // namespace troupe
