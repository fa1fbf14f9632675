// Table-driven bad input against the live daemon: every case gets its status code and an
// OpenAI-shaped error body, and the daemon keeps serving correct completions afterwards.
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <fstream>
#include <map>
#include <optional>
#include <random>

#include "daemon.h"
#include "test_util.h"

using namespace troupe;
using namespace troupe::test;

namespace {

struct Reply {
  int status = 0;
  std::map<std::string, std::string> headers;
  std::string body;
};

// A response read off a raw socket: status line, headers, body (Content-Length framed).
Reply parse_raw(const std::string& raw) {
  Reply r;
  if (raw.rfind("HTTP/1.", 0) != 0) return r;
  r.status = std::stoi(raw.substr(9, 3));
  const size_t end = raw.find("\r\n\r\n");
  size_t pos = raw.find("\r\n") + 2;
  while (pos < end) {
    size_t eol = raw.find("\r\n", pos);
    std::string line = raw.substr(pos, eol - pos);
    size_t colon = line.find(':');
    std::string name = line.substr(0, colon);
    for (char& c : name) c = char(std::tolower(static_cast<unsigned char>(c)));
    r.headers[name] = line.substr(colon + 2);
    pos = eol + 2;
  }
  r.body = end == std::string::npos ? "" : raw.substr(end + 4);
  return r;
}

struct Case {
  Case(const char* name_, std::string method_, std::string target_, std::string body_, int status_,
       const char* type_ = "invalid_request_error", const char* param_ = nullptr, bool auth_ = true,
       std::string raw_ = "", Headers headers_ = {})
      : name(name_), method(std::move(method_)), target(std::move(target_)), body(std::move(body_)), status(status_),
        type(type_), param(param_), auth(auth_), raw(std::move(raw_)), headers(std::move(headers_)) {}
  const char* name;
  std::string method, target, body;
  int status;
  const char* type;
  const char* param;  // expected error.param (nullptr: not checked)
  bool auth;
  std::string raw;    // sent verbatim instead, when set
  Headers headers;
};

std::string words(int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += "once upon a time ";
  return s;
}

std::string nested(int depth) { return std::string(size_t(depth), '[') + std::string(size_t(depth), ']'); }

// choices[0].text of a completion response.
std::string json_text(const std::string& body) {
  return std::string(boost::json::parse(body).at("choices").at(0).at("text").as_string());
}

std::vector<Case> cases() {
  const std::string C = "/v1/completions", H = "/v1/chat/completions";
  auto comp = [&](const char* name, std::string body, int status, const char* param = nullptr) {
    return Case{name, "POST", C, std::move(body), status, "invalid_request_error", param};
  };
  auto chat = [&](const char* name, std::string body, int status, const char* param = nullptr) {
    return Case{name, "POST", H, std::move(body), status, "invalid_request_error", param};
  };
  std::vector<Case> v = {
      comp("malformed JSON", R"({"prompt": "x",)", 400),
      comp("empty body", "", 400),
      comp("body is an array", "[1, 2]", 400),
      comp("body is a string", "\"hello\"", 400),
      comp("JSON nested too deep", "{\"prompt\": " + nested(100) + "}", 400),
      comp("invalid UTF-8 byte", "{\"prompt\": \"a\xff\xfe\"}", 400),
      comp("overlong UTF-8", "{\"prompt\": \"\xc0\xaf\"}", 400),
      comp("UTF-8 surrogate", "{\"prompt\": \"\xed\xa0\x80\"}", 400),
      comp("prompt missing", R"({"max_tokens": 3})", 400, "prompt"),
      comp("prompt wrong type", R"({"prompt": 42})", 400, "prompt"),
      comp("prompt empty", R"({"prompt": ""})", 400, "prompt"),
      comp("prompt empty list", R"({"prompt": []})", 400, "prompt"),
      comp("prompt token outside vocabulary", R"({"prompt": [1, 999999]})", 400, "prompt"),
      comp("prompt negative token", R"({"prompt": [-1]})", 400, "prompt"),
      comp("prompt longer than the model", "{\"prompt\": \"" + words(400) + "\"}", 400),
      comp("too many prompts", "{\"prompt\": [" + std::string(40, ' ') + "\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\","
           "\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\"]}", 400, "prompt"),
      comp("max_tokens zero", R"({"prompt": "a", "max_tokens": 0})", 400, "max_tokens"),
      comp("max_tokens string", R"({"prompt": "a", "max_tokens": "ten"})", 400, "max_tokens"),
      comp("max_tokens fractional", R"({"prompt": "a", "max_tokens": 1.5})", 400, "max_tokens"),
      comp("temperature negative", R"({"prompt": "a", "temperature": -1})", 400, "temperature"),
      comp("temperature string", R"({"prompt": "a", "temperature": "hot"})", 400, "temperature"),
      comp("temperature overflow", R"({"prompt": "a", "temperature": 1e300})", 400, "temperature"),
      comp("top_p zero", R"({"prompt": "a", "top_p": 0})", 400, "top_p"),
      comp("top_p above one", R"({"prompt": "a", "top_p": 1.5})", 400, "top_p"),
      comp("top_k below -1", R"({"prompt": "a", "top_k": -5})", 400, "top_k"),
      comp("min_p above one", R"({"prompt": "a", "min_p": 2})", 400, "min_p"),
      comp("presence_penalty out of range", R"({"prompt": "a", "presence_penalty": 3})", 400, "presence_penalty"),
      comp("frequency_penalty out of range", R"({"prompt": "a", "frequency_penalty": -2.5})", 400, "frequency_penalty"),
      comp("repetition_penalty zero", R"({"prompt": "a", "repetition_penalty": 0})", 400, "repetition_penalty"),
      comp("seed not an integer", R"({"prompt": "a", "seed": "abc"})", 400, "seed"),
      comp("stop wrong type", R"({"prompt": "a", "stop": 5})", 400, "stop"),
      comp("stop empty string", R"({"prompt": "a", "stop": [""]})", 400, "stop"),
      comp("stop_token_ids negative", R"({"prompt": "a", "stop_token_ids": [-3]})", 400, "stop_token_ids"),
      comp("stream not a boolean", R"({"prompt": "a", "stream": "yes"})", 400, "stream"),
      comp("stream_options without stream", R"({"prompt": "a", "stream_options": {"include_usage": true}})", 400,
           "stream_options"),
      comp("known but unsupported field", R"({"prompt": "a", "suffix": "and then"})", 400, "suffix"),
      comp("n zero", R"({"prompt": "a", "n": 0})", 400, "n"),
      comp("logprobs out of range", R"({"prompt": "a", "logprobs": 21})", 400, "logprobs"),
      comp("prompt_logprobs out of range", R"({"prompt": "a", "echo": true, "prompt_logprobs": -1})", 400, "prompt_logprobs"),
      comp("priority out of range", R"({"prompt": "a", "priority": 1e12})", 400, "priority"),
      Case{"unknown model", "POST", C, R"({"model": "gpt-9", "prompt": "a"})", 404, "invalid_request_error", "model"},
      chat("messages missing", R"({"max_tokens": 3})", 400, "messages"),
      chat("messages empty", R"({"messages": []})", 400, "messages"),
      chat("messages not a list", R"({"messages": "hi"})", 400, "messages"),
      chat("message role unknown", R"({"messages": [{"role": "wizard", "content": "x"}]})", 400, "messages[0].role"),
      chat("message content wrong type", R"({"messages": [{"role": "user", "content": 42}]})", 400, "messages[0].content"),
      chat("message unknown field", R"({"messages": [{"role": "user", "content": "x", "mood": "happy"}]})", 400),
      chat("message image part", R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})", 400),
      chat("tool without a function", R"({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function"}]})",
           400, "tools[0].function"),
      chat("prompt on the chat endpoint (ignored: no messages)", R"({"prompt": "x"})", 400, "messages"),
      chat("chat longer than the model", "{\"messages\": [{\"role\": \"user\", \"content\": \"" + words(400) + "\"}]}", 400,
           "messages"),
      Case{"body over the limit", "POST", C, "{\"prompt\": \"" + std::string(100 * 1024, 'a') + "\"}", 413},
      Case{"missing API key", "POST", C, R"({"prompt": "a"})", 401, "invalid_request_error", nullptr, false},
      Case{"wrong API key", "GET", "/v1/models", "", 401, "invalid_request_error", nullptr, false, "",
           Headers{{"Authorization", "Bearer nope"}}},
      Case{"API key without Bearer", "GET", "/v1/models", "", 401, "invalid_request_error", nullptr, false, "",
           Headers{{"Authorization", std::string(kApiKey)}}},
      Case{"unknown route under /v1", "GET", "/v1/nothing", "", 404, "not_found_error"},
      Case{"unknown route", "GET", "/admin", "", 404, "not_found_error"},
      Case{"GET on a POST route", "GET", C, "", 405},
      Case{"POST on a GET route", "POST", "/health", "{}", 405},
      Case{"DELETE on models", "DELETE", "/v1/models", "", 405},
      Case{"stream endpoint without upgrade", "GET", "/v1/stream", "", 426},
      Case{"garbage instead of HTTP", "", "", "", 400, "invalid_request_error", nullptr, true,
           "GARBAGE GARBAGE GARBAGE\r\n\r\n"},
      Case{"bad Content-Length", "", "", "", 400, "invalid_request_error", nullptr, true,
           "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: banana\r\n\r\n"},
      Case{"headers too large", "", "", "", 431, "invalid_request_error", nullptr, true,
           "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + std::string(20000, 'b') + "\r\n\r\n"},
      Case{"declared body over the limit", "", "", "", 413, "invalid_request_error", nullptr, true,
           "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 99999999\r\n\r\n{}"},
      Case{"non-UTF-8 path (never echoed raw)", "", "", "", 404, "not_found_error", nullptr, true,
           "GET /\xff\xfe/x HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"},
      // Browser-origin safety (net/README.md "Safety").
      Case{"HTTP/1.1 without Host", "", "", "", 400, "invalid_request_error", nullptr, true,
           "GET /health HTTP/1.1\r\nConnection: close\r\n\r\n"},
      Case{"foreign Host on a loopback bind (DNS rebinding)", "", "", "", 403, "invalid_request_error", nullptr, true,
           "GET /v1/models HTTP/1.1\r\nHost: attacker.example:8000\r\nConnection: close\r\n\r\n"},
      Case{"POST as text/plain (a cross-site form or fetch without preflight)", "POST", C, R"({"prompt": "a"})", 415,
           "invalid_request_error", nullptr, true, "", Headers{{"Content-Type", "text/plain"}}},
      Case{"POST without Content-Type", "", "", "", 415, "invalid_request_error", nullptr, true,
           std::string("POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                       "Authorization: Bearer ") + kApiKey + "\r\nContent-Length: 2\r\n\r\n{}"},
  };
  return v;
}

void check_error_body(Reply r, const Case& c) {
  INFO("body: " << r.body.substr(0, 300));
  CHECK(r.headers["content-type"] == "application/json");
  boost::system::error_code ec;
  auto v = boost::json::parse(r.body, ec);
  REQUIRE(!ec);
  REQUIRE(v.is_object());
  const auto* err = v.as_object().if_contains("error");
  REQUIRE(err);
  REQUIRE(err->is_object());
  const auto& e = err->as_object();
  REQUIRE(e.contains("message"));
  REQUIRE(e.contains("type"));
  REQUIRE(e.contains("param"));
  REQUIRE(e.contains("code"));
  CHECK(e.at("message").is_string());
  CHECK(!e.at("message").as_string().empty());
  CHECK(e.at("type") == c.type);
  if (c.param) CHECK(e.at("param") == c.param);
}

}  // namespace

