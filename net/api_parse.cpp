// Request bodies -> engine requests. Every rejection is a 400 naming the field, produced
// here on the network thread, so a bad request never reaches the engine.
#include <boost/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <mutex>
#include <optional>
#include <unordered_set>

#include "chat/chat_template.h"
#include "core/error.h"
#include "net/api.h"
#include "net/tool_calls.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace troupe {

namespace json = boost::json;

ApiError::ApiError(int status_, std::string message_, std::string param_, std::string type_, std::string code_)
    : status(status_), message(std::move(message_)), param(std::move(param_)), code(std::move(code_)) {
  if (!type_.empty()) type = std::move(type_);
  else if (status >= 500) type = "server_error";
}

ApiError bad_request(std::string message, std::string param) {
  return ApiError(400, std::move(message), std::move(param));
}

ApiError engine_error(const TokenEvent& ev, const std::string& prompt_param) {
  if (ev.error_kind == ErrorKind::Overloaded) {
    ApiError e(429, ev.error, "", "rate_limit_error", "overloaded");
    e.retry_after_s = 1;
    return e;
  }
  if (ev.error_kind == ErrorKind::InvalidRequest) return ApiError(400, ev.error, prompt_param);
  return ApiError(500, ev.error.empty() ? "internal error" : ev.error, "", "server_error");
}

std::string error_body(const ApiError& e) {
  json::object err{{"message", e.message},
                   {"type", e.type},
                   {"param", e.param.empty() ? json::value(nullptr) : json::value(e.param)},
                   {"code", e.code.empty() ? json::value(nullptr) : json::value(e.code)}};
  return json::serialize(json::object{{"error", std::move(err)}});
}

json::value parse_json_body(std::string_view body) {
  if (body.empty()) throw bad_request("the request body is empty; expected a JSON object");
  if (!unicode::valid_utf8(body)) throw bad_request("the request body is not valid UTF-8");
  boost::system::error_code ec;
  json::parse_options opt;
  opt.max_depth = 64;
  json::value v = json::parse(body, ec, {}, opt);
  if (ec) throw bad_request("the request body is not valid JSON: " + ec.message());
  return v;
}

namespace {

const char* kind_name(const json::value& v) {
  switch (v.kind()) {
    case json::kind::null: return "null";
    case json::kind::bool_: return "a boolean";
    case json::kind::int64:
    case json::kind::uint64: return "an integer";
    case json::kind::double_: return "a number";
    case json::kind::string: return "a string";
    case json::kind::array: return "an array";
    case json::kind::object: return "an object";
  }
  return "?";
}

[[noreturn]] void wrong_type(std::string_view key, const char* want, const json::value& got) {
  throw bad_request("'" + std::string(key) + "' must be " + want + ", got " + kind_name(got), std::string(key));
}

// Typed optional fields: absent or null -> nullopt.
const json::value* field(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v && !v->is_null() ? v : nullptr;
}

std::optional<double> get_number(const json::object& o, std::string_view key) {
  const json::value* v = field(o, key);
  if (!v) return std::nullopt;
  if (v->is_int64()) return double(v->get_int64());
  if (v->is_uint64()) return double(v->get_uint64());
  if (v->is_double()) return v->get_double();
  wrong_type(key, "a number", *v);
}

std::optional<int64_t> get_integer(const json::object& o, std::string_view key) {
  const json::value* v = field(o, key);
  if (!v) return std::nullopt;
  if (v->is_int64()) return v->get_int64();
  if (v->is_uint64()) return std::numeric_limits<int64_t>::max();  // clamped by range checks
  if (v->is_double()) {  // JavaScript clients may send 16.0
    const double d = v->get_double();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9e15) return int64_t(d);
    throw bad_request("'" + std::string(key) + "' must be an integer, got " + json::serialize(*v), std::string(key));
  }
  wrong_type(key, "an integer", *v);
}

std::optional<bool> get_bool(const json::object& o, std::string_view key) {
  const json::value* v = field(o, key);
  if (!v) return std::nullopt;
  if (!v->is_bool()) wrong_type(key, "a boolean", *v);
  return v->get_bool();
}

float to_float(double d) {
  // Out-of-float-range values become inf, which validate() rejects with the field's name.
  return std::fabs(d) > double(std::numeric_limits<float>::max()) ? (d > 0 ? INFINITY : -INFINITY) : float(d);
}

int32_t clamp_i32(int64_t v) {
  return int32_t(std::clamp<int64_t>(v, std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max()));
}

