// Jinja evaluation: scopes, loops, operators, and the filters / tests / methods / globals
// that chat templates use. Anything else is a TemplateError naming the line, never UB.
#include <algorithm>
#include <cmath>
#include <ctime>
#include <unordered_map>

#include "net/jinja_ast.h"

namespace troupe::jinja {

namespace {

// Budgets that bound what any template can cost (range(10**9), exponential strings).
constexpr int64_t kMaxSteps = 5'000'000;
constexpr size_t kMaxOutput = 64u << 20;

[[noreturn]] void error(int line, const std::string& what) {
  throw TemplateError("chat template line " + std::to_string(line) + ": " + what);
}

std::string strip_chars(const std::string& s, const std::string& chars, bool left, bool right) {
  size_t b = 0, e = s.size();
  if (left)
    while (b < e && chars.find(s[b]) != std::string::npos) ++b;
  if (right)
    while (e > b && chars.find(s[e - 1]) != std::string::npos) --e;
  return s.substr(b, e - b);
}
const std::string kWhitespace = " \t\n\r\v\f";

std::vector<std::string> split(const std::string& s, const Value& sep, int64_t maxsplit) {
  std::vector<std::string> out;
  if (sep.is_undefined() || sep.is_none()) {  // Python: split on runs of whitespace
    size_t i = 0;
    while (true) {
      while (i < s.size() && kWhitespace.find(s[i]) != std::string::npos) ++i;
      if (i >= s.size()) break;
      if (maxsplit >= 0 && int64_t(out.size()) == maxsplit) {
        out.push_back(strip_chars(s.substr(i), kWhitespace, false, true));
        break;
      }
      size_t j = i;
      while (j < s.size() && kWhitespace.find(s[j]) == std::string::npos) ++j;
      out.push_back(s.substr(i, j - i));
      i = j;
    }
    return out;
  }
  const std::string& d = sep.as_string();
  if (d.empty()) throw TemplateError("split: empty separator");
  size_t i = 0;
  while (true) {
    size_t j = s.find(d, i);
    if (j == std::string::npos || (maxsplit >= 0 && int64_t(out.size()) == maxsplit)) {
      out.push_back(s.substr(i));
      break;
    }
    out.push_back(s.substr(i, j - i));
    i = j + d.size();
  }
  return out;
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  if (from.empty()) return s;
  size_t i = 0;
  while ((i = s.find(from, i)) != std::string::npos) {
    s.replace(i, from.size(), to);
    i += to.size();
  }
  return s;
}

// Strings index, slice, iterate and measure by code point, as Python's str does (bytes
// would cut characters apart). Returns each character's byte offset, plus the end.
std::vector<size_t> char_starts(const std::string& s) {
  std::vector<size_t> at;
  for (size_t i = 0; i < s.size(); ++i)
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) at.push_back(i);
  at.push_back(s.size());
  return at;
}
std::vector<std::string> chars_of(const std::string& s) {
  auto at = char_starts(s);
  std::vector<std::string> out;
  for (size_t k = 0; k + 1 < at.size(); ++k) out.push_back(s.substr(at[k], at[k + 1] - at[k]));
  return out;
}

// Python's slice semantics (negative indices and steps) over n elements.
std::vector<int64_t> slice_indices(int64_t n, const Value& start, const Value& stop, const Value& step) {
  int64_t st = step.is_int() ? step.as_int() : 1;
  if (st == 0) throw TemplateError("slice step cannot be zero");
  auto norm = [&](const Value& v, int64_t dflt, int64_t lo, int64_t hi) {
    if (!v.is_int()) return dflt;
    int64_t x = v.as_int();
    if (x < 0) x += n;
    return std::clamp(x, lo, hi);
  };
  std::vector<int64_t> idx;
  if (st > 0) {
    for (int64_t i = norm(start, 0, 0, n), e = norm(stop, n, 0, n); i < e; i += st) idx.push_back(i);
  } else {
    for (int64_t i = norm(start, n - 1, -1, n - 1), e = norm(stop, -1, -1, n - 1); i > e; i += st)
      idx.push_back(i);
  }
  return idx;
}

class Renderer {
 public:
  explicit Renderer(const Dict& ctx) {
    scopes_.emplace_back();
    for (const auto& [k, v] : ctx.items) scopes_.back()[k] = v;
  }

