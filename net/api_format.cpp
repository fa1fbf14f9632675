// OpenAI response and stream-chunk bodies.
#include <boost/json.hpp>

#include <random>

#include "net/api.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace troupe {

namespace json = boost::json;

namespace {

json::object usage_json(const Usage& u) {
  json::object o{{"prompt_tokens", u.prompt_tokens},
                 {"completion_tokens", u.completion_tokens},
                 {"total_tokens", u.prompt_tokens + u.completion_tokens}};
  if (u.cached_prompt_tokens > 0) o["prompt_tokens_details"] = json::object{{"cached_tokens", u.cached_prompt_tokens}};
  return o;
}

json::value finish(std::string_view r) { return r.empty() ? json::value(nullptr) : json::value(r); }

// A token as logprobs show it: its text (invalid UTF-8 of a partial character replaced, so
// the JSON stays valid) and, for chat, its exact bytes.
std::string token_text(const Tokenizer& tok, int32_t id) { return unicode::sanitize_utf8(tok.token_bytes(id)); }

json::array token_bytes_json(const Tokenizer& tok, int32_t id) {
  json::array out;
  for (char c : tok.token_bytes(id)) out.push_back(uint8_t(c));
  return out;
}

json::object chat_logprob(const Tokenizer& tok, int32_t id, float logprob) {
  return {{"token", token_text(tok, id)}, {"logprob", logprob}, {"bytes", token_bytes_json(tok, id)}};
}

}  // namespace

json::value logprobs_json(Endpoint ep, std::span<const TokenLogprobs> lps, const Tokenizer& tok,
                          size_t text_offset) {
  if (ep == Endpoint::Chat) {
    json::array content;
    for (const auto& lp : lps) {
      json::object entry = chat_logprob(tok, lp.token, lp.logprob);
      json::array top;
      for (const auto& t : lp.top) top.push_back(chat_logprob(tok, t.id, t.logprob));
      entry["top_logprobs"] = std::move(top);
      content.push_back(std::move(entry));
    }
    return json::object{{"content", std::move(content)}};
  }
  json::array tokens, token_logprobs, top_logprobs, offsets;
  for (const auto& lp : lps) {
    const std::string text = token_text(tok, lp.token);
    tokens.push_back(json::string(text));
    token_logprobs.push_back(lp.logprob);
    // The legacy shape: {token text: logprob} of the top N and the chosen token.
    json::object top;
    for (const auto& t : lp.top) top[token_text(tok, t.id)] = t.logprob;
    top[text] = lp.logprob;
    top_logprobs.push_back(std::move(top));
    offsets.push_back(text_offset);
    text_offset += text.size();
  }
  return json::object{{"tokens", std::move(tokens)},
                      {"token_logprobs", std::move(token_logprobs)},
                      {"top_logprobs", std::move(top_logprobs)},
                      {"text_offset", std::move(offsets)}};
}

std::string new_response_id(Endpoint ep) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char* hex = "0123456789abcdef";
  std::string id = ep == Endpoint::Chat ? "chatcmpl-" : "cmpl-";
  for (int i = 0; i < 24; ++i) id += hex[rng() & 15];
  return id;
}

Usage total_usage(const std::vector<ChoiceResult>& choices, int n) {
  Usage t;
  for (size_t i = 0; i < choices.size(); ++i) {
    const Usage& u = choices[i].usage;
    if (n <= 1 || i % size_t(n) == 0) {
      t.prompt_tokens += u.prompt_tokens;
      t.cached_prompt_tokens += u.cached_prompt_tokens;
    }
    t.completion_tokens += u.completion_tokens;
  }
  return t;
}

SloOutcome request_slo(const std::vector<ChoiceResult>& choices) {
  SloOutcome r;
  for (const auto& c : choices) {
    if (!c.slo.judged()) continue;
    r.ttft_target_ms = std::max(r.ttft_target_ms, c.slo.ttft_target_ms);
    r.tpot_target_ms = std::max(r.tpot_target_ms, c.slo.tpot_target_ms);
    r.ttft_ms = std::max(r.ttft_ms, c.slo.ttft_ms);
    r.tpot_ms = std::max(r.tpot_ms, c.slo.tpot_ms);
    r.met = r.met && c.slo.met;
  }
  return r;
}