std::vector<int32_t> token_ids(const json::value& v, std::string_view key, const ModelInfo& m) {
  if (!v.is_array()) wrong_type(key, "an array of token ids", v);
  std::vector<int32_t> ids;
  for (const auto& x : v.get_array()) {
    if (!x.is_int64()) wrong_type(key, "an array of integers", x);
    const int64_t id = x.get_int64();
    if (id < 0 || id >= m.vocab_size)
      throw bad_request("'" + std::string(key) + "' contains token id " + std::to_string(id) +
                            ", outside the vocabulary [0, " + std::to_string(m.vocab_size) + ")",
                        std::string(key));
    ids.push_back(int32_t(id));
  }
  return ids;
}

// Keys both OpenAI endpoints and the WebSocket protocol share.
const std::unordered_set<std::string_view> kSamplingKeys = {
    "max_tokens", "temperature", "top_p", "top_k", "min_p", "presence_penalty", "frequency_penalty",
    "repetition_penalty", "seed", "stop", "stop_token_ids", "ignore_eos", "priority", "min_tokens", "logit_bias",
    "slo",
    // structured output (constraint_of)
    "response_format", "guided_json", "guided_regex", "guided_choice", "guided_grammar", "grammar", "json_schema"};
const std::unordered_set<std::string_view> kOpenAiKeys = {
    "model", "n", "stream", "stream_options", "user", "logprobs", "top_logprobs",
    "best_of", "skip_special_tokens", "include_stop_str_in_output", "prompt_logprobs"};
const std::unordered_set<std::string_view> kCompletionKeys = {"prompt", "echo", "suffix"};
const std::unordered_set<std::string_view> kChatKeys = {
    "messages", "max_completion_tokens", "tools", "tool_choice", "parallel_tool_calls",
    "chat_template_kwargs", "add_generation_prompt", "store", "metadata", "service_tier"};

using KeySets = std::initializer_list<const std::unordered_set<std::string_view>*>;

bool known_key(std::string_view key, KeySets sets) {
  for (const auto* s : sets)
    if (s->count(key)) return true;
  return false;
}

// The WebSocket protocol is troupe's own: a field it does not define is a mistake.
void reject_unknown(const json::object& o, KeySets sets) {
  for (const auto& kv : o)
    if (!known_key(kv.key(), sets))
      throw bad_request("Unrecognized request argument supplied: " + std::string(kv.key()), std::string(kv.key()));
}

// OpenAI requests: as vLLM does, a field this server does not know is ignored (clients
// written for vLLM or llama.cpp send their own extras) and logged once per field name.
// Fields it knows but cannot honour still get a 400 (only_default and friends).
void ignore_unknown(const json::object& o, KeySets sets) {
  // Bounded, so a client inventing names cannot grow it: past the bound, no more warnings.
  constexpr size_t kMaxWarned = 256;
  static std::mutex mu;
  static std::unordered_set<std::string> warned;
  for (const auto& kv : o) {
    if (known_key(kv.key(), sets)) continue;
    std::lock_guard<std::mutex> lock(mu);
    if (warned.size() < kMaxWarned && warned.emplace(kv.key()).second)
      spdlog::warn("ignoring unknown request field '{}' (logged once per field name)", std::string_view(kv.key()));
  }
}

// A parameter we accept only at its default (the engine has no such feature); a client
// asking for more gets a clear 400 instead of silently different behaviour.
void only_default(const json::object& o, std::string_view key, const json::value& allowed, const char* why) {
  const json::value* v = field(o, key);
  if (v && *v != allowed && !(v->is_int64() && allowed.is_int64() && v->get_int64() == allowed.get_int64()))
    throw bad_request("'" + std::string(key) + "' " + why, std::string(key));
}

// OpenAI's logit_bias: {"token id": bias}, the id as a decimal string.
std::vector<TokenBias> logit_bias(const json::value& v, const ModelInfo& m) {
  if (!v.is_object()) wrong_type("logit_bias", "an object mapping token ids to biases", v);
  std::vector<TokenBias> out;
  for (const auto& kv : v.get_object()) {
    const std::string key(kv.key());
    int64_t id = -1;
    const auto [end, ec] = std::from_chars(key.data(), key.data() + key.size(), id);
    if (ec != std::errc() || end != key.data() + key.size() || id < 0 || id >= m.vocab_size)
      throw bad_request("'logit_bias' keys must be token ids in [0, " + std::to_string(m.vocab_size) + "), got '" +
                            key + "'",
                        "logit_bias");
    if (!kv.value().is_number()) wrong_type("logit_bias", "an object mapping token ids to numbers", kv.value());
    out.push_back({int32_t(id), to_float(kv.value().to_number<double>())});
  }
  return out;
}

