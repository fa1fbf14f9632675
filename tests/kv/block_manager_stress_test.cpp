// Randomized stress test: thousands of random admissions, prefill chunks, speculative
// decode steps, forks, rollbacks and frees against a simulated KV memory.
//
// The simulation writes each computed token id into the (block, slot) its table names and
// performs the queued copy-on-write copies, like a backend would. After every operation it
// checks, independently of the manager's own bookkeeping:
//   * every block is exactly one of free / evictable / referenced, and ref counts equal the
//     number of tables holding the block;
//   * every computed position of every sequence reads back its own token from the simulated
//     KV memory: a missed copy-on-write, a stale prefix-cache hit, or a reused block still
//     in someone's table all show up as a wrong token.
#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <random>
#include <vector>

#include "core/error.h"
#include "kv/block_manager.h"

using troupe::BlockManager;

namespace {

struct SimSeq {
  std::vector<int32_t> tokens;  // the first `computed` are in the KV cache; the rest are still to prefill
  int64_t computed = 0;
};

class Sim {
 public:
  Sim(int64_t num_blocks, int64_t block_size, bool caching, uint64_t seed)
      : bm_(num_blocks, block_size, caching),
        bs_(block_size),
        kv_(static_cast<size_t>(num_blocks), std::vector<int32_t>(static_cast<size_t>(block_size), -1)),
        rng_(seed) {
    // A few shared "system prompts" so admissions hit the prefix cache.
    for (int i = 0; i < 4; ++i) bases_.push_back(random_tokens(pick(0, 3 * bs_)));
  }

  void run(int ops) {
    for (int op = 0; op < ops; ++op) {
      int r = static_cast<int>(pick(0, 99));
      if (seqs_.empty() || r < 20) admit();
      else if (r < 70) step(any_seq());
      else if (r < 78) fork(any_seq());
      else if (r < 86) truncate(any_seq());
      else free(any_seq());
      verify();
    }
    for (auto& [id, s] : seqs_) bm_.free(id);
    seqs_.clear();
    verify();
    CHECK(bm_.num_used_blocks() == 0);
  }

  const BlockManager& bm() const { return bm_; }

 private:
  int64_t pick(int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng_); }
  // A tiny vocabulary makes accidental equal blocks (and so twin cache entries) common.
  std::vector<int32_t> random_tokens(int64_t n) {
    std::vector<int32_t> v(static_cast<size_t>(n));
    for (auto& t : v) t = static_cast<int32_t>(pick(0, 3));
    return v;
  }
  int64_t any_seq() {
    auto it = seqs_.begin();
    std::advance(it, pick(0, static_cast<int64_t>(seqs_.size()) - 1));
    return it->first;
  }

  // Everything observable, to show that a refused request changed nothing.
  struct Snapshot {
    troupe::BlockManagerStats st;
    std::map<int64_t, std::vector<int32_t>> tables;
  };
  Snapshot snapshot() const {
    Snapshot s{bm_.stats(), {}};
    for (auto& [id, q] : seqs_) s.tables[id] = bm_.block_table(id);
    return s;
  }
  void require_unchanged(const Snapshot& before) const {
    auto now = snapshot();
    REQUIRE(now.tables == before.tables);
    REQUIRE(now.st.free_blocks == before.st.free_blocks);
    REQUIRE(now.st.evictable_blocks == before.st.evictable_blocks);
    REQUIRE(now.st.cached_blocks == before.st.cached_blocks);
    REQUIRE(now.st.evictions == before.st.evictions);
    REQUIRE_FALSE(bm_.has_pending_copies());
  }

  // What the backend does in a step: run queued copies, then write K/V of the new tokens.
  void write(int64_t id, int64_t from, int64_t to) {
    for (auto c : bm_.take_pending_copies()) kv_[c.dst] = kv_[c.src];
    const auto& table = bm_.block_table(id);
    const auto& s = seqs_.at(id);
    for (int64_t p = from; p < to; ++p) kv_[table[p / bs_]][p % bs_] = s.tokens[p];
  }

  void commit(int64_t id, int64_t n) {
    auto& s = seqs_.at(id);
    bm_.commit_tokens(id, std::span<const int32_t>(s.tokens.data(), static_cast<size_t>(n)));
    s.computed = n;
  }

  void admit() {
    if (seqs_.size() >= 12) return;
    std::vector<int32_t> prompt;
    if (!recent_.empty() && pick(0, 3) == 0) {
      prompt = recent_[pick(0, static_cast<int64_t>(recent_.size()) - 1)];  // re-admission after preemption
    } else {
      prompt = bases_[pick(0, static_cast<int64_t>(bases_.size()) - 1)];
      auto tail = random_tokens(pick(prompt.empty() ? 1 : 0, 2 * bs_));
      prompt.insert(prompt.end(), tail.begin(), tail.end());
    }
    const auto len = static_cast<int64_t>(prompt.size());
    const int64_t expect = bm_.match_prefix(prompt);
    REQUIRE(expect % bs_ == 0);
    REQUIRE(expect < len);
    const int64_t chunk = pick(0, 1) ? len : pick(0, len);
    const int64_t id = next_id_++;
    auto before = snapshot();
    auto cached = bm_.allocate_prompt(id, prompt, chunk);
    if (!cached) {
      REQUIRE_FALSE(bm_.has_sequence(id));
      require_unchanged(before);
      return;
    }
    REQUIRE(*cached == expect);
    seqs_[id] = SimSeq{prompt, *cached};
    verify_seq(id);  // the hit blocks really hold this prompt's tokens
    const int64_t end = std::min(len, *cached + chunk);
    write(id, *cached, end);
    commit(id, end);
  }

