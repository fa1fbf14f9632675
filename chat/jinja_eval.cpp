// Jinja evaluation: scopes, loops, operators and the globals (range, namespace, ...); the
// filters, tests and methods are in jinja_builtins.cpp. Anything unsupported is a
// TemplateError naming the line, never UB.
#include <algorithm>
#include <cmath>
#include <limits>
#include <ctime>
#include <unordered_map>

#include "chat/jinja_ast.h"
#include "chat/jinja_builtins.h"

namespace troupe::jinja {

using namespace detail;

namespace {

// Budgets that bound what any template can cost (range(10**9), exponential strings).
constexpr int64_t kMaxSteps = 5'000'000;
constexpr size_t kMaxOutput = 64u << 20;
constexpr int kMaxCallDepth = 100;  // macro recursion: bounded before the C++ stack is

class Renderer {
 public:
  explicit Renderer(const Dict& ctx) {
    reset_padding_budget();
    push_scope();
    for (const auto& [k, v] : ctx.items) scope()[k] = v;
  }

  std::string run(const Node& root) {
    exec(root);
    return std::move(out_);
  }

 private:
  enum class Flow { Normal, Break, Continue };

  void tick(SrcPos line) {
    if (++steps_ > kMaxSteps) error(line, "template exceeded its evaluation budget");
  }

  Value lookup(const std::string& name) const {
    for (auto it = scopes_.rbegin(); it != scopes_.rend(); ++it) {
      auto f = (*it)->find(name);
      if (f != (*it)->end()) return f->second;
    }
    return {};
  }
  Scope& scope() { return *scopes_.back(); }
  void push_scope() { scopes_.push_back(std::make_shared<Scope>()); }

