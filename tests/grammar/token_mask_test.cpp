// Allowed-token masks: the cached trie walk must give exactly what checking every token
// one by one against the full matcher gives, for synthetic and real vocabularies.
#include <catch2/catch.hpp>
#include <chrono>
#include <random>
#include <thread>

#include "grammar/constraint.h"
#include "model/tokenizer_loader.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

using namespace troupe;
using namespace troupe::grammar;

namespace {

// The reference: token by token, the whole matcher.
TokenBitmask brute_force(const Matcher& m, const std::vector<std::string>& bytes, const std::vector<bool>& special,
                         const std::vector<int32_t>& eos) {
  TokenBitmask mask(int32_t(bytes.size()));
  for (size_t i = 0; i < bytes.size(); ++i)
    if (!special[i] && !bytes[i].empty() && m.can_accept(bytes[i])) mask.set(int32_t(i));
  if (m.can_end() || mask.count() == 0)
    for (int32_t e : eos) mask.set(e);
  return mask;
}

// Walks `text` byte by byte through the grammar and compares masks at every step.
void check_masks_along(const ConstraintSpec& spec, const std::vector<std::string>& bytes,
                       const std::vector<bool>& special, const std::vector<int32_t>& eos, const std::string& text,
                       size_t stride = 1, bool precomputed = false, std::shared_ptr<const TokenMasker> given = nullptr) {
  auto table = std::make_shared<const TokenTable>(bytes, special, eos);
  auto mk = given ? given : masker(spec, table);
  if (precomputed) {  // a masker of its own, its cache filled before the first mask
    auto own = std::make_shared<TokenMasker>(compile(spec), table);
    own->precompute();
    CHECK(own->cached_positions() > 0);
    mk = own;
  }
  Matcher m(compile(spec));
  TokenBitmask got;
  for (size_t i = 0; i <= text.size(); ++i) {
    if (i % stride == 0 || i == text.size()) {
      mk->fill(m, got);
      const TokenBitmask want = brute_force(m, bytes, special, eos);
      for (int32_t id = 0; id < int32_t(bytes.size()); ++id) {
        if (got.test(id) != want.test(id)) {
          FAIL_CHECK("after '" << text.substr(0, i) << "' token " << id << " '" << bytes[size_t(id)]
                               << "': mask says " << got.test(id) << ", the matcher " << want.test(id));
          return;
        }
      }
    }
    if (i < text.size()) REQUIRE(m.accept(text.substr(i, 1)));
  }
}

}  // namespace

TEST_CASE("token masks equal a token-by-token check (synthetic vocabulary)", "[grammar][mask]") {
  std::vector<std::string> bytes = {"", "{", "}", "\"", "\",", "\":", "a", "ab", "abc", "\"a", "1", "12", "0",
                                    ",", ":", " ", "{\"", "\"}", "true", "tr", "ue", "null", "x\"", "[", "]", "-",
                                    "é", "\xC3", "\xA9", "}}", "\"}}"};
  std::vector<bool> special(bytes.size(), false);
  special[0] = true;  // the end-of-sequence token: no bytes
  const std::string schema = R"({"type":"object","properties":{"a":{"type":"string"},
    "b":{"type":"object","properties":{"ab":{"type":"array","items":{"type":"integer"}}}},
    "c":{"enum":[true,null]}},"required":["a"]})";
  check_masks_along({"json_schema", schema}, bytes, special, {0},
                    R"({"a": "é\"x", "b": {"ab": [1, -12, 0]}, "c": true})");
  check_masks_along({"regex", "(ab|a\"c)+x?"}, bytes, special, {0}, "aba\"cabx");
}

TEST_CASE("token masks equal a token-by-token check (real tokenizers)", "[grammar][mask]") {
  struct Case {
    std::string name;
    std::unique_ptr<Tokenizer> tok;
  };
  std::vector<Case> cases;
  cases.push_back({"llama3", load_tokenizer_json(test::tokenizer_path("llama3/tokenizer.json"))});
  cases.push_back({"stories260k", load_tokenizer(test::model_path("stories260k/stories260K.gguf"))});
  const std::string schema = R"({"type":"object","properties":{"name":{"type":"string","maxLength":20},
    "tags":{"type":"array","items":{"enum":["x","yy"]},"maxItems":3},"n":{"type":"integer"}},
    "required":["name","n"]})";
  const std::string doc = R"({"name": "Bob \"B\" Ünal", "tags": ["yy", "x"], "n": -42})";
  for (auto& c : cases) {
    INFO(c.name);
    const int32_t n = c.tok->vocab_size();
    std::vector<std::string> bytes(static_cast<size_t>(n));
    std::vector<bool> special(static_cast<size_t>(n));
    for (int32_t i = 0; i < n; ++i) {
      special[size_t(i)] = c.tok->is_special(i);
      if (!special[size_t(i)]) bytes[size_t(i)] = c.tok->token_bytes(i);
    }
    // Every 7th byte: the brute-force check is slow on a 128k vocabulary.
    check_masks_along({"json_schema", schema}, bytes, special, c.tok->eos_ids(), doc, c.name == "llama3" ? 7 : 1);
  }
}

