#pragma once
// A small Jinja2 interpreter: the subset Hugging Face chat templates use (Llama-3, Qwen /
// ChatML, Mistral, Gemma, Phi, ...). Rendering follows HF's environment: trim_blocks and
// lstrip_blocks on, loop controls (break/continue), `raise_exception`, `strftime_now`,
// `namespace`, macros and call blocks, and HF's `tojson` (json.dumps with ensure_ascii=False
// unless asked, indent, separators, sort_keys). tests/chat/jinja_differential_test.cpp holds
// it to Python's Jinja2 byte for byte.
//
// Values are immutable once built except namespaces (the one thing `set ns.x = ...` may
// change), so lists and dicts are shared by pointer and copying a Value is cheap.
#include <boost/json/fwd.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "core/error.h"

namespace troupe::jinja {

// Where something is in a template's source (1-based; the column counts characters).
struct SrcPos {
  int line = 0;
  int col = 0;
};
std::string to_string(SrcPos at);  // "line 3, column 14"

class Value;
using List = std::vector<Value>;

// Insertion-ordered map: templates iterate dicts and tojson them, and Python keeps order.
struct Dict {
  std::vector<std::pair<std::string, Value>> items;
  bool is_namespace = false;

  const Value* find(std::string_view key) const;
  void set(std::string key, Value v);
};

struct Undefined {};
struct None {};
// A macro or a call block's body (`caller`): defined by the renderer (jinja_ast.h).
struct Callable;

// json.dumps's options, as HF's tojson filter passes them through.
struct JsonOptions {
  bool indented = false;    // indent=None: one line
  std::string indent;       // per level (indent=2 -> "  ", indent='\t' -> "\t")
  bool ensure_ascii = false;
  bool sort_keys = false;
  std::string item_sep = ", ", key_sep = ": ";  // json.dumps's defaults (item "," when indented)
};

class Value {
 public:
  Value() = default;  // undefined
  Value(None) : v_(None{}) {}
  Value(bool b) : v_(b) {}
  Value(int v) : v_(int64_t(v)) {}
  Value(int64_t v) : v_(v) {}
  Value(double v) : v_(v) {}
  Value(std::string s) : v_(std::move(s)) {}
  Value(const char* s) : v_(std::string(s)) {}
  Value(List l) : v_(std::make_shared<List>(std::move(l))) {}
  Value(Dict d) : v_(std::make_shared<Dict>(std::move(d))) {}
  Value(std::shared_ptr<Dict> d) : v_(std::move(d)) {}
  Value(std::shared_ptr<const Callable> c) : v_(std::move(c)) {}

  bool is_undefined() const { return std::holds_alternative<Undefined>(v_); }
  bool is_none() const { return std::holds_alternative<None>(v_); }
  bool is_bool() const { return std::holds_alternative<bool>(v_); }
  bool is_int() const { return std::holds_alternative<int64_t>(v_); }
  bool is_float() const { return std::holds_alternative<double>(v_); }
  bool is_number() const { return is_int() || is_float(); }
  bool is_string() const { return std::holds_alternative<std::string>(v_); }
  bool is_list() const { return std::holds_alternative<std::shared_ptr<List>>(v_); }
  bool is_dict() const { return std::holds_alternative<std::shared_ptr<Dict>>(v_); }
  bool is_callable() const { return std::holds_alternative<std::shared_ptr<const Callable>>(v_); }

  bool as_bool() const { return std::get<bool>(v_); }
  int64_t as_int() const { return std::get<int64_t>(v_); }
  double as_number() const { return is_int() ? double(as_int()) : std::get<double>(v_); }
  const std::string& as_string() const { return std::get<std::string>(v_); }
  const List& as_list() const { return *std::get<std::shared_ptr<List>>(v_); }
  const Dict& as_dict() const { return *std::get<std::shared_ptr<Dict>>(v_); }
  Dict& mutable_dict() const { return *std::get<std::shared_ptr<Dict>>(v_); }
  const Callable& as_callable() const { return *std::get<std::shared_ptr<const Callable>>(v_); }

  bool truthy() const;
  // {{ value }}: Python's str() (None -> "None", True -> "True", lists as their repr).
  std::string str() const;
  // Python's repr() (strings quoted), used inside list/dict output.
  std::string repr() const;
  // json.dumps(value, ensure_ascii=False, indent=indent) - indent < 0 means none.
  std::string to_json(int indent = -1) const;
  std::string to_json(const JsonOptions& opts) const;
  const char* type_name() const;

  friend bool operator==(const Value& a, const Value& b);

 private:
  std::variant<Undefined, None, bool, int64_t, double, std::string, std::shared_ptr<List>,
               std::shared_ptr<Dict>, std::shared_ptr<const Callable>>
      v_;
};

Value from_json(const boost::json::value& v);

// Template syntax and render errors. Rendering a template that calls raise_exception(msg)
// throws RaisedError(msg): the template rejecting its input (a client problem), as opposed
// to a broken or unsupported template.
class TemplateError : public Error {
 public:
  using Error::Error;
};
class RaisedError : public TemplateError {
 public:
  using TemplateError::TemplateError;
};

struct Node;

class Template {
 public:
  // Parses the whole template; throws TemplateError naming the line on a syntax error or a
  // construct this subset does not support.
  explicit Template(std::string_view source);
  ~Template();
  Template(Template&&) noexcept;
  Template& operator=(Template&&) noexcept;

  // Renders with the given top-level variables. Throws TemplateError / RaisedError.
  std::string render(const Dict& context) const;

 private:
  std::shared_ptr<const Node> root_;
};

}  // namespace troupe::jinja
