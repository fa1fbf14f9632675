#pragma once
// The paged-KV block manager (vLLM v1 KVCacheManager style). It decides which physical
// blocks of the backend's pool each sequence uses; it never touches KV memory. Blocks are
// reference counted so sequences can share them: through automatic prefix caching (a full
// block is found again by the exact tokens it holds and the prefix before it) and through
// fork(). A sequence about to write into a shared block gets a fresh one instead, and the
// manager queues a (src, dst) copy the caller runs with Backend::copy_block before the step.
//
// Block states: every block is exactly one of
//   referenced  ref_count > 0, in at least one block table;
//   evictable   ref_count == 0 but still in the prefix cache, on an LRU list;
//   free        ref_count == 0 and not cached, on the free list.
// New blocks come from the free list first; only when it is empty is the least recently
// freed evictable block taken (and dropped from the cache).
//
// Per-sequence token accounting:
//   num_computed  tokens whose KV is in the cache (advanced by commit_tokens).
//   block table   covers at least [0, num_computed); append_slots grows it for the tokens
//                 about to be computed (positions num_computed onwards).
// Cost: every operation is O(1) per block it touches (hash lookups and intrusive lists).
// Not thread-safe: the scheduler owns it and calls it from one thread.
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

namespace troupe {

// A copy-on-write the caller must perform (Backend::copy_block(src, dst)) before the next
// step runs, in the order returned.
struct BlockCopy {
  int32_t src = -1;
  int32_t dst = -1;
  bool operator==(const BlockCopy&) const = default;
};

struct BlockManagerStats {
  int64_t num_blocks = 0;
  int64_t block_size = 0;
  int64_t free_blocks = 0;       // allocatable now: truly free + evictable
  int64_t evictable_blocks = 0;  // of those, cached blocks no sequence references (LRU)
  int64_t used_blocks = 0;       // referenced by at least one sequence
  int64_t cached_blocks = 0;     // in the prefix cache (referenced or evictable)
  int64_t num_sequences = 0;
  // Prefix cache, in tokens, counted by allocate_prompt: prompt tokens looked up, and how
  // many of them were served from the cache.
  int64_t prefix_query_tokens = 0;
  int64_t prefix_hit_tokens = 0;
  int64_t evictions = 0;  // cached blocks dropped to make room
  int64_t cow_copies = 0; // copy-on-write copies queued

  double usage() const {
    return num_blocks > 0 ? static_cast<double>(used_blocks) / static_cast<double>(num_blocks) : 0.0;
  }
  double prefix_hit_rate() const {
    return prefix_query_tokens > 0
               ? static_cast<double>(prefix_hit_tokens) / static_cast<double>(prefix_query_tokens)
               : 0.0;
  }
  bool operator==(const BlockManagerStats&) const = default;  // field by field (protocol tests)
};

// One block's state, for tests and debugging.
struct BlockInfo {
  int32_t ref_count = 0;
  bool cached = false;     // registered in the prefix cache
  bool evictable = false;  // cached and unreferenced (on the LRU list)
};

class BlockManager {
 public:
  // Manages blocks [0, num_blocks) of block_size tokens each. Throws troupe::Error on
  // non-positive sizes or more blocks than int32 block ids can name.
  BlockManager(int64_t num_blocks, int64_t block_size, bool enable_prefix_caching = true);

  int64_t num_blocks() const { return num_blocks_; }
  int64_t block_size() const { return block_size_; }
  bool prefix_caching_enabled() const { return prefix_caching_; }
  int64_t num_free_blocks() const;  // free + evictable
  int64_t num_used_blocks() const { return num_blocks_ - num_free_blocks(); }
  double usage() const;             // used / total, in [0, 1]
  BlockManagerStats stats() const;

  // ---- admission ----
  // Pure query: how many leading tokens of `prompt_ids` the prefix cache holds. Always a
  // multiple of block_size and always < prompt_ids.size(): the last prompt token is computed
  // again so its logits exist. 0 when prefix caching is off.
  int64_t match_prefix(std::span<const int32_t> prompt_ids) const;

