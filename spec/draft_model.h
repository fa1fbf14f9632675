#pragma once
// Draft-model proposer: a small model of the same vocabulary (or a quantized copy of the
// target) drafts k tokens autoregressively, batched across sequences, with its own paged KV
// cache managed by its own BlockManager (no prefix caching: draft prefills are cheap).
//
// Its KV follows the sequence's tokens lazily: it remembers which token ids its cache holds
// per sequence, and at each call keeps only the longest prefix that still matches the
// sequence (truncate = rollback of rejected drafts, across block boundaries too), then runs
// the missing tokens and the drafts. A sequence that skipped speculation for a while simply
// has more to catch up on.
#include <memory>
#include <unordered_map>

#include "kv/block_manager.h"
#include "model/backend.h"
#include "spec/proposer.h"

namespace troupe::spec {

class DraftModelProposer final : public Proposer {
 public:
  explicit DraftModelProposer(std::shared_ptr<Backend> draft);
  std::string name() const override { return "draft:" + backend_->name(); }
  void propose(std::span<const ProposeRequest> reqs, std::vector<Proposal>& out,
               ProposeStats& stats) override;
  void release(int64_t seq_id) override;

  // For tests: what the draft cache holds for a sequence.
  int64_t cached_tokens(int64_t seq_id) const;
  const BlockManager& blocks() const { return blocks_; }
  const Backend& backend() const { return *backend_; }

 private:
  struct Active;  // one sequence's drafting state within a call
  bool reserve(int64_t seq_id, int64_t num_tokens, std::span<const ProposeRequest> reqs);
  void sync_cache(const ProposeRequest& r, int64_t keep);

  std::shared_ptr<Backend> backend_;
  BlockManager blocks_;
  int64_t max_pos_;
  std::unordered_map<int64_t, std::vector<int32_t>> cached_;  // token ids whose KV is written
};

}  // namespace troupe::spec
