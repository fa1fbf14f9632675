#include "chat/chat_template.h"

#include <boost/json.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "model/gguf.h"
#include "tokenizer/tokenizer.h"

namespace troupe {

namespace fs = std::filesystem;

namespace {

std::string read_text(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) fail("cannot read {}", p.string());
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// A special token in tokenizer_config.json: a string, or an AddedToken object {"content":..}.
std::string token_string(const boost::json::object& cfg, const char* key) {
  const auto* v = cfg.if_contains(key);
  if (!v) return "";
  if (v->is_string()) return std::string(v->get_string());
  if (v->is_object()) {
    if (const auto* c = v->get_object().if_contains("content"); c && c->is_string())
      return std::string(c->get_string());
  }
  return "";
}

// `chat_template` is a string, or a list of {name, template} (HF picks "default").
std::string template_of(const boost::json::object& cfg) {
  const auto* v = cfg.if_contains("chat_template");
  if (!v) return "";
  if (v->is_string()) return std::string(v->get_string());
  if (v->is_array()) {
    for (const auto& e : v->get_array()) {
      if (!e.is_object()) continue;
      const auto* name = e.get_object().if_contains("name");
      const auto* t = e.get_object().if_contains("template");
      if (name && name->is_string() && name->get_string() == "default" && t && t->is_string())
        return std::string(t->get_string());
    }
  }
  return "";
}

// Said with every template error: the way out when the model's own template is the problem.
constexpr const char* kOverrideHint = " (--chat-template FILE or TEXT replaces the template)";

// --chat-template's argument is the template itself when it is no file and has Jinja tags.
bool is_inline_template(const std::string& arg) {
  return arg.find("{{") != std::string::npos || arg.find("{%") != std::string::npos;
}

std::string piece(const Tokenizer& tok, int32_t id) {
  return id >= 0 && id < tok.vocab_size() ? tok.token_bytes(id) : std::string();
}

}  // namespace

ChatTemplate ChatTemplate::from_source(const std::string& source, std::string bos, std::string eos,
                                       const std::string& origin) {
  ChatTemplate t;
  t.bos_ = std::move(bos);
  t.eos_ = std::move(eos);
  if (source.empty()) return t;
  t.origin_ = origin;
  try {
    t.tmpl_ = std::make_shared<const jinja::Template>(source);
  } catch (const jinja::TemplateError& e) {
    fail("{}: {}{}", origin, e.what(), kOverrideHint);
  }
  t.check_probe_conversations();
  return t;
}

// A template that parses may still use something this Jinja subset lacks, or fail on an
// ordinary conversation; that must stop the server at startup, not turn every chat request
// into a 500. A template may reject some shapes on purpose (raise_exception: no system
// role, strict alternation), so it passes when it renders one of the probes and fails
// only on the template's own refusals.
void ChatTemplate::check_probe_conversations() const {
  static const char* const kProbes[] = {
      R"([{"role":"system","content":"You are helpful."},{"role":"user","content":"Hi!"},)"
      R"({"role":"assistant","content":"Hello."},{"role":"user","content":"Tell me a story."}])",
      R"([{"role":"user","content":"Hi!"},{"role":"assistant","content":"Hello."},)"
      R"({"role":"user","content":"Tell me a story."}])",
      R"([{"role":"user","content":"Hi!"}])"};
  bool accepted = false;
  std::string refusal;
  for (const char* probe : kProbes) {
    const boost::json::value messages = boost::json::parse(probe);
    for (const bool generation_prompt : {true, false}) {
      try {
        render(messages.as_array(), generation_prompt);
        accepted = true;
      } catch (const jinja::RaisedError& e) {
        if (refusal.empty()) refusal = e.what();
      } catch (const Error& e) {
        fail("{}: the chat template fails on a probe conversation: {}{}", origin_, e.what(), kOverrideHint);
      }
    }
  }
  if (!accepted) fail("{}: the chat template rejects every probe conversation: {}{}", origin_, refusal, kOverrideHint);
}

ChatTemplate ChatTemplate::load(const std::string& model_path, const std::string& override_spec,
                                const Tokenizer& tok) {
  std::string source, origin, bos, eos;
  const int32_t eos_id = tok.eos_ids().empty() ? -1 : tok.eos_ids().front();
  bos = piece(tok, tok.bos_id());
  eos = piece(tok, eos_id);
  const fs::path mp(model_path);
  const fs::path cfg_path = fs::is_directory(mp) ? mp / "tokenizer_config.json" : mp.parent_path() / "tokenizer_config.json";
  if (fs::is_directory(mp) && fs::exists(cfg_path)) {
    boost::json::value v = boost::json::parse(read_text(cfg_path));
    if (v.is_object()) {
      const auto& cfg = v.get_object();
      source = template_of(cfg);
      if (auto b = token_string(cfg, "bos_token"); !b.empty()) bos = b;
      if (auto e = token_string(cfg, "eos_token"); !e.empty()) eos = e;
      origin = cfg_path.string();
    }
  } else if (mp.extension() == ".gguf") {
    if (auto t = GgufFile::open(model_path).get_string("tokenizer.chat_template")) {
      source = *t;
      origin = model_path + " (tokenizer.chat_template)";
    }
  }
  if (!override_spec.empty()) {
    std::error_code ec;
    if (!fs::is_regular_file(override_spec, ec) && is_inline_template(override_spec)) {
      source = override_spec;  // vLLM's rule: not a file, but looks like Jinja
      origin = "--chat-template (inline)";
    } else {
      std::string text = read_text(override_spec);
      source = text;
      // A tokenizer_config.json passed as the override: take its template field.
      if (fs::path(override_spec).extension() == ".json") {
        boost::system::error_code jec;
        auto v = boost::json::parse(text, jec);
        if (!jec && v.is_object()) source = template_of(v.get_object());
      }
      if (source.empty()) fail("--chat-template {}: no template found in the file", override_spec);
      origin = "--chat-template " + override_spec;
    }
  }
  return from_source(source, bos, eos, origin);
}

std::string ChatTemplate::render(const boost::json::array& messages, bool add_generation_prompt,
                                 const boost::json::object* extra) const {
  if (!tmpl_) {
    // Base models: the conversation's text itself, one message per paragraph, so chat on a
    // completion model continues the text the way /v1/completions would.
    std::string out;
    for (const auto& m : messages) {
      const auto& content = m.as_object().at("content");
      if (!content.is_string()) continue;
      if (!out.empty()) out += "\n\n";
      out += std::string(content.get_string());
    }
    return out;
  }
  jinja::Dict ctx;
  if (extra) {  // first, so a client cannot replace the variables below
    for (const auto& kv : *extra) ctx.set(std::string(kv.key()), jinja::from_json(kv.value()));
  }
  ctx.set("messages", jinja::from_json(messages));
  ctx.set("add_generation_prompt", jinja::Value(add_generation_prompt));
  ctx.set("bos_token", jinja::Value(bos_));
  ctx.set("eos_token", jinja::Value(eos_));
  return tmpl_->render(ctx);
}

}  // namespace troupe
