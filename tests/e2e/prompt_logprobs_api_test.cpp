// The prompt's logprobs from a live `troupe serve` (small step budget: the prompt prefills
// in chunks): vLLM's prompt_logprobs on completions and chat, and completions' echo with
// logprobs, streamed and not - shapes, consistency, and values against a full-vocabulary
// log-softmax (float64) of the CPU backend's logits over the same prompt.
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
const std::string kPrompt = "Once upon a time, there was a little girl who liked to play in the park with her dog";

using test::reference_logprobs;

// The JSON bodies of a request: one for a plain response, every chunk's for a stream.
std::vector<json::value> call(HttpClient& c, const std::string& path, const std::string& body, bool stream) {
  std::vector<json::value> out;
  if (!stream) {
    const auto r = c.request("POST", path, body);
    INFO(r.body);
    REQUIRE(r.status == 200);
    out.push_back(json::parse(r.body));
    return out;
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
  for (const auto& e : events) out.push_back(json::parse(e));
  return out;
}

// vLLM's list against the prompt and the reference: null first, then the prompt token with
// its logprob and rank, and the top n with ranks 1..n.
void check_prompt_logprobs(const json::value& lps, const std::vector<int32_t>& prompt,
                           const std::vector<std::vector<double>>& ref, const Tokenizer& tok, size_t n) {
  const auto& a = lps.as_array();
  REQUIRE(a.size() == prompt.size());
  CHECK(a[0].is_null());
  for (size_t i = 1; i < a.size(); ++i) {
    INFO("prompt position " << i);
    const auto& d = a[i].as_object();
    const auto& row = ref[i - 1];
    const std::string key = std::to_string(prompt[i]);
    REQUIRE(d.contains(key));
    const auto& self = d.at(key).as_object();
    const double lp = self.at("logprob").to_number<double>();
    CHECK(lp <= 0.0);
    CHECK(std::abs(lp - row[size_t(prompt[i])]) < kTolerance);
    const int64_t rank = self.at("rank").as_int64();
    CHECK(rank >= 1);
    CHECK(self.at("decoded_token").as_string() == tok.token_bytes(prompt[i]));
    // The token itself plus n alternatives, one fewer when it is among them.
    CHECK(d.size() == (rank <= int64_t(n) ? n : n + 1));
    std::vector<int64_t> ranks;
    for (const auto& kv : d) {
      const double v = kv.value().at("logprob").to_number<double>();
      CHECK(std::abs(v - row[size_t(std::stoi(std::string(kv.key())))]) < kTolerance);
      if (kv.key() != key) ranks.push_back(kv.value().at("rank").as_int64());
    }
    for (int64_t r : ranks) CHECK((r >= 1 && r <= int64_t(n)));
  }
}

}  // namespace