  std::string run(const Node& root) {
    exec(root);
    return std::move(out_);
  }

 private:
  enum class Flow { Normal, Break, Continue };

  void tick(int line) {
    if (++steps_ > kMaxSteps) error(line, "template exceeded its evaluation budget");
  }

  Value lookup(const std::string& name) const {
    for (auto it = scopes_.rbegin(); it != scopes_.rend(); ++it) {
      auto f = it->find(name);
      if (f != it->end()) return f->second;
    }
    return {};
  }

  Flow exec(const Node& n) {
    tick(n.line);
    switch (n.kind) {
      case Node::Text: emit(n.text, n.line); return Flow::Normal;
      case Node::Output: emit(eval(*n.expr).str(), n.line); return Flow::Normal;
      case Node::Block:
        for (const auto& c : n.children) {
          Flow f = exec(*c);
          if (f != Flow::Normal) return f;
        }
        return Flow::Normal;
      case Node::If:
        for (size_t i = 0; i < n.bodies.size(); ++i) {
          if (i >= n.conds.size() || eval(*n.conds[i]).truthy()) return exec(*n.bodies[i]);
        }
        return Flow::Normal;
      case Node::For: return exec_for(n);
      case Node::Set: {
        Value v;
        if (n.expr) {
          v = eval(*n.expr);
        } else {  // block set: capture the rendered body
          std::string saved = std::move(out_);
          out_.clear();
          exec(*n.bodies[0]);
          v = Value(std::move(out_));
          out_ = std::move(saved);
        }
        if (n.attr.empty()) {
          scopes_.back()[n.targets[0]] = std::move(v);
        } else {
          Value ns = lookup(n.targets[0]);
          if (!ns.is_dict() || !ns.as_dict().is_namespace)
            error(n.line, "cannot set attribute '" + n.attr + "' of '" + n.targets[0] + "' (not a namespace)");
          ns.mutable_dict().set(n.attr, std::move(v));
        }
        return Flow::Normal;
      }
      case Node::Break: return Flow::Break;
      case Node::Continue: return Flow::Continue;
    }
    return Flow::Normal;
  }

  void emit(const std::string& s, int line) {
    if (out_.size() + s.size() > kMaxOutput) error(line, "template output too large");
    out_ += s;
  }

  static List iterate(const Value& v, int line) {
    if (v.is_list()) return v.as_list();
    if (v.is_dict()) {
      List keys;
      for (const auto& kv : v.as_dict().items) keys.emplace_back(kv.first);
      return keys;
    }
    if (v.is_string()) {
      List chars;
      for (auto& c : chars_of(v.as_string())) chars.emplace_back(std::move(c));
      return chars;
    }
    if (v.is_undefined() || v.is_none()) return {};
    error(line, std::string("cannot iterate over a ") + v.type_name());
  }

  Flow exec_for(const Node& n) {
    List items = iterate(eval(*n.expr), n.line);
    scopes_.emplace_back();
    if (n.filter) {
      List kept;
      for (auto& it : items) {
        bind(n, it);
        if (eval(*n.filter).truthy()) kept.push_back(it);
      }
      items = std::move(kept);
    }
    const int64_t len = int64_t(items.size());
    for (int64_t i = 0; i < len; ++i) {
      tick(n.line);
      bind(n, items[size_t(i)]);
      Dict loop;
      loop.items = {{"index", i + 1},
                    {"index0", i},
                    {"revindex", len - i},
                    {"revindex0", len - i - 1},
                    {"first", i == 0},
                    {"last", i == len - 1},
                    {"length", len},
                    {"previtem", i > 0 ? items[size_t(i - 1)] : Value()},
                    {"nextitem", i + 1 < len ? items[size_t(i + 1)] : Value()}};
      scopes_.back()["loop"] = Value(std::move(loop));
      if (exec(*n.bodies[0]) == Flow::Break) break;
    }
    scopes_.pop_back();
    if (len == 0 && n.bodies.size() > 1) return exec(*n.bodies[1]);
    return Flow::Normal;
  }

