// Jinja lexer and recursive-descent parser. Whitespace handling follows Hugging Face's
// chat-template environment: trim_blocks (drop the newline after a block tag) and
// lstrip_blocks (drop indentation before a block tag), plus the explicit `-` markers.
#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>
#include <map>

#include "chat/jinja_ast.h"
#include "tokenizer/unicode.h"

namespace troupe::jinja {

namespace {

struct Tok {
  enum Type { Text, VarBegin, VarEnd, BlockBegin, BlockEnd, Name, Str, Int, Float, Op, Eof } type;
  std::string s;
  SrcPos line;
  int64_t i = 0;
  double f = 0;
};

[[noreturn]] void syntax_error(SrcPos at, const std::string& what) {
  throw TemplateError("chat template " + to_string(at) + ": " + what);
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
bool is_ident_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

class Lexer {
 public:
  explicit Lexer(std::string_view src) : src_(src) {
    for (size_t k = 0; k < src_.size(); ++k)
      if (src_[k] == '\n') line_starts_.push_back(k + 1);
  }

  std::vector<Tok> run() {
    size_t pos = 0;
    while (pos < src_.size()) {
      size_t tag = find_tag(pos);
      std::string text(src_.substr(pos, tag - pos));
      if (lstrip_next_) {
        size_t k = 0;
        while (k < text.size() && is_space(text[k])) ++k;
        text.erase(0, k);
      } else if (trim_newline_) {
        if (text.rfind("\r\n", 0) == 0) text.erase(0, 2);
        else if (!text.empty() && text[0] == '\n') text.erase(0, 1);
      }
      lstrip_next_ = trim_newline_ = false;
      if (tag < src_.size()) {
        const char kind = src_[tag + 1];
        const char mod = tag + 2 < src_.size() ? src_[tag + 2] : '\0';
        if (mod == '-') {
          while (!text.empty() && is_space(text.back())) text.pop_back();
        } else if ((kind == '%' || kind == '#') && mod != '+') {
          // lstrip_blocks: indentation between a line start and a block tag disappears.
          size_t j = tag;
          while (j > pos && (src_[j - 1] == ' ' || src_[j - 1] == '\t')) --j;
          if (j == 0 || src_[j - 1] == '\n') text.resize(text.size() - std::min(text.size(), tag - j));
        }
      }
      if (!text.empty()) push(Tok::Text, text, pos);
      if (tag >= src_.size()) break;
      pos = lex_tag(tag);
    }
    push(Tok::Eof, "", src_.size());
    return std::move(toks_);
  }

 private:
  size_t find_tag(size_t from) const {
    for (size_t p = src_.find('{', from); p != std::string_view::npos; p = src_.find('{', p + 1)) {
      if (p + 1 < src_.size() && (src_[p + 1] == '{' || src_[p + 1] == '%' || src_[p + 1] == '#')) return p;
    }
    return src_.size();
  }
  // Line and column (in characters, 1-based) of byte offset `at`.
  SrcPos where(size_t at) const {
    const auto next_line = std::upper_bound(line_starts_.begin(), line_starts_.end(), at);
    const size_t start = *(next_line - 1);
    int col = 1;
    for (size_t k = start; k < at && k < src_.size(); ++k) col += (uint8_t(src_[k]) & 0xC0) != 0x80;
    return {int(next_line - line_starts_.begin()), col};
  }
  void push(Tok::Type t, std::string s, size_t at) { toks_.push_back(Tok{t, std::move(s), where(at)}); }

  // Lexes one {{ }}, {% %} or {# #} starting at `p`; returns the position after it.
  size_t lex_tag(size_t p) {
    const char kind = src_[p + 1];
    size_t q = p + 2;
    if (q < src_.size() && (src_[q] == '-' || src_[q] == '+')) ++q;
    if (kind == '#') {
      size_t end = src_.find("#}", q);
      if (end == std::string_view::npos) syntax_error(where(p), "unterminated comment");
      if (end > q && src_[end - 1] == '-') lstrip_next_ = true;
      else trim_newline_ = true;
      return end + 2;
    }
    push(kind == '{' ? Tok::VarBegin : Tok::BlockBegin, "", p);
    int depth = 0;
    while (true) {
      while (q < src_.size() && is_space(src_[q])) ++q;
      if (q >= src_.size()) syntax_error(where(p), "unterminated tag");
      const std::string_view rest = src_.substr(q);
      const char* close = kind == '{' ? "}}" : "%}";
      if (depth == 0 && (rest.starts_with(close) || (rest[0] == '-' && rest.substr(1).starts_with(close)))) {
        const bool minus = rest[0] == '-';
        push(kind == '{' ? Tok::VarEnd : Tok::BlockEnd, "", q);
        if (minus) lstrip_next_ = true;
        else if (kind == '%') trim_newline_ = true;
        return q + 2 + (minus ? 1 : 0);
      }
      q = lex_token(q, depth);
    }
  }

  size_t lex_token(size_t q, int& depth) {
    const char c = src_[q];
    if (is_ident_start(c)) {
      size_t e = q;
      while (e < src_.size() && (is_ident_start(src_[e]) || is_digit(src_[e]))) ++e;
      push(Tok::Name, std::string(src_.substr(q, e - q)), q);
      return e;
    }
    if (is_digit(c)) return lex_number(q);
    if (c == '\'' || c == '"') return lex_string(q);
    static const char* two[] = {"==", "!=", "<=", ">=", "//", "**"};
    for (const char* op : two) {
      if (src_.substr(q).starts_with(op)) {
        push(Tok::Op, op, q);
        return q + 2;
      }
    }
    if (std::strchr("+-*/%~<>()[]{},:.|=", c) == nullptr || c == '\0')
      syntax_error(where(q), std::string("unexpected character '") + c + "'");
    if (c == '(' || c == '[' || c == '{') ++depth;
    if (c == ')' || c == ']' || c == '}') --depth;
    push(Tok::Op, std::string(1, c), q);
    return q + 1;
  }

  size_t lex_number(size_t q) {
    size_t e = q;
    while (e < src_.size() && is_digit(src_[e])) ++e;
    bool is_float = false;
    if (e + 1 < src_.size() && src_[e] == '.' && is_digit(src_[e + 1])) {
      is_float = true;
      ++e;
      while (e < src_.size() && is_digit(src_[e])) ++e;
    }
    if (e < src_.size() && (src_[e] == 'e' || src_[e] == 'E')) {
      size_t k = e + 1;
      if (k < src_.size() && (src_[k] == '+' || src_[k] == '-')) ++k;
      if (k < src_.size() && is_digit(src_[k])) {
        is_float = true;
        e = k;
        while (e < src_.size() && is_digit(src_[e])) ++e;
      }
    }
    std::string s(src_.substr(q, e - q));
    Tok t{is_float ? Tok::Float : Tok::Int, s, where(q)};
    try {
      if (is_float) t.f = std::stod(s);
      else t.i = std::stoll(s);
    } catch (const std::exception&) {
      syntax_error(t.line, "number out of range: " + s);
    }
    toks_.push_back(t);
    return e;
  }

  // The four hex digits of a \\u escape starting at `at`.
  char32_t hex4(size_t at) {
    uint32_t v = 0;
    const char* b = src_.data() + std::min(at, src_.size());
    const char* end = src_.data() + std::min(at + 4, src_.size());
    const auto [p, ec] = std::from_chars(b, end, v, 16);
    if (end - b != 4 || ec != std::errc() || p != end) syntax_error(where(at - 2), "bad \\u escape (four hex digits expected)");
    return char32_t(v);
  }

  size_t lex_string(size_t q) {
    const char quote = src_[q];
    std::string out;
    size_t e = q + 1;
    while (true) {
      if (e >= src_.size()) syntax_error(where(q), "unterminated string");
      char c = src_[e];
      if (c == quote) break;
      if (c == '\\' && e + 1 < src_.size()) {
        char n = src_[e + 1];
        e += 2;
        switch (n) {
          case 'n': out += '\n'; break;
          case 't': out += '\t'; break;
          case 'r': out += '\r'; break;
          case '\\': out += '\\'; break;
          case '\'': out += '\''; break;
          case '"': out += '"'; break;
          case 'a': out += '\a'; break;
          case 'b': out += '\b'; break;
          case 'f': out += '\f'; break;
          case 'v': out += '\v'; break;
          case '0': out += '\0'; break;
          case 'x': {
            if (e + 2 > src_.size() || !std::isxdigit((unsigned char)src_[e]) || !std::isxdigit((unsigned char)src_[e + 1]))
              syntax_error(where(e - 2), "bad \\x escape");
            unicode::append_utf8(out, char32_t(std::stoul(std::string(src_.substr(e, 2)), nullptr, 16)));
            e += 2;
            break;
          }
          case 'u': {
            // Exactly four hex digits; a UTF-16 surrogate pair (two escapes) is one code point,
            // a lone surrogate has no UTF-8 form and is refused.
            char32_t cp = hex4(e);
            e += 4;
            if (cp >= 0xD800 && cp < 0xDC00 && src_.substr(e, 2) == "\\u") {
              const char32_t lo = hex4(e + 2);
              if (lo >= 0xDC00 && lo < 0xE000) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                e += 6;
              }
            }
            if (cp >= 0xD800 && cp < 0xE000) syntax_error(where(e - 6), "bad \\u escape (a lone UTF-16 surrogate)");
            unicode::append_utf8(out, cp);
            break;
          }
          default: out += '\\'; out += n;  // Python keeps unknown escapes verbatim
        }
        continue;
      }
      out += c;
      ++e;
    }
    push(Tok::Str, out, q);
    return e + 1;
  }

  std::string_view src_;
  std::vector<Tok> toks_;
  std::vector<size_t> line_starts_{0};  // byte offset where each line begins
  bool lstrip_next_ = false, trim_newline_ = false;
};

constexpr int kMaxDepth = 200;  // nesting limit: a hostile template cannot blow the stack

class Parser {
 public:
  explicit Parser(std::vector<Tok> toks) : t_(std::move(toks)) {}

