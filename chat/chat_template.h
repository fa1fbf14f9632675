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
  // Finds the template for `model_path` (directory or .gguf). `override_spec`, if not empty,
  // wins over the model's: a file holding a template (or a tokenizer_config.json), or the
  // template text itself. Throws troupe::Error naming the origin and the line and column
  // when the template does not parse or fails on a probe conversation (from_source).
  static ChatTemplate load(const std::string& model_path, const std::string& override_spec,
                           const Tokenizer& tok);
  // From template text (empty: the fallback) with the special-token strings it may use;
  // `origin` names it in errors. Validated as load() says.
  static ChatTemplate from_source(const std::string& source, std::string bos_token, std::string eos_token,
                                  const std::string& origin = "template");

  // Renders `messages` (OpenAI chat messages, already validated: objects with string role
  // and string content). `extra` holds additional template variables (chat_template_kwargs).
  // Throws jinja::RaisedError when the template rejects the conversation, TemplateError when
  // it fails on this one (validation at load makes that rare).
  std::string render(const boost::json::array& messages, bool add_generation_prompt,
                     const boost::json::object* extra = nullptr) const;

  // True when the model has a template: it writes BOS itself, so the prompt must be
  // tokenized without adding special tokens. The fallback relies on the tokenizer's BOS.
  bool has_template() const { return tmpl_ != nullptr; }
  const std::string& origin() const { return origin_; }  // where the template came from

 private:
  void check_probe_conversations() const;

  std::shared_ptr<const jinja::Template> tmpl_;
  std::string origin_ = "fallback";
  std::string bos_, eos_;
};

}  // namespace troupe
