// BlockManager: accounting, prefix caching, LRU eviction, copy-on-write, rollback, errors.
#include <catch2/catch.hpp>

#include <algorithm>
#include <limits>
#include <numeric>
#include <vector>

#include "core/error.h"
#include "kv/block_manager.h"

using troupe::BlockCopy;
using troupe::BlockManager;

namespace {

// n distinct token ids starting at `first` (different `first` => different content).
std::vector<int32_t> toks(int32_t first, int64_t n) {
  std::vector<int32_t> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), first);
  return v;
}

std::vector<int32_t> cat(std::vector<int32_t> a, const std::vector<int32_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// Admits a whole prompt and marks it computed, as a scheduler does after the prefill step.
int64_t prefill(BlockManager& bm, int64_t id, const std::vector<int32_t>& prompt) {
  auto cached = bm.allocate_prompt(id, prompt);
  REQUIRE(cached.has_value());
  bm.commit_tokens(id, prompt);
  bm.check_invariants();
  return *cached;
}

}  // namespace

TEST_CASE("allocation and free accounting", "[kv]") {
  BlockManager bm(10, 16);
  CHECK(bm.num_free_blocks() == 10);
  CHECK(bm.num_used_blocks() == 0);
  CHECK(bm.usage() == 0.0);

  CHECK(prefill(bm, 1, toks(0, 40)) == 0);
  CHECK(bm.block_table(1) == std::vector<int32_t>{0, 1, 2});
  CHECK(bm.num_computed_tokens(1) == 40);
  CHECK(bm.num_free_blocks() == 7);
  CHECK(bm.num_used_blocks() == 3);
  CHECK(bm.usage() == Approx(0.3));

  // Decode: 8 more tokens fit in the partial block, the 9th needs a new one.
  REQUIRE(bm.append_slots(1, 8));
  CHECK(bm.block_table(1).size() == 3);
  bm.commit_tokens(1, toks(0, 48));
  CHECK(bm.num_blocks_needed(1, 1) == 1);
  REQUIRE(bm.append_slots(1, 1));
  CHECK(bm.block_table(1).size() == 4);
  CHECK(bm.num_used_blocks() == 4);

  auto st = bm.stats();
  CHECK(st.used_blocks == 4);
  CHECK(st.free_blocks == 6);
  CHECK(st.cached_blocks == 3);  // the three full blocks
  CHECK(st.num_sequences == 1);

  bm.free(1);
  bm.check_invariants();
  CHECK(bm.num_free_blocks() == 10);
  CHECK(bm.num_used_blocks() == 0);
  CHECK(bm.stats().evictable_blocks == 3);  // full blocks stay cached
  CHECK_FALSE(bm.has_sequence(1));
  CHECK_THROWS_AS(bm.free(1), troupe::Error);  // double free
}

TEST_CASE("running out of blocks fails without changing anything", "[kv]") {
  BlockManager bm(4, 16);
  prefill(bm, 1, toks(0, 48));  // 3 blocks
  CHECK_FALSE(bm.allocate_prompt(2, toks(1000, 40)).has_value());  // needs 3, 1 free
  CHECK_FALSE(bm.has_sequence(2));
  CHECK(bm.num_free_blocks() == 1);

  auto table = bm.block_table(1);
  CHECK(bm.num_blocks_needed(1, 17) == 2);
  CHECK_FALSE(bm.append_slots(1, 17));
  CHECK(bm.block_table(1) == table);
  CHECK(bm.num_free_blocks() == 1);
  CHECK_THROWS_AS(bm.commit_tokens(1, toks(0, 49)), troupe::Error);  // nothing was granted
  CHECK_FALSE(bm.append_slots(1, std::numeric_limits<int64_t>::max()));
  CHECK(bm.append_slots(1, 16));
  CHECK(bm.num_free_blocks() == 0);
  bm.check_invariants();

  // Chunked prefill: admit with only the first chunk allocated.
  bm.free(1);
  BlockManager small(2, 16);
  auto c = small.allocate_prompt(7, toks(0, 100), 20);
  REQUIRE(c.has_value());
  CHECK(*c == 0);
  CHECK(small.block_table(7).size() == 2);
  small.commit_tokens(7, toks(0, 20));
  CHECK_FALSE(small.append_slots(7, 16));  // would need a third block
  CHECK(small.num_computed_tokens(7) == 20);
}