// OpenAI's response_format: text (no constraint), json_object, json_schema.
std::optional<grammar::ConstraintSpec> response_format(const json::value& rf) {
  if (!rf.is_object()) wrong_type("response_format", "an object", rf);
  const json::object& o = rf.get_object();
  const json::value* type = o.if_contains("type");
  if (!type || !type->is_string())
    throw bad_request("'response_format' needs a 'type': text, json_object or json_schema", "response_format");
  if (*type == json::value("text")) return std::nullopt;
  if (*type == json::value("json_object")) return grammar::ConstraintSpec{"json_object", ""};
  if (*type != json::value("json_schema"))
    throw bad_request("'response_format' type must be text, json_object or json_schema, got " +
                          json::serialize(*type), "response_format");
  const json::value* js = o.if_contains("json_schema");
  if (!js || !js->is_object())
    throw bad_request("'response_format' of type json_schema needs a 'json_schema' object", "response_format");
  const json::object& j = js->get_object();
  if (const json::value* n = j.if_contains("name"); n && !n->is_string())
    wrong_type("response_format.json_schema.name", "a string", *n);
  if (const json::value* st = j.if_contains("strict"); st && !st->is_bool() && !st->is_null())
    wrong_type("response_format.json_schema.strict", "a boolean", *st);
  const json::value* schema = j.if_contains("schema");
  // No schema: any JSON object, as OpenAI's json_object.
  if (!schema) return grammar::ConstraintSpec{"json_object", ""};
  if (!schema->is_object()) wrong_type("response_format.json_schema.schema", "an object", *schema);
  return grammar::ConstraintSpec{"json_schema", json::serialize(*schema)};
}

// The output constraint, from whichever ecosystem's field carries it: OpenAI's
// response_format, vLLM's guided_*, llama.cpp's grammar / json_schema. At most one; it is
// compiled here (cached) so a bad schema, regex or grammar is a 400 naming the problem.
grammar::ConstraintSpec constraint_of(const json::object& o) {
  std::vector<std::pair<std::string, grammar::ConstraintSpec>> found;
  if (const json::value* rf = field(o, "response_format"))
    if (auto c = response_format(*rf)) found.emplace_back("response_format", std::move(*c));
  for (const char* key : {"guided_json", "json_schema"}) {
    const json::value* v = field(o, key);
    if (!v) continue;
    if (v->is_string()) {
      found.emplace_back(key, grammar::ConstraintSpec{"json_schema", std::string(v->get_string())});
    } else if (v->is_object()) {
      found.emplace_back(key, grammar::ConstraintSpec{"json_schema", json::serialize(*v)});
    } else {
      wrong_type(key, "a JSON schema (an object or a string)", *v);
    }
  }
  for (auto [key, kind] : {std::pair{"guided_regex", "regex"}, {"guided_grammar", "gbnf"}, {"grammar", "gbnf"}}) {
    const json::value* v = field(o, key);
    if (!v) continue;
    if (!v->is_string()) wrong_type(key, "a string", *v);
    found.emplace_back(key, grammar::ConstraintSpec{kind, std::string(v->get_string())});
  }
  if (const json::value* v = field(o, "guided_choice")) {
    if (!v->is_array() || v->get_array().empty()) wrong_type("guided_choice", "a non-empty array of strings", *v);
    for (const auto& x : v->get_array())
      if (!x.is_string()) wrong_type("guided_choice", "a non-empty array of strings", x);
    found.emplace_back("guided_choice", grammar::ConstraintSpec{"choice", json::serialize(*v)});
  }
  if (found.empty()) return {};
  if (found.size() > 1)
    throw bad_request("only one output constraint may be given, got '" + found[0].first + "' and '" +
                          found[1].first + "'",
                      found[1].first);
  try {
    grammar::compile(found[0].second);
  } catch (const Error& e) {
    throw bad_request("'" + found[0].first + "': " + e.what(), found[0].first);
  }
  return found[0].second;
}

