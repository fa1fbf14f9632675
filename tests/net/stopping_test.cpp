// Stopping through the daemon: /v1/completions with `stop` (a string and a list),
// `stop_token_ids` and EOS, streamed (SSE) and not, ends with finish_reason "stop", text that
// ends right before the stop string, and usage.completion_tokens matching the tokens the
// engine delivered. Every expectation comes from a reference run of the same greedy request
// without the stop condition, taken from the daemon's own engine (for the token ids).
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <algorithm>
#include <condition_variable>
#include <memory>
#include <mutex>

#include "daemon.h"
#include "test_util.h"

using namespace troupe;
using namespace troupe::test;
namespace json = boost::json;

namespace {

// The daemon engine's own output for a greedy request without stop condition.
struct Reference {
  std::vector<int32_t> ids;
  std::vector<std::string> token_text;  // text that arrived with each token
  std::string text;
  std::string prefix(size_t n) const {
    std::string t;
    for (size_t k = 0; k < n; ++k) t += token_text[k];
    return t;
  }
};

Reference reference(Daemon& d, const std::string& prompt, int max_tokens) {
  struct State {
    std::mutex mu;
    std::condition_variable cv;
    Reference ref;
    std::string reason;
    bool done = false;
  };
  auto st = std::make_shared<State>();
  GenerateRequest req;
  req.prompt = prompt;
  req.params.temperature = 0;
  req.params.max_tokens = max_tokens;
  req.params.ignore_eos = true;
  d.service->submit(req, [st](const TokenEvent& ev) {
    std::lock_guard lk(st->mu);
    st->ref.ids.insert(st->ref.ids.end(), ev.token_ids.begin(), ev.token_ids.end());
    st->ref.text += ev.text;
    if (!ev.token_ids.empty()) {
      st->ref.token_text.push_back(ev.token_ids.size() == 1 ? ev.text : std::string("<several tokens in one event>"));
    }
    if (ev.finished) {
      st->reason = to_string(ev.finish_reason);
      st->done = true;
      st->cv.notify_all();
    }
  });
  std::unique_lock lk(st->mu);
  REQUIRE(st->cv.wait_for(lk, std::chrono::seconds(60), [&] { return st->done; }));
  REQUIRE(st->reason == "length");
  REQUIRE(st->ref.ids.size() == size_t(max_tokens));
  REQUIRE(st->ref.token_text.size() == st->ref.ids.size());
  return st->ref;
}

struct Reply {
  int status = 0;
  std::string text, finish_reason;
  int64_t completion_tokens = -1;
  bool done = false;  // streamed: got [DONE]
};

// One /v1/completions request for a single choice, streamed (SSE, with usage) or not.
Reply complete(Daemon& d, json::object body, bool stream) {
  body["temperature"] = 0;
  body["stream"] = stream;
  if (stream) body["stream_options"] = json::object{{"include_usage", true}};
  Reply out;
  if (!stream) {
    HttpResponse r = d.post("/v1/completions", json::serialize(body));
    out.status = r.status;
    if (r.status != 200) return out;
    json::value v = json::parse(r.body);
    const auto& ch = v.at("choices").as_array();
    REQUIRE(ch.size() == 1);
    out.text = std::string(ch[0].at("text").as_string());
    if (ch[0].at("finish_reason").is_string()) out.finish_reason = std::string(ch[0].at("finish_reason").as_string());
    out.completion_tokens = v.at("usage").at("completion_tokens").as_int64();
    return out;
  }
  const Streamed s = stream_completion(d.port(), json::serialize(body));
  out.status = s.status;
  out.text = s.text;
  out.finish_reason = s.finish_reason;
  out.completion_tokens = s.completion_tokens;
  out.done = s.done;
  CHECK(s.finishes == 1);
  return out;
}

// The reply a user must get when the request stopped after `n_ids` reference tokens.
void check_stopped(const Reply& r, size_t n_ids, const std::string& text, const std::vector<std::string>& stops = {}) {
  INFO("got \"" << r.text << "\" (" << r.finish_reason << ", " << r.completion_tokens << " tokens)");
  CHECK(r.status == 200);
  CHECK(r.finish_reason == "stop");
  CHECK(r.text == text);
  CHECK(r.completion_tokens == int64_t(n_ids));
  for (const auto& s : stops) CHECK(r.text.find(s) == std::string::npos);
}

json::array strings(const std::vector<std::string>& v) {
  json::array a;
  for (const auto& s : v) a.emplace_back(s);
  return a;
}

}  // namespace

