#pragma once
// The request/response vocabulary of the daemon, independent of sockets: parsing OpenAI
// and WebSocket request bodies into engine requests (strictly: wrong types, unknown fields
// and out-of-range values are 400s naming the field), and OpenAI-shaped error bodies.
#include <boost/json/value.hpp>

#include <cstdint>
#include <exception>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "actors/request.h"
#include "chat/tool_parser.h"

namespace troupe {

class Tokenizer;
class ChatTemplate;

// An HTTP-level failure, rendered as {"error": {"message", "type", "param", "code"}}.
struct ApiError : std::exception {
  int status = 400;
  std::string type = "invalid_request_error";
  std::string message;
  std::string param;  // empty: null
  std::string code;   // empty: null
  int retry_after_s = 0;  // > 0: send Retry-After

  ApiError(int status_, std::string message_, std::string param_ = "", std::string type_ = "",
           std::string code_ = "");
  const char* what() const noexcept override { return message.c_str(); }
};

ApiError bad_request(std::string message, std::string param = "");
// The engine's final error event -> the matching HTTP error (400 / 429 / 500).
// The API error for an engine's error event. Admission's invalid-request errors are about
// the prompt (its length, its token ids): `prompt_param` names the field it came from.
ApiError engine_error(const TokenEvent& ev, const std::string& prompt_param = "");
std::string error_body(const ApiError& e);

// What the parsers need to know about the served model.
struct ModelInfo {
  std::string name;             // served model name
  int64_t max_model_len = 0;
  int32_t vocab_size = 0;
  const Tokenizer* tokenizer = nullptr;
  const ChatTemplate* chat = nullptr;
  bool speculative = false;     // the engine drafts (done events then report spec_decode usage)
  ToolParserKind tool_parser = ToolParserKind::None;  // --tool-call-parser (net/tool_calls.h)
};

enum class Endpoint { Completions, Chat };

struct ApiRequest {
  Endpoint endpoint = Endpoint::Completions;
  std::vector<GenerateRequest> choices;  // one engine request per returned choice
  bool stream = false;
  bool include_usage = false;            // stream_options.include_usage
  int n = 1;                             // choices per prompt (choices = prompts x n)
  bool logprobs = false;                 // choices carry `logprobs` (chat: logprobs, completions: logprobs N)
  // Completions' `echo`: each choice's text starts with its prompt (one entry per choice).
  std::vector<std::string> echo;
  // Chat with tools: the output is parsed for tool calls in this format (net/tool_calls.h).
  ToolParserKind tool_parser = ToolParserKind::None;
  std::vector<char> echo_from_ids;       // per choice: the echo is the decoded prompt ids, not its text
  int32_t echo_logprobs = -1;            // echo with logprobs N: `logprobs` covers the prompt first (-1: no)
  int32_t prompt_logprobs = -1;          // vLLM's prompt_logprobs N (-1: not asked)
};

// Limits on what one HTTP request may ask for.
constexpr int kMaxChoices = 16;        // prompts x n
constexpr int kMaxStopStrings = 16;

ApiRequest parse_openai_request(Endpoint ep, std::string_view body, const ModelInfo& model);

// vLLM's /tokenize: {"prompt": text} or {"messages": [...]} (rendered with the chat
// template, add_generation_prompt default true), "add_special_tokens" (default true for a
// prompt; for messages, whether the model has no template to write them), and
// "return_token_strs".
struct TokenizeRequest {
  std::string text;
  bool add_special_tokens = true;
  bool return_token_strs = false;
};
TokenizeRequest parse_tokenize_request(std::string_view body, const ModelInfo& model);
// vLLM's /detokenize: {"tokens": [ids]}, optional "skip_special_tokens" (default false, as
// Hugging Face's decode).
struct DetokenizeRequest {
  std::vector<int32_t> tokens;
  bool skip_special_tokens = false;
};
DetokenizeRequest parse_detokenize_request(std::string_view body, const ModelInfo& model);
std::string tokenize_body(const std::vector<int32_t>& ids, const ModelInfo& model, bool with_token_strs);
std::string detokenize_body(const std::string& text);
std::string version_body();

// One WebSocket text message, classified (docs/websocket.md): ping, cancel or generate, with
// the client's id (null when absent). Invalid: a 400 whose message is `error` (not UTF-8, not
// a JSON object, no known `type`). The generate fields are parsed by parse_ws_generate, once
// the connection may start a request.
struct WsMessage {
  enum class Kind { Invalid, Ping, Cancel, Generate };
  Kind kind = Kind::Invalid;
  boost::json::value id;
  boost::json::object body;
  std::string error;
};
WsMessage parse_ws_message(std::string_view text);

// WebSocket `generate` message (docs/websocket.md). `id` is echoed back verbatim.
struct WsGenerate {
  std::string id_json;  // the client's id, serialized (a string or an integer)
  GenerateRequest req;
};
WsGenerate parse_ws_generate(const boost::json::object& msg, const ModelInfo& model);

// ---- OpenAI response bodies ----
struct ChoiceResult {
  std::string text;
  std::string finish_reason;
  Usage usage;
  boost::json::value logprobs;  // null unless asked for (logprobs_json)
  SloOutcome slo;               // judged only when the request had latency targets
};
// A choice's `logprobs` in the endpoint's shape: chat {"content": [{token, logprob, bytes,
// top_logprobs}]}, completions {tokens, token_logprobs, top_logprobs, text_offset} with
// text offsets counted from `text_offset` (where these tokens' text starts in the choice).
boost::json::value logprobs_json(Endpoint ep, std::span<const TokenLogprobs> lps, const Tokenizer& tok,
                                 size_t text_offset);
// "cmpl-..." / "chatcmpl-..." with 24 random hex digits.
std::string new_response_id(Endpoint ep);
// Sums usage over choices; a prompt shared by n choices counts once.
Usage total_usage(const std::vector<ChoiceResult>& choices, int n);
// The request's SLO attainment (a troupe extension, present only when it had targets):
// {"met", "ttft_ms", "tpot_ms", "ttft_target_ms", "tpot_target_ms"}; over n choices, met
// only if every choice met its targets, with the slowest choice's times.
SloOutcome request_slo(const std::vector<ChoiceResult>& choices);
boost::json::object slo_json(const SloOutcome& slo);
// With a top-level "slo" when the request had latency targets.
std::string completion_body(Endpoint ep, const std::string& id, int64_t created, const std::string& model,
                            const std::vector<ChoiceResult>& choices, int n);
// One SSE chunk's JSON. Chat: `role` adds {"role": "assistant"} to the delta (first chunk).
// finish_reason empty: null. `slo` (the choice's final chunk): a top-level "slo" if judged.
std::string chunk_body(Endpoint ep, const std::string& id, int64_t created, const std::string& model, int index,
                       std::string_view text, std::string_view finish_reason, bool role,
                       boost::json::value logprobs = nullptr, const SloOutcome* slo = nullptr);
// The final usage-only chunk of stream_options.include_usage (choices: []).
std::string usage_chunk_body(Endpoint ep, const std::string& id, int64_t created, const std::string& model,
                             const Usage& usage);
std::string models_body(const std::string& model, int64_t created, int64_t max_model_len);

// Parses a JSON request body; 400 with a clear message on invalid UTF-8 or syntax errors.
boost::json::value parse_json_body(std::string_view body);

}  // namespace troupe
