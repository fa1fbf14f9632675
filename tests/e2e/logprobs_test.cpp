// logprobs from a live `troupe serve`, chat and completions, streamed and not, against a
// full-vocabulary log-softmax (float64) of the model's logits, which the test computes
// itself by running the CPU backend over the prompt and the tokens the server returned.
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>

#include "client/http_client.h"
#include "cpu/cpu_backend.h"
#include "model/tokenizer_loader.h"
#include "model/weights.h"
#include "serve_process.h"
#include "reference_logprobs.h"
#include "test_util.h"

using namespace troupe;
namespace json = boost::json;

namespace {

constexpr double kTolerance = 1e-4;

using test::reference_logprobs;

struct Got {
  std::vector<int32_t> tokens;               // the generated ids, read back from the token texts
  std::vector<double> logprobs;              // the chosen tokens'
  std::vector<std::vector<std::pair<std::string, double>>> top;  // (token text, logprob)
};

// The vocabulary id of a token as logprobs spell it (tokens are unique per text here).
int32_t id_of(const Tokenizer& tok, const std::string& text) {
  for (int32_t id = 0; id < tok.vocab_size(); ++id)
    if (tok.token_bytes(id) == text) return id;
  FAIL("no token spells '" << text << "'");
  return -1;
}

void add_chat(const json::value& lp, const Tokenizer& tok, Got& g) {
  for (const auto& e : lp.at("content").as_array()) {
    const std::string text(e.at("token").as_string());
    g.tokens.push_back(id_of(tok, text));
    g.logprobs.push_back(e.at("logprob").to_number<double>());
    std::string bytes;
    for (const auto& b : e.at("bytes").as_array()) bytes += char(b.as_int64());
    CHECK(bytes == text);
    auto& top = g.top.emplace_back();
    for (const auto& t : e.at("top_logprobs").as_array())
      top.emplace_back(std::string(t.at("token").as_string()), t.at("logprob").to_number<double>());
  }
}

void add_completion(const json::value& lp, const Tokenizer& tok, Got& g) {
  const auto& tokens = lp.at("tokens").as_array();
  for (size_t i = 0; i < tokens.size(); ++i) {
    const std::string text(tokens[i].as_string());
    g.tokens.push_back(id_of(tok, text));
    g.logprobs.push_back(lp.at("token_logprobs").as_array()[i].to_number<double>());
    auto& top = g.top.emplace_back();
    // The top N in order, then the chosen token when it is not among them.
    for (const auto& kv : lp.at("top_logprobs").as_array()[i].as_object())
      top.emplace_back(std::string(kv.key()), kv.value().to_number<double>());
  }
}

Got collect(HttpClient& c, const std::string& path, const std::string& body, bool stream, bool chat,
            const Tokenizer& tok) {
  Got g;
  auto add = [&](const json::value& lp) { chat ? add_chat(lp, tok, g) : add_completion(lp, tok, g); };
  if (!stream) {
    const auto r = c.request("POST", path, body);
    INFO(r.body);
    REQUIRE(r.status == 200);
    add(json::parse(r.body).at("choices").at(0).at("logprobs"));
    return g;
  }
  SseParser sse;
  std::vector<std::string> events;
  const auto r = c.request("POST", path, body, {}, [&](std::string_view bytes) {
    sse.feed(bytes, [&](const std::string& data) { events.push_back(data); });
    return true;
  });
  REQUIRE(r.status == 200);
  REQUIRE(!events.empty());
  CHECK(events.back() == "[DONE]");
  events.pop_back();
  for (const auto& data : events) {
    const json::value chunk = json::parse(data);
    const auto& choice = chunk.at("choices").at(0);
    if (!choice.at("logprobs").is_null()) add(choice.at("logprobs"));
  }
  return g;
}

// Every chosen and top logprob equals the reference at its position; the top lists are
// the reference's most likely tokens in order.
void check_against_model(const std::string& model, const Tokenizer& tok, const std::vector<int32_t>& prompt,
                         const Got& g, size_t top_n) {
  REQUIRE(!g.tokens.empty());
  std::vector<int32_t> ids = prompt;
  ids.insert(ids.end(), g.tokens.begin(), g.tokens.end());
  const auto ref = reference_logprobs(model, ids);
  for (size_t i = 0; i < g.tokens.size(); ++i) {
    const auto& row = ref[prompt.size() - 1 + i];
    INFO("generated token " << i);
    CHECK(std::abs(g.logprobs[i] - row[size_t(g.tokens[i])]) < kTolerance);
    std::vector<int32_t> order(row.size());
    for (size_t v = 0; v < row.size(); ++v) order[v] = int32_t(v);
    std::partial_sort(order.begin(), order.begin() + ptrdiff_t(top_n), order.end(),
                      [&](int32_t a, int32_t b) { return row[size_t(a)] > row[size_t(b)]; });
    REQUIRE(g.top[i].size() >= top_n);
    for (size_t k = 0; k < top_n; ++k) {
      CHECK(g.top[i][k].first == tok.token_bytes(order[k]));
      CHECK(std::abs(g.top[i][k].second - row[size_t(order[k])]) < kTolerance);
    }
  }
}

}  // namespace

