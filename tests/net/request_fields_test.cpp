// Request fields against a live `troupe serve`: logit_bias, min_tokens, max_tokens past the
// model length, and unknown fields (ignored, logged once per name, as vLLM does).
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include "client/http_client.h"
#include "model/tokenizer_loader.h"
#include "serve_process.h"
#include "test_util.h"

using namespace troupe;
namespace json = boost::json;

namespace {

size_t count_of(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

struct Completion {
  int status = 0;
  json::value body;
  std::vector<std::string> tokens;  // the generated tokens' texts (logprobs)
};

Completion complete(HttpClient& c, const std::string& fields) {
  const auto r = c.request("POST", "/v1/completions",
                           R"({"prompt": "Once upon a time", "temperature": 0, "logprobs": 0, )" + fields + "}");
  Completion out{r.status, json::parse(r.body), {}};
  if (r.status == 200)
    for (const auto& t : out.body.at("choices").at(0).at("logprobs").at("tokens").as_array())
      out.tokens.emplace_back(t.as_string());
  return out;
}

}  // namespace

TEST_CASE("logit_bias, min_tokens, strict max_tokens and unknown fields on a live server", "[net][fields]") {
  const std::string model = test::model_path("tinystories-656k");
  auto tok = load_tokenizer(model);
  const std::string dir = test::temp_dir("request-fields");
  test::ServeProcess serve({"--model", model}, dir + "/serve.log");
  HttpClient c("127.0.0.1", serve.port(), 60);

  const Completion plain = complete(c, R"("max_tokens": 4)");
  REQUIRE(plain.status == 200);
  REQUIRE(plain.tokens.size() == 4);
  int32_t first = -1;
  for (int32_t id = 0; id < tok->vocab_size() && first < 0; ++id)
    if (tok->token_bytes(id) == plain.tokens[0]) first = id;
  REQUIRE(first >= 0);

  SECTION("logit_bias: -100 bans a token, +100 forces one") {
    const Completion banned = complete(c, R"("max_tokens": 4, "logit_bias": {")" + std::to_string(first) + R"(": -100})");
    REQUIRE(banned.status == 200);
    CHECK(banned.tokens[0] != plain.tokens[0]);
    const int32_t forced = tok->token_id("cat▁").value_or(-1);
    REQUIRE(forced >= 0);
    const Completion f = complete(c, R"("max_tokens": 3, "logit_bias": {")" + std::to_string(forced) + R"(": 100})");
    REQUIRE(f.status == 200);
    CHECK(f.tokens == std::vector<std::string>(3, tok->token_bytes(forced)));
  }
  SECTION("min_tokens: a stop token cannot end the completion before it") {
    const std::string stop = R"("max_tokens": 6, "stop_token_ids": [)" + std::to_string(first) + "]";
    const Completion stopped = complete(c, stop);
    CHECK(stopped.body.at("usage").at("completion_tokens") == 0);
    CHECK(stopped.body.at("choices").at(0).at("finish_reason") == "stop");
    const Completion held = complete(c, stop + R"(, "min_tokens": 3)");
    REQUIRE(held.status == 200);
    CHECK(held.body.at("usage").at("completion_tokens").to_number<int64_t>() >= 3);
    for (size_t i = 0; i < 3 && i < held.tokens.size(); ++i) CHECK(held.tokens[i] != plain.tokens[0]);
  }
  SECTION("max_tokens past what the prompt leaves of the model length is a 400") {
    const int64_t max_len = json::parse(c.request("GET", "/v1/models").body).at("data").at(0).at("max_model_len").as_int64();
    const int64_t prompt = plain.body.at("usage").at("prompt_tokens").as_int64();
    const Completion over = complete(c, R"("max_tokens": )" + std::to_string(max_len - prompt + 1));
    CHECK(over.status == 400);
    CHECK(std::string(over.body.at("error").at("message").as_string()).find("maximum context length") !=
          std::string::npos);
    CHECK(complete(c, R"("max_tokens": )" + std::to_string(max_len)).status == 400);
    // Exactly what is left is fine (it stops early only at EOS).
    CHECK(complete(c, R"("max_tokens": )" + std::to_string(max_len - prompt)).status == 200);
  }
  SECTION("unknown fields are ignored, with one warning per field name") {
    CHECK(complete(c, R"("max_tokens": 2, "cache_prompt": true, "n_probs": 3)").status == 200);
    CHECK(complete(c, R"("max_tokens": 2, "cache_prompt": false)").status == 200);
    const auto chat = c.request("POST", "/v1/chat/completions",
                                R"({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2, "n_probs": 1})");
    CHECK(chat.status == 200);
    const std::string log = serve.log_text();
    INFO(log);
    CHECK(count_of(log, "unknown request field 'cache_prompt'") == 1);
    CHECK(count_of(log, "unknown request field 'n_probs'") == 1);
    // Fields the server knows but cannot honour still fail, naming the field.
    const auto special = c.request("POST", "/v1/chat/completions",
                                   R"({"messages": [{"role": "user", "content": "Hi"}], "skip_special_tokens": false})");
    CHECK(special.status == 400);
    CHECK(json::parse(special.body).at("error").at("param") == "skip_special_tokens");
  }
}