SamplingParams sampling(const json::object& o, const ModelInfo& m, int64_t default_max_tokens) {
  SamplingParams p;
  if (auto v = get_number(o, "temperature")) p.temperature = to_float(*v);
  if (auto v = get_number(o, "top_p")) p.top_p = to_float(*v);
  if (auto v = get_integer(o, "top_k")) p.top_k = clamp_i32(*v);
  if (auto v = get_number(o, "min_p")) p.min_p = to_float(*v);
  if (auto v = get_number(o, "presence_penalty")) p.presence_penalty = to_float(*v);
  if (auto v = get_number(o, "frequency_penalty")) p.frequency_penalty = to_float(*v);
  if (auto v = get_number(o, "repetition_penalty")) p.repetition_penalty = to_float(*v);
  if (auto v = get_integer(o, "seed")) p.seed = uint64_t(*v);
  if (auto v = get_bool(o, "ignore_eos")) p.ignore_eos = *v;
  int64_t max_tokens = default_max_tokens;
  for (const char* key : {"max_tokens", "max_completion_tokens"}) {
    if (auto v = get_integer(o, key)) {
      if (*v < 1) throw bad_request(std::string("'") + key + "' must be at least 1, got " + std::to_string(*v), key);
      // A client's own value past the model length is an error, as in vLLM (admission
      // checks it again against the tokenized prompt); only defaults are capped.
      if (*v >= m.max_model_len)
        throw bad_request(std::string("'") + key + "' is " + std::to_string(*v) + ", but this model's maximum context length is " +
                              std::to_string(m.max_model_len) + " tokens, prompt included",
                          key);
      max_tokens = *v;
    }
  }
  // Defaults are capped by the model length here and by what the prompt leaves in admission.
  p.max_tokens = int32_t(std::min<int64_t>(max_tokens, std::max<int64_t>(m.max_model_len, 1)));
  if (auto v = get_integer(o, "min_tokens")) p.min_tokens = clamp_i32(*v);
  if (const json::value* lb = field(o, "logit_bias")) p.logit_bias = logit_bias(*lb, m);
  if (const json::value* s = field(o, "stop")) {
    if (s->is_string()) {
      p.stop.emplace_back(s->get_string());
    } else if (s->is_array()) {
      if (s->get_array().size() > size_t(kMaxStopStrings))
        throw bad_request("'stop' may hold at most " + std::to_string(kMaxStopStrings) + " strings", "stop");
      for (const auto& x : s->get_array()) {
        if (!x.is_string()) wrong_type("stop", "a string or an array of strings", x);
        p.stop.emplace_back(x.get_string());
      }
    } else {
      wrong_type("stop", "a string or an array of strings", *s);
    }
  }
  if (const json::value* ids = field(o, "stop_token_ids")) p.stop_token_ids = token_ids(*ids, "stop_token_ids", m);
  p.constraint = constraint_of(o);
  try {
    p.validate();
  } catch (const Error& e) {
    std::string msg = e.what();
    std::string param = msg.substr(0, msg.find(' '));
    throw bad_request(msg, param);
  }
  return p;
}

// How many top logprobs per token the client wants (0: only the chosen token's), or none.
// Chat: `logprobs` (a boolean) and `top_logprobs` (0..20, needs logprobs); completions:
// `logprobs` (0..20).
std::optional<int32_t> requested_logprobs(const json::object& o, bool chat) {
  constexpr int64_t kMax = 20;  // OpenAI's top_logprobs limit (and vLLM's default max_logprobs)
  auto in_range = [&](const char* key, int64_t v) {
    if (v < 0 || v > kMax)
      throw bad_request(std::string("'") + key + "' must be in [0, " + std::to_string(kMax) + "], got " +
                            std::to_string(v), key);
    return int32_t(v);
  };
  if (!chat) {
    const auto n = get_integer(o, "logprobs");
    return n ? std::optional<int32_t>(in_range("logprobs", *n)) : std::nullopt;
  }
  const bool on = get_bool(o, "logprobs").value_or(false);
  const auto top = get_integer(o, "top_logprobs");
  if (top && !on) throw bad_request("'top_logprobs' requires 'logprobs' to be true", "top_logprobs");
  if (!on) return std::nullopt;
  return top ? in_range("top_logprobs", *top) : 0;
}

// vLLM's prompt_logprobs: null or absent (none), or N alternatives in [0, 20].
std::optional<int32_t> requested_prompt_logprobs(const json::object& o) {
  const auto n = get_integer(o, "prompt_logprobs");
  if (!n) return std::nullopt;
  if (*n < 0 || *n > 20) throw bad_request("'prompt_logprobs' must be in [0, 20], got " + std::to_string(*n), "prompt_logprobs");
  return int32_t(*n);
}

int32_t priority(const json::object& o) {
  auto v = get_integer(o, "priority");
  if (!v) return 0;
  if (*v < -1'000'000 || *v > 1'000'000) throw bad_request("'priority' must be in [-1000000, 1000000]", "priority");
  return int32_t(*v);
}