  void bind(const Node& n, const Value& item) {
    auto& scope = scopes_.back();
    if (n.targets.size() == 1) {
      scope[n.targets[0]] = item;
      return;
    }
    if (!item.is_list() || item.as_list().size() != n.targets.size())
      error(n.line, "cannot unpack loop item into " + std::to_string(n.targets.size()) + " variables");
    for (size_t k = 0; k < n.targets.size(); ++k) scope[n.targets[k]] = item.as_list()[k];
  }

  Value eval(const Expr& e) {
    tick(e.line);
    switch (e.kind) {
      case Expr::Literal: return e.value;
      case Expr::Name: return lookup(e.name);
      case Expr::ListLit: {
        List l;
        for (const auto& a : e.args) l.push_back(eval(*a.value));
        return Value(std::move(l));
      }
      case Expr::DictLit: {
        Dict d;
        for (size_t i = 0; i + 1 < e.args.size(); i += 2) {
          Value k = eval(*e.args[i].value);
          if (!k.is_string()) error(e.line, "dict keys must be strings");
          d.set(k.as_string(), eval(*e.args[i + 1].value));
        }
        return Value(std::move(d));
      }
      case Expr::Attr: return get_item(eval(*e.a), Value(e.name), e.line);
      case Expr::Index: return get_item(eval(*e.a), eval(*e.b), e.line);
      case Expr::Slice: return slice(e);
      case Expr::Call: return call(e);
      case Expr::Filter: return filter(e);
      case Expr::Test: {
        bool r = test(e);
        return Value(e.negate ? !r : r);
      }
      case Expr::Unary: {
        Value v = eval(*e.a);
        if (e.name == "not") return Value(!v.truthy());
        if (!v.is_number()) error(e.line, std::string("bad operand for unary ") + e.name + ": " + v.type_name());
        if (e.name == "+") return v;
        return v.is_int() ? Value(-v.as_int()) : Value(-v.as_number());
      }
      case Expr::Binary: return binary(e);
      case Expr::Ternary: {
        if (eval(*e.a).truthy()) return eval(*e.b);
        return e.c ? eval(*e.c) : Value();
      }
    }
    return {};
  }

  Value get_item(const Value& obj, const Value& key, int line) {
    if (obj.is_dict()) {
      if (!key.is_string()) return {};
      const Value* v = obj.as_dict().find(key.as_string());
      return v ? *v : Value();
    }
    if ((obj.is_list() || obj.is_string()) && key.is_int()) {
      std::vector<std::string> chars;
      if (obj.is_string()) chars = chars_of(obj.as_string());
      const int64_t n = obj.is_list() ? int64_t(obj.as_list().size()) : int64_t(chars.size());
      int64_t i = key.as_int();
      if (i < 0) i += n;
      if (i < 0 || i >= n) return {};
      return obj.is_list() ? obj.as_list()[size_t(i)] : Value(chars[size_t(i)]);
    }
    if (obj.is_list() && key.is_string() && !key.as_string().empty() &&
        std::all_of(key.as_string().begin(), key.as_string().end(), [](char c) { return c >= '0' && c <= '9'; }))
      return get_item(obj, Value(int64_t(std::stoll(key.as_string()))), line);
    return {};  // undefined, as Jinja's lenient lookup gives
  }

