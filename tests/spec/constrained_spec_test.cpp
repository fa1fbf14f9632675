// Structured output through the whole Engine on the real models: every constrained output
// is a sentence of its grammar (a finished one when the model stopped), greedy outputs are
// the same with speculation (n-gram and draft-model proposers: drafts the grammar forbids
// are rejected in verification) and in a batch as alone, and a seeded constrained request
// reproduces across preemption (its grammar state is rebuilt from the replayed tokens).
#include <catch2/catch.hpp>
#include <algorithm>
#include <filesystem>
#include <thread>

#include "actors/engine.h"
#include "actors/engine_harness.h"
#include "grammar/constraint.h"
#include "test_util.h"

using namespace troupe;
using troupe::test::Collector;

namespace {

// Whether the vocabulary has a token containing `c`: TinyStories-656K's has none for '{',
// '[' or ']' and no byte fallback, so it cannot write a JSON object or array, nor most
// non-ASCII text: the grammar then allows nothing but EOS, and the output ends early.
bool vocab_has(const Tokenizer& tok, char c) {
  for (int32_t i = 0; i < tok.vocab_size(); ++i)
    if (!tok.is_special(i) && tok.token_bytes(i).find(c) != std::string::npos) return true;
  return false;
}

// Every 4th schema of tests/grammar/schemas (those the vocabulary can write), and one of
// each other constraint kind.
std::vector<grammar::ConstraintSpec> constraints(const Tokenizer& tok) {
  const bool brackets = vocab_has(tok, '{') && vocab_has(tok, '[');
  std::vector<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(test::source_path("tests/grammar/schemas")))
    files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  std::vector<grammar::ConstraintSpec> out;
  for (size_t i = 0; i < files.size(); i += 4) {
    const std::string text = test::read_file(files[i]);
    const bool structured = text.find("\"object\"") != std::string::npos || text.find("\"array\"") != std::string::npos ||
                            text.find("\"const\": {") != std::string::npos;
    const bool ascii = std::all_of(text.begin(), text.end(), [](char ch) { return (ch & 0x80) == 0; });
    if (brackets || (!structured && ascii)) out.push_back({"json_schema", text});
  }
  if (brackets) out.push_back({"json_object", ""});
  out.push_back({"regex", "(yes|no), because [a-z ]{5,40}\\."});
  out.push_back({"choice", R"(["the dog", "the cat", "a bird"])"});
  out.push_back({"gbnf", "root ::= \"Tom \" verb \" \" [a-z]+ \".\"\nverb ::= \"ran\" | \"saw\" | \"had\""});
  return out;
}

GenerateRequest constrained(const std::vector<int32_t>& prompt, const grammar::ConstraintSpec& c) {
  GenerateRequest r;
  r.prompt_ids = prompt;
  r.params.temperature = 0;
  r.params.max_tokens = 300;
  r.params.constraint = c;
  return r;
}

std::vector<test::Outcome> run_all(const EngineConfig& cfg, const std::vector<GenerateRequest>& reqs, bool batched) {
  Engine engine(cfg);
  Collector col;
  std::vector<int64_t> ids;
  for (size_t i = 0; i < reqs.size(); ++i) {
    ids.push_back(engine.submit(reqs[i], col.sink()));
    if (!batched) col.wait_done(i + 1);
  }
  col.wait_done(reqs.size());
  std::vector<test::Outcome> out;
  for (auto id : ids) out.push_back(col.get(id));
  return out;
}

// The text is a prefix of a sentence of the grammar; a complete one when the model stopped.
void check_follows(const grammar::ConstraintSpec& c, const test::Outcome& o) {
  INFO("constraint " << c.kind << ": " << c.text.substr(0, 120) << "\noutput: " << o.text);
  grammar::Matcher m(grammar::compile(c));
  CHECK(m.accept(o.text));
  if (o.final_event.finish_reason == FinishReason::Stop) CHECK(m.can_end());
}