// `slo`: this request's own latency targets, {"ttft_ms", "tpot_ms"} (each optional; the
// engine checks them against the floors the server sets).
void request_slo(const json::object& o, GenerateRequest& g) {
  const json::value* v = field(o, "slo");
  if (!v) return;
  if (!v->is_object()) wrong_type("slo", "an object", *v);
  const json::object& s = v->get_object();
  for (const auto& kv : s)
    if (kv.key() != "ttft_ms" && kv.key() != "tpot_ms")
      throw bad_request("'slo' takes 'ttft_ms' and 'tpot_ms', not '" + std::string(kv.key()) + "'", "slo");
  auto ms = [&](std::string_view key) {
    const std::string name = "slo." + std::string(key);
    const json::value* f = field(s, key);
    if (f && !f->is_number()) wrong_type(name, "a number", *f);
    auto x = get_number(s, key);
    if (x && !(*x > 0 && *x <= 1e9))
      throw bad_request("'slo." + std::string(key) + "' must be a number of milliseconds in (0, 1e9]", "slo");
    return x.value_or(0);
  };
  g.slo_ttft_ms = ms("ttft_ms");
  g.slo_tpot_ms = ms("tpot_ms");
}

void check_model(const json::object& o, const ModelInfo& m) {
  const json::value* v = field(o, "model");
  if (!v) return;
  if (!v->is_string()) wrong_type("model", "a string", *v);
  if (v->get_string() != m.name)
    throw ApiError(404, "The model `" + std::string(v->get_string()) + "` does not exist. This server serves `" +
                            m.name + "`.",
                   "model", "invalid_request_error", "model_not_found");
}

// OpenAI chat content: a string, or an array of {"type": "text", "text": ...} parts.
std::string message_content(const json::value& c, size_t i) {
  const std::string key = "messages[" + std::to_string(i) + "].content";
  if (c.is_string()) return std::string(c.get_string());
  if (!c.is_array()) wrong_type(key, "a string or an array of content parts", c);
  std::string out;
  for (const auto& part : c.get_array()) {
    const json::object* po = part.if_object();
    const json::value* type = po ? po->if_contains("type") : nullptr;
    const json::value* text = po ? po->if_contains("text") : nullptr;
    if (!type || !type->is_string() || type->get_string() != "text" || !text || !text->is_string())
      throw bad_request(key + ": only {\"type\": \"text\", \"text\": ...} parts are supported", key);
    out += std::string(text->get_string());
  }
  return out;
}

// Validates chat messages and normalizes them for the template (content always a string).
json::array normalize_messages(const json::value& v) {
  if (!v.is_array()) wrong_type("messages", "an array", v);
  const auto& in = v.get_array();
  if (in.empty()) throw bad_request("'messages' must not be empty", "messages");
  static const std::unordered_set<std::string_view> kRoles = {"system", "developer", "user", "assistant", "tool"};
  static const std::unordered_set<std::string_view> kKeys = {"role", "content", "name", "tool_calls", "tool_call_id",
                                                             "reasoning_content"};
  json::array out;
  for (size_t i = 0; i < in.size(); ++i) {
    const std::string at = "messages[" + std::to_string(i) + "]";
    if (!in[i].is_object()) wrong_type(at, "an object", in[i]);
    const auto& m = in[i].get_object();
    for (const auto& kv : m)
      if (!kKeys.count(kv.key())) throw bad_request(at + " has an unknown field '" + std::string(kv.key()) + "'", at);
    const json::value* role = m.if_contains("role");
    if (!role || !role->is_string() || !kRoles.count(role->get_string()))
      throw bad_request(at + ".role must be one of system, developer, user, assistant, tool", at + ".role");
    json::object n = m;
    const json::value* content = m.if_contains("content");
    if (!content || content->is_null()) {
      if (role->get_string() != "assistant") throw bad_request(at + ".content is required", at + ".content");
      n["content"] = "";
    } else {
      n["content"] = message_content(*content, i);
    }
    if (n.contains("name") && !n["name"].is_string()) wrong_type(at + ".name", "a string", n["name"]);
    out.push_back(std::move(n));
  }
  return out;
}

