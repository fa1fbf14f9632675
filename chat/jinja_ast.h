#pragma once
// Internal: the syntax tree jinja_parse.cpp builds and jinja_eval.cpp walks.
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "chat/jinja.h"

namespace troupe::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Arg {
  std::string name;  // empty: positional
  ExprPtr value;
};

struct Expr {
  enum Kind {
    Literal,    // value
    Name,       // name
    ListLit,    // args (positional)
    DictLit,    // args (name = key expression index pairs: even key, odd value)
    Attr,       // a.name
    Index,      // a[b]
    Slice,      // a[b:c:d] (null parts allowed)
    Call,       // a(args)
    Filter,     // a | name(args)
    Test,       // a is [not] name(args)
    Unary,      // op a   ("not", "-", "+")
    Binary,     // a op b
    Ternary,    // b if a else c
    Compare,    // a < b <= c: args[0] the first operand, args[i] (name = operator) the rest
  } kind;
  SrcPos line;
  Value value;
  std::string name;  // identifier, attribute, filter/test name, operator; "tuple" on a (a, b) ListLit
  bool negate = false;  // `is not`
  ExprPtr a, b, c;
  std::vector<Arg> args;
};

// The name a {% filter %} block or a `{% set x | f %}` binds its rendered body to, for the
// filter chain in Node::filter to read (no template can spell it).
inline constexpr const char* kBlockBody = "\x01body";

struct Node {
  // Macro: text = name, targets = parameters, defaults, bodies[0]; the uses_* flags.
  // CallBlock: expr = the macro call, targets/defaults = caller's parameters, bodies[0].
  // FilterBlock: filter = chain over kBlockBody, bodies[0]. With: targets = defaults' names.
  enum Kind { Text, Output, If, For, Set, Break, Continue, Block, Macro, CallBlock, FilterBlock, With } kind;
  SrcPos line;
  std::string text;                // Text
  ExprPtr expr;                    // Output, Set value, For iterable
  // If: conds[i] guards bodies[i]; a trailing body without a cond is the else branch.
  std::vector<ExprPtr> conds;
  std::vector<std::unique_ptr<Node>> bodies;
  // For: loop variables, optional `if` filter, body, else body (bodies[0], bodies[1]).
  std::vector<std::string> targets;
  ExprPtr filter;
  // Set: targets are the variables (several: unpack), attr the namespace attribute (if
  // `set ns.attr`), filter a chain over kBlockBody for a filtered block set.
  std::string attr;
  std::vector<ExprPtr> defaults;  // Macro / CallBlock parameter defaults (null: none); With values
  bool uses_varargs = false, uses_kwargs = false, uses_caller = false;
  std::vector<std::unique_ptr<Node>> children;  // Block
};

std::unique_ptr<Node> parse_template(std::string_view source);

// A macro (or a call block's body, `caller`) as a value: its node and the scopes it was
// defined in. The scopes are weak: a scope holds its macros, so strong pointers would make
// cycles; a macro outliving its scope (stored in a namespace past a loop) is an error.
using Scope = std::unordered_map<std::string, Value>;
struct Callable {
  const Node* node = nullptr;
  std::string name;
  std::vector<std::weak_ptr<Scope>> frame;
};

}  // namespace troupe::jinja
