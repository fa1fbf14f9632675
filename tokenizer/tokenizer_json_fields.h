#pragma once
// Fields of Hugging Face tokenizer.json / tokenizer_config.json files, read the same way by
// the tokenizer (load_tokenizer_json) and by the vocabulary export (model/vocab_io.h).
#include <boost/json.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace troupe::tokenizer_json {

// A field that is present and not null, else nullptr.
const boost::json::value* get(const boost::json::object& o, std::string_view key);

// bos_token / eos_token of tokenizer_config.json: "text", {"content": "text", ...}, or null.
std::optional<std::string> config_token(const boost::json::object& cfg, std::string_view key);

// One entry of model.merges: "left right" (older files) or ["left", "right"]; nullopt when
// it is neither.
std::optional<std::pair<std::string, std::string>> merge_pair(const boost::json::value& m);

// The special token a TemplateProcessing post-processor (alone or in a Sequence) puts in
// front of a single text: nullopt without such a template, "" when the text comes first.
std::optional<std::string> template_prefix(const boost::json::value& post_processor);

}  // namespace troupe::tokenizer_json