// What a template reads from the request beyond role and content, checked for shape before
// rendering: a wrong type there is the client's error (400), not a template failure (500).
void check_template_inputs(const json::array& msgs) {
  for (size_t i = 0; i < msgs.size(); ++i) {
    const json::value* calls = msgs[i].get_object().if_contains("tool_calls");
    if (!calls || calls->is_null()) continue;
    const std::string at = "messages[" + std::to_string(i) + "].tool_calls";
    if (!calls->is_array()) wrong_type(at, "an array", *calls);
    for (size_t j = 0; j < calls->get_array().size(); ++j) {
      const json::value& c = calls->get_array()[j];
      const std::string cat = at + "[" + std::to_string(j) + "]";
      const json::value* fn = c.is_object() ? c.get_object().if_contains("function") : nullptr;
      if (!fn || !fn->is_object()) throw bad_request(cat + " must be an object with a 'function' object", cat);
      const json::value* name = fn->get_object().if_contains("name");
      if (!name || !name->is_string()) throw bad_request(cat + ".function.name must be a string", cat + ".function.name");
    }
  }
}

// Renders a chat conversation to the prompt text. Tokenization and the length check happen
// once, in admission (actors/admission.cpp); a template writes its own BOS, so the text is
// tokenized without special tokens when the model has one.
std::string chat_prompt(const json::value& messages, const json::object& o, const ModelInfo& m,
                                 bool add_generation_prompt) {
  json::array msgs = normalize_messages(messages);
  const json::object* kwargs = nullptr;
  if (const json::value* k = field(o, "chat_template_kwargs")) {
    if (!k->is_object()) wrong_type("chat_template_kwargs", "an object", *k);
    kwargs = &k->get_object();
  }
  check_template_inputs(msgs);
  tool_call_arguments_for_template(msgs);
  // The request's tools are the template's `tools` variable (over one in chat_template_kwargs).
  json::object with_tools;
  if (const json::value* tools = template_tools(o)) {
    if (kwargs) with_tools = *kwargs;
    with_tools["tools"] = *tools;
    kwargs = &with_tools;
  }
  std::string text;
  try {
    text = m.chat->render(msgs, add_generation_prompt, kwargs);
  } catch (const jinja::RaisedError& e) {
    throw bad_request(std::string("the chat template rejected the messages: ") + e.what(), "messages");
  } catch (const jinja::TemplateError& e) {
    // With request-supplied template variables, a failure is most likely theirs.
    if (kwargs) throw bad_request(std::string("the chat template failed on chat_template_kwargs: ") + e.what(),
                                  "chat_template_kwargs");
    throw ApiError(500, e.what(), "", "server_error");
  }
  if (text.empty()) throw bad_request("the messages render to an empty prompt", "messages");
  return text;
}

// Completions `prompt`: a string, an array of strings, an array of token ids, or an array
// of token-id arrays. Each becomes one engine request.
std::vector<GenerateRequest> completion_prompts(const json::object& o, const ModelInfo& m) {
  const json::value* p = field(o, "prompt");
  if (!p) throw bad_request("'prompt' is required", "prompt");
  std::vector<GenerateRequest> out;
  auto add_text = [&](const json::value& s) {
    if (s.get_string().empty()) throw bad_request("'prompt' must not be empty", "prompt");
    GenerateRequest r;
    r.prompt = std::string(s.get_string());
    out.push_back(std::move(r));
  };
  auto add_ids = [&](const json::value& a) {
    GenerateRequest r;
    r.prompt_ids = token_ids(a, "prompt", m);
    if (r.prompt_ids.empty()) throw bad_request("'prompt' must not be empty", "prompt");
    out.push_back(std::move(r));
  };
  if (p->is_string()) {
    add_text(*p);
  } else if (p->is_array()) {
    const auto& a = p->get_array();
    if (a.empty()) throw bad_request("'prompt' must not be empty", "prompt");
    if (a[0].is_int64()) {
      add_ids(*p);
    } else {
      if (a.size() > size_t(kMaxChoices))
        throw bad_request("at most " + std::to_string(kMaxChoices) + " prompts per request", "prompt");
      for (const auto& e : a) {
        if (e.is_string()) add_text(e);
        else if (e.is_array()) add_ids(e);
        else wrong_type("prompt", "a string, an array of strings or an array of token ids", e);
      }
    }
  } else {
    wrong_type("prompt", "a string, an array of strings or an array of token ids", *p);
  }
  return out;
}

}  // namespace