TEST_CASE("logprobs match a full-vocabulary log-softmax of the model's logits", "[e2e][logprobs]") {
  const std::string model = test::model_path("tinystories-656k");
  auto tok = load_tokenizer(model);
  const std::string dir = test::temp_dir("logprobs");
  // Speculation on: requests that want logprobs must still get one per token.
  test::ServeProcess serve({"--model", model, "--speculative-method", "ngram", "--num-speculative-tokens", "3"},
                           dir + "/serve.log");
  HttpClient c("127.0.0.1", serve.port(), 60);
  const std::vector<int32_t> prompt = tok->encode("Once upon a time, there was a little", true);
  std::string ids_json = json::serialize(json::value_from(prompt));

  for (const bool stream : {false, true}) {
    INFO("stream " << stream);
    const std::string s = stream ? "true" : "false";
    SECTION(std::string("completions, logprobs 3, stream ") + s) {
      const Got g = collect(c, "/v1/completions",
                            R"({"prompt": )" + ids_json + R"(, "max_tokens": 12, "logprobs": 3, "temperature": 0.8,
                                "seed": 7, "stream": )" + s + "}",
                            stream, false, *tok);
      CHECK(g.tokens.size() == 12);
      check_against_model(model, *tok, prompt, g, 3);
    }
    SECTION(std::string("chat, top_logprobs 4, stream ") + s) {
      // The model has no chat template: the prompt is the message text with BOS.
      const Got g = collect(c, "/v1/chat/completions",
                            R"({"messages": [{"role": "user", "content": "Once upon a time, there was a little"}],
                                "max_tokens": 12, "logprobs": true, "top_logprobs": 4, "stream": )" + s + "}",
                            stream, true, *tok);
      check_against_model(model, *tok, prompt, g, 4);
    }
  }
  SECTION("chat logprobs without top_logprobs: empty top lists") {
    const auto r = c.request("POST", "/v1/chat/completions",
                             R"({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3, "logprobs": true})");
    REQUIRE(r.status == 200);
    const json::value body = json::parse(r.body);
    for (const auto& e : body.at("choices").at(0).at("logprobs").at("content").as_array())
      CHECK(e.at("top_logprobs").as_array().empty());
  }
  SECTION("no logprobs unless asked; bad values are 400s naming the field") {
    const auto r = c.request("POST", "/v1/completions", R"({"prompt": "Hi", "max_tokens": 2})");
    CHECK(json::parse(r.body).at("choices").at(0).at("logprobs").is_null());
    auto param = [&](const char* path, const char* body) {
      const auto e = c.request("POST", path, body);
      CHECK(e.status == 400);
      return std::string(json::parse(e.body).at("error").at("param").as_string());
    };
    CHECK(param("/v1/completions", R"({"prompt": "Hi", "logprobs": 21})") == "logprobs");
    CHECK(param("/v1/chat/completions", R"({"messages": [{"role": "user", "content": "Hi"}], "top_logprobs": 2})") ==
          "top_logprobs");
    CHECK(param("/v1/chat/completions",
                R"({"messages": [{"role": "user", "content": "Hi"}], "logprobs": true, "top_logprobs": -1})") ==
          "top_logprobs");
  }
}

TEST_CASE("completions echo the prompt, streamed and not", "[e2e][echo]") {
  const std::string model = test::model_path("tinystories-656k");
  const std::string dir = test::temp_dir("echo");
  test::ServeProcess serve({"--model", model}, dir + "/serve.log");
  HttpClient c("127.0.0.1", serve.port(), 60);
  const std::string body = R"({"prompt": "Once upon a time", "max_tokens": 5, "temperature": 0})";
  const auto plain = json::parse(c.request("POST", "/v1/completions", body).body);
  const std::string generated(plain.at("choices").at(0).at("text").as_string());
  const auto echoed = c.request("POST", "/v1/completions", body.substr(0, body.size() - 1) + R"(, "echo": true})");
  REQUIRE(echoed.status == 200);
  CHECK(json::parse(echoed.body).at("choices").at(0).at("text").as_string() == "Once upon a time" + generated);
  std::string streamed;
  SseParser sse;
  c.request("POST", "/v1/completions", body.substr(0, body.size() - 1) + R"(, "echo": true, "stream": true})", {},
            [&](std::string_view bytes) {
              sse.feed(bytes, [&](const std::string& data) {
                if (data != "[DONE]") streamed += std::string(json::parse(data).at("choices").at(0).at("text").as_string());
              });
              return true;
            });
  CHECK(streamed == "Once upon a time" + generated);
}