  std::unique_ptr<Node> parse() {
    auto root = body({});
    if (peek().type != Tok::Eof) syntax_error(peek().line, "unexpected tag");
    return root;
  }

 private:
  const Tok& peek(size_t k = 0) const { return t_[std::min(p_ + k, t_.size() - 1)]; }
  const Tok& next() { return t_[std::min(p_++, t_.size() - 1)]; }
  bool is_op(const char* op, size_t k = 0) const { return peek(k).type == Tok::Op && peek(k).s == op; }
  bool is_name(const char* n, size_t k = 0) const { return peek(k).type == Tok::Name && peek(k).s == n; }
  void expect_op(const char* op) {
    if (!is_op(op)) syntax_error(peek().line, std::string("expected '") + op + "'");
    ++p_;
  }
  void expect(Tok::Type type, const char* what) {
    if (peek().type != type) syntax_error(peek().line, std::string("expected ") + what);
    ++p_;
  }
  std::string expect_name() {
    if (peek().type != Tok::Name) syntax_error(peek().line, "expected a name");
    return next().s;
  }
  bool at_block(std::initializer_list<const char*> names) const {
    if (peek().type != Tok::BlockBegin || peek(1).type != Tok::Name) return false;
    for (const char* n : names)
      if (peek(1).s == n) return true;
    return false;
  }

