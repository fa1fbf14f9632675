#pragma once
// A proposer guesses the next few tokens of many sequences at once. The drafter actor calls
// it once per step with every sequence the scheduler planned drafts for; the verifier then
// checks the guesses against the target (verify.h).
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "sampling/sampler.h"

namespace troupe::spec {

struct ProposeRequest {
  int64_t seq_id = 0;
  std::span<const int32_t> tokens;   // prompt + generated so far; drafts continue after the last
  int32_t k = 0;                     // drafts wanted (a proposer may return fewer)
  const Sampler* sampler = nullptr;  // the request's sampling state: params, penalties, seed
};

struct Proposal {
  std::vector<int32_t> tokens;  // <= k drafts
  // [tokens.size() x vocab]: q, the distribution each draft was drawn from, for sampled
  // requests of a model proposer. Empty for greedy requests and for point-mass proposers
  // (n-gram), whose q is 1 at the drafted token.
  std::vector<float> probs;
};

// Timing of one propose() call, for the controller's draft cost model.
struct DraftPass {
  int64_t tokens = 0;  // tokens run through the draft model in this forward pass
  double ms = 0;
  bool operator==(const DraftPass&) const = default;  // field by field (protocol tests)
};
struct ProposeStats {
  std::vector<DraftPass> passes;  // empty for proposers without a model
  double total_ms = 0;            // wall time of the whole call
  bool operator==(const ProposeStats&) const = default;  // field by field (protocol tests)
};

class Proposer {
 public:
  virtual ~Proposer() = default;
  virtual std::string name() const = 0;
  // One Proposal per request, in order. Sequences it has not seen before are fine; a
  // sequence whose tokens changed since the last call (rejected drafts, preemption) is
  // handled by the proposer itself (the draft model rolls its KV back).
  virtual void propose(std::span<const ProposeRequest> reqs, std::vector<Proposal>& out,
                       ProposeStats& stats) = 0;
  // The sequence is gone for good: drop whatever the proposer keeps for it.
  virtual void release(int64_t seq_id) { (void)seq_id; }
};

}  // namespace troupe::spec
