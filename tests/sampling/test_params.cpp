// SamplingParams::validate: each out-of-range value is rejected with a message naming the
// field; the boundary values that the APIs allow are accepted.
#include <catch2/catch.hpp>
#include <cmath>

#include "core/error.h"
#include "sampling/sampler.h"

using troupe::SamplingParams;

namespace {

template <typename Mutate>
std::string error_of(Mutate mutate) {
  SamplingParams p;
  mutate(p);
  try {
    p.validate();
  } catch (const troupe::Error& e) {
    return e.what();
  }
  return "<no error>";
}

}  // namespace

TEST_CASE("validate accepts defaults and boundary values", "[sampling][params]") {
  SamplingParams p;
  CHECK_NOTHROW(p.validate());
  p.temperature = 0.0f;
  p.top_p = 1.0f;
  p.top_k = -1;
  p.min_p = 1.0f;
  p.presence_penalty = -2.0f;
  p.frequency_penalty = 2.0f;
  p.max_tokens = 1;
  p.logprobs = 20;
  p.stop = {"x"};
  p.stop_token_ids = {0};
  CHECK_NOTHROW(p.validate());
  p.top_k = 0;
  p.top_p = 1e-6f;
  p.min_p = 0.0f;
  p.temperature = 100.0f;
  CHECK_NOTHROW(p.validate());
}

TEST_CASE("validate names the field and the value", "[sampling][params]") {
  CHECK(error_of([](auto& p) { p.top_p = 1.5f; }) == "top_p must be in (0, 1], got 1.5");
  CHECK(error_of([](auto& p) { p.top_p = 0.0f; }) == "top_p must be in (0, 1], got 0");
  CHECK(error_of([](auto& p) { p.temperature = -0.5f; }) ==
        "temperature must be in [0, 100], got -0.5");
  CHECK_THAT(error_of([](auto& p) { p.temperature = NAN; }), Catch::StartsWith("temperature"));
  CHECK_THAT(error_of([](auto& p) { p.temperature = 1000.0f; }), Catch::StartsWith("temperature"));
  CHECK(error_of([](auto& p) { p.top_k = -2; }) ==
        "top_k must be -1 or 0 (disabled) or positive, got -2");
  CHECK(error_of([](auto& p) { p.min_p = 1.5f; }) == "min_p must be in [0, 1], got 1.5");
  CHECK_THAT(error_of([](auto& p) { p.min_p = -0.1f; }), Catch::StartsWith("min_p"));
  CHECK(error_of([](auto& p) { p.repetition_penalty = 0.0f; }) ==
        "repetition_penalty must be > 0, got 0");
  CHECK_THAT(error_of([](auto& p) { p.repetition_penalty = INFINITY; }),
             Catch::StartsWith("repetition_penalty"));
  CHECK(error_of([](auto& p) { p.presence_penalty = 2.5f; }) ==
        "presence_penalty must be in [-2, 2], got 2.5");
  CHECK(error_of([](auto& p) { p.frequency_penalty = -3.0f; }) ==
        "frequency_penalty must be in [-2, 2], got -3");
  CHECK(error_of([](auto& p) { p.max_tokens = 0; }) == "max_tokens must be >= 1, got 0");
  CHECK(error_of([](auto& p) { p.logprobs = 21; }) == "logprobs must be in [0, 20], got 21");
  CHECK(error_of([](auto& p) { p.logprobs = -1; }) == "logprobs must be in [0, 20], got -1");
  CHECK(error_of([](auto& p) {
          p.stop = {"a", ""};
        }) == "stop strings must be non-empty, stop[1] is empty");
  CHECK_THAT(error_of([](auto& p) {
               p.stop_token_ids = {2, -1};
             }),
             Catch::StartsWith("stop_token_ids"));
}

TEST_CASE("a Sampler refuses invalid params", "[sampling][params]") {
  SamplingParams p;
  p.top_p = 2.0f;
  CHECK_THROWS_AS(troupe::Sampler(p, {}), troupe::Error);
}
