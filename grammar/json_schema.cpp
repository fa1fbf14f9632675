#include "grammar/json_schema.h"

#include <algorithm>
#include <array>
#include <boost/json.hpp>
#include <functional>
#include <optional>
#include <map>
#include <set>

#include "core/error.h"
#include "grammar/regex.h"

namespace troupe::grammar {

namespace json = boost::json;

namespace {

constexpr const char* kPrimitives = R"(ws ::= " "?
string ::= "\"" char* "\""
char ::= [^"\\\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4})
integer ::= "-"? ("0" | [1-9] [0-9]{0,15})
number ::= integer ("." [0-9]{1,16})? ([eE] [-+]? [0-9]{1,3})?
boolean ::= "true" | "false"
null ::= "null"
value ::= object | array | string | number | boolean | null
object ::= "{" ws (string ":" ws value ("," ws string ":" ws value)*)? "}"
array ::= "[" ws (value ("," ws value)*)? "]"
)";

const std::set<std::string> kAnnotations = {"title", "description", "default", "examples", "$schema",
                                            "$id", "$comment", "deprecated", "readOnly", "writeOnly"};

class SchemaCompiler {
 public:
  explicit SchemaCompiler(const json::value& root) : root_(root) {}

  std::string compile() {
    const std::string body = rule_for(root_, "root");
    std::string out = "root ::= " + body + "\n";
    for (const auto& [name, text] : rules_) out += name + " ::= " + text + "\n";
    return out + kPrimitives;
  }

 private:
  [[noreturn]] static void bad(const std::string& what) { fail("json_schema: {}", what); }

  std::string new_rule(const std::string& hint, const std::string& body) {
    std::string name(1, 's');  // (piecewise: gcc 12 -Wrestrict misfires on "s" + string)
    name += std::to_string(rules_.size());
    name += '-';
    name += hint;
    for (char& c : name)
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-') c = '-';
    rules_.emplace(name, body);
    return name;
  }

  // The $ref target, compiled once into a named rule (a recursive reference finds the name
  // already reserved).
  std::string ref(const std::string& r) {
    if (auto it = refs_.find(r); it != refs_.end()) return it->second;
    const json::value* target = resolve(r);
    if (!target) bad("$ref '" + r + "' does not resolve (supported: #, #/$defs/NAME, #/definitions/NAME)");
    std::string name = "ref" + std::to_string(refs_.size()) + "-";
    for (char c : r.substr(r.find_last_of('/') + 1)) name += std::isalnum(static_cast<unsigned char>(c)) ? c : '-';
    refs_[r] = name;
    rules_[name] = rule_for(*target, name);
    return name;
  }

  const json::value* resolve(const std::string& r) const {
    const json::value* target = nullptr;
    if (r == "#") {
      target = &root_;
    } else {
      for (const char* prefix : {"#/$defs/", "#/definitions/"}) {
        const std::string p = prefix;
        if (r.rfind(p, 0) != 0) continue;
        const json::object& o = root_.as_object();
        const std::string section = p.substr(2, p.size() - 3);
        if (const auto* defs = o.if_contains(section); defs && defs->is_object())
          target = defs->as_object().if_contains(r.substr(p.size()));
      }
    }
    return target;
  }

  // What a schema can match, coarsely, for oneOf's exactness: the JSON types, the values
  // when it lists them (const / enum), and its required properties pinned to listed values
  // (a discriminator). `any`: nothing known.
  struct Shape {
    bool any = false;
    std::set<std::string> types;  // "integer" counts as "number"
    std::optional<std::set<std::string>> values;  // serialized
    std::map<std::string, std::set<std::string>> tags;
  };

  static std::string type_of(const json::value& v) {
    if (v.is_null()) return "null";
    if (v.is_bool()) return "boolean";
    if (v.is_number()) return "number";
    if (v.is_string()) return "string";
    return v.is_array() ? "array" : "object";
  }

