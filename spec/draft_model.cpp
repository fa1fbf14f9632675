#include "spec/draft_model.h"

#include <algorithm>
#include <chrono>

#include "core/error.h"
#include "spec/verify.h"

namespace troupe::spec {

namespace {

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// Whether the sampler's transforms depend on the tokens so far (then drafting needs a
// private copy that accepts each draft): penalties, and a grammar state.
bool has_penalties(const SamplingParams& p) {
  return p.repetition_penalty != 1.0f || p.presence_penalty != 0.0f || p.frequency_penalty != 0.0f ||
         !p.constraint.empty();
}

}  // namespace

// A sequence being drafted in this call.
struct DraftModelProposer::Active {
  size_t req = 0;           // index into reqs / out
  int32_t k = 0;            // drafts to produce
  int64_t start = 0;        // first position fed in the next pass
  std::vector<int32_t> feed;  // tokens fed in the next pass
  // A copy of the request's sampler when penalties apply: drafts count as generated tokens
  // for the penalties of the drafts after them, as they will if accepted.
  std::unique_ptr<Sampler> local;
};

DraftModelProposer::DraftModelProposer(std::shared_ptr<Backend> draft)
    : backend_(std::move(draft)),
      blocks_(backend_->kv_shape().num_blocks, backend_->kv_shape().block_size, false),
      max_pos_(backend_->config().max_position_embeddings) {}

int64_t DraftModelProposer::cached_tokens(int64_t seq_id) const {
  auto it = cached_.find(seq_id);
  return it == cached_.end() ? 0 : int64_t(it->second.size());
}

void DraftModelProposer::release(int64_t seq_id) {
  cached_.erase(seq_id);
  if (blocks_.has_sequence(seq_id)) blocks_.free(seq_id);
}

// Rolls the cache of r's sequence back to its first `keep` tokens (the rest no longer match
// the sequence, or were reserved for drafts that were never confirmed).
void DraftModelProposer::sync_cache(const ProposeRequest& r, int64_t keep) {
  auto& cached = cached_[r.seq_id];
  cached.resize(size_t(keep));
  if (blocks_.has_sequence(r.seq_id)) blocks_.truncate(r.seq_id, keep);
}

// Makes `num_tokens` more positions writable, evicting the caches of sequences not in this
// call when the pool is full (they are waiting, preempted or speculating with another
// proposer's budget: they recompute later). False when it still does not fit.
bool DraftModelProposer::reserve(int64_t seq_id, int64_t num_tokens, std::span<const ProposeRequest> reqs) {
  auto fits = [&] { return blocks_.append_slots(seq_id, num_tokens); };
  if (fits()) return true;
  std::vector<int64_t> idle;
  for (const auto& [id, _] : cached_) {
    const bool in_call = std::any_of(reqs.begin(), reqs.end(), [&](const ProposeRequest& r) { return r.seq_id == id; });
    if (!in_call) idle.push_back(id);
  }
  for (int64_t id : idle) {
    release(id);
    if (fits()) return true;
  }
  return false;
}

void DraftModelProposer::propose(std::span<const ProposeRequest> reqs, std::vector<Proposal>& out,
                                 ProposeStats& stats) {
  const auto t_call = std::chrono::steady_clock::now();
  out.assign(reqs.size(), Proposal{});
  const int64_t vocab = backend_->config().vocab_size;
  std::vector<Active> active;
  for (size_t i = 0; i < reqs.size(); ++i) {
    const auto& r = reqs[i];
    const int64_t L = int64_t(r.tokens.size());
    // Drafts take positions L-1 .. L+k-2 as inputs: all must exist in the draft model.
    const int32_t k = int32_t(std::min<int64_t>(r.k, max_pos_ - L + 1));
    if (k <= 0 || L == 0 || !r.sampler) continue;
    // Keep the longest cached prefix that still matches; the last token is always fed
    // again (its logits give the first draft).
    auto& cached = cached_[r.seq_id];
    const auto mismatch = std::mismatch(cached.begin(), cached.end(), r.tokens.begin(), r.tokens.end());
    const int64_t keep = std::min<int64_t>(mismatch.first - cached.begin(), L - 1);
    sync_cache(r, keep);
    if (!blocks_.has_sequence(r.seq_id)) {
      // A fresh entry holding nothing yet (no prefix caching: nothing to match).
      blocks_.allocate_prompt(r.seq_id, r.tokens.first(1), 0);
    }
    // Positions [keep, L - 1 + k - 1] are written: the catch-up tokens and k - 1 drafts.
    if (!reserve(r.seq_id, (L - keep) + (k - 1), reqs)) continue;
    Active a;
    a.req = i;
    a.k = k;
    a.start = keep;
    a.feed.assign(r.tokens.begin() + keep, r.tokens.end());
    if (has_penalties(r.sampler->params())) a.local = std::make_unique<Sampler>(*r.sampler);
    active.push_back(std::move(a));
  }

  std::vector<float> logits, q;
  StepBatch batch;
  StepOutput step_out;
  while (!active.empty()) {  // one forward pass per draft position
    batch.seqs.clear();
    for (const auto& a : active) {
      StepSeq s;
      s.seq_id = reqs[a.req].seq_id;
      s.tokens = a.feed;
      s.start_pos = int32_t(a.start);
      s.block_table = blocks_.block_table(s.seq_id);
      s.logit_rows = {int32_t(a.feed.size()) - 1};
      batch.seqs.push_back(std::move(s));
    }
    const auto t_pass = std::chrono::steady_clock::now();
    for (const auto& c : blocks_.take_pending_copies()) backend_->copy_block(c.src, c.dst);
    backend_->run_step(batch, step_out);
    stats.passes.push_back({batch.num_tokens(), ms_since(t_pass)});

    std::vector<Active> next;
    for (size_t j = 0; j < active.size(); ++j) {
      Active& a = active[j];
      const auto& r = reqs[a.req];
      Proposal& p = out[a.req];
      auto& cached = cached_[r.seq_id];
      cached.insert(cached.end(), a.feed.begin(), a.feed.end());
      blocks_.commit_tokens(r.seq_id, cached);

      const Sampler& sampler = a.local ? *a.local : *r.sampler;
      const float* row = step_out.row(int64_t(j));
      logits.assign(row, row + vocab);
      sampler.apply_penalties(logits);
      int32_t x;
      if (sampler.params().greedy()) {
        x = int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
      } else {
        // Same transforms as the target's p, so q is as close to p as the draft allows.
        sampler.probabilities(logits, q);
        const int64_t step = r.sampler->num_generated() + int64_t(p.tokens.size());
        x = draw_from_weights(q, r.sampler->uniform(step, kDraftStream));
        if (x < 0) continue;  // no mass at all (cannot happen with finite logits)
        p.probs.insert(p.probs.end(), q.begin(), q.end());
      }
      p.tokens.push_back(x);
      if (a.local) a.local->accept(x);
      if (int32_t(p.tokens.size()) >= a.k) {
        // The last draft is never fed: its KV would only be needed if it were accepted,
        // and then the next call feeds it anyway. Release the slot reserved for nothing.
        blocks_.truncate(r.seq_id, int64_t(cached.size()));
        continue;
      }
      a.start += int64_t(a.feed.size());
      a.feed = {x};
      next.push_back(std::move(a));
    }
    active = std::move(next);
  }
  stats.total_ms = ms_since(t_call);
}

}  // namespace troupe::spec