TEST_CASE("stop strings end a completion right before them, streamed and not", "[net][stop]") {
  Daemon& d = main_daemon();
  const Tokenizer& tok = *d.service->model().tokenizer;
  const std::string prompt = "Once upon a time";
  constexpr int kTokens = 48;
  const Reference ref = reference(d, prompt, kTokens);

  // The daemon without a stop condition gives the reference itself.
  const json::object plain{{"prompt", prompt}, {"max_tokens", kTokens}, {"ignore_eos", true}};
  for (bool stream : {false, true}) {
    const Reply r = complete(d, plain, stream);
    CHECK(r.finish_reason == "length");
    CHECK(r.text == ref.text);
    CHECK(r.completion_tokens == kTokens);
  }

  // A stop string across the boundary of tokens k-1 and k, where it first occurs.
  size_t k = 4;
  std::string stop;
  size_t pos = std::string::npos;
  for (; k + 1 < ref.ids.size(); ++k) {
    const std::string a = tok.token_bytes(ref.ids[k - 1]), b = tok.token_bytes(ref.ids[k]);
    if (a.size() < 2 || b.size() < 2 || ref.token_text[k - 1] != a || ref.token_text[k] != b) continue;
    stop = a.substr(a.size() - 2) + b.substr(0, 2);
    pos = ref.text.find(stop);
    if (pos + 2 == ref.prefix(k).size()) break;
  }
  REQUIRE(k + 1 < ref.ids.size());
  INFO("stop \"" << stop << "\" across tokens " << k - 1 << " and " << k);
  for (bool stream : {false, true}) {
    INFO((stream ? "streamed" : "not streamed"));
    json::object body = plain;
    body["stop"] = stop;  // a string
    check_stopped(complete(d, body, stream), k + 1, ref.text.substr(0, pos), {stop});
    const std::vector<std::string> list = {"never in a story", stop};
    body["stop"] = strings(list);  // a list
    check_stopped(complete(d, body, stream), k + 1, ref.text.substr(0, pos), list);
    // One that starts with the end of the text is held back until max_tokens ends the
    // request, then delivered: nothing lost.
    body["stop"] = ref.text.substr(ref.text.size() - 3) + "~never~";
    REQUIRE(ref.text.find(std::string(body["stop"].as_string())) == std::string::npos);
    const Reply tail = complete(d, body, stream);
    CHECK(tail.finish_reason == "length");
    CHECK(tail.text == ref.text);
    CHECK(tail.completion_tokens == kTokens);
  }
}

TEST_CASE("stop_token_ids end a completion before that token, streamed and not", "[net][stop]") {
  Daemon& d = main_daemon();
  const std::string prompt = "The little dog";
  constexpr int kTokens = 40;
  const Reference ref = reference(d, prompt, kTokens);
  // The first token from position 3 on that has not been generated before.
  size_t j = 3;
  while (j < ref.ids.size() && std::count(ref.ids.begin(), ref.ids.begin() + std::ptrdiff_t(j), ref.ids[j]) > 0) ++j;
  REQUIRE(j < ref.ids.size());
  INFO("stop token " << ref.ids[j] << " (\"" << ref.token_text[j] << "\") at " << j);
  for (bool stream : {false, true}) {
    INFO((stream ? "streamed" : "not streamed"));
    json::object body{{"prompt", prompt}, {"max_tokens", kTokens}, {"ignore_eos", true},
                      {"stop_token_ids", json::array{ref.ids[j]}}};
    check_stopped(complete(d, body, stream), j, ref.prefix(j));
  }
}

TEST_CASE("EOS ends a completion with finish_reason stop unless ignore_eos, streamed and not", "[net][stop]") {
  Daemon& d = main_daemon();
  const auto& eos = d.service->model().tokenizer->eos_ids();
  REQUIRE(!eos.empty());
  // Stories end with EOS: find a prompt whose greedy continuation reaches it.
  bool found = false;
  for (const char* prompt : {"Once upon a time", "One day", "Tom and Sue", "The little dog was happy."}) {
    const Reference ref = reference(d, prompt, 300);
    const auto it = std::find_first_of(ref.ids.begin(), ref.ids.end(), eos.begin(), eos.end());
    if (it == ref.ids.end()) continue;
    const size_t e = size_t(it - ref.ids.begin());
    found = true;
    INFO("prompt \"" << prompt << "\": EOS after " << e << " tokens");
    const int max_tokens = int(e) + 20;
    for (bool stream : {false, true}) {
      INFO((stream ? "streamed" : "not streamed"));
      json::object body{{"prompt", prompt}, {"max_tokens", max_tokens}};
      check_stopped(complete(d, body, stream), e, ref.prefix(e));
      body["ignore_eos"] = true;
      const Reply r = complete(d, body, stream);
      CHECK(r.finish_reason == "length");
      CHECK(r.completion_tokens == max_tokens);
      CHECK(r.text == ref.prefix(size_t(max_tokens)));
    }
    break;
  }
  CHECK(found);
}
