// Request parsing, response shapes and the metrics exposition, without
// sockets (the server tests cover the same paths end to end).
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <fstream>

#include "chat/chat_template.h"
#include "client/http_client.h"
#include "model/tokenizer_loader.h"
#include "net/api.h"
#include "net/metrics.h"
#include "test_util.h"
#include "tokenizer/unicode.h"

using namespace troupe;

namespace {

struct Model {
  std::unique_ptr<Tokenizer> tok;
  ChatTemplate chat;
  ModelInfo info;
  Model() {
    const std::string dir = test::model_path("tinystories-656k");
    tok = load_tokenizer(dir);
    chat = ChatTemplate::load(dir, "", *tok);
    info = ModelInfo{"tiny", 512, tok->vocab_size(), tok.get(), &chat};
  }
};

const Model& model() {
  static Model m;
  return m;
}

ApiError parse_error(Endpoint ep, const std::string& body) {
  try {
    parse_openai_request(ep, body, model().info);
  } catch (const ApiError& e) {
    return e;
  }
  FAIL("expected a 400 for " << body);
  return ApiError(0, "");
}

}  // namespace

TEST_CASE("completion requests map onto engine requests") {
  auto r = parse_openai_request(Endpoint::Completions,
                                R"({"model":"tiny","prompt":"Hi","max_tokens":7,"temperature":0.5,"top_k":4,
                                    "stop":["x","y"],"seed":3,"stream":true,"stream_options":{"include_usage":true}})",
                                model().info);
  REQUIRE(r.choices.size() == 1);
  const auto& g = r.choices[0];
  CHECK(g.prompt == "Hi");
  CHECK(g.params.max_tokens == 7);
  CHECK(g.params.temperature == Approx(0.5));
  CHECK(g.params.top_k == 4);
  CHECK(g.params.stop == std::vector<std::string>{"x", "y"});
  CHECK(g.params.seed == 3u);
  CHECK(r.stream);
  CHECK(r.include_usage);

  // Defaults: 16 tokens for completions; chat runs to the context end (capped by
  // admission); a client's own max_tokens is strict (past the model length: 400).
  const auto dflt = parse_openai_request(Endpoint::Completions, R"({"prompt":"a"})", model().info);
  CHECK(dflt.choices[0].params.max_tokens == 16);
  CHECK_FALSE(dflt.choices[0].strict_max_tokens);
  CHECK(g.strict_max_tokens);
  auto chat = parse_openai_request(Endpoint::Chat, R"({"messages":[{"role":"user","content":[{"type":"text","text":"Hi"}]}]})",
                                   model().info);
  CHECK(chat.choices[0].params.max_tokens == 512);
  CHECK_FALSE(chat.choices[0].strict_max_tokens);
  // Unknown fields are ignored (vLLM); known ones the server cannot honour are not.
  CHECK(parse_openai_request(Endpoint::Completions, R"({"prompt":"a","foo":1,"cache_prompt":true})", model().info)
            .choices.size() == 1);
  // logit_bias (ids as strings) and min_tokens.
  const auto biased = parse_openai_request(
      Endpoint::Completions, R"({"prompt":"a","logit_bias":{"5":-100,"7":2.5},"min_tokens":3})", model().info);
  CHECK(biased.choices[0].params.logit_bias == std::vector<TokenBias>{{5, -100.0f}, {7, 2.5f}});
  CHECK(biased.choices[0].params.min_tokens == 3);
  // Chat renders to text; admission tokenizes it (once), with BOS since the fallback
  // template writes none.
  CHECK(chat.choices[0].prompt_ids.empty());
  CHECK(chat.choices[0].prompt.find("Hi") != std::string::npos);
  CHECK(chat.choices[0].add_special_tokens);
  CHECK(model().tok->encode(chat.choices[0].prompt, chat.choices[0].add_special_tokens).front() == model().tok->bos_id());

  // Several prompts x n, with distinct seeds per sample.
  auto multi = parse_openai_request(Endpoint::Completions, R"({"prompt":["a",[5,6]],"n":2,"seed":10})", model().info);
  REQUIRE(multi.choices.size() == 4);
  CHECK(multi.choices[2].prompt_ids == std::vector<int32_t>{5, 6});
  CHECK(multi.choices[0].params.seed == 10u);
  CHECK(multi.choices[1].params.seed == 11u);
}