TEST_CASE("evictable prefix hits are not counted as free twice", "[kv]") {
  BlockManager bm(4, 16);
  auto prefix = toks(0, 32);
  prefill(bm, 1, cat(prefix, {9}));  // blocks 0,1 cached, block 2 partial
  bm.free(1);
  CHECK(bm.stats().evictable_blocks == 2);
  // 65 tokens: 2 hits + 3 new = 5 > 4 blocks, although 4 look free.
  CHECK_FALSE(bm.allocate_prompt(2, cat(prefix, toks(500, 33))).has_value());
  CHECK(bm.stats().evictable_blocks == 2);
  CHECK(bm.stats().evictions == 0);
  // 49 tokens: 2 hits + 2 new fits exactly.
  auto c = bm.allocate_prompt(2, cat(prefix, toks(500, 17)));
  REQUIRE(c.has_value());
  CHECK(*c == 32);
  CHECK(bm.num_free_blocks() == 0);
  CHECK(bm.stats().evictions == 0);
  bm.check_invariants();
}

TEST_CASE("prefix hit shares full blocks only", "[kv]") {
  BlockManager bm(32, 16);
  auto shared = toks(0, 40);
  auto a = cat(shared, toks(100, 10));
  auto b = cat(shared, toks(200, 10));
  CHECK(prefill(bm, 1, a) == 0);
  CHECK(bm.match_prefix(b) == 32);
  CHECK(prefill(bm, 2, b) == 32);
  CHECK(bm.num_computed_tokens(2) == 50);
  const auto& ta = bm.block_table(1);
  const auto& tb = bm.block_table(2);
  REQUIRE(ta.size() == 4);
  REQUIRE(tb.size() == 4);
  CHECK(ta[0] == tb[0]);
  CHECK(ta[1] == tb[1]);
  CHECK(ta[2] != tb[2]);  // third block: 8 shared tokens + different ones
  CHECK(bm.block_info(ta[0]).ref_count == 2);
  CHECK(bm.block_info(ta[2]).ref_count == 1);
  CHECK(bm.num_used_blocks() == 6);

  auto st = bm.stats();
  CHECK(st.prefix_query_tokens == 100);
  CHECK(st.prefix_hit_tokens == 32);
  CHECK(st.prefix_hit_rate() == Approx(0.32));
}

TEST_CASE("reuse_cached false takes no cached prefix, and its blocks still get cached", "[kv]") {
  // (A request that wants every prompt position's logprobs computes its whole prompt.)
  BlockManager bm(32, 16);
  const auto prompt = toks(0, 40);
  CHECK(prefill(bm, 1, prompt) == 0);
  bm.free(1);
  auto cached = bm.allocate_prompt(2, prompt, std::numeric_limits<int64_t>::max(), false);
  REQUIRE(cached.has_value());
  CHECK(*cached == 0);
  CHECK(bm.num_computed_tokens(2) == 0);
  bm.commit_tokens(2, prompt);
  bm.check_invariants();
  CHECK(bm.stats().prefix_hit_tokens == 0);  // not a lookup: the hit rate counts real ones
  bm.free(2);
  CHECK(prefill(bm, 3, prompt) == 32);       // what it computed serves the next one
  bm.check_invariants();
}

TEST_CASE("the whole prompt is never matched", "[kv]") {
  BlockManager bm(16, 16);
  auto p = toks(0, 32);
  prefill(bm, 1, p);
  CHECK(bm.match_prefix(p) == 16);  // last token must be computed: its block is recomputed
  CHECK(bm.match_prefix(cat(p, {7})) == 32);
  CHECK(bm.match_prefix(toks(0, 16)) == 0);
  CHECK(bm.match_prefix(toks(0, 17)) == 16);
  CHECK(prefill(bm, 2, p) == 16);
  CHECK(bm.block_table(2)[0] == bm.block_table(1)[0]);
  CHECK(bm.block_table(2)[1] != bm.block_table(1)[1]);
}