  Value slice(const Expr& e) {
    Value obj = eval(*e.a);
    Value parts[3];
    for (int k = 0; k < 3; ++k)
      if (e.args[size_t(k)].value) parts[k] = eval(*e.args[size_t(k)].value);
    if (obj.is_list()) {
      const auto& l = obj.as_list();
      List out;
      for (int64_t i : slice_indices(int64_t(l.size()), parts[0], parts[1], parts[2])) out.push_back(l[size_t(i)]);
      return Value(std::move(out));
    }
    if (obj.is_string()) {
      const auto chars = chars_of(obj.as_string());
      std::string out;
      for (int64_t i : slice_indices(int64_t(chars.size()), parts[0], parts[1], parts[2])) out += chars[size_t(i)];
      return Value(std::move(out));
    }
    error(e.line, std::string("cannot slice a ") + obj.type_name());
  }

  struct Args {
    std::vector<Value> pos;
    std::vector<std::pair<std::string, Value>> kw;
    const Value* get(size_t i, const char* name) const {
      if (i < pos.size()) return &pos[i];
      for (const auto& [k, v] : kw)
        if (k == name) return &v;
      return nullptr;
    }
    Value or_default(size_t i, const char* name, Value d = {}) const {
      const Value* v = get(i, name);
      return v ? *v : d;
    }
  };
  Args eval_args(const std::vector<Arg>& args) {
    Args out;
    for (const auto& a : args) {
      if (a.name.empty()) out.pos.push_back(eval(*a.value));
      else out.kw.emplace_back(a.name, eval(*a.value));
    }
    return out;
  }
  static const std::string& need_string(const Value* v, const char* what, int line) {
    if (!v || !v->is_string()) error(line, std::string(what) + " expects a string argument");
    return v->as_string();
  }

  Value call(const Expr& e) {
    Args args = eval_args(e.args);
    if (e.a->kind == Expr::Attr) {  // a method call: obj.name(args)
      Value obj = eval(*e.a->a);
      return method(obj, e.a->name, args, e.line);
    }
    if (e.a->kind != Expr::Name) error(e.line, "only functions and methods can be called");
    const std::string& fn = e.a->name;
    if (fn == "raise_exception") {
      throw RaisedError(args.pos.empty() ? "the chat template rejected the conversation" : args.pos[0].str());
    }
    if (fn == "namespace" || fn == "dict") {
      Dict d;
      d.is_namespace = fn == "namespace";
      for (auto& [k, v] : args.kw) d.set(k, v);
      return Value(std::move(d));
    }
    if (fn == "range") {
      int64_t a = 0, b = 0, s = 1;
      for (const auto& v : args.pos)
        if (!v.is_int()) error(e.line, "range expects integers");
      if (args.pos.size() == 1) b = args.pos[0].as_int();
      else if (args.pos.size() >= 2) a = args.pos[0].as_int(), b = args.pos[1].as_int();
      if (args.pos.size() == 3) s = args.pos[2].as_int();
      if (s == 0 || args.pos.empty() || args.pos.size() > 3) error(e.line, "bad range arguments");
      List l;
      for (int64_t i = a; s > 0 ? i < b : i > b; i += s) {
        tick(e.line);
        l.emplace_back(i);
      }
      return Value(std::move(l));
    }
    if (fn == "strftime_now") {
      const std::string& fmt = need_string(args.get(0, "format"), "strftime_now", e.line);
      std::time_t t = std::time(nullptr);
      std::tm tm{};
      localtime_r(&t, &tm);
      char buf[256];
      size_t n = std::strftime(buf, sizeof buf, fmt.c_str(), &tm);
      return Value(std::string(buf, n));
    }
    Value callee = lookup(fn);
    error(e.line, callee.is_undefined() ? "'" + fn + "' is undefined" : "'" + fn + "' is not callable");
  }