ApiRequest parse_openai_request(Endpoint ep, std::string_view body, const ModelInfo& m) {
  json::value v = parse_json_body(body);
  if (!v.is_object()) throw bad_request(std::string("the request body must be a JSON object, got ") + kind_name(v));
  const json::object& o = v.get_object();
  const bool chat = ep == Endpoint::Chat;
  ignore_unknown(o, {&kSamplingKeys, &kOpenAiKeys, chat ? &kChatKeys : &kCompletionKeys});
  check_model(o, m);

  ApiRequest r;
  r.endpoint = ep;
  r.n = 1;
  r.stream = get_bool(o, "stream").value_or(false);
  if (const json::value* so = field(o, "stream_options")) {
    if (!so->is_object()) wrong_type("stream_options", "an object", *so);
    if (!r.stream) throw bad_request("'stream_options' is only allowed when 'stream' is true", "stream_options");
    for (const auto& kv : so->get_object())
      if (kv.key() != "include_usage")
        throw bad_request("Unrecognized stream_options field: " + std::string(kv.key()), "stream_options");
    r.include_usage = get_bool(so->get_object(), "include_usage").value_or(false);
  }

  const std::optional<int32_t> logprobs = requested_logprobs(o, chat);
  const bool echo = !chat && get_bool(o, "echo").value_or(false);
  const std::optional<int32_t> prompt_lps = requested_prompt_logprobs(o);

  // Accepted only at their defaults: features the engine does not have.
  only_default(o, "skip_special_tokens", json::value(true), "can only be true on this server");
  only_default(o, "include_stop_str_in_output", json::value(false), "is not supported by this server");
  if (const json::value* s = field(o, "suffix"); s && !(s->is_string() && s->get_string().empty()))
    throw bad_request("'suffix' is not supported by this server", "suffix");

  const int64_t n = get_integer(o, "n").value_or(1);
  if (n < 1 || n > kMaxChoices) throw bad_request("'n' must be in [1, " + std::to_string(kMaxChoices) + "]", "n");
  if (auto b = get_integer(o, "best_of"); b && *b != n) throw bad_request("'best_of' must equal 'n'", "best_of");

  // Completions default to 16 tokens (OpenAI); chat runs to the end of the context.
  SamplingParams params = sampling(o, m, chat ? m.max_model_len : 16);
  if (chat) {
    ToolRequest tools = parse_tool_choice(o, m);
    r.tool_parser = tools.parser;
    if (!tools.constraint.empty()) {
      if (!params.constraint.empty())
        throw bad_request("'tool_choice' forcing a call cannot be combined with another output constraint "
                          "(response_format, guided_*, grammar)", "tool_choice");
      params.constraint = std::move(tools.constraint);
    }
  }
  if (logprobs) {
    params.return_logprobs = true;
    params.logprobs = *logprobs;
    r.logprobs = true;
  }
  // The engine computes the prompt's logprobs once, with as many alternatives as either
  // field shows (echo's logprobs show the generated tokens' N).
  r.echo_logprobs = echo && logprobs ? *logprobs : -1;
  r.prompt_logprobs = prompt_lps.value_or(-1);
  params.prompt_logprobs = std::max(r.prompt_logprobs, r.echo_logprobs);
  const int32_t prio = priority(o);
  std::vector<GenerateRequest> prompts;
  if (chat) {
    const json::value* msgs = field(o, "messages");
    if (!msgs) throw bad_request("'messages' is required", "messages");
    GenerateRequest g;
    g.prompt = chat_prompt(*msgs, o, m, get_bool(o, "add_generation_prompt").value_or(true));
    g.add_special_tokens = !m.chat->has_template();
    prompts.push_back(std::move(g));
  } else {
    prompts = completion_prompts(o, m);
  }
  r.n = int(n);
  if (int64_t(prompts.size()) * n > kMaxChoices)
    throw bad_request("prompts x n may be at most " + std::to_string(kMaxChoices), "n");
  for (auto& p : prompts) {
    for (int64_t i = 0; i < n; ++i) {
      GenerateRequest g = p;
      g.params = params;
      // n > 1 with a fixed seed must still give n different samples.
      if (g.params.seed && i > 0) g.params.seed = *g.params.seed + uint64_t(i);
      g.priority = prio;
      request_slo(o, g);
      g.strict_max_tokens = field(o, "max_tokens") || field(o, "max_completion_tokens");
      if (echo) r.echo.push_back(g.prompt.empty() ? m.tokenizer->decode(g.prompt_ids, false) : g.prompt);
      if (echo) r.echo_from_ids.push_back(g.prompt.empty());
      r.choices.push_back(std::move(g));
    }
  }
  return r;
}