TEST_CASE("freed cached blocks are reused by a later identical prefix", "[kv]") {
  BlockManager bm(8, 16);
  auto p = toks(0, 48);
  prefill(bm, 1, p);
  auto blocks = bm.block_table(1);
  bm.free(1);
  CHECK(bm.num_free_blocks() == 8);
  CHECK(bm.stats().evictable_blocks == 3);
  CHECK(prefill(bm, 2, cat(p, {1})) == 48);
  auto t2 = bm.block_table(2);
  CHECK(std::vector<int32_t>(t2.begin(), t2.begin() + 3) == blocks);
  CHECK(bm.stats().evictable_blocks == 0);
  CHECK(bm.stats().evictions == 0);
}

TEST_CASE("evictable blocks are taken only when the free list is empty, oldest first", "[kv]") {
  BlockManager bm(4, 4);
  auto a = toks(0, 5), b = toks(100, 5), c = toks(200, 9);
  prefill(bm, 1, a);  // blocks 0 (cached), 1 (partial)
  prefill(bm, 2, b);  // blocks 2 (cached), 3 (partial)
  bm.free(1);         // 0 -> LRU, 1 -> free list
  bm.free(2);         // 2 -> LRU after 0, 3 -> free list
  CHECK(bm.stats().evictable_blocks == 2);
  CHECK(bm.match_prefix(a) == 4);
  CHECK(bm.match_prefix(b) == 4);

  prefill(bm, 3, c);  // 3 blocks: the two free ones, then evicts the least recently freed
  CHECK(bm.stats().evictions == 1);
  CHECK(bm.match_prefix(a) == 0);  // a's block went first
  CHECK(bm.match_prefix(b) == 4);
  auto t3 = bm.block_table(3);
  CHECK(std::find(t3.begin(), t3.end(), 0) != t3.end());

  // Within one sequence the tail block is evicted before its prefix blocks.
  BlockManager lru(3, 4);
  auto p = toks(0, 9);  // blocks 0, 1 cached; 2 partial
  prefill(lru, 1, p);
  lru.free(1);
  prefill(lru, 2, toks(50, 5));  // takes block 2 (free), then 1 (evicts p's second block)
  CHECK(lru.stats().evictions == 1);
  CHECK(lru.match_prefix(p) == 4);
  lru.check_invariants();
}

TEST_CASE("hash chaining: equal block tokens under another parent do not hit", "[kv]") {
  BlockManager bm(16, 4);
  auto p1 = toks(0, 4), p2 = toks(10, 4), t = toks(100, 4);
  auto a = cat(cat(p1, t), {1});
  auto b = cat(cat(p2, t), {1});
  prefill(bm, 1, a);
  CHECK(bm.match_prefix(b) == 0);
  CHECK(bm.match_prefix(cat(t, {1})) == 0);  // t is cached, but as a second block
  prefill(bm, 2, b);
  CHECK(bm.stats().cached_blocks == 4);  // p1, t|p1, p2, t|p2
  CHECK(bm.block_table(1)[1] != bm.block_table(2)[1]);

  // Each prefix finds its own copy of t.
  prefill(bm, 3, b);
  prefill(bm, 4, a);
  CHECK(bm.block_table(3)[1] == bm.block_table(2)[1]);
  CHECK(bm.block_table(4)[1] == bm.block_table(1)[1]);
}

TEST_CASE("identical blocks computed concurrently are both cached", "[kv]") {
  BlockManager bm(16, 4);
  auto p = toks(0, 9);
  REQUIRE(bm.allocate_prompt(1, p).has_value());
  REQUIRE(bm.allocate_prompt(2, p).has_value());  // no hit yet: neither is computed
  bm.commit_tokens(1, p);
  bm.commit_tokens(2, p);
  bm.check_invariants();
  CHECK(bm.stats().cached_blocks == 4);
  bm.free(1);
  // seq 2's copies keep the prefix reachable, and seq 1's are evictable.
  CHECK(bm.match_prefix(cat(p, {5})) == 8);
  CHECK(bm.stats().evictable_blocks == 2);
  bm.free(2);
  CHECK(bm.match_prefix(cat(p, {5})) == 8);
  bm.check_invariants();
}