  Value method(const Value& obj, const std::string& m, const Args& a, int line) {
    if (obj.is_string()) {
      const std::string& s = obj.as_string();
      auto chars = [&] {
        const Value* c = a.get(0, "chars");
        return c && c->is_string() ? c->as_string() : kWhitespace;
      };
      if (m == "strip") return Value(strip_chars(s, chars(), true, true));
      if (m == "lstrip") return Value(strip_chars(s, chars(), true, false));
      if (m == "rstrip") return Value(strip_chars(s, chars(), false, true));
      if (m == "upper" || m == "lower") {
        std::string r = s;
        for (char& c : r) c = char(m == "upper" ? std::toupper((unsigned char)c) : std::tolower((unsigned char)c));
        return Value(std::move(r));
      }
      if (m == "title" || m == "capitalize") return filter_value(m, obj, a, line);
      if (m == "startswith" || m == "endswith") {
        const Value* p = a.get(0, "prefix");
        List options = p && p->is_list() ? p->as_list() : List{p ? *p : Value()};
        for (const auto& o : options) {
          const std::string& x = need_string(&o, m.c_str(), line);
          if (m == "startswith" ? s.starts_with(x) : s.ends_with(x)) return Value(true);
        }
        return Value(false);
      }
      if (m == "split" || m == "rsplit") {
        Value max = a.or_default(1, "maxsplit", Value(int64_t(-1)));
        List out;
        for (auto& p : split(s, a.or_default(0, "sep"), max.is_int() ? max.as_int() : -1)) out.emplace_back(std::move(p));
        return Value(std::move(out));
      }
      if (m == "replace")
        return Value(replace_all(s, need_string(a.get(0, "old"), "replace", line), need_string(a.get(1, "new"), "replace", line)));
      if (m == "find") {
        const size_t at = s.find(need_string(a.get(0, "sub"), "find", line));
        if (at == std::string::npos) return Value(int64_t(-1));
        return Value(int64_t(char_starts(s.substr(0, at)).size() - 1));
      }
      if (m == "count") {
        const std::string& sub = need_string(a.get(0, "sub"), "count", line);
        int64_t c = 0;
        for (size_t i = s.find(sub); !sub.empty() && i != std::string::npos; i = s.find(sub, i + sub.size())) ++c;
        return Value(c);
      }
      if (m == "join") {
        const Value* l = a.get(0, "iterable");
        std::string r;
        List items = iterate(l ? *l : Value(), line);
        for (size_t i = 0; i < items.size(); ++i) r += (i ? s : "") + items[i].str();
        return Value(std::move(r));
      }
    } else if (obj.is_dict()) {
      const Dict& d = obj.as_dict();
      if (m == "get") {
        const Value* k = a.get(0, "key");
        const Value* v = k && k->is_string() ? d.find(k->as_string()) : nullptr;
        return v ? *v : a.or_default(1, "default", Value(None{}));
      }
      if (m == "items" || m == "keys" || m == "values") {
        List out;
        for (const auto& [k, v] : d.items) {
          if (m == "items") out.emplace_back(List{Value(k), v});
          else out.push_back(m == "keys" ? Value(k) : v);
        }
        return Value(std::move(out));
      }
    }
    error(line, std::string("unknown method '") + m + "' on a " + obj.type_name());
  }

  Value filter(const Expr& e) {
    Value v = eval(*e.a);
    return filter_value(e.name, v, eval_args(e.args), e.line);
  }

