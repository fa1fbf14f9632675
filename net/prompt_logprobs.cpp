#include "net/prompt_logprobs.h"

#include <boost/json.hpp>

#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace troupe {

namespace json = boost::json;

namespace {

std::string token_text(const Tokenizer& tok, int32_t id) { return unicode::sanitize_utf8(tok.token_bytes(id)); }

json::object vllm_logprob(const Tokenizer& tok, int32_t id, float logprob, int32_t rank) {
  return {{"logprob", logprob}, {"rank", rank}, {"decoded_token", token_text(tok, id)}};
}

}  // namespace

json::value prompt_logprobs_json(std::span<const TokenLogprobs> prompt, const Tokenizer& tok, int32_t n) {
  json::array out;
  for (size_t i = 0; i < prompt.size(); ++i) {
    const TokenLogprobs& e = prompt[i];
    if (e.rank == 0) {  // the first token: nothing before it to predict it
      out.push_back(nullptr);
      continue;
    }
    json::object d;
    d[std::to_string(e.token)] = vllm_logprob(tok, e.token, e.logprob, e.rank);
    // The engine computed max(n, other asks) alternatives; show n (ranks 1..n, in order).
    for (size_t k = 0; k < e.top.size() && k < size_t(n); ++k) {
      const auto& t = e.top[k];
      if (t.id != e.token) d[std::to_string(t.id)] = vllm_logprob(tok, t.id, t.logprob, int32_t(k) + 1);
    }
    out.push_back(std::move(d));
  }
  return out;
}

json::value echo_logprobs_json(std::span<const TokenLogprobs> prompt, const Tokenizer& tok, int32_t n,
                               const std::string& echo, bool skip_special) {
  json::array tokens, token_logprobs, top_logprobs, offsets;
  std::vector<int32_t> ids;
  ids.reserve(prompt.size());
  for (const TokenLogprobs& e : prompt) {
    // Where this token's text starts in the echo: the length of the prefix before it, as
    // decoded (a decoder may drop a leading space or a special token's text). Quadratic in
    // the prompt, but only for requests that ask.
    const size_t at = ids.empty() ? 0 : std::min(tok.decode(ids, skip_special).size(), echo.size());
    ids.push_back(e.token);
    const std::string text = token_text(tok, e.token);
    tokens.push_back(json::string(text));
    offsets.push_back(at);
    if (e.rank == 0) {
      token_logprobs.push_back(nullptr);
      top_logprobs.push_back(nullptr);
      continue;
    }
    token_logprobs.push_back(e.logprob);
    // As for generated tokens: {token text: logprob} of the top n, and the token itself.
    json::object top;
    for (size_t k = 0; k < e.top.size() && k < size_t(n); ++k) top[token_text(tok, e.top[k].id)] = e.top[k].logprob;
    top[text] = e.logprob;
    top_logprobs.push_back(std::move(top));
  }
  return json::object{{"tokens", std::move(tokens)},
                      {"token_logprobs", std::move(token_logprobs)},
                      {"top_logprobs", std::move(top_logprobs)},
                      {"text_offset", std::move(offsets)}};
}

void append_completion_logprobs(json::value& into, const json::value& more) {
  if (into.is_null()) {
    into = more;
    return;
  }
  if (more.is_null()) return;
  for (const char* key : {"tokens", "token_logprobs", "top_logprobs", "text_offset"}) {
    auto& dst = into.as_object()[key].as_array();
    for (const auto& v : more.as_object().at(key).as_array()) dst.push_back(v);
  }
}

std::string add_prompt_logprobs(const std::string& body, Endpoint ep, size_t index, json::value lps) {
  json::value v = json::parse(body);
  if (ep == Endpoint::Chat) {
    v.as_object()["prompt_logprobs"] = std::move(lps);
  } else {
    auto& choices = v.as_object()["choices"].as_array();
    // A stream chunk carries one choice; a whole response all of them.
    for (auto& c : choices)
      if (c.as_object().at("index").to_number<int64_t>() == int64_t(index)) c.as_object()["prompt_logprobs"] = std::move(lps);
  }
  return json::serialize(v);
}

}  // namespace troupe