TEST_CASE("bad input: each case gets its status and an OpenAI error body; the daemon keeps serving") {
  Daemon& d = main_daemon();
  const auto all = cases();
  REQUIRE(all.size() >= 30);
  for (const Case& c : all) {
    INFO("case: " << c.name);
    Reply r;
    if (!c.raw.empty()) {
      r = parse_raw(raw_http_exchange("127.0.0.1", d.port(), c.raw));
    } else {
      Headers h = c.auth ? auth_headers() : Headers{};
      h.insert(h.end(), c.headers.begin(), c.headers.end());
      HttpClient client("127.0.0.1", d.port(), 30);
      HttpResponse hr = client.request(c.method, c.target, c.body, h);
      r = Reply{hr.status, hr.headers, hr.body};
    }
    CHECK(r.status == c.status);
    check_error_body(r, c);
    if (c.status == 401) CHECK(r.headers["www-authenticate"] == "Bearer");
    if (c.status == 405) CHECK(!r.headers["allow"].empty());
  }

  // Still serving, and still right: a greedy completion equals the one before the abuse.
  const std::string body = R"({"prompt": "Once upon a time", "max_tokens": 24, "temperature": 0})";
  HttpResponse ok = d.post("/v1/completions", body);
  REQUIRE(ok.status == 200);
  auto v = boost::json::parse(ok.body);
  CHECK(v.at("choices").at(0).at("text").as_string().size() > 10);
  CHECK(d.get("/health").status == 200);
}

