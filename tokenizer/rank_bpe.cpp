#include "tokenizer/rank_bpe.h"

#include <queue>

namespace troupe::detail {

bool RankMerges::add(int32_t left, int32_t right, int32_t result) {
  return merges_.emplace(key(left, right), Merge{int32_t(merges_.size()), result}).second;
}

const RankMerges::Merge* RankMerges::find(int32_t l, int32_t r) const {
  if (l < 0 || r < 0) return nullptr;
  auto it = merges_.find(key(l, r));
  return it == merges_.end() ? nullptr : &it->second;
}

void RankMerges::apply(std::vector<BpeSymbol>& syms) const {
  const int32_t n = int32_t(syms.size());
  if (n < 2) return;
  // Doubly linked list over the symbols; a merge folds the right symbol into the left.
  std::vector<int32_t> prev(n), next(n);
  for (int32_t i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  struct Cand {
    int32_t rank, left, right;
    // Lowest rank first; on equal ranks the leftmost pair (symbol indices keep
    // left-to-right order because the left symbol survives a merge).
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : left > o.left; }
  };
  std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> queue;
  auto push = [&](int32_t l, int32_t r) {
    if (l < 0 || r < 0) return;
    if (const Merge* m = find(syms[l].id, syms[r].id)) queue.push({m->rank, l, r});
  };
  for (int32_t i = 0; i + 1 < n; ++i) push(i, i + 1);

  std::vector<uint8_t> dead(n, 0);
  while (!queue.empty()) {
    const Cand c = queue.top();
    queue.pop();
    // Stale entry: one side was merged away, or the left symbol changed identity.
    if (dead[c.left] || dead[c.right] || next[c.left] != c.right) continue;
    const Merge* m = find(syms[c.left].id, syms[c.right].id);
    if (!m || m->rank != c.rank) continue;
    syms[c.left].id = m->result;
    syms[c.left].end = syms[c.right].end;
    dead[c.right] = 1;
    next[c.left] = next[c.right];
    if (next[c.right] >= 0) prev[next[c.right]] = c.left;
    push(prev[c.left], c.left);
    push(c.left, next[c.left]);
  }
  size_t w = 0;
  for (int32_t i = 0; i < n; ++i)
    if (!dead[i]) syms[w++] = syms[i];
  syms.resize(w);
}

}  // namespace troupe::detail