  // Statements up to (not including) a block tag named in `ends`.
  std::unique_ptr<Node> body(std::initializer_list<const char*> ends) {
    if (++depth_ > kMaxDepth) syntax_error(peek().line, "nesting too deep");
    auto blk = std::make_unique<Node>();
    blk->kind = Node::Block;
    while (true) {
      const Tok& tk = peek();
      if (tk.type == Tok::Eof) {
        if (ends.size() != 0) syntax_error(tk.line, std::string("missing {% ") + *ends.begin() + " %}");
        break;
      }
      if (ends.size() != 0 && at_block(ends)) break;
      if (tk.type == Tok::Text) {
        auto n = std::make_unique<Node>();
        n->kind = Node::Text;
        n->line = tk.line;
        n->text = tk.s;
        blk->children.push_back(std::move(n));
        ++p_;
      } else if (tk.type == Tok::VarBegin) {
        ++p_;
        auto n = std::make_unique<Node>();
        n->kind = Node::Output;
        n->line = tk.line;
        n->expr = expr();
        expect(Tok::VarEnd, "'}}'");
        blk->children.push_back(std::move(n));
      } else if (tk.type == Tok::BlockBegin) {
        if (auto n = statement()) blk->children.push_back(std::move(n));
      } else {
        syntax_error(tk.line, "unexpected token");
      }
    }
    --depth_;
    return blk;
  }