TEST_CASE("a keep-alive connection survives error responses") {
  Daemon& d = main_daemon();
  HttpClient c("127.0.0.1", d.port(), 30);
  CHECK(c.request("POST", "/v1/completions", "{oops", auth_headers()).status == 400);
  CHECK(c.request("GET", "/nowhere", "", auth_headers()).status == 404);
  HttpResponse r = c.request("POST", "/v1/completions", R"({"prompt": "Hi", "max_tokens": 3})", auth_headers());
  CHECK(r.status == 200);
  CHECK(r.header("connection") != "close");
}

TEST_CASE("seeded random mutations of valid requests never take the daemon down") {
  Daemon& d = main_daemon();
  const std::string ref_body = R"({"prompt": "The little dog", "max_tokens": 16, "temperature": 0})";
  HttpResponse ref = d.post("/v1/completions", ref_body);
  REQUIRE(ref.status == 200);
  const std::vector<std::pair<std::string, std::string>> bases = {
      {"/v1/completions", R"({"model": "tinystories-656k", "prompt": "Once upon a time", "max_tokens": 8, "temperature": 0.5, "stop": ["."]})"},
      {"/v1/completions", R"({"prompt": [1, 2, 3], "max_tokens": 8, "stream": true, "stream_options": {"include_usage": true}})"},
      {"/v1/completions", R"({"prompt": ["a", "b"], "n": 2, "max_tokens": 4, "seed": 3, "top_k": 5, "top_p": 0.9})"},
      {"/v1/chat/completions", R"({"messages": [{"role": "system", "content": "x"}, {"role": "user", "content": [{"type": "text", "text": "Hi"}]}], "max_tokens": 8})"},
      {"/v1/chat/completions", R"({"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 6, "stream": true})"},
  };
  static const char* tokens[] = {"{", "}", "[", "]", "\"", "\\", ",", ":", "null", "true", "-", "1e999", "\\u0000",
                                 "\\ud800", "\xff", "\xc3", "0", "-1", "99999999999999999999", "\"\"", " ", "\n"};
  std::mt19937 rng(20240601);
  auto pick = [&](size_t n) { return size_t(rng() % std::max<size_t>(n, 1)); };
  std::map<int, int> statuses;
  for (int iter = 0; iter < 300; ++iter) {
    const auto& [target, base] = bases[pick(bases.size())];
    std::string body = base;
    if (iter % 2 == 1) {  // value-level: valid JSON, a field set to an arbitrary value
      static const char* values[] = {"-1", "0", "1", "2.5", "1e9", "\"x\"", "\"\"", "null", "true", "[]", "{}",
                                     "[1]", "[\"\"]", "\"\u00e9\"", "-0.5", "100", "[[1], [2]]"};
      static const char* keys[] = {"max_tokens", "temperature", "top_p", "top_k", "min_p", "n", "seed", "stop",
                                   "stream", "prompt", "messages", "presence_penalty", "repetition_penalty",
                                   "stop_token_ids", "ignore_eos", "priority", "logprobs", "user", "best_of"};
      boost::json::object o = boost::json::parse(base).as_object();
      const int edits = 1 + int(pick(2));
      for (int e = 0; e < edits; ++e) o[keys[pick(std::size(keys))]] = boost::json::parse(values[pick(std::size(values))]);
      body = boost::json::serialize(o);
    }
    const int edits = iter % 2 == 1 ? 0 : 1 + int(pick(3));
    for (int e = 0; e < edits && !body.empty(); ++e) {
      const size_t at = pick(body.size());
      switch (pick(5)) {
        case 0: body[at] = char(rng() & 0xFF); break;                              // flip a byte
        case 1: body.erase(at, 1 + pick(8)); break;                                // delete a run
        case 2: body.insert(at, body.substr(at, 1 + pick(12))); break;              // duplicate a run
        case 3: body.insert(at, tokens[pick(std::size(tokens))]); break;            // JSON-ish noise
        default: body.resize(at); break;                                            // truncate
      }
    }
    INFO("iteration " << iter << " body " << body);
    HttpClient c("127.0.0.1", d.port(), 60);
    HttpResponse r = c.request("POST", target, body, auth_headers());  // reads streams to the end
    statuses[r.status]++;
    CHECK((r.status == 200 || r.status == 400 || r.status == 404));
    if (r.status != 200) check_error_body(Reply{r.status, r.headers, r.body}, Case("fuzz", "POST", target, body, r.status));
  }
  CHECK(statuses[400] > 100);  // most mutations break the request...
  CHECK(statuses[200] > 20);   // ...some still make sense and are served
  // The daemon is unharmed: same greedy answer as before, nothing left running.
  HttpResponse again = d.post("/v1/completions", ref_body);
  REQUIRE(again.status == 200);
  CHECK(json_text(again.body) == json_text(ref.body));
}

