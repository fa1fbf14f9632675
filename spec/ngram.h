#pragma once
// N-gram / prompt-lookup proposer: finds the most recent earlier occurrence of the last n
// tokens (n from ngram_max down to ngram_min) in the prompt and generated text, and proposes
// the tokens that followed it. Free to run and very accurate when the output copies from
// the input (summaries, code edits, extraction); useless otherwise, which the adaptive
// controller notices and turns speculation off.
#include "spec/proposer.h"

namespace troupe::spec {

class NgramProposer final : public Proposer {
 public:
  NgramProposer(int32_t ngram_min, int32_t ngram_max);  // throws on 1 > min or min > max
  std::string name() const override { return "ngram"; }
  void propose(std::span<const ProposeRequest> reqs, std::vector<Proposal>& out,
               ProposeStats& stats) override;

  // The lookup itself: up to k tokens following the latest earlier match of tokens' tail.
  std::vector<int32_t> lookup(std::span<const int32_t> tokens, int32_t k) const;

 private:
  int32_t min_, max_;
};

}  // namespace troupe::spec
