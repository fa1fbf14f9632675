#pragma once
// Chat messages -> prompt text, through the model's own Jinja chat template
// (tokenizer_config.json `chat_template`, or GGUF `tokenizer.chat_template`), or a plain
// fallback for base models that have none.
#include <boost/json/fwd.hpp>

#include <memory>
#include <optional>
#include <string>

#include "chat/jinja.h"

namespace troupe {

class Tokenizer;

class ChatTemplate {
 public:
  // Finds the template for `model_path` (directory or .gguf). `override_path`, if not empty,
  // is a file holding a template (or a tokenizer_config.json) that wins over the model's.
  // A template this Jinja subset cannot parse is kept as an error that render() reports,
  // so the server still serves completions.
  static ChatTemplate load(const std::string& model_path, const std::string& override_path,
                           const Tokenizer& tok);
  // From template text (empty: the fallback) with the special-token strings it may use.
  static ChatTemplate from_source(const std::string& source, std::string bos_token, std::string eos_token);

  // Renders `messages` (OpenAI chat messages, already validated: objects with string role
  // and string content). `extra` holds additional template variables (chat_template_kwargs).
  // Throws jinja::RaisedError when the template rejects the conversation, TemplateError on a
  // broken template.
  std::string render(const boost::json::array& messages, bool add_generation_prompt,
                     const boost::json::object* extra = nullptr) const;

  // True when the model has a template: it writes BOS itself, so the prompt must be
  // tokenized without adding special tokens. The fallback relies on the tokenizer's BOS.
  bool has_template() const { return tmpl_ != nullptr || !error_.empty(); }
  const std::string& origin() const { return origin_; }  // where the template came from

 private:
  std::shared_ptr<const jinja::Template> tmpl_;
  std::string error_;   // parse error of the model's template, reported on use
  std::string origin_ = "fallback";
  std::string bos_, eos_;
};

}  // namespace troupe