  // Renders `body` into a string of its own (block set, macro and filter bodies).
  std::string capture(const Node& body) {
    std::string saved = std::move(out_);
    out_.clear();
    exec(body);
    std::string got = std::move(out_);
    out_ = std::move(saved);
    return got;
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
        } else {  // block set: the rendered body, through its filters if any
          v = Value(capture(*n.bodies[0]));
          if (n.filter) v = filter_block_value(*n.filter, std::move(v));
        }
        if (n.targets.size() > 1) {
          unpack(n.targets, v, n.line);
        } else if (n.attr.empty()) {
          scope()[n.targets[0]] = std::move(v);
        } else {
          Value ns = lookup(n.targets[0]);
          if (!ns.is_dict() || !ns.as_dict().is_namespace)
            error(n.line, "cannot set attribute '" + n.attr + "' of '" + n.targets[0] + "' (not a namespace)");
          // Values are reference counted: a namespace stored inside itself would never be
          // freed (and could not be printed).
          if (holds(v, &ns.as_dict(), 0)) error(n.line, "cannot store a namespace inside itself");
          ns.mutable_dict().set(n.attr, std::move(v));
        }
        return Flow::Normal;
      }
      case Node::Macro: {
        auto m = std::make_shared<Callable>();
        m->node = &n;
        m->name = n.text;
        for (const auto& sc : scopes_) m->frame.push_back(sc);
        scope()[n.text] = Value(std::shared_ptr<const Callable>(std::move(m)));
        return Flow::Normal;
      }
      case Node::CallBlock: {
        auto c = std::make_shared<Callable>();
        c->node = &n;
        c->name = "caller";
        for (const auto& sc : scopes_) c->frame.push_back(sc);
        emit(call(*n.expr, Value(std::shared_ptr<const Callable>(std::move(c)))).str(), n.line);
        return Flow::Normal;
      }
      case Node::FilterBlock:
        emit(filter_block_value(*n.filter, Value(capture(*n.bodies[0]))).str(), n.line);
        return Flow::Normal;
      case Node::With: {
        std::vector<Value> values;
        for (const auto& d : n.defaults) values.push_back(eval(*d));
        push_scope();
        for (size_t k = 0; k < n.targets.size(); ++k) scope()[n.targets[k]] = values[k];
        Flow f = exec(*n.bodies[0]);
        scopes_.pop_back();
        return f;
      }
      case Node::Break: return Flow::Break;
      case Node::Continue: return Flow::Continue;
    }
    return Flow::Normal;
  }

  static bool holds(const Value& v, const Dict* target, int depth) {
    if (depth > 100) return true;  // too deep to tell: refuse
    if (v.is_dict()) {
      if (&v.as_dict() == target) return true;
      for (const auto& kv : v.as_dict().items)
        if (holds(kv.second, target, depth + 1)) return true;
    } else if (v.is_list()) {
      for (const auto& x : v.as_list())
        if (holds(x, target, depth + 1)) return true;
    }
    return false;
  }

  Value filter_block_value(const Expr& chain, Value body) {
    push_scope();
    scope()[kBlockBody] = std::move(body);
    Value v = eval(chain);
    scopes_.pop_back();
    return v;
  }

  void unpack(const std::vector<std::string>& targets, const Value& item, SrcPos line) {
    if (!item.is_list() || item.as_list().size() != targets.size())
      error(line, "cannot unpack " + std::string(item.type_name()) + " into " + std::to_string(targets.size()) + " variables");
    for (size_t k = 0; k < targets.size(); ++k) scope()[targets[k]] = item.as_list()[k];
  }

  void emit(const std::string& s, SrcPos line) {
    if (out_.size() + s.size() > kMaxOutput) error(line, "template output too large");
    out_ += s;
  }


  Flow exec_for(const Node& n) {
    List items = iterate(eval(*n.expr), n.line);
    push_scope();
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
      scope()["loop"] = Value(std::move(loop));
      if (exec(*n.bodies[0]) == Flow::Break) break;
    }
    scopes_.pop_back();
    if (len == 0 && n.bodies.size() > 1) return exec(*n.bodies[1]);
    return Flow::Normal;
  }

  void bind(const Node& n, const Value& item) {
    if (n.targets.size() == 1) scope()[n.targets[0]] = item;
    else unpack(n.targets, item, n.line);
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
      case Expr::Attr: return get_item(defined(*e.a), Value(e.name), e.line);
      case Expr::Index: return get_item(defined(*e.a), eval(*e.b), e.line);
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
        if (v.is_int() && v.as_int() == std::numeric_limits<int64_t>::min())
          error(e.line, "integer overflow in unary - (values past 64 bits)");
        return v.is_int() ? Value(-v.as_int()) : Value(-v.as_number());
      }
      case Expr::Binary: return binary(e);
      case Expr::Compare: {
        Value l = eval(*e.args[0].value);
        for (size_t i = 1; i < e.args.size(); ++i) {
          Value r = eval(*e.args[i].value);
          Value ok = compare(e.args[i].name, l, r, e.line);
          if (!ok.truthy()) return ok;
          l = std::move(r);
        }
        return Value(true);
      }
      case Expr::Ternary: {
        if (eval(*e.a).truthy()) return eval(*e.b);
        return e.c ? eval(*e.c) : Value();
      }
    }
    return {};
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

  Args eval_args(const std::vector<Arg>& args) {
    Args out;
    for (const auto& a : args) {
      if (a.name.empty()) out.pos.push_back(eval(*a.value));
      else out.kw.emplace_back(a.name, eval(*a.value));
    }
    return out;
  }

  // `obj.attr` / `obj[i]` of an undefined obj is an error, as Jinja2's default Undefined
  // makes it (an undefined value itself prints as nothing).
  Value defined(const Expr& obj) {
    Value v = eval(obj);
    if (v.is_undefined()) error(obj.line, "'" + describe(obj) + "' is undefined");
    return v;
  }
  static std::string describe(const Expr& e) {
    if (e.kind == Expr::Name) return e.name;
    if (e.kind == Expr::Attr) return describe(*e.a) + "." + e.name;
    return "value";
  }

  // A call; `caller` is the body of a {% call %} block that makes it.
  Value call(const Expr& e, Value caller = {}) {
    Args args = eval_args(e.args);
    if (!caller.is_undefined()) args.kw.emplace_back("caller", std::move(caller));
    if (e.a->kind == Expr::Attr) {  // a method call: obj.name(args)
      Value obj = defined(*e.a->a);
      if (Value m = get_item(obj, Value(e.a->name), e.line); m.is_callable()) return invoke(m.as_callable(), args, e.line);
      if (e.a->name == "cycle" && obj.is_dict() && obj.as_dict().find("index0")) {  // loop.cycle(a, b, ...)
        if (args.pos.empty()) error(e.line, "loop.cycle needs at least one value");
        return args.pos[size_t(obj.as_dict().find("index0")->as_int()) % args.pos.size()];
      }
      return call_method(obj, e.a->name, args, e.line);
    }
    if (e.a->kind != Expr::Name) {
      Value callee = eval(*e.a);
      if (callee.is_callable()) return invoke(callee.as_callable(), args, e.line);
      error(e.line, "only functions, macros and methods can be called");
    }
    const std::string& fn = e.a->name;
    if (Value callee = lookup(fn); callee.is_callable()) return invoke(callee.as_callable(), args, e.line);
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


  // Runs a macro (or a call block's body) in the scopes it was defined in plus one for its
  // arguments; returns what it rendered. Arguments bind as in Jinja2: positional, then by
  // name, extras to varargs / kwargs where the body reads them, else an error.
  Value invoke(const Callable& c, const Args& args, SrcPos line) {
    const Node& n = *c.node;
    if (++call_depth_ > kMaxCallDepth) error(line, "macro calls nested too deeply");
    std::vector<std::shared_ptr<Scope>> frame;
    for (const auto& w : c.frame) {
      auto sc = w.lock();
      if (!sc) error(line, "macro '" + c.name + "' called after its scope ended");
      frame.push_back(std::move(sc));
    }
    auto locals = std::make_shared<Scope>();
    const bool is_macro = n.kind == Node::Macro;
    List extra_pos;
    for (size_t i = 0; i < args.pos.size(); ++i) {
      if (i < n.targets.size()) (*locals)[n.targets[i]] = args.pos[i];
      else extra_pos.push_back(args.pos[i]);
    }
    Dict extra_kw;
    for (const auto& [k, v] : args.kw) {
      const auto it = std::find(n.targets.begin(), n.targets.end(), k);
      if (it != n.targets.end()) {
        if (size_t(it - n.targets.begin()) < args.pos.size()) error(line, "macro '" + c.name + "' got multiple values for '" + k + "'");
        (*locals)[k] = v;
      } else if (k == "caller" && is_macro) {
        if (n.uses_caller) (*locals)["caller"] = v;
      } else {
        extra_kw.set(k, v);
      }
    }
    if (!extra_pos.empty() && is_macro && !n.uses_varargs)
      error(line, "macro '" + c.name + "' takes not more than " + std::to_string(n.targets.size()) + " argument(s)");
    if (!extra_kw.items.empty() && is_macro && !n.uses_kwargs)
      error(line, "macro '" + c.name + "' takes no keyword argument '" + extra_kw.items[0].first + "'");
    if (is_macro) {
      (*locals)["varargs"] = Value(std::move(extra_pos));
      (*locals)["kwargs"] = Value(std::move(extra_kw));
    }
    frame.push_back(locals);
    std::swap(scopes_, frame);
    std::string saved = std::move(out_);
    out_.clear();
    // Defaults are evaluated at the call, in the macro's scopes (they may read globals).
    for (size_t i = 0; i < n.targets.size(); ++i)
      if (!locals->count(n.targets[i]) && n.defaults[i]) (*locals)[n.targets[i]] = eval(*n.defaults[i]);
    exec(*n.bodies[0]);
    std::string got = std::move(out_);
    out_ = std::move(saved);
    std::swap(scopes_, frame);
    --call_depth_;
    return Value(std::move(got));
  }

  Value filter(const Expr& e) {
    Value v = eval(*e.a);
    return apply_filter(e.name, v, eval_args(e.args), e.line);
  }


  bool test(const Expr& e) {
    Value v = eval(*e.a);
    return apply_test(e.name, v, eval_args(e.args), e.line);
  }



  // Python's bool is an int in arithmetic and ordering (True + 1 == 2, False < True).
  static Value as_number_if_bool(const Value& v) { return v.is_bool() ? Value(int64_t(v.as_bool())) : v; }

  Value compare(const std::string& op, const Value& l0, const Value& r0, SrcPos line) {
    if (op == "==") return Value(l0 == r0);
    if (op == "!=") return Value(!(l0 == r0));
    if (op == "in") return Value(contains(r0, l0, line));
    if (op == "not in") return Value(!contains(r0, l0, line));
    const Value l = as_number_if_bool(l0), r = as_number_if_bool(r0);
    int c;
    if (l.is_number() && r.is_number()) c = l.as_number() < r.as_number() ? -1 : (l.as_number() > r.as_number() ? 1 : 0);
    else if (l.is_string() && r.is_string()) c = l.as_string().compare(r.as_string());
    else error(line, "'" + op + "' not supported between " + l.type_name() + " and " + r.type_name());
    return Value(op == "<" ? c < 0 : op == ">" ? c > 0 : op == "<=" ? c <= 0 : c >= 0);
  }

  Value binary(const Expr& e) {
    const std::string& op = e.name;
    if (op == "and") {
      Value l = eval(*e.a);
      return l.truthy() ? eval(*e.b) : l;
    }
    if (op == "or") {
      Value l = eval(*e.a);
      return l.truthy() ? l : eval(*e.b);
    }
    Value l = eval(*e.a), r = eval(*e.b);
    if (op == "==" || op == "!=" || op == "in" || op == "not in" || op == "<" || op == ">" || op == "<=" || op == ">=")
      return compare(op, l, r, e.line);
    if (op == "%" && l.is_string()) {  // printf-style formatting; a tuple literal spreads
      const bool spread = e.b->kind == Expr::ListLit && e.b->name == "tuple";
      return Value(percent_format(l.as_string(), r, spread, e.line));
    }
    if (op == "~") {
      std::string s = l.str() + r.str();
      if (s.size() > kMaxOutput) error(e.line, "string too large");
      return Value(std::move(s));
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
      if (n <= 0 || s.empty()) return Value(std::string());
      if (uint64_t(n) > kMaxOutput / s.size()) error(e.line, "string too large");
      std::string out;
      for (int64_t i = 0; i < n; ++i) out += s;
      return Value(std::move(out));
    }
    l = as_number_if_bool(l);
    r = as_number_if_bool(r);
    if (!l.is_number() || !r.is_number())
      error(e.line, "unsupported operand types for " + op + ": " + l.type_name() + " and " + r.type_name());
    const bool ints = l.is_int() && r.is_int();
    // Python's ints never overflow; ours are int64, so past it the template fails cleanly
    // (found by tests/fuzz: a signed overflow, and a pow result cast back to int64).
    const auto overflow = [&] { error(e.line, "integer overflow in " + op + " (values past 64 bits)"); };
    if (ints && (op == "+" || op == "-" || op == "*")) {
      int64_t v = 0;
      const bool over = op == "+"   ? __builtin_add_overflow(l.as_int(), r.as_int(), &v)
                        : op == "-" ? __builtin_sub_overflow(l.as_int(), r.as_int(), &v)
                                    : __builtin_mul_overflow(l.as_int(), r.as_int(), &v);
      if (over) overflow();
      return Value(v);
    }
    if (op == "+") return Value(l.as_number() + r.as_number());
    if (op == "-") return Value(l.as_number() - r.as_number());
    if (op == "*") return Value(l.as_number() * r.as_number());
    if (op == "**") {
      if (!ints || r.as_int() < 0) return Value(std::pow(l.as_number(), r.as_number()));
      const int64_t b = l.as_int(), n = r.as_int();
      if (b == 0 || b == 1) return Value(n == 0 ? int64_t(1) : b);
      if (b == -1) return Value(n % 2 ? int64_t(-1) : int64_t(1));
      int64_t v = 1;  // |b| >= 2: past 64 bits within 64 steps
      for (int64_t i = 0; i < n; ++i)
        if (__builtin_mul_overflow(v, b, &v)) overflow();
      return Value(v);
    }
    if (r.as_number() == 0) error(e.line, "division by zero");
    if (op == "/") return Value(l.as_number() / r.as_number());
    if (op == "//") {
      if (ints) {
        if (l.as_int() == std::numeric_limits<int64_t>::min() && r.as_int() == -1) overflow();
        int64_t q = l.as_int() / r.as_int();
        if ((l.as_int() % r.as_int() != 0) && ((l.as_int() < 0) != (r.as_int() < 0))) --q;
        return Value(q);
      }
      return Value(std::floor(l.as_number() / r.as_number()));
    }
    if (op == "%") {
      if (ints) {
        if (r.as_int() == -1) return Value(int64_t(0));  // INT64_MIN % -1 would trap
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

  std::vector<std::shared_ptr<Scope>> scopes_;  // innermost last; a macro call swaps in its own
  std::string out_;
  int64_t steps_ = 0;
  int call_depth_ = 0;
};

}  // namespace

Template::Template(std::string_view source) : root_(parse_template(source)) {}
Template::~Template() = default;
Template::Template(Template&&) noexcept = default;
Template& Template::operator=(Template&&) noexcept = default;

std::string Template::render(const Dict& context) const { return Renderer(context).run(*root_); }

}  // namespace troupe::jinja
