// vLLM's /tokenize, /detokenize and /version on a live `troupe serve`, checked against the
// model's tokenizer loaded by the test.
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include "client/http_client.h"
#include "model/tokenizer_loader.h"
#include "serve_process.h"
#include "test_util.h"

using namespace troupe;
namespace json = boost::json;

namespace {

std::vector<int32_t> ids_of(const json::value& v) {
  std::vector<int32_t> out;
  for (const auto& x : v.as_array()) out.push_back(int32_t(x.as_int64()));
  return out;
}

}  // namespace

TEST_CASE("/tokenize, /detokenize and /version speak vLLM's shapes", "[net][tokenize]") {
  const std::string model = test::model_path("tinystories-656k");
  auto tok = load_tokenizer(model);
  const std::string dir = test::temp_dir("tokenize-api");
  test::ServeProcess serve({"--model", model, "--api-key", "k"}, dir + "/serve.log");
  HttpClient c("127.0.0.1", serve.port(), 30);
  auto post = [&](const char* path, const std::string& body) {
    const auto r = c.request("POST", path, body);
    INFO(path << " " << body << " -> " << r.body);
    return std::make_pair(r.status, json::parse(r.body));
  };
  const std::string text = "Once upon a time [in] a café";

  auto [s1, with] = post("/tokenize", json::serialize(json::object{{"prompt", text}}));
  REQUIRE(s1 == 200);
  CHECK(ids_of(with.at("tokens")) == tok->encode(text, true));
  CHECK(with.at("count").as_int64() == int64_t(tok->encode(text, true).size()));
  CHECK(with.at("max_model_len").as_int64() > 0);
  CHECK(with.at("token_strs").is_null());

  auto [s2, without] = post("/tokenize", json::serialize(json::object{
                                             {"prompt", text}, {"add_special_tokens", false}, {"return_token_strs", true}}));
  REQUIRE(s2 == 200);
  const auto plain = tok->encode(text, false);
  CHECK(ids_of(without.at("tokens")) == plain);
  REQUIRE(without.at("token_strs").as_array().size() == plain.size());
  CHECK(without.at("token_strs").as_array()[1].as_string() == tok->token_bytes(plain[1]));

  // Messages go through the chat template (this model has none: the text, with BOS).
  auto [s3, chat] = post("/tokenize", R"({"messages": [{"role": "user", "content": "Hi there"}]})");
  REQUIRE(s3 == 200);
  CHECK(ids_of(chat.at("tokens")) == tok->encode("Hi there", true));

  auto [s4, back] = post("/detokenize", json::serialize(json::object{{"tokens", json::value_from(tok->encode(text, true))}}));
  REQUIRE(s4 == 200);
  CHECK(back.at("prompt").as_string() == tok->decode(tok->encode(text, true), false));
  CHECK(std::string(back.at("prompt").as_string()).rfind("<|start_story|>", 0) == 0);  // BOS kept
  auto [s5, skipped] = post("/detokenize", json::serialize(json::object{
                                               {"tokens", json::value_from(tok->encode(text, true))}, {"skip_special_tokens", true}}));
  REQUIRE(s5 == 200);
  CHECK(skipped.at("prompt").as_string() == tok->decode(tok->encode(text, true), true));

  // Bad input: 400 naming the field; the server keeps serving.
  CHECK(post("/tokenize", R"({"prompt": 5})").second.at("error").at("param") == "prompt");
  CHECK(post("/tokenize", R"({})").first == 400);
  CHECK(post("/tokenize", R"({"prompt": "a", "messages": []})").first == 400);
  CHECK(post("/detokenize", R"({"tokens": [999999]})").second.at("error").at("param") == "tokens");
  CHECK(post("/detokenize", R"({"tokens": "abc"})").first == 400);
  CHECK(post("/detokenize", "not json").first == 400);

  const auto v = c.request("GET", "/version");
  CHECK(v.status == 200);
  CHECK(!json::parse(v.body).at("version").as_string().empty());
  CHECK(c.request("GET", "/health").status == 200);
}