TEST_CASE("prompt_logprobs and echo with logprobs over the API", "[e2e][prompt_logprobs]") {
  const std::string model = test::model_path("tinystories-656k");
  auto tok = load_tokenizer(model);
  const std::string dir = test::temp_dir("prompt_logprobs");
  test::ServeProcess serve({"--model", model, "--max-num-batched-tokens", "8"}, dir + "/serve.log");
  HttpClient c("127.0.0.1", serve.port(), 60);
  const std::vector<int32_t> prompt = tok->encode(kPrompt, true);
  REQUIRE(prompt.size() > 8);  // (several chunks of 8)
  const auto ref = reference_logprobs(model, prompt);
  const std::string ids_json = json::serialize(json::value_from(prompt));

  for (const bool stream : {false, true}) {
    const std::string s = stream ? "true" : "false";
    INFO("stream " << s);
    SECTION("completions prompt_logprobs 3, stream " + s) {
      const auto bodies = call(c, "/v1/completions",
                               R"({"prompt": )" + ids_json + R"(, "max_tokens": 3, "prompt_logprobs": 3, "stream": )" + s + "}",
                               stream);
      // Streamed: in the first chunk only.
      int carried = 0;
      for (size_t i = 0; i < bodies.size(); ++i) {
        for (const auto& ch : bodies[i].at("choices").as_array()) {
          if (!ch.as_object().contains("prompt_logprobs")) continue;
          carried++;
          CHECK(i == 0);
          check_prompt_logprobs(ch.at("prompt_logprobs"), prompt, ref, *tok, 3);
        }
      }
      CHECK(carried == 1);
    }
    SECTION("chat prompt_logprobs 2 (the response's, as vLLM), stream " + s) {
      const auto bodies = call(c, "/v1/chat/completions",
                               R"({"messages": [{"role": "user", "content": ")" + kPrompt +
                                   R"("}], "max_tokens": 3, "prompt_logprobs": 2, "stream": )" + s + "}",
                               stream);
      int carried = 0;
      for (size_t i = 0; i < bodies.size(); ++i) {
        if (!bodies[i].as_object().contains("prompt_logprobs")) continue;
        carried++;
        CHECK(i == 0);
        // No chat template: the prompt is the message text with BOS.
        check_prompt_logprobs(bodies[i].at("prompt_logprobs"), prompt, ref, *tok, 2);
      }
      CHECK(carried == 1);
    }
    SECTION("completions echo with logprobs 2, stream " + s) {
      const auto bodies = call(c, "/v1/completions",
                               R"({"prompt": ")" + kPrompt + R"(", "max_tokens": 5, "echo": true, "logprobs": 2,
                                   "temperature": 0, "stream": )" + s + "}",
                               stream);
      std::string text;
      std::vector<std::string> tokens;
      std::vector<json::value> token_lps, tops;
      std::vector<int64_t> offsets;
      for (size_t i = 0; i < bodies.size(); ++i) {
        const auto& ch = bodies[i].at("choices").at(0);
        text += ch.at("text").as_string();
        if (ch.at("logprobs").is_null()) continue;
        const auto& lp = ch.at("logprobs");
        if (i == 0 && stream) {  // the echoed prompt, with its logprobs
          CHECK(ch.at("text").as_string() == kPrompt);
          CHECK(lp.at("tokens").as_array().size() == prompt.size());
        }
        for (const auto& t : lp.at("tokens").as_array()) tokens.emplace_back(t.as_string());
        for (const auto& v : lp.at("token_logprobs").as_array()) token_lps.push_back(v);
        for (const auto& v : lp.at("top_logprobs").as_array()) tops.push_back(v);
        for (const auto& v : lp.at("text_offset").as_array()) offsets.push_back(v.as_int64());
      }
      REQUIRE(text.rfind(kPrompt, 0) == 0);
      REQUIRE(tokens.size() > prompt.size());
      REQUIRE(token_lps.size() == tokens.size());
      REQUIRE(tops.size() == tokens.size());
      REQUIRE(offsets.size() == tokens.size());
      // The prompt's tokens first: the first has no logprob (nor alternatives).
      CHECK(token_lps[0].is_null());
      CHECK(tops[0].is_null());
      for (size_t i = 1; i < prompt.size(); ++i) {
        INFO("prompt position " << i);
        CHECK(tokens[i] == tok->token_bytes(prompt[i]));
        const double lp = token_lps[i].to_number<double>();
        CHECK(std::abs(lp - ref[i - 1][size_t(prompt[i])]) < kTolerance);
        CHECK(tops[i].as_object().size() >= 2);
        CHECK(tops[i].as_object().at(tokens[i]).to_number<double>() == Approx(lp));
      }
      for (size_t i = prompt.size(); i < tokens.size(); ++i) CHECK(token_lps[i].to_number<double>() <= 0.0);
      // Offsets index the text: non-decreasing, within it, the generated ones from the end
      // of the echoed prompt on, each where its token's text is.
      CHECK(offsets[0] == 0);
      for (size_t i = 1; i < offsets.size(); ++i) CHECK(offsets[i] >= offsets[i - 1]);
      CHECK(offsets.back() <= int64_t(text.size()));
      CHECK(offsets[prompt.size()] == int64_t(kPrompt.size()));
      for (size_t i = prompt.size(); i < tokens.size(); ++i)
        CHECK(text.substr(size_t(offsets[i]), tokens[i].size()) == tokens[i]);
    }
  }
  SECTION("echo with prompt_logprobs, streamed: both in the first chunk (the echo)") {
    const auto bodies = call(c, "/v1/completions",
                             R"({"prompt": )" + ids_json + R"(, "max_tokens": 2, "echo": true, "prompt_logprobs": 1,
                                 "stream": true})",
                             true);
    const auto& first = bodies.at(0).at("choices").at(0);
    CHECK(first.at("text").as_string() == tok->decode(prompt, false));
    check_prompt_logprobs(first.at("prompt_logprobs"), prompt, ref, *tok, 1);
    for (size_t i = 1; i < bodies.size(); ++i) CHECK(!bodies[i].at("choices").at(0).as_object().contains("prompt_logprobs"));
  }
  SECTION("bad values are 400s naming the field") {
    for (const char* v : {"21", "-1", "\"3\""}) {
      const auto e = c.request("POST", "/v1/completions", std::string(R"({"prompt": "Hi", "prompt_logprobs": )") + v + "}");
      CHECK(e.status == 400);
      CHECK(json::parse(e.body).at("error").at("param").as_string() == "prompt_logprobs");
    }
  }
}