  std::unique_ptr<Node> statement() {
    ++p_;  // {%
    const SrcPos line = peek().line;
    const std::string kw = expect_name();
    auto n = std::make_unique<Node>();
    n->line = line;
    if (kw == "if") {
      n->kind = Node::If;
      n->conds.push_back(expr());
      expect(Tok::BlockEnd, "'%}'");
      n->bodies.push_back(body({"elif", "else", "endif"}));
      while (true) {
        ++p_;  // {%
        const std::string k = expect_name();
        if (k == "elif") {
          n->conds.push_back(expr());
          expect(Tok::BlockEnd, "'%}'");
          n->bodies.push_back(body({"elif", "else", "endif"}));
        } else if (k == "else") {
          expect(Tok::BlockEnd, "'%}'");
          n->bodies.push_back(body({"endif"}));
        } else {  // endif
          expect(Tok::BlockEnd, "'%}'");
          break;
        }
      }
    } else if (kw == "for") {
      n->kind = Node::For;
      n->targets.push_back(expect_name());
      while (is_op(",")) {
        ++p_;
        n->targets.push_back(expect_name());
      }
      if (!is_name("in")) syntax_error(peek().line, "expected 'in'");
      ++p_;
      n->expr = or_expr();  // no ternary here: a trailing `if` filters the loop
      if (is_name("if")) {
        ++p_;
        n->filter = or_expr();
      }
      if (is_name("recursive")) syntax_error(peek().line, "recursive loops are not supported");
      expect(Tok::BlockEnd, "'%}'");
      n->bodies.push_back(body({"else", "endfor"}));
      if (is_name("else", 1)) {
        p_ += 2;
        expect(Tok::BlockEnd, "'%}'");
        n->bodies.push_back(body({"endfor"}));
      }
      end_block();
    } else if (kw == "set") {
      n->kind = Node::Set;
      n->targets.push_back(expect_name());
      if (is_op(".")) {
        ++p_;
        n->attr = expect_name();
      }
      while (n->attr.empty() && is_op(",")) {  // {% set a, b = ... %}
        ++p_;
        n->targets.push_back(expect_name());
      }
      if (is_op("=")) {
        ++p_;
        n->expr = tuple_or_expr();
        expect(Tok::BlockEnd, "'%}'");
      } else {  // {% set x %}...{% endset %}, optionally {% set x | filter %}
        if (n->targets.size() > 1 || !n->attr.empty()) syntax_error(peek().line, "expected '='");
        if (is_op("|")) n->filter = block_filters();
        expect(Tok::BlockEnd, "'%}'");
        n->bodies.push_back(body({"endset"}));
        end_block();
      }
    } else if (kw == "macro") {
      n->kind = Node::Macro;
      n->text = expect_name();
      params(*n);
      expect(Tok::BlockEnd, "'%}'");
      const auto before = names_seen_;
      n->bodies.push_back(body({"endmacro"}));
      n->uses_varargs = names_seen_["varargs"] != (before.count("varargs") ? before.at("varargs") : 0);
      n->uses_kwargs = names_seen_["kwargs"] != (before.count("kwargs") ? before.at("kwargs") : 0);
      n->uses_caller = names_seen_["caller"] != (before.count("caller") ? before.at("caller") : 0);
      end_block();
    } else if (kw == "call") {
      n->kind = Node::CallBlock;
      if (is_op("(")) params(*n);
      n->expr = postfix(primary());
      if (n->expr->kind != Expr::Call) syntax_error(line, "{% call %} expects a macro call");
      expect(Tok::BlockEnd, "'%}'");
      n->bodies.push_back(body({"endcall"}));
      end_block();
    } else if (kw == "filter") {
      n->kind = Node::FilterBlock;
      n->filter = block_filters();
      expect(Tok::BlockEnd, "'%}'");
      n->bodies.push_back(body({"endfilter"}));
      end_block();
    } else if (kw == "with") {
      n->kind = Node::With;
      while (peek().type == Tok::Name) {
        n->targets.push_back(next().s);
        expect_op("=");
        n->defaults.push_back(expr());
        if (!is_op(",")) break;
        ++p_;
      }
      expect(Tok::BlockEnd, "'%}'");
      n->bodies.push_back(body({"endwith"}));
      end_block();
    } else if (kw == "break" || kw == "continue") {
      n->kind = kw == "break" ? Node::Break : Node::Continue;
      expect(Tok::BlockEnd, "'%}'");
    } else if (kw == "generation" || kw == "endgeneration") {
      // HF's assistant-mask marker: no effect on the rendered text.
      expect(Tok::BlockEnd, "'%}'");
      return nullptr;
    } else {
      syntax_error(line, "unsupported tag '" + kw + "'");
    }
    return n;
  }