TEST_CASE("structured output fields of every ecosystem become the request's constraint") {
  const auto constraint = [](Endpoint ep, const std::string& body) {
    return parse_openai_request(ep, body, model().info).choices[0].params.constraint;
  };
  const std::string schema = R"({"type":"object","properties":{"a":{"type":"integer"}}})";
  CHECK(constraint(Endpoint::Chat, R"({"messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema",)"
                                   R"("json_schema":{"name":"n","strict":true,"schema":)" + schema + "}}}") ==
        grammar::ConstraintSpec{"json_schema", schema});
  CHECK(constraint(Endpoint::Chat, R"({"messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_object"}})") ==
        grammar::ConstraintSpec{"json_object", ""});
  CHECK(constraint(Endpoint::Chat, R"({"messages":[{"role":"user","content":"x"}],"response_format":{"type":"text"}})").empty());
  CHECK(constraint(Endpoint::Completions, R"({"prompt":"a","guided_json":)" + schema + "}") ==
        grammar::ConstraintSpec{"json_schema", schema});
  CHECK(constraint(Endpoint::Completions, R"({"prompt":"a","json_schema":)" + schema + "}") ==
        grammar::ConstraintSpec{"json_schema", schema});
  CHECK(constraint(Endpoint::Completions, R"({"prompt":"a","guided_regex":"[0-9]+"})") ==
        grammar::ConstraintSpec{"regex", "[0-9]+"});
  CHECK(constraint(Endpoint::Completions, R"({"prompt":"a","guided_choice":["x","y"]})") ==
        grammar::ConstraintSpec{"choice", R"(["x","y"])"});
  CHECK(constraint(Endpoint::Completions, R"({"prompt":"a","guided_grammar":"root ::= \"x\""})") ==
        grammar::ConstraintSpec{"gbnf", "root ::= \"x\""});
  CHECK(constraint(Endpoint::Completions, R"({"prompt":"a","grammar":"root ::= \"x\""})") ==
        grammar::ConstraintSpec{"gbnf", "root ::= \"x\""});
  const auto ws = boost::json::parse(R"({"type":"generate","id":1,"prompt":"a","guided_regex":"ab"})").as_object();
  CHECK(parse_ws_generate(ws, model().info).req.params.constraint == grammar::ConstraintSpec{"regex", "ab"});
}