  Shape shape(const json::value& s, int depth = 0) const {
    Shape sh;
    if (depth > 32 || !s.is_object()) {
      sh.any = true;
      return sh;
    }
    const json::object& o = s.as_object();
    if (const auto* r = get(o, "$ref")) {
      const json::value* t = r->is_string() ? resolve(std::string(r->as_string())) : nullptr;
      if (!t) sh.any = true;
      return t ? shape(*t, depth + 1) : sh;
    }
    const json::value* c = get(o, "const");
    const json::value* e = get(o, "enum");
    if (c || (e && e->is_array())) {
      sh.values.emplace();
      for (const json::value& v : c ? json::array{*c} : e->as_array()) {
        sh.values->insert(json::serialize(v));
        sh.types.insert(type_of(v));
      }
      return sh;
    }
    for (const char* k : {"anyOf", "oneOf"}) {
      const auto* a = get(o, k);
      if (!a || !a->is_array()) continue;
      sh.values.emplace();
      for (const auto& b : a->as_array()) {
        Shape x = shape(b, depth + 1);
        sh.any = sh.any || x.any;
        sh.types.insert(x.types.begin(), x.types.end());
        if (x.values && sh.values) sh.values->insert(x.values->begin(), x.values->end());
        else sh.values.reset();
      }
      return sh;
    }
    const json::value* t = get(o, "type");
    if (t && t->is_string()) {
      sh.types.insert(std::string(t->as_string()));
    } else if (t && t->is_array()) {
      for (const auto& x : t->as_array())
        if (x.is_string()) sh.types.insert(std::string(x.as_string()));
    } else if (get(o, "properties")) {
      sh.types.insert("object");
    } else if (get(o, "items") || get(o, "prefixItems")) {
      sh.types.insert("array");
    } else {
      sh.any = true;
    }
    if (sh.types.erase("integer")) sh.types.insert("number");
    const auto* props = get(o, "properties");
    const auto* req = get(o, "required");
    if (sh.types.count("object") && props && props->is_object() && req && req->is_array())
      for (const auto& k : req->as_array()) {
        const json::value* p = k.is_string() ? props->as_object().if_contains(k.as_string()) : nullptr;
        if (!p) continue;
        Shape ps = shape(*p, depth + 1);
        if (ps.values) sh.tags[std::string(k.as_string())] = *ps.values;
      }
    return sh;
  }

  static bool disjoint_sets(const std::set<std::string>& a, const std::set<std::string>& b) {
    return std::none_of(a.begin(), a.end(), [&](const std::string& x) { return b.count(x) > 0; });
  }

  // Whether no value can match both: different types, disjoint listed values, or a required
  // property pinned to disjoint values in each.
  static bool disjoint(const Shape& a, const Shape& b) {
    if (!a.any && !b.any && disjoint_sets(a.types, b.types)) return true;
    if (a.values && b.values && disjoint_sets(*a.values, *b.values)) return true;
    for (const auto& [k, va] : a.tags)
      if (auto it = b.tags.find(k); it != b.tags.end() && disjoint_sets(va, it->second)) return true;
    return false;
  }

  // oneOf means exactly one branch matches; compiled as a choice of branches, that holds
  // only when no two branches can match the same value, so anything else is refused.
  void check_one_of(const json::array& branches) const {
    std::vector<Shape> shapes;
    for (const auto& b : branches) shapes.push_back(shape(b));
    for (size_t i = 0; i < shapes.size(); ++i)
      for (size_t j = i + 1; j < shapes.size(); ++j)
        if (!disjoint(shapes[i], shapes[j]))
          bad("'oneOf' branches " + std::to_string(i) + " and " + std::to_string(j) +
              " may match the same value; oneOf is supported when its branches are provably disjoint "
              "(different types, disjoint const/enum values, or a required property with distinct const "
              "values in each), otherwise use 'anyOf'");
  }

  static const json::value* get(const json::object& o, const char* k) { return o.if_contains(k); }

