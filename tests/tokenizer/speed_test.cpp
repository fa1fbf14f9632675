// Encoding speed: a ~10 KB text with the Llama 3 tokenizer must take milliseconds.
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <thread>

#include "fixtures.h"
#include "tokenizer/tokenizer.h"

namespace {

// ~10 KB of varied text: the fixture strings (code, numbers, CJK, emoji) and prose.
std::string ten_kb_text() {
  std::string text;
  const auto cases = troupe::test::tokenizer_cases("llama3");
  for (int round = 0; text.size() < 10 * 1024; ++round) {
    text += "Once upon a time, in a village by the sea, there lived a curious girl named Mira "
            "who collected shells and stories. Every evening she walked along the shore ";
    text += std::to_string(round * 7919) + " steps, counting waves. ";
    text += cases[size_t(round) % cases.size()].text;
    text += "\n";
  }
  return text;
}

}  // namespace

TEST_CASE("Llama 3 encodes 10 KB in milliseconds", "[tokenizer][speed]") {
  const auto& tok = troupe::test::fixture_tokenizer("llama3");
  const std::string text = ten_kb_text();
  const auto warm = tok.encode(text);
  REQUIRE(tok.decode(warm, false) == text);

  const int reps = 20;
  const auto t0 = std::chrono::steady_clock::now();
  size_t n = 0;
  for (int i = 0; i < reps; ++i) n += tok.encode(text).size();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("llama3 encode: %zu bytes -> %zu tokens in %.2f ms (%.0f tokens/s)\n", text.size(),
              warm.size(), 1e3 * s / reps, double(n) / s);
  // Generous bound for shared CI machines and sanitizer builds; typical is ~1-3 ms.
  CHECK(s / reps < 0.25);
}

TEST_CASE("encode is safe to call from several threads", "[tokenizer][speed]") {
  const auto& tok = troupe::test::fixture_tokenizer("qwen3");
  const std::string text = ten_kb_text();
  const auto want = tok.encode(text);
  std::vector<std::vector<int32_t>> got(4);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < got.size(); ++i)
    threads.emplace_back([&, i] { got[i] = tok.encode(text); });
  for (auto& t : threads) t.join();
  for (const auto& g : got) CHECK(g == want);
}
