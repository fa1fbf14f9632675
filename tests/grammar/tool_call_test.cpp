// Forced tool calls (tool_choice "required" / a named function): every output sampled under
// the grammar, whatever tokens the sampler picks, parses with the matching tool-call parser
// and its arguments validate against the function's parameter schema. Sampled over real
// vocabularies: Qwen3's (where <tool_call> is one added token) and Llama-3's.
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <random>
#include <set>

#include "chat/tool_parser.h"
#include "core/error.h"
#include "grammar/constraint.h"
#include "grammar/gbnf.h"
#include "grammar/tool_call.h"
#include "model/tokenizer_loader.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

using namespace troupe;
using namespace troupe::grammar;
namespace json = boost::json;

namespace {

const char* kWeather = R"({"type":"object","properties":{
  "city":{"type":"string","maxLength":12},
  "unit":{"enum":["celsius","fahrenheit"]},
  "days":{"type":"integer","minimum":1,"maximum":7}},
  "required":["city","unit"],"additionalProperties":false})";
const char* kSearch = R"({"type":"object","properties":{
  "query":{"type":"string","minLength":1,"maxLength":10},
  "tags":{"type":"array","items":{"$ref":"#/$defs/tag"},"maxItems":3},
  "exact":{"type":"boolean"}},"required":["query"],"$defs":{"tag":{"enum":["news","web"]}}})";

// Enough of JSON Schema for the two schemas above.
bool valid(const json::value& v, const json::value& s, const json::object& defs) {
  const json::object& o = s.as_object();
  if (const auto* r = o.if_contains("$ref")) {
    const std::string name(r->as_string().subview().substr(std::string("#/$defs/").size()));
    return valid(v, defs.at(name), defs);
  }
  if (const auto* e = o.if_contains("enum")) {
    for (const auto& x : e->as_array())
      if (x == v) return true;
    return false;
  }
  const std::string type(o.at("type").as_string());
  if (type == "string") {
    if (!v.is_string()) return false;
    const int64_t n = int64_t(v.as_string().size());  // ASCII bound is enough here: bytes >= chars
    if (const auto* mn = o.if_contains("minLength"); mn && n < mn->as_int64()) return false;
    (void)n;
    return true;
  }
  if (type == "integer") {
    if (!v.is_int64()) return false;
    if (const auto* mn = o.if_contains("minimum"); mn && v.as_int64() < mn->as_int64()) return false;
    if (const auto* mx = o.if_contains("maximum"); mx && v.as_int64() > mx->as_int64()) return false;
    return true;
  }
  if (type == "boolean") return v.is_bool();
  if (type == "array") {
    if (!v.is_array()) return false;
    if (const auto* mx = o.if_contains("maxItems"); mx && int64_t(v.as_array().size()) > mx->as_int64()) return false;
    for (const auto& x : v.as_array())
      if (!valid(x, o.at("items"), defs)) return false;
    return true;
  }
  if (type == "object") {
    if (!v.is_object()) return false;
    const json::object& props = o.at("properties").as_object();
    for (const auto& r : o.at("required").as_array())
      if (!v.as_object().contains(r.as_string())) return false;
    for (const auto& kv : v.as_object()) {
      const auto* ps = props.if_contains(kv.key());
      if (!ps || !valid(kv.value(), *ps, defs)) return false;
    }
    return true;
  }
  return false;
}

// Samples one output under `spec` over `tok`'s vocabulary: a random allowed token each step
// (EOS three times in four where allowed), as a sampler with random logits would.
std::string sample(const ConstraintSpec& spec, const Tokenizer& tok, const std::shared_ptr<const TokenTable>& table,
                   std::mt19937& rng) {
  auto mk = masker(spec, table);
  Matcher m(compile(spec));
  TokenBitmask mask;
  std::string out;
  const std::set<int32_t> eos(table->eos_ids().begin(), table->eos_ids().end());
  for (int step = 0; step < 400; ++step) {
    mk->fill(m, mask);
    std::vector<int32_t> allowed, ends;
    for (int32_t id = 0; id < table->vocab_size(); ++id)
      if (mask.test(id)) (eos.count(id) ? ends : allowed).push_back(id);
    if (!ends.empty() && (allowed.empty() || rng() % 4 != 0)) {
      REQUIRE(m.can_end());
      return out;
    }
    REQUIRE(!allowed.empty());
    const int32_t id = allowed[rng() % allowed.size()];
    const std::string b = tok.token_bytes(id);
    REQUIRE(m.accept(b));
    out += b;
  }
  FAIL("no end after 400 tokens: " << out);
  return out;
}

}  // namespace