  Value filter_value(const std::string& f, const Value& v, const Args& a, int line) {
    if (f == "trim") {
      if (!v.is_string()) return Value(strip_chars(v.str(), kWhitespace, true, true));
      return Value(strip_chars(v.as_string(), kWhitespace, true, true));
    }
    if (f == "length" || f == "count") {
      if (v.is_string()) return Value(int64_t(char_starts(v.as_string()).size() - 1));
      if (v.is_list()) return Value(int64_t(v.as_list().size()));
      if (v.is_dict()) return Value(int64_t(v.as_dict().items.size()));
      error(line, std::string("object of type ") + v.type_name() + " has no length");
    }
    if (f == "tojson") {
      Value ind = a.or_default(0, "indent");
      return Value(v.to_json(ind.is_int() ? int(std::clamp<int64_t>(ind.as_int(), 0, 16)) : -1));
    }
    if (f == "string") return Value(v.str());
    if (f == "safe" || f == "e" || f == "escape") return v;  // chat templates render plain text
    if (f == "upper" || f == "lower") return method(Value(v.str()), f, {}, line);
    if (f == "capitalize" || f == "title") {
      std::string s = v.str();
      bool start = true;
      for (char& c : s) {
        const bool alpha = std::isalpha((unsigned char)c) != 0;
        if (f == "capitalize") c = char(start ? std::toupper((unsigned char)c) : std::tolower((unsigned char)c));
        else c = char(alpha && start ? std::toupper((unsigned char)c) : std::tolower((unsigned char)c));
        start = f == "capitalize" ? false : !alpha;
      }
      return Value(std::move(s));
    }
    if (f == "default" || f == "d") {
      const bool boolean = a.or_default(1, "boolean", Value(false)).truthy();
      if (v.is_undefined() || (boolean && !v.truthy())) return a.or_default(0, "default_value", Value(""));
      return v;
    }
    if (f == "first" || f == "last") {
      List items = iterate(v, line);
      if (items.empty()) return {};
      return f == "first" ? items.front() : items.back();
    }
    if (f == "join") {
      Value sep = a.or_default(0, "d", Value(""));
      Value attr = a.or_default(1, "attribute");
      std::string r;
      List items = iterate(v, line);
      for (size_t i = 0; i < items.size(); ++i)
        r += (i ? sep.str() : "") + (attr.is_undefined() ? items[i] : get_item(items[i], attr, line)).str();
      return Value(std::move(r));
    }
    if (f == "list") return Value(iterate(v, line));
    if (f == "reverse") {
      if (v.is_string()) {
        auto chars = chars_of(v.as_string());
        std::string r;
        for (auto it = chars.rbegin(); it != chars.rend(); ++it) r += *it;
        return Value(std::move(r));
      }
      List items = iterate(v, line);
      std::reverse(items.begin(), items.end());
      return Value(std::move(items));
    }
    if (f == "items") return method(v.is_dict() ? v : Value(Dict{}), "items", {}, line);
    if (f == "int") {
      if (v.is_int()) return v;
      if (v.is_float()) return Value(int64_t(v.as_number()));
      if (v.is_string()) {
        try {
          return Value(int64_t(std::stoll(v.as_string())));
        } catch (const std::exception&) {
        }
      }
      return a.or_default(0, "default", Value(int64_t(0)));
    }
    if (f == "float") {
      if (v.is_number()) return Value(v.as_number());
      try {
        return Value(std::stod(v.str()));
      } catch (const std::exception&) {
        return Value(0.0);
      }
    }
    if (f == "abs" && v.is_number()) return v.is_int() ? Value(std::abs(v.as_int())) : Value(std::fabs(v.as_number()));
    if (f == "replace") return method(Value(v.str()), "replace", a, line);
    if (f == "selectattr" || f == "rejectattr" || f == "select" || f == "reject") {
      const bool by_attr = f == "selectattr" || f == "rejectattr";
      const bool keep_match = f == "selectattr" || f == "select";
      List out;
      for (const auto& item : iterate(v, line)) {
        Value subject = item;
        size_t k = 0;
        if (by_attr) subject = get_item(item, a.or_default(k++, "attribute"), line);
        Value test_name = a.or_default(k, "test");
        bool r;
        if (test_name.is_undefined()) {
          r = subject.truthy();
        } else {
          Args rest;
          for (size_t i = k + 1; i < a.pos.size(); ++i) rest.pos.push_back(a.pos[i]);
          r = test_value(test_name.str(), subject, rest, line);
        }
        if (r == keep_match) out.push_back(item);
      }
      return Value(std::move(out));
    }
    if (f == "map") {
      Value attr = a.or_default(99, "attribute");
      List out;
      for (const auto& item : iterate(v, line)) {
        if (!attr.is_undefined()) out.push_back(get_item(item, attr, line));
        else if (!a.pos.empty()) out.push_back(filter_value(a.pos[0].str(), item, {}, line));
        else out.push_back(item);
      }
      return Value(std::move(out));
    }
    if (f == "unique") {
      List out;
      for (const auto& item : iterate(v, line))
        if (std::find(out.begin(), out.end(), item) == out.end()) out.push_back(item);
      return Value(std::move(out));
    }
    error(line, "unknown filter '" + f + "'");
  }