TokenizeRequest parse_tokenize_request(std::string_view body, const ModelInfo& m) {
  static const std::unordered_set<std::string_view> kKeys = {
      "model", "prompt", "messages", "add_special_tokens", "add_generation_prompt", "chat_template_kwargs",
      "return_token_strs"};
  json::value v = parse_json_body(body);
  if (!v.is_object()) throw bad_request(std::string("the request body must be a JSON object, got ") + kind_name(v));
  const json::object& o = v.get_object();
  ignore_unknown(o, {&kKeys});
  check_model(o, m);
  TokenizeRequest r;
  const json::value* prompt = field(o, "prompt");
  const json::value* messages = field(o, "messages");
  if ((prompt != nullptr) == (messages != nullptr))
    throw bad_request("exactly one of 'prompt' or 'messages' is required", prompt ? "messages" : "prompt");
  if (prompt) {
    if (!prompt->is_string()) wrong_type("prompt", "a string", *prompt);
    r.text = std::string(prompt->get_string());
  } else {
    r.text = chat_prompt(*messages, o, m, get_bool(o, "add_generation_prompt").value_or(true));
    r.add_special_tokens = !m.chat->has_template();
  }
  r.add_special_tokens = get_bool(o, "add_special_tokens").value_or(r.add_special_tokens);
  r.return_token_strs = get_bool(o, "return_token_strs").value_or(false);
  return r;
}

DetokenizeRequest parse_detokenize_request(std::string_view body, const ModelInfo& m) {
  static const std::unordered_set<std::string_view> kKeys = {"model", "tokens", "skip_special_tokens"};
  json::value v = parse_json_body(body);
  if (!v.is_object()) throw bad_request(std::string("the request body must be a JSON object, got ") + kind_name(v));
  const json::object& o = v.get_object();
  ignore_unknown(o, {&kKeys});
  check_model(o, m);
  const json::value* tokens = field(o, "tokens");
  if (!tokens) throw bad_request("'tokens' is required", "tokens");
  return {token_ids(*tokens, "tokens", m), get_bool(o, "skip_special_tokens").value_or(false)};
}

WsMessage parse_ws_message(std::string_view text) {
  WsMessage msg;
  if (!unicode::valid_utf8(text)) {
    msg.error = "message is not valid UTF-8";
    return msg;
  }
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) {
    msg.error = "message must be a JSON object";
    return msg;
  }
  msg.body = std::move(v.get_object());
  if (const json::value* id = msg.body.if_contains("id")) msg.id = *id;
  const json::value* type = msg.body.if_contains("type");
  if (!type || !type->is_string()) {
    msg.error = "'type' must be \"generate\", \"cancel\" or \"ping\"";
    return msg;
  }
  const std::string_view t = type->get_string();
  if (t == "ping") msg.kind = WsMessage::Kind::Ping;
  else if (t == "cancel") msg.kind = WsMessage::Kind::Cancel;
  else if (t == "generate") msg.kind = WsMessage::Kind::Generate;
  else msg.error = "unknown message type '" + std::string(t) + "'";
  return msg;
}

WsGenerate parse_ws_generate(const json::object& o, const ModelInfo& m) {
  static const std::unordered_set<std::string_view> kWsKeys = {"type", "id", "prompt", "prompt_ids", "messages",
                                                              "chat_template_kwargs", "add_generation_prompt"};
  reject_unknown(o, {&kSamplingKeys, &kWsKeys});
  WsGenerate g;
  const json::value* id = o.if_contains("id");
  if (!id || !(id->is_string() || id->is_int64()))
    throw bad_request("'id' is required and must be a string or an integer", "id");
  if (id->is_string() && (id->get_string().empty() || id->get_string().size() > 256))
    throw bad_request("'id' must be 1 to 256 characters", "id");
  g.id_json = json::serialize(*id);
  const int sources = int(field(o, "prompt") != nullptr) + int(field(o, "prompt_ids") != nullptr) +
                      int(field(o, "messages") != nullptr);
  if (sources != 1) throw bad_request("exactly one of 'prompt', 'prompt_ids' or 'messages' is required", "prompt");
  if (const json::value* p = field(o, "prompt")) {
    if (!p->is_string()) wrong_type("prompt", "a string", *p);
    if (p->get_string().empty()) throw bad_request("'prompt' must not be empty", "prompt");
    g.req.prompt = std::string(p->get_string());
  } else if (const json::value* ids = field(o, "prompt_ids")) {
    g.req.prompt_ids = token_ids(*ids, "prompt_ids", m);
    if (g.req.prompt_ids.empty()) throw bad_request("'prompt_ids' must not be empty", "prompt_ids");
  } else {
    g.req.prompt = chat_prompt(*field(o, "messages"), o, m, get_bool(o, "add_generation_prompt").value_or(true));
    g.req.add_special_tokens = !m.chat->has_template();
  }
  g.req.params = sampling(o, m, field(o, "messages") ? m.max_model_len : 16);
  g.req.priority = priority(o);
  request_slo(o, g.req);
  return g;
}

}  // namespace troupe