  static int64_t count(const json::object& o, const char* k, int64_t dflt) {
    const json::value* v = o.if_contains(k);
    if (!v) return dflt;
    if (!v->is_int64() && !v->is_uint64()) bad(std::string("'") + k + "' must be a non-negative integer");
    const int64_t n = v->is_int64() ? v->as_int64() : int64_t(v->as_uint64());
    if (n < 0) bad(std::string("'") + k + "' must be a non-negative integer");
    return n;
  }

  // An expression (GBNF) for a schema.
  std::string rule_for(const json::value& s, const std::string& hint) {
    if (s.is_bool()) return s.as_bool() ? "value" : (bad("schema 'false' matches nothing"), "");
    if (!s.is_object()) bad("a schema must be an object or a boolean");
    const json::object& o = s.as_object();
    static const std::set<std::string> kKnown = {
        "type", "properties", "required", "additionalProperties", "enum", "const", "anyOf", "oneOf", "allOf",
        "$ref", "$defs", "definitions", "items", "prefixItems", "minItems", "maxItems", "minLength", "maxLength",
        "pattern", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"};
    for (const auto& kv : o) {
      const std::string k(kv.key());
      if (!kKnown.count(k) && !kAnnotations.count(k)) bad("unsupported keyword '" + k + "'");
    }
    if (const auto* r = get(o, "$ref")) {
      if (!r->is_string()) bad("'$ref' must be a string");
      return ref(std::string(r->as_string()));
    }
    if (const auto* c = get(o, "const")) return gbnf_literal(json::serialize(*c));
    if (const auto* e = get(o, "enum")) {
      if (!e->is_array() || e->as_array().empty()) bad("'enum' must be a non-empty array");
      std::string alts;
      for (const auto& v : e->as_array()) alts += (alts.empty() ? "" : " | ") + gbnf_literal(json::serialize(v));
      return "(" + alts + ")";
    }
    for (const char* k : {"anyOf", "oneOf", "allOf"}) {
      const auto* a = get(o, k);
      if (!a) continue;
      if (!a->is_array() || a->as_array().empty()) bad(std::string("'") + k + "' must be a non-empty array");
      if (std::string(k) == "allOf" && a->as_array().size() != 1) bad("'allOf' with more than one schema is not supported");
      if (std::string(k) == "oneOf") check_one_of(a->as_array());
      std::string alts;
      for (const auto& v : a->as_array()) alts += (alts.empty() ? "" : " | ") + new_rule(hint, rule_for(v, hint));
      return "(" + alts + ")";
    }
    const json::value* t = get(o, "type");
    if (!t) {  // no type: infer from the keywords present, else any value
      if (get(o, "properties")) return object(o, hint);
      if (get(o, "items") || get(o, "prefixItems")) return array(o, hint);
      return "value";
    }
    if (t->is_array()) {
      std::string alts;
      for (const auto& one : t->as_array()) {
        json::object copy = o;
        copy["type"] = one;
        alts += (alts.empty() ? "" : " | ") + new_rule(hint, rule_for(copy, hint));
      }
      return "(" + alts + ")";
    }
    if (!t->is_string()) bad("'type' must be a string or an array of strings");
    const std::string type(t->as_string());
    if (type == "object") return object(o, hint);
    if (type == "array") return array(o, hint);
    if (type == "string") return string(o);
    if (type == "integer") return integer(o);
    if (type == "number") {
      const auto* mn = get(o, "minimum");
      if (get(o, "maximum") || get(o, "exclusiveMinimum") || get(o, "exclusiveMaximum") ||
          (mn && !(mn->is_number() && mn->to_number<double>() == 0)))
        bad("number bounds other than 'minimum': 0 are not supported (use integer bounds)");
      return mn ? "([0-9] | [1-9] [0-9]{1,15}) (\".\" [0-9]{1,16})?" : "number";
    }
    if (type == "boolean") return "boolean";
    if (type == "null") return "null";
    bad("unknown type '" + type + "'");
  }

  std::string string(const json::object& o) {
    if (const auto* p = get(o, "pattern")) {
      if (get(o, "minLength") || get(o, "maxLength")) bad("'pattern' together with min/maxLength is not supported");
      if (!p->is_string()) bad("'pattern' must be a string");
      return "\"\\\"\" " + regex_to_gbnf(std::string(p->as_string()), true) + " \"\\\"\"";
    }
    const int64_t lo = count(o, "minLength", 0), hi = count(o, "maxLength", -1);
    if (hi >= 0 && hi < lo) bad("'maxLength' is below 'minLength'");
    if (lo == 0 && hi < 0) return "string";
    return "\"\\\"\" char{" + std::to_string(lo) + "," + (hi >= 0 ? std::to_string(hi) : "") + "} \"\\\"\"";
  }

  std::string integer(const json::object& o) {
    auto bound = [&](const char* k) -> std::optional<int64_t> {
      const auto* v = get(o, k);
      if (!v) return std::nullopt;
      if (!v->is_number()) bad(std::string("'") + k + "' must be a number");
      const double d = v->to_number<double>();
      if (d != double(int64_t(d))) bad(std::string("'") + k + "' on an integer must be a whole number");
      return int64_t(d);
    };
    std::optional<int64_t> lo = bound("minimum"), hi = bound("maximum");
    if (auto x = bound("exclusiveMinimum")) lo = std::max(lo.value_or(*x + 1), *x + 1);
    if (auto x = bound("exclusiveMaximum")) hi = std::min(hi.value_or(*x - 1), *x - 1);
    if (!lo && !hi) return "integer";
    if (lo && hi) {
      if (*hi < *lo) bad("integer bounds leave no value");
      if (*hi - *lo >= 4096) bad("integer bounds spanning over 4096 values are not supported");
      std::string alts;
      for (int64_t v = *lo; v <= *hi; ++v) alts += (alts.empty() ? "\"" : " | \"") + std::to_string(v) + "\"";
      return "(" + alts + ")";
    }
    if (lo && !hi && (*lo == 0 || *lo == 1)) return *lo == 0 ? "(\"0\" | [1-9] [0-9]{0,15})" : "[1-9] [0-9]{0,15}";
    bad("integer bounds other than both 'minimum' and 'maximum', or 'minimum' 0 or 1 alone, are not supported");
  }

  std::string object(const json::object& o, const std::string& hint) {
    std::vector<std::pair<std::string, std::string>> props;  // (literal key, value rule)
    std::set<std::string> required;
    if (const auto* r = get(o, "required")) {
      if (!r->is_array()) bad("'required' must be an array");
      for (const auto& k : r->as_array()) {
        if (!k.is_string()) bad("'required' entries must be strings");
        required.insert(std::string(k.as_string()));
      }
    }
    if (const auto* p = get(o, "properties")) {
      if (!p->is_object()) bad("'properties' must be an object");
      for (const auto& kv : p->as_object()) {
        const std::string key(kv.key());
        props.emplace_back(key, new_rule(hint + "-" + key, rule_for(kv.value(), hint + "-" + key)));
      }
    }
    for (const auto& k : required) {
      if (std::none_of(props.begin(), props.end(), [&](const auto& p) { return p.first == k; }))
        bad("required property '" + k + "' is not in 'properties'");
    }
    // Extra properties: with a schema or true; with no properties at all and nothing said,
    // any object (a bare {"type": "object"}).
    std::string extra;
    const json::value* ap = get(o, "additionalProperties");
    if (ap && ap->is_object()) {
      extra = new_rule(hint + "-extra", rule_for(*ap, hint + "-extra"));
    } else if ((ap && ap->is_bool() && ap->as_bool()) || (!ap && props.empty())) {
      extra = "value";
    } else if (ap && !ap->is_bool()) {
      bad("'additionalProperties' must be a boolean or a schema");
    }
    // Properties in declaration order, the optional ones skippable: tail(i, comma) is the
    // rest from property i, with a leading comma when something was written before it.
    const std::string kv_extra = extra.empty() ? "" : "string \":\" ws " + extra;
    std::vector<std::array<std::string, 2>> tails(props.size() + 1);
    for (int comma = 0; comma < 2; ++comma) {
      const std::string sep = comma ? "\",\" ws " : "";
      tails[props.size()][size_t(comma)] =
          extra.empty() ? "\"\""
                        : new_rule(hint + "-more", "(" + sep + kv_extra + " (\",\" ws " + kv_extra + ")*)?");
    }
    for (size_t i = props.size(); i-- > 0;) {
      for (int comma = 0; comma < 2; ++comma) {
        const std::string sep = comma ? "\",\" ws " : "";
        const std::string present =
            sep + gbnf_literal(json::serialize(json::value(props[i].first))) + " \":\" ws " + props[i].second + " " +
            tails[i + 1][1];
        const std::string body = required.count(props[i].first) ? present : present + " | " + tails[i + 1][size_t(comma)];
        tails[i][size_t(comma)] = new_rule(hint + "-p", body);
      }
    }
    return "\"{\" ws " + tails[0][0] + " \"}\"";
  }

  std::string array(const json::object& o, const std::string& hint) {
    std::vector<std::string> prefix;
    if (const auto* p = get(o, "prefixItems")) {
      if (!p->is_array()) bad("'prefixItems' must be an array");
      for (const auto& v : p->as_array()) prefix.push_back(new_rule(hint + "-item", rule_for(v, hint + "-item")));
    }
    std::string item = "value";
    bool more = true;
    if (const auto* it = get(o, "items")) {
      if (it->is_bool() && !it->as_bool()) {
        more = false;
      } else {
        item = new_rule(hint + "-item", rule_for(*it, hint + "-item"));
      }
    }
    const int64_t lo = count(o, "minItems", 0);
    const int64_t hi = count(o, "maxItems", more ? -1 : int64_t(prefix.size()));
    if (hi >= 0 && hi < lo) bad("'maxItems' is below 'minItems'");
    if (lo > 1000 || hi > 1000) bad("minItems/maxItems over 1000 are not supported");
    // Items from index i on, each after a comma when i > 0.
    std::function<std::string(int64_t)> from = [&](int64_t i) -> std::string {
      const std::string sep = i > 0 ? "\",\" ws " : "";
      if (hi >= 0 && i >= hi) return "\"\"";
      if (size_t(i) < prefix.size()) {
        const std::string present = "(" + sep + prefix[size_t(i)] + " " + from(i + 1) + ")";
        return i >= lo ? present + "?" : present;
      }
      if (!more) {
        if (i < lo) bad("'minItems' exceeds the items 'prefixItems' allows");
        return "\"\"";
      }
      const int64_t need = std::max<int64_t>(lo - i, 0);
      const std::string rep = hi >= 0 ? std::to_string(hi - i) : "";
      if (i > 0) return "(\",\" ws " + item + "){" + std::to_string(need) + "," + rep + "}";
      // The first item has no comma before it.
      const std::string rest = "(\",\" ws " + item + "){" + std::to_string(std::max<int64_t>(need - 1, 0)) + "," +
                               (hi >= 0 ? std::to_string(hi - 1) : "") + "}";
      return need > 0 ? "(" + item + " " + rest + ")" : "(" + item + " " + rest + ")?";
    };
    return "\"[\" ws " + new_rule(hint + "-items", from(0)) + " \"]\"";
  }

  const json::value& root_;
  std::map<std::string, std::string> rules_;
  std::map<std::string, std::string> refs_;
};

}  // namespace

std::string json_schema_to_gbnf(std::string_view schema_json) {
  boost::system::error_code ec;
  const json::value v = json::parse(schema_json, ec);
  if (ec) fail("json_schema: not valid JSON: {}", ec.message());
  return SchemaCompiler(v).compile();
}

std::string json_object_gbnf() { return std::string("root ::= object\n") + kPrimitives; }

std::string choice_gbnf(const std::vector<std::string>& choices) {
  if (choices.empty()) fail("choice: the list of choices is empty");
  std::string alts;
  for (const auto& c : choices) alts += (alts.empty() ? "" : " | ") + gbnf_literal(c);
  return "root ::= " + alts + "\n";
}

}  // namespace troupe::grammar