  bool test(const Expr& e) {
    Value v = eval(*e.a);
    return test_value(e.name, v, eval_args(e.args), e.line);
  }

  bool test_value(const std::string& t, const Value& v, const Args& a, int line) {
    if (t == "defined") return !v.is_undefined();
    if (t == "undefined") return v.is_undefined();
    if (t == "none") return v.is_none();
    if (t == "string") return v.is_string();
    if (t == "number") return v.is_number();
    if (t == "integer") return v.is_int();
    if (t == "float") return v.is_float();
    if (t == "boolean") return v.is_bool();
    if (t == "true") return v.is_bool() && v.as_bool();
    if (t == "false") return v.is_bool() && !v.as_bool();
    if (t == "mapping") return v.is_dict();
    if (t == "sequence" || t == "iterable") return v.is_list() || v.is_string() || v.is_dict();
    if (t == "callable") return false;
    if (t == "lower" || t == "upper") {
      if (!v.is_string()) return false;
      for (char c : v.as_string())
        if (t == "lower" ? std::isupper((unsigned char)c) : std::islower((unsigned char)c)) return false;
      return true;
    }
    if (t == "odd" || t == "even") return v.is_int() && (v.as_int() % 2 != 0) == (t == "odd");
    if (t == "divisibleby") {
      Value d = a.or_default(0, "num");
      return v.is_int() && d.is_int() && d.as_int() != 0 && v.as_int() % d.as_int() == 0;
    }
    if (t == "equalto" || t == "eq" || t == "==" || t == "sameas") return v == a.or_default(0, "other");
    if (t == "ne" || t == "!=") return !(v == a.or_default(0, "other"));
    if (t == "in") {
      Value c = a.or_default(0, "seq");
      return contains(c, v, line);
    }
    error(line, "unknown test '" + t + "'");
  }

  bool contains(const Value& container, const Value& item, int line) {
    if (container.is_string()) {
      if (!item.is_string()) error(line, "'in <string>' requires a string on the left");
      return container.as_string().find(item.as_string()) != std::string::npos;
    }
    if (container.is_list()) {
      const auto& l = container.as_list();
      return std::find(l.begin(), l.end(), item) != l.end();
    }
    if (container.is_dict()) return item.is_string() && container.as_dict().find(item.as_string()) != nullptr;
    if (container.is_undefined() || container.is_none()) return false;
    error(line, std::string("argument of type ") + container.type_name() + " is not iterable");
  }