TEST_CASE("bad request bodies name the field") {
  struct C {
    Endpoint ep;
    const char* body;
    const char* param;
  };
  const C cases[] = {
      {Endpoint::Completions, R"({"prompt":"a","temperature":"hot"})", "temperature"},
      {Endpoint::Completions, R"({"prompt":"a","top_p":0})", "top_p"},
      {Endpoint::Completions, R"({"prompt":"a","max_tokens":0})", "max_tokens"},
      {Endpoint::Completions, R"({"prompt":"a","max_tokens":2.5})", "max_tokens"},
      {Endpoint::Completions, R"({"prompt":"a","stop":[1]})", "stop"},
      {Endpoint::Completions, R"({"prompt":"a","max_tokens":99999999})", "max_tokens"},
      {Endpoint::Completions, R"({"prompt":"a","max_completion_tokens":512})", "max_completion_tokens"},
      {Endpoint::Completions, R"({"prompt":"a","logit_bias":{"x":1}})", "logit_bias"},
      {Endpoint::Completions, R"({"prompt":"a","logit_bias":{"70000":1}})", "logit_bias"},
      {Endpoint::Completions, R"({"prompt":"a","logit_bias":{"5":101}})", "logit_bias"},
      {Endpoint::Completions, R"({"prompt":"a","logit_bias":[1]})", "logit_bias"},
      {Endpoint::Completions, R"({"prompt":"a","min_tokens":-1})", "min_tokens"},
      {Endpoint::Completions, R"({"prompt":"a","min_tokens":20,"max_tokens":10})", "min_tokens"},
      {Endpoint::Completions, R"({"prompt":"a","suffix":"x"})", "suffix"},
      {Endpoint::Completions, R"({"prompt":"a","prompt_logprobs":21})", "prompt_logprobs"},
      {Endpoint::Completions, R"({"prompt":[70000]})", "prompt"},
      {Endpoint::Completions, R"({"prompt":""})", "prompt"},
      {Endpoint::Completions, R"({"prompt":"a","logprobs":21})", "logprobs"},
      {Endpoint::Completions, R"({"prompt":"a","stream_options":{"include_usage":true}})", "stream_options"},
      {Endpoint::Chat, R"({"messages":[{"role":"bot","content":"x"}]})", "messages[0].role"},
      {Endpoint::Chat, R"({"messages":[{"role":"user"}]})", "messages[0].content"},
      {Endpoint::Chat, R"({"messages":[{"role":"user","content":"x","extra":1}]})", "messages[0]"},
      {Endpoint::Chat, R"({"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function"}]})", "tools[0].function"},
      {Endpoint::Chat, R"({"prompt":"x"})", "messages"},
      {Endpoint::Chat, R"({"messages":[{"role":"user","content":"x"}],"response_format":{"type":"xml"}})", "response_format"},
      {Endpoint::Completions, R"({"prompt":"a","guided_json":{"type":"string","format":"date"}})", "guided_json"},
      {Endpoint::Completions, R"({"prompt":"a","guided_regex":"(a"})", "guided_regex"},
      {Endpoint::Completions, R"({"prompt":"a","guided_choice":[]})", "guided_choice"},
      {Endpoint::Completions, R"({"prompt":"a","grammar":"root ::= x"})", "grammar"},
      {Endpoint::Completions, R"({"prompt":"a","guided_regex":"a","json_schema":{}})", "guided_regex"},
  };
  for (const auto& c : cases) {
    INFO(c.body);
    ApiError e = parse_error(c.ep, c.body);
    CHECK(e.status == 400);
    CHECK(e.param == c.param);
    CHECK(!e.message.empty());
  }
  CHECK(parse_error(Endpoint::Completions, R"({"model":"other","prompt":"a"})").status == 404);
  CHECK(parse_error(Endpoint::Completions, "{\"prompt\":\"\xff\"}").message.find("UTF-8") != std::string::npos);
  auto body = boost::json::parse(error_body(ApiError(429, "busy", "", "rate_limit_error", "overloaded")));
  CHECK(body.at("error").at("code") == "overloaded");
  CHECK(body.at("error").at("param").is_null());
}

TEST_CASE("UTF-8 validation") {
  using unicode::valid_utf8;
  CHECK(valid_utf8("plain ascii"));
  CHECK(valid_utf8("h\xc3\xa9llo \xe2\x9c\x93 \xf0\x9f\x98\x80"));
  CHECK_FALSE(valid_utf8("\xc3"));              // truncated
  CHECK_FALSE(valid_utf8("\xc0\xaf"));          // overlong
  CHECK_FALSE(valid_utf8("\xed\xa0\x80"));      // surrogate
  CHECK_FALSE(valid_utf8("\xf4\x90\x80\x80"));  // > U+10FFFF
  CHECK_FALSE(valid_utf8("\x80"));
}

TEST_CASE("metrics exposition: histograms are cumulative and consistent") {
  Metrics m("my \"model\"");
  m.first_token(0.003);
  m.first_token(0.2);
  m.token_gap(0.0007);
  TokenEvent fin;
  fin.finished = true;
  fin.finish_reason = FinishReason::Length;
  fin.usage.prompt_tokens = 5;
  fin.usage.completion_tokens = 9;
  fin.timings = {1.0, 4.0, 30.0, 3.0};
  m.finished(fin);
  m.http_response(200);
  SchedulerStats st;
  st.running = 3;
  st.kv.num_blocks = 10;
  st.kv.used_blocks = 4;
  const std::string text = m.render(&st, true);
  CHECK(text.find("vllm_num_requests_running{model_name=\"my \\\"model\\\"\"} 3") != std::string::npos);
  CHECK(text.find("vllm_kv_cache_usage_perc{model_name=\"my \\\"model\\\"\"} 0.4") != std::string::npos);
  CHECK(text.find("vllm_time_to_first_token_seconds_bucket{model_name=\"my \\\"model\\\"\",le=\"0.005\"} 1") != std::string::npos);
  CHECK(text.find("vllm_time_to_first_token_seconds_bucket{model_name=\"my \\\"model\\\"\",le=\"+Inf\"} 2") != std::string::npos);
  CHECK(text.find("vllm_time_to_first_token_seconds_count{model_name=\"my \\\"model\\\"\"} 2") != std::string::npos);
  CHECK(text.find("vllm_request_success_total{model_name=\"my \\\"model\\\"\",finished_reason=\"length\"} 1") != std::string::npos);
  CHECK(text.find("vllm_generation_tokens_total{model_name=\"my \\\"model\\\"\"} 9") != std::string::npos);
  CHECK(text.find("troupe_http_responses_total{model_name=\"my \\\"model\\\"\",code=\"200\"} 1") != std::string::npos);
  CHECK(text.find("vllm:") == std::string::npos);
  const std::string vllm = m.render(&st, true, /*vllm_names=*/true);
  CHECK(vllm.find("# TYPE vllm:e2e_request_latency_seconds histogram") != std::string::npos);
}

TEST_CASE("SSE parser and URL parsing") {
  SseParser p;
  std::vector<std::string> got;
  auto on = [&](const std::string& d) { got.push_back(d); };
  p.feed("data: one\n\nda", on);
  p.feed("ta: two\r\n\r\n: comment\n\ndata: a\ndata: b\n\n", on);
  CHECK(got == std::vector<std::string>{"one", "two", "a\nb"});
  auto u = parse_http_url("http://example.com:8123/base/");
  CHECK(u.host == "example.com");
  CHECK(u.port == 8123);
  CHECK(u.path == "/base");
  CHECK(parse_http_url("http://[::1]:9/").host == "::1");
  CHECK_THROWS_AS(parse_http_url("https://x"), Error);
  CHECK_THROWS_AS(parse_http_url("http://x:99999"), Error);
}