  // {% endX %} (body() stopped at it).
  void end_block() {
    p_ += 2;
    expect(Tok::BlockEnd, "'%}'");
  }

  // (a, b=default, ...): a macro's parameters or a call block's caller parameters.
  void params(Node& n) {
    expect_op("(");
    while (!is_op(")")) {
      n.targets.push_back(expect_name());
      ExprPtr dflt;
      if (is_op("=")) {
        ++p_;
        dflt = expr();
      }
      n.defaults.push_back(std::move(dflt));
      if (!is_op(",")) break;
      ++p_;
    }
    expect_op(")");
  }

  // `name(args) | name2 ...` after {% filter or {% set x |: a chain over kBlockBody.
  ExprPtr block_filters() {
    if (is_op("|")) ++p_;
    auto body_ref = make(Expr::Name, peek().line);
    body_ref->name = kBlockBody;
    auto f = make(Expr::Filter, peek().line);
    f->name = expect_name();
    f->a = std::move(body_ref);
    if (is_op("(")) call_args(f->args);
    return filters(std::move(f));
  }

  // `a, b` (a tuple) where a statement takes one: {% set a, b = 1, 2 %}.
  ExprPtr tuple_or_expr() {
    ExprPtr first = expr();
    if (!is_op(",")) return first;
    auto l = make(Expr::ListLit, first->line);
    l->name = "tuple";
    l->args.push_back(Arg{"", std::move(first)});
    while (is_op(",")) {
      ++p_;
      if (peek().type == Tok::BlockEnd) break;
      l->args.push_back(Arg{"", expr()});
    }
    return l;
  }

  ExprPtr make(Expr::Kind k, SrcPos line) {
    auto e = std::make_unique<Expr>();
    e->kind = k;
    e->line = line;
    return e;
  }
  ExprPtr binary(std::string op, ExprPtr a, ExprPtr b) {
    auto e = make(Expr::Binary, a->line);
    e->name = std::move(op);
    e->a = std::move(a);
    e->b = std::move(b);
    return e;
  }