TEST_CASE("EOS only where the grammar may end", "[grammar][mask]") {
  std::vector<std::string> bytes = {"", "a", "b"};
  auto table = std::make_shared<const TokenTable>(bytes, std::vector<bool>{true, false, false}, std::vector<int32_t>{0});
  auto mk = masker({"regex", "ab?"}, table);
  Matcher m(compile({"regex", "ab?"}));
  TokenBitmask mask;
  mk->fill(m, mask);
  CHECK_FALSE(mask.test(0));
  CHECK(mask.test(1));
  m.accept("a");
  mk->fill(m, mask);
  CHECK(mask.test(0));
  CHECK(mask.test(2));
  m.accept("b");
  mk->fill(m, mask);
  CHECK(mask.test(0));  // finished: only EOS
  CHECK(mask.count() == 1);
}

TEST_CASE("precomputed mask caches equal a token-by-token check (recursive $ref, anyOf, patterns)", "[grammar][mask]") {
  struct Doc {
    std::string schema, text;
  };
  const std::vector<Doc> docs = {
      {R"({"$defs":{"node":{"type":"object","properties":{"name":{"type":"string","maxLength":8},
         "children":{"type":"array","items":{"$ref":"#/$defs/node"},"maxItems":3}},"required":["name"]}},
         "$ref":"#/$defs/node"})",
       R"({"name": "a\"b", "children": [{"name": "bb", "children": []}, {"name": "c"}]})"},
      {R"({"type":"object","properties":{"id":{"type":"string","pattern":"^[A-Z]{2}-[0-9]{3}$"},
         "qty":{"type":"integer","minimum":1,"maximum":12},"kind":{"enum":["a","bc",null]},
         "ship":{"anyOf":[{"type":"null"},{"type":"object","properties":{"zip":{"type":"string"}}}]}},
         "required":["id","qty"],"additionalProperties":false})",
       R"({"id": "AB-123", "qty": 11, "kind": null, "ship": {"zip": "x y"}})"},
      {"", R"({"a": [1, -2.5e3, {"b": null, "c": [true, "s"]}], "d": "\u00e9"})"},
  };
  std::vector<std::unique_ptr<Tokenizer>> toks;
  toks.push_back(load_tokenizer(test::model_path("stories260k/stories260K.gguf")));
  toks.push_back(load_tokenizer_json(test::tokenizer_path("llama3/tokenizer.json")));
  for (const auto& tok : toks) {
    const int32_t n = tok->vocab_size();
    INFO("vocabulary " << n);
    std::vector<std::string> bytes(static_cast<size_t>(n));
    std::vector<bool> special(static_cast<size_t>(n));
    for (int32_t i = 0; i < n; ++i) {
      special[size_t(i)] = tok->is_special(i);
      if (!special[size_t(i)]) bytes[size_t(i)] = tok->token_bytes(i);
    }
    for (const Doc& d : docs) {
      INFO(d.text);
      const ConstraintSpec spec = d.schema.empty() ? ConstraintSpec{"json_object", ""} : ConstraintSpec{"json_schema", d.schema};
      check_masks_along(spec, bytes, special, tok->eos_ids(), d.text, n > 10000 ? 11 : 1, true);
    }
  }
}

TEST_CASE("one token table per vocabulary: engines share maskers", "[grammar][mask]") {
  auto a = load_tokenizer(test::model_path("stories260k/stories260K.gguf"));
  auto b = load_tokenizer(test::model_path("stories260k/stories260K.gguf"));
  auto ta = TokenTable::from_tokenizer(*a), tb = TokenTable::from_tokenizer(*b);
  CHECK(ta == tb);
  CHECK(masker({"regex", "[a-z]+"}, ta) == masker({"regex", "[a-z]+"}, tb));
}

TEST_CASE("a background precompute does not hold up masker(), and masks beside it stay exact", "[grammar][mask]") {
  auto tok = load_tokenizer(test::model_path("stories260k/stories260K.gguf"));
  const int32_t n = tok->vocab_size();
  std::vector<std::string> bytes(static_cast<size_t>(n));
  std::vector<bool> special(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i) {
    special[size_t(i)] = tok->is_special(i);
    if (!special[size_t(i)]) bytes[size_t(i)] = tok->token_bytes(i);
  }
  // A schema no other test uses, so masker() creates (and precomputes) a new masker here.
  const ConstraintSpec spec{"json_schema", R"({"type":"object","properties":{"bg":{"type":"string","maxLength":12},
    "k":{"enum":["x","yz"]}},"required":["bg"]})"};
  set_background_precompute(true);
  auto table = std::make_shared<const TokenTable>(bytes, special, tok->eos_ids());
  auto mk = masker(spec, table);
  set_background_precompute(false);
  // Lazily filled masks while the precompute may still run, then again once it is done.
  const std::string doc = R"({"bg": "a b\"c", "k": "yz"})";
  check_masks_along(spec, bytes, special, tok->eos_ids(), doc, 1, false, mk);
  for (int i = 0; i < 600 && (!mk->precomputed() || background_precomputes_running() > 0); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  REQUIRE(mk->precomputed());
  CHECK(mk->precompute_ms() > 0);
  check_masks_along(spec, bytes, special, tok->eos_ids(), doc, 1, false, mk);
  // A second request with the same constraint gets the same, already warm masker.
  CHECK(masker(spec, table) == mk);
}
