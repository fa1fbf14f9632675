// Prompt lookup: the latest earlier occurrence of the longest matching tail wins.
#include <catch2/catch.hpp>

#include "spec/ngram.h"

using namespace troupe::spec;

TEST_CASE("n-gram lookup proposes what followed the latest earlier match", "[spec][ngram]") {
  NgramProposer ng(1, 3);
  //                          0  1  2  3  4  5  6  7  8  9
  std::vector<int32_t> toks = {5, 6, 7, 8, 9, 5, 6, 7, 1, 2, 5, 6, 7};
  // Tail "5 6 7" occurs at 0 and 5; the latest (5) is followed by 1 2 5 ...
  CHECK(ng.lookup(toks, 3) == std::vector<int32_t>{1, 2, 5});
  CHECK(ng.lookup(toks, 1) == std::vector<int32_t>{1});
  // A shorter continuation than k when the match is near the end.
  std::vector<int32_t> near = {4, 4, 4};
  CHECK(ng.lookup(near, 5) == std::vector<int32_t>{4});
  // No match of any length in [min, max]: nothing.
  CHECK(ng.lookup(std::vector<int32_t>{1, 2, 3, 4}, 3).empty());
  NgramProposer strict(2, 3);
  CHECK(strict.lookup(std::vector<int32_t>{1, 2, 9, 3, 2}, 3).empty());  // only a 1-gram matches
  CHECK(strict.lookup(std::vector<int32_t>{1, 2, 9, 3, 1, 2}, 3) == std::vector<int32_t>{9, 3, 1});
}

TEST_CASE("n-gram proposer answers every request and refuses bad bounds", "[spec][ngram]") {
  CHECK_THROWS(NgramProposer(0, 2));
  CHECK_THROWS(NgramProposer(3, 2));
  NgramProposer ng(1, 2);
  std::vector<int32_t> a = {1, 2, 3, 1, 2}, b = {7, 8};
  std::vector<ProposeRequest> reqs = {{1, a, 2, nullptr}, {2, b, 3, nullptr}, {3, a, 0, nullptr}};
  std::vector<Proposal> out;
  ProposeStats st;
  ng.propose(reqs, out, st);
  REQUIRE(out.size() == 3);
  CHECK(out[0].tokens == std::vector<int32_t>{3, 1});
  CHECK(out[0].probs.empty());  // point mass
  CHECK(out[1].tokens.empty());
  CHECK(out[2].tokens.empty());  // k = 0
  CHECK(st.passes.empty());
}
