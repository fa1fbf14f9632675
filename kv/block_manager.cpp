// The sequence-facing side of the block manager: admission, growth, commit, fork, rollback
// and release. Pool mechanics live in block_pool.cpp, the prefix cache in prefix_cache.cpp.
#include "kv/block_manager.h"

#include <algorithm>

#include "core/error.h"

namespace troupe {

BlockManager::BlockManager(int64_t num_blocks, int64_t block_size, bool enable_prefix_caching)
    : num_blocks_(num_blocks), block_size_(block_size), prefix_caching_(enable_prefix_caching) {
  // Block ids are int32 in block tables (StepSeq::block_table).
  if (num_blocks < 1 || num_blocks > std::numeric_limits<int32_t>::max())
    fail("block manager: num_blocks must be in [1, 2^31), got {}", num_blocks);
  if (block_size < 1 || block_size > 65536) fail("block manager: block_size must be in [1, 65536], got {}", block_size);
  blocks_.resize(static_cast<size_t>(num_blocks));
  // Stack popped from the back: hand out block 0 first, which keeps tests and logs readable.
  free_list_.reserve(static_cast<size_t>(num_blocks));
  for (int64_t b = num_blocks - 1; b >= 0; --b) free_list_.push_back(static_cast<int32_t>(b));
  if (prefix_caching_) {
    cached_tokens_.resize(static_cast<size_t>(num_blocks * block_size));
    by_hash_.reserve(static_cast<size_t>(num_blocks));
  }
}

int64_t BlockManager::num_free_blocks() const { return static_cast<int64_t>(free_list_.size()) + lru_size_; }

double BlockManager::usage() const {
  return static_cast<double>(num_used_blocks()) / static_cast<double>(num_blocks_);
}

BlockManagerStats BlockManager::stats() const {
  BlockManagerStats s;
  s.num_blocks = num_blocks_;
  s.block_size = block_size_;
  s.free_blocks = num_free_blocks();
  s.evictable_blocks = lru_size_;
  s.used_blocks = num_used_blocks();
  s.cached_blocks = num_cached_;
  s.num_sequences = num_sequences();
  s.prefix_query_tokens = prefix_query_tokens_;
  s.prefix_hit_tokens = prefix_hit_tokens_;
  s.evictions = evictions_;
  s.cow_copies = cow_copies_;
  return s;
}

BlockManager::Seq& BlockManager::seq(int64_t seq_id, const char* op) {
  auto it = seqs_.find(seq_id);
  if (it == seqs_.end()) fail("block manager: {}: unknown sequence {} (never admitted or already freed)", op, seq_id);
  return it->second;
}

const BlockManager::Seq& BlockManager::seq(int64_t seq_id, const char* op) const {
  return const_cast<BlockManager*>(this)->seq(seq_id, op);
}

int64_t BlockManager::match_prefix(std::span<const int32_t> prompt_ids) const {
  if (prompt_ids.empty() || !prefix_caching_) return 0;
  scratch_.clear();
  // (n - 1) / block_size: only full blocks, and never the last prompt token.
  match_blocks(prompt_ids, (static_cast<int64_t>(prompt_ids.size()) - 1) / block_size_, scratch_);
  return static_cast<int64_t>(scratch_.size()) * block_size_;
}

std::optional<int64_t> BlockManager::allocate_prompt(int64_t seq_id, std::span<const int32_t> prompt_ids,
                                                     int64_t max_new_tokens, bool reuse_cached) {
  if (prompt_ids.empty()) fail("block manager: allocate_prompt: sequence {} has an empty prompt", seq_id);
  if (max_new_tokens < 0) fail("block manager: allocate_prompt: negative max_new_tokens {}", max_new_tokens);
  if (seqs_.count(seq_id)) fail("block manager: allocate_prompt: sequence {} already exists", seq_id);
  const auto len = static_cast<int64_t>(prompt_ids.size());

  scratch_.clear();
  if (reuse_cached) match_blocks(prompt_ids, (len - 1) / block_size_, scratch_);
  const auto num_hits = static_cast<int64_t>(scratch_.size());
  const int64_t cached = num_hits * block_size_;
  const int64_t num_new = std::min(max_new_tokens, len - cached);
  const int64_t total = blocks_for(cached + num_new);
  // Hits sitting on the LRU list count as free now but stop being free once taken.
  int64_t revived = 0;
  for (int32_t b : scratch_) revived += blocks_[b].ref == 0;
  if (total - num_hits > num_free_blocks() - revived) return std::nullopt;

  Seq& s = seqs_[seq_id];
  s.table.reserve(static_cast<size_t>(total));
  // Take the hits before allocating: allocation may evict, and must not evict these.
  for (int32_t b : scratch_) {
    acquire_cached(b);
    s.table.push_back(b);
  }
  while (static_cast<int64_t>(s.table.size()) < total) s.table.push_back(take_block());
  s.num_computed = cached;
  s.writable_end = cached + num_new;
  if (reuse_cached) {  // (not a lookup otherwise: the hit rate counts real ones)
    prefix_query_tokens_ += len;
    prefix_hit_tokens_ += cached;
  }
  return cached;
}

bool BlockManager::needs_cow(const Seq& s, int64_t num_new_tokens) const {
  const int64_t idx = s.num_computed / block_size_;
  return num_new_tokens > 0 && idx < static_cast<int64_t>(s.table.size()) && blocks_[s.table[idx]].ref > 1;
}

int64_t BlockManager::num_blocks_needed(const Seq& s, int64_t num_new_tokens) const {
  // More tokens than the whole pool holds can never fit (and would overflow below).
  if (num_new_tokens > num_blocks_ * block_size_) return num_blocks_ + 1;
  int64_t need = std::max<int64_t>(0, blocks_for(s.num_computed + num_new_tokens) - static_cast<int64_t>(s.table.size()));
  return need + (needs_cow(s, num_new_tokens) ? 1 : 0);
}

int64_t BlockManager::num_blocks_needed(int64_t seq_id, int64_t num_new_tokens) const {
  if (num_new_tokens < 0) fail("block manager: num_blocks_needed: negative token count {}", num_new_tokens);
  return num_blocks_needed(seq(seq_id, "num_blocks_needed"), num_new_tokens);
}

bool BlockManager::append_slots(int64_t seq_id, int64_t num_new_tokens) {
  if (num_new_tokens < 0) fail("block manager: append_slots: negative token count {}", num_new_tokens);
  Seq& s = seq(seq_id, "append_slots");
  if (num_new_tokens == 0) return true;
  if (num_blocks_needed(s, num_new_tokens) > num_free_blocks()) return false;

  // Only the block holding position num_computed can be shared: blocks after it were
  // allocated by this sequence alone (fork shares computed blocks only).
  const int64_t idx = s.num_computed / block_size_;
  if (idx < static_cast<int64_t>(s.table.size())) {
    const int32_t b = s.table[idx];
    if (blocks_[b].ref > 1) {
      const int32_t dst = take_block();
      --blocks_[b].ref;  // still >= 1: the other holders keep it
      s.table[idx] = dst;
      // Copy only if the block holds tokens of ours; an aligned position starts it empty.
      if (s.num_computed % block_size_ != 0) {
        pending_copies_.push_back({b, dst});
        ++cow_copies_;
      }
    } else if (blocks_[b].prefix_id != 0) {
      // Sole holder of a cached block we are about to overwrite (possible after truncate of
      // a shared block whose other holders are gone): leave the cache instead of copying.
      unregister_block(b);
    }
  }
  const int64_t total = blocks_for(s.num_computed + num_new_tokens);
  while (static_cast<int64_t>(s.table.size()) < total) s.table.push_back(take_block());
  s.writable_end = std::max(s.writable_end, s.num_computed + num_new_tokens);
  return true;
}

std::vector<BlockCopy> BlockManager::take_pending_copies() {
  std::vector<BlockCopy> out;
  out.swap(pending_copies_);
  return out;
}

void BlockManager::commit_tokens(int64_t seq_id, std::span<const int32_t> token_ids) {
  Seq& s = seq(seq_id, "commit_tokens");
  const auto n = static_cast<int64_t>(token_ids.size());
  if (n < s.num_computed)
    fail("block manager: commit_tokens: sequence {} has {} computed tokens, got {} (use truncate to roll back)",
         seq_id, s.num_computed, n);
  if (n > s.writable_end)
    fail("block manager: commit_tokens: sequence {} commits {} tokens but append_slots made only {} writable",
         seq_id, n, s.writable_end);
  if (prefix_caching_) {
    // Blocks that became full now: from the one holding the old end to the new end.
    for (int64_t i = s.num_computed / block_size_; i < n / block_size_; ++i) {
      const int32_t parent = i > 0 ? s.table[i - 1] : -1;
      register_block(s.table[i], parent,
                     token_ids.subspan(static_cast<size_t>(i * block_size_), static_cast<size_t>(block_size_)));
    }
  }
  s.num_computed = n;
}

void BlockManager::fork(int64_t src_seq, int64_t dst_seq) {
  if (src_seq == dst_seq) fail("block manager: fork: sequence {} onto itself", src_seq);
  if (seqs_.count(dst_seq)) fail("block manager: fork: target sequence {} already exists", dst_seq);
  Seq& src = seq(src_seq, "fork");
  Seq dst;
  const int64_t n = blocks_for(src.num_computed);
  dst.table.assign(src.table.begin(), src.table.begin() + n);
  for (int32_t b : dst.table) ++blocks_[b].ref;  // all referenced already: no list changes
  dst.num_computed = dst.writable_end = src.num_computed;
  // The shared last block may be partial: the source must go through append_slots (and
  // copy-on-write) before writing into it again.
  src.writable_end = src.num_computed;
  seqs_.emplace(dst_seq, std::move(dst));
}

void BlockManager::truncate(int64_t seq_id, int64_t num_tokens) {
  Seq& s = seq(seq_id, "truncate");
  if (num_tokens < 0 || num_tokens > s.num_computed)
    fail("block manager: truncate: sequence {} has {} computed tokens, cannot truncate to {}", seq_id,
         s.num_computed, num_tokens);
  const int64_t keep = blocks_for(num_tokens);
  for (auto i = static_cast<int64_t>(s.table.size()) - 1; i >= keep; --i) release_block_uncached(s.table[i]);
  s.table.resize(static_cast<size_t>(keep));
  if (num_tokens % block_size_ != 0) {
    const int32_t b = s.table[num_tokens / block_size_];
    // Held by others, it stays cached: they still use it, and our next write copies it.
    if (blocks_[b].ref == 1 && blocks_[b].prefix_id != 0) unregister_block(b);
  }
  s.num_computed = s.writable_end = num_tokens;
}

void BlockManager::free(int64_t seq_id) {
  auto it = seqs_.find(seq_id);
  if (it == seqs_.end()) fail("block manager: free: unknown sequence {} (never admitted or already freed)", seq_id);
  const auto& table = it->second.table;
  for (auto b = table.rbegin(); b != table.rend(); ++b) release_block(*b);
  seqs_.erase(it);
}

const std::vector<int32_t>& BlockManager::block_table(int64_t seq_id) const {
  return seq(seq_id, "block_table").table;
}

int64_t BlockManager::num_computed_tokens(int64_t seq_id) const {
  return seq(seq_id, "num_computed_tokens").num_computed;
}

BlockInfo BlockManager::block_info(int32_t block) const {
  if (block < 0 || block >= num_blocks_) fail("block manager: block id {} out of range [0, {})", block, num_blocks_);
  const Block& b = blocks_[block];
  return {b.ref, b.prefix_id != 0, b.ref == 0 && b.prefix_id != 0};
}

}  // namespace troupe