TEST_CASE("fork shares blocks and copy-on-write separates the partial one", "[kv]") {
  BlockManager bm(8, 16);
  auto p = toks(0, 20);
  prefill(bm, 1, p);
  REQUIRE(bm.append_slots(1, 4));  // slots granted before the fork...
  bm.fork(1, 2);
  bm.check_invariants();
  CHECK(bm.block_table(2) == bm.block_table(1));
  CHECK(bm.num_computed_tokens(2) == 20);
  CHECK(bm.block_info(bm.block_table(1)[1]).ref_count == 2);
  CHECK(bm.num_used_blocks() == 2);
  // ... are void after it: writing into the shared block needs append_slots (and a copy).
  CHECK_THROWS_AS(bm.commit_tokens(1, cat(p, {1})), troupe::Error);
  CHECK_THROWS_AS(bm.commit_tokens(2, cat(p, {1})), troupe::Error);

  const int32_t shared_partial = bm.block_table(1)[1];
  CHECK(bm.num_blocks_needed(2, 1) == 1);
  REQUIRE(bm.append_slots(2, 1));
  auto copies = bm.take_pending_copies();
  REQUIRE(copies.size() == 1);
  CHECK(copies[0].src == shared_partial);
  CHECK(copies[0].dst == bm.block_table(2)[1]);
  CHECK(bm.block_table(2)[0] == bm.block_table(1)[0]);
  CHECK(bm.block_table(2)[1] != bm.block_table(1)[1]);
  CHECK(bm.block_info(shared_partial).ref_count == 1);
  CHECK(bm.stats().cow_copies == 1);
  CHECK(bm.take_pending_copies().empty());

  // The parent now holds the old partial block alone: it writes in place.
  REQUIRE(bm.append_slots(1, 1));
  CHECK(bm.take_pending_copies().empty());
  CHECK(bm.block_table(1)[1] == shared_partial);
  bm.commit_tokens(1, cat(p, {1}));
  bm.commit_tokens(2, cat(p, {2}));
  bm.check_invariants();

  // Forked at a block boundary nothing partial is shared: the next block is just new.
  BlockManager al(8, 16);
  prefill(al, 1, toks(0, 32));
  al.fork(1, 2);
  REQUIRE(al.append_slots(2, 1));
  CHECK(al.take_pending_copies().empty());
  CHECK(al.block_table(2).size() == 3);
  al.check_invariants();
}

TEST_CASE("truncate across a block boundary frees the block and un-caches it", "[kv]") {
  BlockManager bm(8, 16);
  auto p = toks(0, 40);
  prefill(bm, 1, p);
  CHECK(bm.stats().cached_blocks == 2);
  const int32_t dropped = bm.block_table(1)[2];
  const int32_t second = bm.block_table(1)[1];
  bm.truncate(1, 30);
  bm.check_invariants();
  CHECK(bm.block_table(1).size() == 2);
  CHECK(bm.num_computed_tokens(1) == 30);
  CHECK(bm.num_free_blocks() == 6);
  CHECK(bm.block_info(dropped).ref_count == 0);
  CHECK_FALSE(bm.block_info(dropped).cached);
  CHECK_FALSE(bm.block_info(second).cached);  // partial again: will be overwritten
  CHECK(bm.stats().cached_blocks == 1);
  CHECK(bm.match_prefix(cat(p, {1})) == 16);

  // Dropping a full, cached block frees it outright: it does not linger on the LRU list.
  BlockManager full(8, 16);
  auto f = toks(0, 48);
  prefill(full, 1, f);
  const int32_t third = full.block_table(1)[2];
  CHECK(full.block_info(third).cached);
  full.truncate(1, 32);
  CHECK(full.block_table(1).size() == 2);
  CHECK(full.block_info(third).ref_count == 0);
  CHECK_FALSE(full.block_info(third).cached);
  CHECK(full.stats().evictable_blocks == 0);
  CHECK(full.stats().cached_blocks == 2);
  CHECK(full.match_prefix(cat(f, {1})) == 32);
  full.check_invariants();

  // Rewriting the tail re-caches the block with its new content.
  auto q = cat(toks(0, 30), toks(900, 10));
  REQUIRE(bm.append_slots(1, 10));
  CHECK(bm.take_pending_copies().empty());
  bm.commit_tokens(1, q);
  CHECK(bm.match_prefix(cat(q, {1})) == 32);
  CHECK(bm.match_prefix(cat(p, {1})) == 16);

  // Speculative decoding: reserve 1 + 4 slots, accept 2, release the rest.
  REQUIRE(bm.append_slots(1, 5));
  CHECK(bm.block_table(1).size() == 3);
  bm.commit_tokens(1, cat(q, {1, 2}));
  bm.truncate(1, 42);
  CHECK(bm.num_computed_tokens(1) == 42);
  bm.truncate(1, 0);
  CHECK(bm.block_table(1).empty());
  CHECK(bm.num_free_blocks() == 8);
  bm.check_invariants();
}