  ExprPtr expr() {
    if (++depth_ > kMaxDepth) syntax_error(peek().line, "expression nesting too deep");
    ExprPtr e = or_expr();
    if (is_name("if")) {
      ++p_;
      auto t = make(Expr::Ternary, e->line);
      t->b = std::move(e);
      t->a = or_expr();
      if (is_name("else")) {
        ++p_;
        t->c = expr();
      }
      e = std::move(t);
    }
    --depth_;
    return e;
  }
  ExprPtr or_expr() {
    ExprPtr e = and_expr();
    while (is_name("or")) {
      ++p_;
      e = binary("or", std::move(e), and_expr());
    }
    return e;
  }
  ExprPtr and_expr() {
    ExprPtr e = not_expr();
    while (is_name("and")) {
      ++p_;
      e = binary("and", std::move(e), not_expr());
    }
    return e;
  }
  ExprPtr not_expr() {
    if (is_name("not")) {
      const SrcPos line = next().line;
      if (++depth_ > kMaxDepth) syntax_error(line, "expression nesting too deep");
      auto e = make(Expr::Unary, line);
      e->name = "not";
      e->a = not_expr();
      --depth_;
      return e;
    }
    return compare();
  }
  // Comparisons chain as in Python: a < b < c is a < b and b < c (b evaluated once).
  ExprPtr compare() {
    ExprPtr first = math1();
    std::vector<Arg> rest;
    while (true) {
      std::string op;
      if (peek().type == Tok::Op && (peek().s == "==" || peek().s == "!=" || peek().s == "<" ||
                                     peek().s == ">" || peek().s == "<=" || peek().s == ">=")) {
        op = next().s;
      } else if (is_name("in")) {
        ++p_;
        op = "in";
      } else if (is_name("not") && is_name("in", 1)) {
        p_ += 2;
        op = "not in";
      } else {
        break;
      }
      rest.push_back(Arg{op, math1()});
    }
    if (rest.empty()) return first;
    if (rest.size() == 1) return binary(rest[0].name, std::move(first), std::move(rest[0].value));
    auto c = make(Expr::Compare, first->line);
    c->args.push_back(Arg{"", std::move(first)});
    for (auto& r : rest) c->args.push_back(std::move(r));
    return c;
  }
  ExprPtr math1() {
    ExprPtr e = concat();
    while (is_op("+") || is_op("-")) {
      std::string op = next().s;
      e = binary(op, std::move(e), concat());
    }
    return e;
  }
  ExprPtr concat() {
    ExprPtr e = math2();
    while (is_op("~")) {
      ++p_;
      e = binary("~", std::move(e), math2());
    }
    return e;
  }
  ExprPtr math2() {
    ExprPtr e = power();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      std::string op = next().s;
      e = binary(op, std::move(e), power());
    }
    return e;
  }
  ExprPtr power() {
    ExprPtr e = unary(true);
    while (is_op("**")) {
      ++p_;
      e = binary("**", std::move(e), unary(true));
    }
    return e;
  }
  ExprPtr unary(bool with_filter) {
    ExprPtr e;
    if (is_op("-") || is_op("+")) {
      const Tok& op = next();
      if (++depth_ > kMaxDepth) syntax_error(op.line, "expression nesting too deep");
      e = make(Expr::Unary, op.line);
      e->name = op.s;
      e->a = unary(false);
      --depth_;
    } else {
      e = postfix(primary());
    }
    return with_filter ? filters(std::move(e)) : std::move(e);
  }
  ExprPtr filters(ExprPtr e) {
    while (true) {
      if (is_op("|")) {
        ++p_;
        auto f = make(Expr::Filter, e->line);
        f->name = expect_name();
        f->a = std::move(e);
        if (is_op("(")) call_args(f->args);
        e = postfix(std::move(f));
      } else if (is_name("is")) {
        ++p_;
        auto t = make(Expr::Test, e->line);
        if (is_name("not")) {
          ++p_;
          t->negate = true;
        }
        t->name = expect_name();
        t->a = std::move(e);
        if (is_op("(")) {
          call_args(t->args);
        } else if (peek().type == Tok::Str || peek().type == Tok::Int || peek().type == Tok::Float || is_op("[") ||
                   is_op("{") || (peek().type == Tok::Name && !is_keyword(peek().s))) {
          t->args.push_back(Arg{"", postfix(primary())});
        }
        e = std::move(t);
      } else {
        return e;
      }
    }
  }
  static bool is_keyword(const std::string& s) {
    return s == "and" || s == "or" || s == "not" || s == "in" || s == "is" || s == "if" || s == "else";
  }
  ExprPtr postfix(ExprPtr e) {
    while (true) {
      if (is_op(".")) {
        ++p_;
        auto a = make(Expr::Attr, e->line);
        a->a = std::move(e);
        if (peek().type == Tok::Int) a->name = std::to_string(next().i);  // x.0 == x[0]
        else a->name = expect_name();
        e = std::move(a);
      } else if (is_op("[")) {
        ++p_;
        ExprPtr parts[3];
        int colons = 0;
        while (!is_op("]")) {
          if (is_op(":")) {
            if (++colons > 2) syntax_error(peek().line, "bad slice");
            ++p_;
          } else {
            if (parts[colons]) syntax_error(peek().line, "expected ']'");
            parts[colons] = expr();
          }
        }
        ++p_;
        auto s = make(colons ? Expr::Slice : Expr::Index, e->line);
        s->args.resize(3);
        s->a = std::move(e);
        if (colons) {
          for (int k = 0; k < 3; ++k) s->args[k].value = std::move(parts[k]);
        } else {
          if (!parts[0]) syntax_error(s->line, "empty subscript");
          s->b = std::move(parts[0]);
        }
        e = std::move(s);
      } else if (is_op("(")) {
        auto c = make(Expr::Call, e->line);
        c->a = std::move(e);
        call_args(c->args);
        e = std::move(c);
      } else {
        return e;
      }
    }
  }
  void call_args(std::vector<Arg>& args) {
    expect_op("(");
    while (!is_op(")")) {
      Arg a;
      if (peek().type == Tok::Name && is_op("=", 1)) {
        a.name = next().s;
        ++p_;
      }
      a.value = expr();
      args.push_back(std::move(a));
      if (!is_op(",")) break;
      ++p_;
    }
    expect_op(")");
  }
  ExprPtr primary() {
    const Tok& tk = peek();
    if (tk.type == Tok::Name) {
      ++p_;
      auto e = make(Expr::Literal, tk.line);
      if (tk.s == "true" || tk.s == "True") e->value = true;
      else if (tk.s == "false" || tk.s == "False") e->value = false;
      else if (tk.s == "none" || tk.s == "None") e->value = None{};
      else {
        e->kind = Expr::Name;
        e->name = tk.s;
        ++names_seen_[tk.s];
      }
      return e;
    }
    if (tk.type == Tok::Str) {
      auto e = make(Expr::Literal, tk.line);
      std::string s;
      while (peek().type == Tok::Str) s += next().s;  // "a" "b" concatenates, as in Python
      e->value = std::move(s);
      return e;
    }
    if (tk.type == Tok::Int || tk.type == Tok::Float) {
      ++p_;
      auto e = make(Expr::Literal, tk.line);
      if (tk.type == Tok::Int) e->value = tk.i;
      else e->value = tk.f;
      return e;
    }
    if (is_op("(")) {
      ++p_;
      ExprPtr first = expr();
      if (is_op(",")) {  // a tuple: a list marked "tuple" ('%s %s' % (a, b) spreads it)
        auto l = make(Expr::ListLit, tk.line);
        l->name = "tuple";
        l->args.push_back(Arg{"", std::move(first)});
        while (is_op(",")) {
          ++p_;
          if (is_op(")")) break;
          l->args.push_back(Arg{"", expr()});
        }
        first = std::move(l);
      }
      expect_op(")");
      return first;
    }
    if (is_op("[")) {
      ++p_;
      auto l = make(Expr::ListLit, tk.line);
      while (!is_op("]")) {
        l->args.push_back(Arg{"", expr()});
        if (!is_op(",")) break;
        ++p_;
      }
      expect_op("]");
      return l;
    }
    if (is_op("{")) {
      ++p_;
      auto d = make(Expr::DictLit, tk.line);
      while (!is_op("}")) {
        d->args.push_back(Arg{"", expr()});
        expect_op(":");
        d->args.push_back(Arg{"", expr()});
        if (!is_op(",")) break;
        ++p_;
      }
      expect_op("}");
      return d;
    }
    syntax_error(tk.line, tk.type == Tok::Eof ? "unexpected end of template" : "unexpected '" + tk.s + "'");
  }

  std::vector<Tok> t_;
  std::map<std::string, int> names_seen_;  // how often each name was read (macros: varargs, ...)
  size_t p_ = 0;
  int depth_ = 0;
};

}  // namespace

std::unique_ptr<Node> parse_template(std::string_view source) {
  // Jinja drops a single trailing newline of the template (keep_trailing_newline=False).
  if (source.ends_with("\r\n")) source.remove_suffix(2);
  else if (source.ends_with('\n')) source.remove_suffix(1);
  return Parser(Lexer(source).run()).parse();
}

}  // namespace troupe::jinja