json::object slo_json(const SloOutcome& slo) {
  json::object o{{"met", slo.met}, {"ttft_ms", slo.ttft_ms}, {"tpot_ms", slo.tpot_ms}};
  o["ttft_target_ms"] = slo.ttft_target_ms > 0 ? json::value(slo.ttft_target_ms) : json::value(nullptr);
  o["tpot_target_ms"] = slo.tpot_target_ms > 0 ? json::value(slo.tpot_target_ms) : json::value(nullptr);
  return o;
}

std::string completion_body(Endpoint ep, const std::string& id, int64_t created, const std::string& model,
                            const std::vector<ChoiceResult>& choices, int n) {
  const bool chat = ep == Endpoint::Chat;
  json::array arr;
  for (size_t i = 0; i < choices.size(); ++i) {
    json::object c{{"index", i}, {"logprobs", choices[i].logprobs}, {"finish_reason", finish(choices[i].finish_reason)}};
    if (chat) c["message"] = json::object{{"role", "assistant"}, {"content", choices[i].text}};
    else c["text"] = choices[i].text;
    arr.push_back(std::move(c));
  }
  json::object o{{"id", id},
                 {"object", chat ? "chat.completion" : "text_completion"},
                 {"created", created},
                 {"model", model},
                 {"choices", std::move(arr)},
                 {"usage", usage_json(total_usage(choices, n))}};
  if (const SloOutcome slo = request_slo(choices); slo.judged()) o["slo"] = slo_json(slo);
  return json::serialize(o);
}

std::string chunk_body(Endpoint ep, const std::string& id, int64_t created, const std::string& model, int index,
                       std::string_view text, std::string_view finish_reason, bool role, json::value logprobs,
                       const SloOutcome* slo) {
  const bool chat = ep == Endpoint::Chat;
  json::object c{{"index", index}, {"logprobs", std::move(logprobs)}, {"finish_reason", finish(finish_reason)}};
  if (chat) {
    json::object delta;
    if (role) delta["role"] = "assistant";
    if (!text.empty() || role) delta["content"] = text;
    c["delta"] = std::move(delta);
  } else {
    c["text"] = text;
  }
  json::object o{{"id", id},
                 {"object", chat ? "chat.completion.chunk" : "text_completion"},
                 {"created", created},
                 {"model", model},
                 {"choices", json::array{std::move(c)}}};
  if (slo && slo->judged()) o["slo"] = slo_json(*slo);
  return json::serialize(o);
}

std::string usage_chunk_body(Endpoint ep, const std::string& id, int64_t created, const std::string& model,
                             const Usage& usage) {
  json::object o{{"id", id},
                 {"object", ep == Endpoint::Chat ? "chat.completion.chunk" : "text_completion"},
                 {"created", created},
                 {"model", model},
                 {"choices", json::array{}},
                 {"usage", usage_json(usage)}};
  return json::serialize(o);
}

std::string tokenize_body(const std::vector<int32_t>& ids, const ModelInfo& model, bool with_token_strs) {
  json::value strs = nullptr;
  if (with_token_strs) {
    json::array a;
    for (int32_t id : ids) a.push_back(json::string(token_text(*model.tokenizer, id)));
    strs = std::move(a);
  }
  return json::serialize(json::object{{"count", ids.size()},
                                      {"max_model_len", model.max_model_len},
                                      {"tokens", json::value_from(ids)},
                                      {"token_strs", std::move(strs)}});
}

std::string detokenize_body(const std::string& text) {
  return json::serialize(json::object{{"prompt", unicode::sanitize_utf8(text)}});
}

std::string version_body() { return json::serialize(json::object{{"version", TROUPE_VERSION}}); }

std::string models_body(const std::string& model, int64_t created, int64_t max_model_len) {
  json::object m{{"id", model},           {"object", "model"}, {"created", created},
                 {"owned_by", "troupe"},  {"root", model},     {"parent", nullptr},
                 {"max_model_len", max_model_len}};
  return json::serialize(json::object{{"object", "list"}, {"data", json::array{std::move(m)}}});
}

}  // namespace troupe
