#include "tokenizer/tokenizer_json_fields.h"

namespace troupe::tokenizer_json {

namespace json = boost::json;

const json::value* get(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v && !v->is_null() ? v : nullptr;
}

std::optional<std::string> config_token(const json::object& cfg, std::string_view key) {
  const json::value* v = get(cfg, key);
  if (!v) return std::nullopt;
  if (v->is_string()) return std::string(v->get_string());
  if (v->is_object())
    if (const json::value* c = get(v->get_object(), "content"); c && c->is_string())
      return std::string(c->get_string());
  return std::nullopt;
}

std::optional<std::pair<std::string, std::string>> merge_pair(const json::value& m) {
  if (m.is_string()) {
    const std::string_view s = m.get_string();
    const size_t sp = s.find(' ');
    if (sp == std::string_view::npos) return std::nullopt;
    return std::pair{std::string(s.substr(0, sp)), std::string(s.substr(sp + 1))};
  }
  if (m.is_array() && m.get_array().size() == 2 && m.get_array()[0].is_string() && m.get_array()[1].is_string())
    return std::pair{std::string(m.get_array()[0].get_string()), std::string(m.get_array()[1].get_string())};
  return std::nullopt;
}

std::optional<std::string> template_prefix(const json::value& v) {
  if (!v.is_object()) return std::nullopt;
  const auto& o = v.get_object();
  const json::value* t = get(o, "type");
  if (!t || !t->is_string()) return std::nullopt;
  if (t->get_string() == "Sequence") {
    if (const json::value* list = get(o, "processors"); list && list->is_array())
      for (const auto& p : list->get_array())
        if (auto r = template_prefix(p)) return r;
    return std::nullopt;
  }
  if (t->get_string() != "TemplateProcessing") return std::nullopt;
  const json::value* single = get(o, "single");
  if (!single || !single->is_array() || single->get_array().empty()) return std::string();
  const json::value& first = single->get_array().front();
  if (!first.is_object()) return std::string();
  const json::value* sp = get(first.get_object(), "SpecialToken");
  if (!sp || !sp->is_object()) return std::string();  // starts with the text: no prefix
  const json::value* id = get(sp->get_object(), "id");
  return id && id->is_string() ? std::string(id->get_string()) : std::string();
}

}  // namespace troupe::tokenizer_json
