// Fixture loading. Boost.JSON is compiled into this one file (src.hpp) so the test does
// not depend on how the library targets link it.
#include "fixtures.h"

#include <boost/json/src.hpp>
#include <catch2/catch.hpp>
#include <map>
#include <memory>
#include <mutex>

#include "test_util.h"

namespace troupe::test {

namespace {

const boost::json::object& fixture_root() {
  static const boost::json::value root = [] {
    return boost::json::parse(read_file(fixture_path("tokenizer_reference.json")));
  }();
  return root.get_object();
}

std::vector<TokCase> cases_of(const boost::json::object& root, const std::string& file,
                              const std::string& key) {
  if (!root.contains(key)) FAIL(file << " has no key " << key);
  std::vector<TokCase> cases;
  for (const auto& c : root.at(key).as_array()) {
    TokCase tc;
    tc.text = std::string(c.at("text").as_string());
    for (const auto& id : c.at("ids").as_array()) tc.ids.push_back(int32_t(id.as_int64()));
    cases.push_back(std::move(tc));
  }
  REQUIRE(!cases.empty());
  return cases;
}

}  // namespace

std::vector<TokCase> tokenizer_cases(const std::string& key) {
  return cases_of(fixture_root(), "tokenizer_reference.json", key);
}

std::vector<TokCase> tokenizer_cases_in(const std::string& json_path, const std::string& key) {
  return cases_of(boost::json::parse(read_file(json_path)).as_object(), json_path, key);
}

std::string llama3_chat_text() {
  return std::string(fixture_root().at("llama3_chat").at("text").as_string());
}

std::string fixture_tokenizer_path(const std::string& key) {
  if (key == "llama3") return tokenizer_path("llama3/tokenizer.json");
  if (key == "qwen3") return tokenizer_path("qwen3/tokenizer.json");
  if (key == "llama2_spm") return model_path("llama2-tokenizer/tokenizer.model");
  if (key == "stories260k_spm") return model_path("stories260k/tok512.model");
  if (key == "tinystories656k") return model_path("tinystories-656k/tokenizer.json");
  FAIL("unknown fixture key " << key);
  return {};
}

const Tokenizer& fixture_tokenizer(const std::string& key) {
  static std::mutex mu;
  static std::map<std::string, std::unique_ptr<Tokenizer>> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto& t = cache[key];
  if (!t) {
    const std::string path = fixture_tokenizer_path(key);
    t = path.ends_with(".json") ? load_tokenizer_json(path) : load_sentencepiece_model(path);
  }
  return *t;
}

}  // namespace troupe::test
