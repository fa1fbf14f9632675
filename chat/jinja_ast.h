#pragma once
// Internal: the syntax tree jinja_parse.cpp builds and jinja_eval.cpp walks.
#include <memory>
#include <string>
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
  } kind;
  SrcPos line;
  Value value;
  std::string name;  // identifier, attribute, filter/test name or operator
  bool negate = false;  // `is not`
  ExprPtr a, b, c;
  std::vector<Arg> args;
};

struct Node {
  enum Kind { Text, Output, If, For, Set, Break, Continue, Block } kind;
  SrcPos line;
  std::string text;                // Text
  ExprPtr expr;                    // Output, Set value, For iterable
  // If: conds[i] guards bodies[i]; a trailing body without a cond is the else branch.
  std::vector<ExprPtr> conds;
  std::vector<std::unique_ptr<Node>> bodies;
  // For: loop variables, optional `if` filter, body, else body (bodies[0], bodies[1]).
  std::vector<std::string> targets;
  ExprPtr filter;
  // Set: targets[0] is the variable, attr the namespace attribute (if `set ns.attr`).
  std::string attr;
  std::vector<std::unique_ptr<Node>> children;  // Block
};

std::unique_ptr<Node> parse_template(std::string_view source);

}  // namespace troupe::jinja
