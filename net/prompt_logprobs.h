#pragma once
// The prompt's logprobs in the two shapes clients ask for them (kept apart from
// api_format.cpp, which builds the bodies these are added to):
//   vLLM's `prompt_logprobs: N`  [null, {"<id>": {"logprob", "rank", "decoded_token"}}, ...]
//   OpenAI's `echo` + `logprobs`  completions' {tokens, token_logprobs, top_logprobs,
//                                 text_offset} covering the prompt, then the generated tokens.
// Input: TokenEvent::prompt_logprobs, one entry per prompt token; the first has no logprob
// (rank 0) and only names the token.
#include <boost/json/value.hpp>

#include <span>
#include <string>

#include "actors/request.h"
#include "net/api.h"

namespace troupe {

// vLLM's list: null first, then per prompt token the token itself and the top n, keyed by id.
boost::json::value prompt_logprobs_json(std::span<const TokenLogprobs> prompt, const Tokenizer& tok, int32_t n);

// Completions' logprobs object for an echoed prompt: token_logprobs and top_logprobs null
// for the first token; text_offset indexes `echo` (the prompt text the choice starts with),
// found by decoding each prefix as the echo was made (skip_special: a text prompt).
boost::json::value echo_logprobs_json(std::span<const TokenLogprobs> prompt, const Tokenizer& tok, int32_t n,
                                      const std::string& echo, bool skip_special);

// Appends the arrays of completions logprobs object `more` to `into` (echo, then generated).
void append_completion_logprobs(boost::json::value& into, const boost::json::value& more);

// Adds vLLM's `prompt_logprobs` to a serialized body: completions per choice (`index`),
// chat at the top level (one prompt for all choices), as vLLM's responses carry them.
std::string add_prompt_logprobs(const std::string& body, Endpoint ep, size_t index, boost::json::value lps);

}  // namespace troupe