TEST_CASE("truncating a shared block keeps it cached and copies on write", "[kv]") {
  BlockManager bm(8, 16);
  auto p = toks(0, 40);
  prefill(bm, 1, p);
  bm.fork(1, 2);
  const int32_t second = bm.block_table(1)[1];
  bm.truncate(2, 20);  // into the shared, cached second block
  CHECK(bm.block_info(second).cached);
  CHECK(bm.block_info(bm.block_table(1)[2]).ref_count == 1);
  REQUIRE(bm.append_slots(2, 1));
  auto copies = bm.take_pending_copies();
  REQUIRE(copies.size() == 1);
  CHECK(copies[0] == BlockCopy{second, bm.block_table(2)[1]});
  bm.check_invariants();

  // Once the other holder is gone, the sole holder un-caches and writes in place.
  BlockManager solo(8, 16);
  prefill(solo, 1, p);
  solo.fork(1, 2);
  solo.truncate(2, 20);
  solo.free(1);
  const int32_t blk = solo.block_table(2)[1];
  CHECK(solo.block_info(blk).cached);
  REQUIRE(solo.append_slots(2, 1));
  CHECK(solo.take_pending_copies().empty());
  CHECK_FALSE(solo.block_info(blk).cached);
  solo.check_invariants();
}

TEST_CASE("prefix caching can be turned off", "[kv]") {
  BlockManager bm(8, 4, false);
  auto p = toks(0, 9);
  prefill(bm, 1, p);
  CHECK(bm.stats().cached_blocks == 0);
  bm.free(1);
  CHECK(bm.stats().evictable_blocks == 0);
  CHECK(prefill(bm, 2, p) == 0);
  CHECK(bm.stats().prefix_hit_tokens == 0);
}

TEST_CASE("misuse throws troupe::Error", "[kv]") {
  CHECK_THROWS_AS(BlockManager(0, 16), troupe::Error);
  CHECK_THROWS_AS(BlockManager(8, 0), troupe::Error);
  CHECK_THROWS_AS(BlockManager(int64_t{1} << 32, 16), troupe::Error);
  BlockManager bm(8, 4);
  auto p = toks(0, 6);
  CHECK_THROWS_AS(bm.block_table(3), troupe::Error);
  CHECK_THROWS_AS(bm.append_slots(3, 1), troupe::Error);
  CHECK_THROWS_AS(bm.commit_tokens(3, p), troupe::Error);
  CHECK_THROWS_AS(bm.truncate(3, 0), troupe::Error);
  CHECK_THROWS_AS(bm.fork(3, 4), troupe::Error);
  CHECK_THROWS_AS(bm.free(3), troupe::Error);
  CHECK_THROWS_AS(bm.num_computed_tokens(3), troupe::Error);
  CHECK_THROWS_AS(bm.allocate_prompt(3, std::vector<int32_t>{}), troupe::Error);
  CHECK_THROWS_AS(bm.block_info(8), troupe::Error);
  CHECK_THROWS_AS(bm.block_info(-1), troupe::Error);

  prefill(bm, 1, p);
  CHECK_THROWS_AS(bm.allocate_prompt(1, p), troupe::Error);
  CHECK_THROWS_AS(bm.allocate_prompt(2, p, -1), troupe::Error);
  CHECK_THROWS_AS(bm.append_slots(1, -1), troupe::Error);
  CHECK_THROWS_AS(bm.commit_tokens(1, toks(0, 5)), troupe::Error);  // shorter: use truncate
  CHECK_THROWS_AS(bm.truncate(1, 7), troupe::Error);
  CHECK_THROWS_AS(bm.truncate(1, -1), troupe::Error);
  CHECK_THROWS_AS(bm.fork(1, 1), troupe::Error);
  bm.fork(1, 2);
  CHECK_THROWS_AS(bm.fork(1, 2), troupe::Error);
  bm.check_invariants();  // nothing above changed the state
  CHECK(bm.num_used_blocks() == 2);
}