  // Admits a new sequence: takes the cached prefix (ref++, pulling evictable blocks off the
  // LRU list) and allocates slots for the next min(max_new_tokens, rest of the prompt)
  // tokens, so chunked prefill can admit with its first chunk. Returns the number of prompt
  // tokens already computed (see match_prefix); nullopt, with nothing changed, when the pool
  // cannot supply the blocks. Throws on an empty prompt, a negative max_new_tokens, or an
  // existing seq_id. Counts the prefix query/hit stats on success. reuse_cached = false
  // takes no cached prefix (a request that needs every prompt position's logits).
  std::optional<int64_t> allocate_prompt(int64_t seq_id, std::span<const int32_t> prompt_ids,
                                         int64_t max_new_tokens = std::numeric_limits<int64_t>::max(),
                                         bool reuse_cached = true);

  // ---- growing ----
  // Blocks append_slots(seq_id, num_new_tokens) would take from the pool now (new blocks
  // plus a copy-on-write block). Lets the scheduler decide how many sequences to preempt.
  int64_t num_blocks_needed(int64_t seq_id, int64_t num_new_tokens) const;

  // Makes positions [num_computed, num_computed + num_new_tokens) writable: grows the table
  // and, if the block holding position num_computed is shared, replaces it with a fresh block
  // and queues the copy (see take_pending_copies). Returns false, changing nothing, when the
  // pool cannot supply the blocks (the scheduler then preempts). Call it before every step
  // that writes KV for this sequence; num_new_tokens may include speculative draft tokens.
  bool append_slots(int64_t seq_id, int64_t num_new_tokens);

  // Copies queued by append_slots since the last call, oldest first. Run them all, in order,
  // with Backend::copy_block before the next step.
  std::vector<BlockCopy> take_pending_copies();
  bool has_pending_copies() const { return !pending_copies_.empty(); }

  // Declares that the KV of exactly `token_ids` (all of the sequence's tokens so far: prompt
  // then generated, as computed) is now in the cache: num_computed becomes token_ids.size().
  // Blocks that became full enter the prefix cache. Pass only tokens whose KV was written
  // (e.g. accepted speculative tokens, not rejected drafts). Throws if token_ids is shorter
  // than num_computed (use truncate) or reaches past what append_slots made writable.
  void commit_tokens(int64_t seq_id, std::span<const int32_t> token_ids);

  // ---- sharing and rollback ----
  // Creates dst_seq sharing every block of src_seq that holds computed tokens (ref++); the
  // partially filled last block is shared too and is copied on the first write by either
  // sequence. Both must call append_slots before writing again. Needs no free blocks.
  void fork(int64_t src_seq, int64_t dst_seq);

  // Rolls the sequence back to its first num_tokens tokens (<= num_computed). Blocks past
  // them are released; those no other sequence holds leave the prefix cache and go to the
  // free list (their content is no longer trusted). A now partially filled block held only by
  // this sequence leaves the prefix cache too, since it will be overwritten. Also releases
  // slots that append_slots reserved but were never committed.
  void truncate(int64_t seq_id, int64_t num_tokens);

  // Releases every block of the sequence and forgets it: cached blocks that drop to ref 0
  // go to the LRU list (the sequence's last block first, so it is evicted before the
  // prefix blocks others are likelier to share), the rest to the free list. O(its blocks).
  // Throws on an unknown (or already freed) seq_id.
  void free(int64_t seq_id);

  // Forgets every cached prefix (the KV memory behind them was lost, e.g. a pipeline stage
  // on another node was rebuilt): unreferenced cached blocks go back to the free list,
  // referenced ones stay with their sequences but can no longer be matched. O(num_blocks).
  void forget_cached_prefixes();

  // ---- queries ----
  bool has_sequence(int64_t seq_id) const { return seqs_.count(seq_id) != 0; }
  int64_t num_sequences() const { return static_cast<int64_t>(seqs_.size()); }
  // Physical blocks covering the sequence's positions. Valid until the next call that
  // changes this sequence.
  const std::vector<int32_t>& block_table(int64_t seq_id) const;
  int64_t num_computed_tokens(int64_t seq_id) const;
  BlockInfo block_info(int32_t block) const;