  void step(int64_t id) {
    auto& s = seqs_.at(id);
    if (s.computed == static_cast<int64_t>(s.tokens.size())) {
      // Decode: the next token plus up to 3 speculative drafts.
      auto drafts = random_tokens(pick(1, 4));
      s.tokens.insert(s.tokens.end(), drafts.begin(), drafts.end());
    }
    const int64_t n = pick(1, static_cast<int64_t>(s.tokens.size()) - s.computed);
    auto before = snapshot();
    const int64_t need = bm_.num_blocks_needed(id, n);
    if (!bm_.append_slots(id, n)) {
      REQUIRE(need > bm_.num_free_blocks());
      require_unchanged(before);
      return;
    }
    REQUIRE(bm_.num_free_blocks() == before.st.free_blocks - need);
    write(id, s.computed, s.computed + n);
    // Accept a prefix of what was computed (all of it for prefill-like steps, usually).
    const int64_t accepted = pick(0, 2) ? n : pick(0, n);
    commit(id, s.computed + accepted);
    if (accepted < n && pick(0, 1)) {
      s.tokens.resize(static_cast<size_t>(s.computed));  // rejected drafts
      bm_.truncate(id, s.computed);                       // release lookahead blocks
    }
  }

  void fork(int64_t id) {
    if (seqs_.size() >= 12) return;
    const int64_t child = next_id_++;
    bm_.fork(id, child);
    auto& p = seqs_.at(id);
    SimSeq c{std::vector<int32_t>(p.tokens.begin(), p.tokens.begin() + p.computed), p.computed};
    seqs_[child] = std::move(c);
  }

  void truncate(int64_t id) {
    auto& s = seqs_.at(id);
    const int64_t n = pick(0, 1) ? std::max<int64_t>(0, s.computed - pick(0, bs_ + 2)) : pick(0, s.computed);
    bm_.truncate(id, n);
    s.tokens.resize(static_cast<size_t>(n));
    s.computed = n;
  }

  void free(int64_t id) {
    auto& s = seqs_.at(id);
    if (s.computed > 0) {
      recent_.emplace_back(s.tokens.begin(), s.tokens.begin() + s.computed);
      if (recent_.size() > 8) recent_.erase(recent_.begin());
    }
    bm_.free(id);
    seqs_.erase(id);
    REQUIRE_THROWS_AS(bm_.free(id), troupe::Error);
  }

  void verify_seq(int64_t id) const {
    const auto& s = seqs_.at(id);
    const auto& table = bm_.block_table(id);
    REQUIRE(bm_.num_computed_tokens(id) == s.computed);
    REQUIRE(static_cast<int64_t>(table.size()) >= (s.computed + bs_ - 1) / bs_);
    for (int64_t p = 0; p < s.computed; ++p) {
      if (kv_[table[p / bs_]][p % bs_] != s.tokens[p]) {
        FAIL("sequence " << id << " position " << p << " reads " << kv_[table[p / bs_]][p % bs_] << ", wants "
                         << s.tokens[p]);
      }
    }
  }

  void verify() const {
    bm_.check_invariants();
    const int64_t nb = bm_.num_blocks();
    std::vector<int32_t> refs(static_cast<size_t>(nb), 0);
    for (auto& [id, s] : seqs_) {
      for (int32_t b : bm_.block_table(id)) ++refs[b];
      verify_seq(id);
    }
    int64_t unreferenced = 0, evictable = 0, cached = 0;
    for (int32_t b = 0; b < nb; ++b) {
      auto info = bm_.block_info(b);
      REQUIRE(info.ref_count == refs[b]);
      REQUIRE(info.evictable == (info.ref_count == 0 && info.cached));
      unreferenced += info.ref_count == 0;
      evictable += info.evictable;
      cached += info.cached;
    }
    auto st = bm_.stats();
    REQUIRE(st.free_blocks == unreferenced);
    REQUIRE(st.evictable_blocks == evictable);
    REQUIRE(st.cached_blocks == cached);
    REQUIRE(st.used_blocks + st.free_blocks == nb);
    REQUIRE(st.usage() >= 0.0);
    REQUIRE(st.usage() <= 1.0);
    REQUIRE(st.prefix_hit_tokens <= st.prefix_query_tokens);
    if (!bm_.prefix_caching_enabled()) REQUIRE(cached == 0);
  }

  BlockManager bm_;
  int64_t bs_;
  std::vector<std::vector<int32_t>> kv_;  // simulated KV memory: the token id in each slot
  std::mt19937_64 rng_;
  std::vector<std::vector<int32_t>> bases_;
  std::vector<std::vector<int32_t>> recent_;  // token ids of recently freed sequences
  std::map<int64_t, SimSeq> seqs_;
  int64_t next_id_ = 1;
};

}  // namespace

TEST_CASE("randomized operations keep the block manager consistent", "[kv][stress]") {
  struct Config {
    int64_t num_blocks, block_size;
    bool caching;
  };
  const Config configs[] = {{16, 1, true}, {24, 4, true}, {64, 4, true}, {40, 16, true}, {24, 4, false}};
  int64_t hits = 0, evictions = 0, copies = 0;
  for (const auto& c : configs) {
    for (uint64_t seed = 1; seed <= 4; ++seed) {
      INFO("blocks " << c.num_blocks << " block_size " << c.block_size << " caching " << c.caching << " seed "
                     << seed);
      Sim sim(c.num_blocks, c.block_size, c.caching, seed * 7919 + static_cast<uint64_t>(c.block_size));
      sim.run(3000);
      auto st = sim.bm().stats();
      hits += st.prefix_hit_tokens;
      evictions += st.evictions;
      copies += st.cow_copies;
    }
  }
  // The mix really exercised the interesting paths.
  CHECK(hits > 0);
  CHECK(evictions > 0);
  CHECK(copies > 0);
}