void check_model(const std::string& model, const std::string& draft_model) {
  EngineConfig plain;
  plain.model = model;
  plain.kv.block_size = 4;
  plain.scheduler.max_num_seqs = 16;
  std::vector<GenerateRequest> reqs;
  {
    Engine e(plain);
    const auto prompt = e.tokenizer().encode("Once upon a time, there was a little dog named Max.", true);
    for (const auto& c : constraints(e.tokenizer())) reqs.push_back(constrained(prompt, c));
  }
  const auto alone = run_all(plain, reqs, false);
  int stopped = 0;
  for (size_t i = 0; i < reqs.size(); ++i) {
    check_follows(reqs[i].params.constraint, alone[i]);
    stopped += alone[i].final_event.finish_reason == FinishReason::Stop;
  }
  // Most reach the end of their grammar; free-form text (strings without maxLength, the keys
  // of json_object) may run on to max_tokens.
  CHECK(stopped >= int(reqs.size()) - 3);

  SpeculativeConfig ngram;
  ngram.method = "ngram";
  ngram.ngram_min = 1;
  ngram.ngram_max = 3;
  ngram.num_speculative_tokens = 4;
  ngram.adaptive = false;
  SpeculativeConfig draft = ngram;
  draft.method = "draft";
  draft.model = draft_model;
  for (const auto& [name, spec] : {std::pair{"no speculation, batched", SpeculativeConfig{}},
                                   std::pair{"n-gram", ngram}, std::pair{"draft model", draft}}) {
    INFO(name);
    EngineConfig cfg = plain;
    cfg.speculative = spec;
    const auto got = run_all(cfg, reqs, true);
    for (size_t i = 0; i < reqs.size(); ++i) {
      INFO("request " << i);
      CHECK(got[i].ids == alone[i].ids);
      CHECK(got[i].final_event.finish_reason == alone[i].final_event.finish_reason);
    }
  }
}

}  // namespace

TEST_CASE("constrained greedy output follows the grammar, with speculation as without (TinyStories-656K)",
          "[spec][engine][grammar]") {
  check_model(test::model_path("tinystories-656k"), "self:int8");
}

TEST_CASE("constrained greedy output follows the grammar, with speculation as without (stories260K GGUF)",
          "[spec][engine][grammar]") {
  const auto model = test::model_path("stories260k/stories260K.gguf");
  check_model(model, model);
}

TEST_CASE("a seeded constrained request gives the same tokens when it is preempted", "[spec][engine][grammar]") {
  EngineConfig cfg;
  cfg.model = test::model_path("tinystories-656k");
  cfg.scheduler.max_num_seqs = 16;
  // Long enough (100+ words, ~140 steps) to still run when the neighbours fill the pool
  // (~50 steps in), however far it got before they arrived: with 40+ words it sometimes
  // finished first.
  const grammar::ConstraintSpec c{"regex", "([a-z]+,? ){100,120}[a-z]+\\."};
  std::vector<int32_t> prompt;
  test::Outcome alone;
  auto seeded = [&](const std::vector<int32_t>& p) {
    GenerateRequest r = constrained(p, c);
    r.params.temperature = 0.9f;
    r.params.seed = 77;
    r.priority = 1;  // the first one preempted when the pool runs short
    return r;
  };
  {
    Engine engine(cfg);
    prompt = engine.tokenizer().encode("Once upon a time, there was a little dog named Max.", true);
    Collector col;
    const int64_t id = engine.submit(seeded(prompt), col.sink());
    col.wait_done(1);
    alone = col.get(id);
  }
  check_follows(c, alone);
  // 60 blocks of 4 tokens (the seeded request alone fits) and eight greedy neighbours of
  // up to ~90 tokens: the seeded request, last in priority, is preempted and later recomputed.
  cfg.kv.block_size = 4;
  cfg.kv.kv_cache_bytes = 60 * 4 * 2048;
  Engine engine(cfg);
  Collector col;
  const int64_t id = engine.submit(seeded(prompt), col.sink());
  const char* neighbours[] = {"The dog ran to the park and", "Tom had a big red ball. One day",
                              "Lily saw a bird in the sky.",  "The sun was hot and the",
                              "Once there was a cat who",      "Ben and Sue went to the shop",
                              "A little fish swam in the",     "Mom gave Tim a cookie and"};
  for (const char* p : neighbours)
    engine.submit(test::greedy_request(engine.tokenizer().encode(p, true), 80), col.sink());
  col.wait_done(9);
  const auto o = col.get(id);
  INFO("preemptions: " << o.final_event.usage.preemptions << ", tokens " << o.ids.size());
  CHECK(o.final_event.usage.preemptions > 0);
  CHECK(o.ids == alone.ids);
}
