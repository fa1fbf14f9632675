// OpenAI response and stream-chunk bodies.
#include <boost/json.hpp>

#include <random>

#include "net/api.h"

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

}  // namespace

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

std::string completion_body(Endpoint ep, const std::string& id, int64_t created, const std::string& model,
                            const std::vector<ChoiceResult>& choices, int n) {
  const bool chat = ep == Endpoint::Chat;
  json::array arr;
  for (size_t i = 0; i < choices.size(); ++i) {
    json::object c{{"index", i}, {"logprobs", nullptr}, {"finish_reason", finish(choices[i].finish_reason)}};
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
  return json::serialize(o);
}

std::string chunk_body(Endpoint ep, const std::string& id, int64_t created, const std::string& model, int index,
                       std::string_view text, std::string_view finish_reason, bool role) {
  const bool chat = ep == Endpoint::Chat;
  json::object c{{"index", index}, {"logprobs", nullptr}, {"finish_reason", finish(finish_reason)}};
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

std::string models_body(const std::string& model, int64_t created, int64_t max_model_len) {
  json::object m{{"id", model},           {"object", "model"}, {"created", created},
                 {"owned_by", "troupe"},  {"root", model},     {"parent", nullptr},
                 {"max_model_len", max_model_len}};
  return json::serialize(json::object{{"object", "list"}, {"data", json::array{std::move(m)}}});
}

}  // namespace troupe