  // Walks every structure and throws troupe::Error naming the first inconsistency.
  // O(num_blocks + table entries): for tests and debugging, not the hot path.
  void check_invariants() const;

 private:
  struct Block {
    int32_t ref = 0;
    int32_t lru_prev = -1, lru_next = -1;      // LRU list links (evictable blocks only)
    int32_t chain_prev = -1, chain_next = -1;  // blocks sharing the same hash
    // Prefix cache identity: prefix_id names the exact token prefix ending with this block
    // (0 = not cached); parent_id is the prefix_id of the block before it (0 = first block).
    uint64_t prefix_id = 0;
    uint64_t parent_id = 0;
    uint64_t hash = 0;  // chained content hash (map key)
  };
  struct Seq {
    std::vector<int32_t> table;
    int64_t num_computed = 0;
    int64_t writable_end = 0;  // append_slots granted positions [num_computed, writable_end)
  };

  Seq& seq(int64_t seq_id, const char* op);
  const Seq& seq(int64_t seq_id, const char* op) const;
  int64_t blocks_for(int64_t num_tokens) const { return (num_tokens + block_size_ - 1) / block_size_; }
  bool needs_cow(const Seq& s, int64_t num_new_tokens) const;
  int64_t num_blocks_needed(const Seq& s, int64_t num_new_tokens) const;

  // Pool (block_pool.cpp).
  int32_t take_block();                 // free list first, else evict the LRU head
  void release_block(int32_t b);        // ref--; at 0 to the LRU (cached) or free list
  void release_block_uncached(int32_t b);  // ref--; at 0 leaves the cache, to the free list
  void acquire_cached(int32_t b);       // ref++ of a prefix-cache hit
  void lru_push_back(int32_t b);
  void lru_unlink(int32_t b);

  // Prefix cache (prefix_cache.cpp).
  static uint64_t block_hash(std::span<const int32_t> tokens, uint64_t parent_hash);
  // Cached block holding exactly `tokens` after prefix parent_id (with that hash), or -1.
  int32_t find_cached(uint64_t hash, uint64_t parent_id, std::span<const int32_t> tokens) const;
  // Longest cached run of full blocks of `tokens` (at most max_blocks), appended to `out`.
  void match_blocks(std::span<const int32_t> tokens, int64_t max_blocks, std::vector<int32_t>& out) const;
  // Enters full block b (holding `tokens`) into the cache after parent_block (-1: first block).
  void register_block(int32_t b, int32_t parent_block, std::span<const int32_t> tokens);
  void unregister_block(int32_t b);
  std::span<const int32_t> cached_tokens(int32_t b) const;

  int64_t num_blocks_;
  int64_t block_size_;
  bool prefix_caching_;
  std::vector<Block> blocks_;
  std::vector<int32_t> free_list_;  // stack of free, uncached blocks
  int32_t lru_head_ = -1, lru_tail_ = -1;  // evictable blocks, least recently freed first
  int64_t lru_size_ = 0;
  // Prefix cache: chained hash -> first block of the intrusive chain of blocks with that
  // hash; block tokens live in cached_tokens_ (block_size per block) for exact comparison.
  std::unordered_map<uint64_t, int32_t> by_hash_;
  std::vector<int32_t> cached_tokens_;
  int64_t num_cached_ = 0;
  uint64_t next_prefix_id_ = 1;
  std::unordered_map<int64_t, Seq> seqs_;
  std::vector<BlockCopy> pending_copies_;
  mutable std::vector<int32_t> scratch_;  // match results (reused: no allocation per call)
  int64_t prefix_query_tokens_ = 0;
  int64_t prefix_hit_tokens_ = 0;
  int64_t evictions_ = 0;
  int64_t cow_copies_ = 0;
};

}  // namespace troupe