  Value binary(const Expr& e) {
    if (e.name == "and") {
      Value l = eval(*e.a);
      return l.truthy() ? eval(*e.b) : l;
    }
    if (e.name == "or") {
      Value l = eval(*e.a);
      return l.truthy() ? l : eval(*e.b);
    }
    Value l = eval(*e.a), r = eval(*e.b);
    const std::string& op = e.name;
    if (op == "==") return Value(l == r);
    if (op == "!=") return Value(!(l == r));
    if (op == "in") return Value(contains(r, l, e.line));
    if (op == "not in") return Value(!contains(r, l, e.line));
    if (op == "~") {
      std::string s = l.str() + r.str();
      if (s.size() > kMaxOutput) error(e.line, "string too large");
      return Value(std::move(s));
    }
    if (op == "<" || op == ">" || op == "<=" || op == ">=") {
      int c;
      if (l.is_number() && r.is_number()) c = l.as_number() < r.as_number() ? -1 : (l.as_number() > r.as_number() ? 1 : 0);
      else if (l.is_string() && r.is_string()) c = l.as_string().compare(r.as_string());
      else error(e.line, std::string("cannot compare ") + l.type_name() + " and " + r.type_name());
      return Value(op == "<" ? c < 0 : op == ">" ? c > 0 : op == "<=" ? c <= 0 : c >= 0);
    }
    if (op == "+") {
      if (l.is_string() && r.is_string()) {
        if (l.as_string().size() + r.as_string().size() > kMaxOutput) error(e.line, "string too large");
        return Value(l.as_string() + r.as_string());
      }
      if (l.is_list() && r.is_list()) {
        List out = l.as_list();
        out.insert(out.end(), r.as_list().begin(), r.as_list().end());
        return Value(std::move(out));
      }
    }
    if (op == "*" && ((l.is_string() && r.is_int()) || (l.is_int() && r.is_string()))) {
      const std::string& s = l.is_string() ? l.as_string() : r.as_string();
      const int64_t n = l.is_int() ? l.as_int() : r.as_int();
      if (n > 0 && s.size() * size_t(n) > kMaxOutput) error(e.line, "string too large");
      std::string out;
      for (int64_t i = 0; i < n; ++i) out += s;
      return Value(std::move(out));
    }
    if (!l.is_number() || !r.is_number())
      error(e.line, "unsupported operand types for " + op + ": " + l.type_name() + " and " + r.type_name());
    const bool ints = l.is_int() && r.is_int();
    if (op == "+") return ints ? Value(l.as_int() + r.as_int()) : Value(l.as_number() + r.as_number());
    if (op == "-") return ints ? Value(l.as_int() - r.as_int()) : Value(l.as_number() - r.as_number());
    if (op == "*") return ints ? Value(l.as_int() * r.as_int()) : Value(l.as_number() * r.as_number());
    if (op == "**") return ints && r.as_int() >= 0 && r.as_int() < 63 ? Value(int64_t(std::pow(l.as_int(), r.as_int())))
                                                                   : Value(std::pow(l.as_number(), r.as_number()));
    if (r.as_number() == 0) error(e.line, "division by zero");
    if (op == "/") return Value(l.as_number() / r.as_number());
    if (op == "//") {
      if (ints) {
        int64_t q = l.as_int() / r.as_int();
        if ((l.as_int() % r.as_int() != 0) && ((l.as_int() < 0) != (r.as_int() < 0))) --q;
        return Value(q);
      }
      return Value(std::floor(l.as_number() / r.as_number()));
    }
    if (op == "%") {
      if (ints) {
        int64_t m = l.as_int() % r.as_int();
        if (m != 0 && ((m < 0) != (r.as_int() < 0))) m += r.as_int();
        return Value(m);
      }
      double m = std::fmod(l.as_number(), r.as_number());
      if (m != 0 && ((m < 0) != (r.as_number() < 0))) m += r.as_number();
      return Value(m);
    }
    error(e.line, "unknown operator " + op);
  }

  std::vector<std::unordered_map<std::string, Value>> scopes_;
  std::string out_;
  int64_t steps_ = 0;
};

}  // namespace

Template::Template(std::string_view source) : root_(parse_template(source)) {}
Template::~Template() = default;
Template::Template(Template&&) noexcept = default;
Template& Template::operator=(Template&&) noexcept = default;

std::string Template::render(const Dict& context) const { return Renderer(context).run(*root_); }

}  // namespace troupe::jinja