TEST_CASE("tool call grammars: every sampled call parses and validates (hermes, Qwen3 vocabulary)",
          "[grammar][tools]") {
  auto tok = load_tokenizer_json(test::tokenizer_path("qwen3/tokenizer.json"));
  auto table = TokenTable::from_tokenizer(*tok);
  // <tool_call> is one added (not special) token in Qwen3's vocabulary: the grammar's
  // literal must accept it as well as its spelling in pieces.
  const auto ids = tok->encode("<tool_call>", false);
  REQUIRE(ids.size() == 1);
  CHECK_FALSE(tok->is_special(ids[0]));
  const std::vector<ToolFunction> fns = {{"get_weather", kWeather}, {"search", kSearch}};
  const std::map<std::string, json::value> schemas = {{"get_weather", json::parse(kWeather)},
                                                      {"search", json::parse(kSearch)}};
  std::mt19937 rng(7);
  for (bool parallel : {false, true}) {
    const ConstraintSpec spec{"gbnf", tool_call_gbnf(ToolCallFormat::Hermes, fns, parallel)};
    auto mk = masker(spec, table);
    Matcher start(compile(spec));
    TokenBitmask mask;
    mk->fill(start, mask);
    CHECK(mask.test(ids[0]));
    CHECK(mask.test(tok->encode("<", false)[0]));
    std::set<std::string> names;
    int multi = 0;
    for (int i = 0; i < 40; ++i) {
      const std::string out = sample(spec, *tok, table, rng);
      INFO(out);
      const auto r = parse_tool_calls(ToolParserKind::Hermes, out);
      REQUIRE(!r.calls.empty());
      CHECK(!r.content);
      if (!parallel) CHECK(r.calls.size() == 1);
      multi += r.calls.size() > 1;
      for (const auto& c : r.calls) {
        names.insert(c.name);
        const json::value& s = schemas.at(c.name);
        const json::object defs = s.as_object().contains("$defs") ? s.at("$defs").as_object() : json::object{};
        CHECK(valid(json::parse(c.arguments), s, defs));
      }
    }
    CHECK(names.size() == 2);
    if (parallel) CHECK(multi > 0);
  }
}

TEST_CASE("tool call grammars: llama3_json over the Llama-3 vocabulary, a named function", "[grammar][tools]") {
  auto tok = load_tokenizer_json(test::tokenizer_path("llama3/tokenizer.json"));
  auto table = TokenTable::from_tokenizer(*tok);
  const ConstraintSpec spec{"gbnf", tool_call_gbnf(ToolCallFormat::Llama3Json, {{"search", kSearch}}, false)};
  const json::value s = json::parse(kSearch);
  std::mt19937 rng(3);
  for (int i = 0; i < 40; ++i) {
    const std::string out = sample(spec, *tok, table, rng);
    INFO(out);
    const auto r = parse_tool_calls(ToolParserKind::Llama3Json, out);
    REQUIRE(r.calls.size() == 1);
    CHECK(r.calls[0].name == "search");
    CHECK(valid(json::parse(r.calls[0].arguments), s, s.at("$defs").as_object()));
  }
}

TEST_CASE("tool call grammars: errors name the function; no parameters means any object", "[grammar][tools]") {
  try {
    tool_call_gbnf(ToolCallFormat::Hermes, {{"ok", kWeather}, {"bad", R"({"type":"object","patternProperties":{}})"}},
                   false);
    FAIL("expected an error");
  } catch (const Error& e) {
    CHECK_THAT(e.what(), Catch::Contains("function 'bad'") && Catch::Contains("patternProperties"));
  }
  CHECK_THROWS_WITH(tool_call_gbnf(ToolCallFormat::Hermes,
                                   {{"a", R"({"$defs":{"t":{"type":"string"}},"$ref":"#/$defs/t"})"},
                                    {"b", R"({"$defs":{"t":{"type":"integer"}},"$ref":"#/$defs/t"})"}},
                                   false),
                    Catch::Contains("'t'"));
  Matcher m(std::make_shared<const Grammar>(
      parse_gbnf(tool_call_gbnf(ToolCallFormat::Hermes, {{"noargs", ""}}, false))));
  CHECK(m.accept("<tool_call>\n{\"name\": \"noargs\", \"arguments\": {\"anything\": [1, {\"x\": null}]}}\n</tool_call>"));
  CHECK(m.can_end());
  Matcher wrong(std::make_shared<const Grammar>(
      parse_gbnf(tool_call_gbnf(ToolCallFormat::Hermes, {{"noargs", ""}}, false))));
  CHECK_FALSE(wrong.accept("<tool_call>\n{\"name\": \"other\""));
}