TEST_CASE("what a chat template reads from the request is checked: wrong shapes are 400, not 500") {
  const std::string dir = temp_dir("template-inputs");
  std::ofstream(dir + "/t.jinja")
      << "{% for m in messages %}{% if m.tool_calls %}{% for t in m.tool_calls %}[{{ t.function.name }}]{% endfor %}"
         "{% endif %}{{ m.content }}\n{% endfor %}"
         "{% if extra_items is defined %}{% for i in extra_items %}{{ i }}{% endfor %}{% endif %}";
  ServiceOptions so;
  so.model_path = model_path("tinystories-656k");
  so.chat_template_path = dir + "/t.jinja";
  ServerOptions o;
  o.port = 0;
  o.api_key = kApiKey;
  EngineConfig ec;
  ec.model = so.model_path;
  Daemon d(so, o, ec);
  const std::string C = "/v1/chat/completions";
  const std::string user = R"({"role": "user", "content": "Hi"})";
  auto chat = [&](const std::string& extra_message, const std::string& extra_fields) {
    return R"({"max_tokens": 2, "messages": [)" + user + extra_message + "]" + extra_fields + "}";
  };
  struct Row {
    const char* name;
    std::string body;
    int status;
    const char* param;
  };
  const std::vector<Row> rows = {
      {"valid tool_calls", chat(R"(, {"role": "assistant", "content": null, "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": "{}"}}]})", ""), 200, nullptr},
      {"tool_calls not a list", chat(R"(, {"role": "assistant", "content": "x", "tool_calls": 5})", ""), 400, "messages[1].tool_calls"},
      {"tool_call without a function", chat(R"(, {"role": "assistant", "content": "x", "tool_calls": [7]})", ""), 400, "messages[1].tool_calls[0]"},
      {"tool_call name not a string", chat(R"(, {"role": "assistant", "content": "x", "tool_calls": [{"function": {"name": 3}}]})", ""), 400, "messages[1].tool_calls[0].function.name"},
      {"kwargs the template cannot use", chat("", R"(, "chat_template_kwargs": {"extra_items": 5})"), 400, "chat_template_kwargs"},
      {"kwargs the template can use", chat("", R"(, "chat_template_kwargs": {"extra_items": ["a", "b"]})"), 200, nullptr},
      {"tools in kwargs are template variables", chat("", R"(, "chat_template_kwargs": {"tools": [{"type": "function", "function": {"name": "f"}}]})"), 200, nullptr},
  };
  for (const Row& r : rows) {
    INFO(r.name << ": " << r.body);
    HttpResponse res = d.post(C, r.body);
    CHECK(res.status == r.status);
    if (r.status != 200) check_error_body(Reply{res.status, res.headers, res.body}, Case(r.name, "POST", C, r.body, r.status, "invalid_request_error", r.param));
  }
}
