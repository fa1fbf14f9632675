// JSON Schema -> grammar: documents that satisfy the schema are sentences of the grammar,
// documents that break it are not, and unsupported keywords are errors naming them.
#include <catch2/catch.hpp>

#include "core/error.h"
#include "grammar/constraint.h"
#include "grammar/matcher.h"

using namespace troupe;
using namespace troupe::grammar;

namespace {

bool accepts(const std::string& schema, const std::string& doc) {
  Matcher m(compile({"json_schema", schema}));
  return m.accept(doc) && m.can_end();
}

std::string schema_error(const std::string& schema) {
  try {
    compile({"json_schema", schema});
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("json_schema: objects with required and optional properties", "[grammar][json_schema]") {
  const std::string s = R"({"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"string"},
    "c":{"type":"boolean"}},"required":["a"],"additionalProperties":false})";
  CHECK(accepts(s, R"({"a":1})"));
  CHECK(accepts(s, R"({"a": -12, "b": "x\"y", "c": true})"));
  CHECK(accepts(s, R"({"a":0,"c":false})"));
  CHECK_FALSE(accepts(s, R"({"b":"x"})"));         // a is required
  CHECK_FALSE(accepts(s, R"({"a":1,"d":2})"));     // no extra properties
  CHECK_FALSE(accepts(s, R"({"a":01})"));          // JSON numbers have no leading zeros
  CHECK_FALSE(accepts(s, R"({"a":1,})"));
  CHECK_FALSE(accepts(s, R"({"a":1.5})"));
}

TEST_CASE("json_schema: arrays, bounds, enum, const, anyOf, nullable types", "[grammar][json_schema]") {
  const std::string arr = R"({"type":"array","items":{"type":"number"},"minItems":1,"maxItems":3})";
  CHECK(accepts(arr, "[1.5]"));
  CHECK(accepts(arr, "[1, 2e3, -0.25]"));
  CHECK_FALSE(accepts(arr, "[]"));
  CHECK_FALSE(accepts(arr, "[1,2,3,4]"));
  const std::string tuple = R"({"type":"array","prefixItems":[{"type":"string"},{"type":"integer"}],"items":false})";
  CHECK(accepts(tuple, R"(["a",1])"));
  CHECK(accepts(tuple, R"(["a"])"));
  CHECK_FALSE(accepts(tuple, R"(["a",1,2])"));
  CHECK_FALSE(accepts(tuple, R"([1])"));
  CHECK(accepts(R"({"enum":["red","green",3,null]})", "3"));
  CHECK(accepts(R"({"enum":["red","green",3,null]})", "\"green\""));
  CHECK_FALSE(accepts(R"({"enum":["red","green",3,null]})", "\"blue\""));
  CHECK(accepts(R"({"const":{"k":[1,true]}})", R"({"k":[1,true]})"));
  CHECK(accepts(R"({"anyOf":[{"type":"integer"},{"type":"null"}]})", "null"));
  CHECK(accepts(R"({"type":["string","null"]})", "\"s\""));
  CHECK_FALSE(accepts(R"({"type":["string","null"]})", "1"));
  CHECK(accepts(R"({"type":"string","minLength":2,"maxLength":3})", "\"ab\""));
  CHECK_FALSE(accepts(R"({"type":"string","minLength":2,"maxLength":3})", "\"abcd\""));
  CHECK(accepts(R"({"type":"string","pattern":"^[a-z]+-\\d+$"})", "\"abc-42\""));
  CHECK_FALSE(accepts(R"({"type":"string","pattern":"^[a-z]+-\\d+$"})", "\"abc\""));
  CHECK(accepts(R"({"type":"integer","minimum":-3,"maximum":12})", "-3"));
  CHECK(accepts(R"({"type":"integer","minimum":-3,"maximum":12})", "12"));
  CHECK_FALSE(accepts(R"({"type":"integer","minimum":-3,"maximum":12})", "13"));
  CHECK_FALSE(accepts(R"({"type":"integer","exclusiveMinimum":0})", "0"));
  CHECK(accepts(R"({"type":"integer","minimum":0})", "907"));
  CHECK_FALSE(accepts(R"({"type":"integer","minimum":0})", "-1"));
}

TEST_CASE("json_schema: recursive $ref through $defs", "[grammar][json_schema]") {
  const std::string s = R"({"$ref":"#/$defs/node","$defs":{"node":{"type":"object",
    "properties":{"v":{"type":"integer"},"kids":{"type":"array","items":{"$ref":"#/$defs/node"}}},
    "required":["v"]}}})";
  CHECK(accepts(s, R"({"v":1})"));
  CHECK(accepts(s, R"({"v":1,"kids":[{"v":2},{"v":3,"kids":[{"v":4,"kids":[]}]}]})"));
  CHECK_FALSE(accepts(s, R"({"v":1,"kids":[{"kids":[]}]})"));
}

TEST_CASE("json_schema: bare object and json_object accept any object", "[grammar][json_schema]") {
  CHECK(accepts(R"({"type":"object"})", R"({"x":[1,{"y":null}],"z":"w"})"));
  Matcher m(compile({"json_object", ""}));
  CHECK(m.accept(R"({"a": [1, 2.5, "s", {"b": false}]})"));
  CHECK(m.can_end());
  Matcher n(compile({"json_object", ""}));
  CHECK_FALSE(n.accept("[1]"));  // an object, not any value
}

TEST_CASE("json_schema: unsupported keywords and bad schemas are errors naming them", "[grammar][json_schema]") {
  CHECK(schema_error(R"({"type":"string","format":"email"})").find("unsupported keyword 'format'") != std::string::npos);
  CHECK(schema_error(R"({"type":"object","minProperties":1})").find("'minProperties'") != std::string::npos);
  CHECK(schema_error(R"({"$ref":"#/$defs/missing"})").find("does not resolve") != std::string::npos);
  CHECK(schema_error(R"({"type":"nope"})").find("unknown type 'nope'") != std::string::npos);
  CHECK(schema_error(R"({"type":"object","required":["x"]})").find("'x'") != std::string::npos);
  CHECK(schema_error("{not json").find("not valid JSON") != std::string::npos);
  CHECK(schema_error(R"j({"type":"string","pattern":"(?=x)"})j").find("lookaround") != std::string::npos);
  CHECK(schema_error(R"({"type":"integer","minimum":5})").find("integer bounds") != std::string::npos);
}

TEST_CASE("json_schema: oneOf is exact - provably disjoint branches, or an error naming it", "[grammar][json_schema]") {
  // Different types (integer counts as a number).
  const std::string types = R"({"oneOf":[{"type":"string"},{"type":"integer"},{"type":"null"}]})";
  CHECK(accepts(types, R"("x")"));
  CHECK(accepts(types, "12"));
  CHECK(accepts(types, "null"));
  CHECK_FALSE(accepts(types, "true"));
  // Disjoint const / enum values, also of the same type.
  const std::string values = R"({"oneOf":[{"enum":["a","b"]},{"const":"c"},{"enum":[1,null]}]})";
  CHECK(accepts(values, R"("c")"));
  CHECK(accepts(values, "1"));
  CHECK_FALSE(accepts(values, R"("d")"));
  // A discriminator: a required property with distinct const values, through $ref.
  const std::string tagged = R"({"$defs":{"circle":{"type":"object","properties":{"kind":{"const":"circle"},
    "r":{"type":"number"}},"required":["kind","r"],"additionalProperties":false}},
    "oneOf":[{"$ref":"#/$defs/circle"},{"type":"object","properties":{"kind":{"enum":["square"]},
    "side":{"type":"number"}},"required":["kind","side"],"additionalProperties":false}]})";
  CHECK(accepts(tagged, R"({"kind": "circle", "r": 1})"));
  CHECK(accepts(tagged, R"({"kind": "square", "side": 2})"));
  CHECK_FALSE(accepts(tagged, R"({"kind": "square", "r": 1})"));
  // Overlapping branches: refused, naming oneOf and the branches.
  const std::string e1 = schema_error(R"({"oneOf":[{"type":"number"},{"type":"integer"}]})");
  CHECK(e1.find("'oneOf' branches 0 and 1") != std::string::npos);
  CHECK(schema_error(R"({"oneOf":[{"type":"string"},{"type":"string","maxLength":3}]})").find("'oneOf'") !=
        std::string::npos);
  CHECK(schema_error(R"({"oneOf":[{"enum":["a","b"]},{"enum":["b"]}]})").find("'oneOf'") != std::string::npos);
  CHECK(schema_error(R"({"oneOf":[{"type":"object","properties":{"k":{"const":1}}},
    {"type":"object","properties":{"k":{"const":2}}}]})").find("'oneOf'") != std::string::npos);  // k optional
  CHECK(schema_error(R"({"oneOf":[{},{"type":"null"}]})").find("'oneOf'") != std::string::npos);
  // anyOf keeps allowing overlap.
  CHECK(accepts(R"({"anyOf":[{"type":"number"},{"type":"integer"}]})", "3"));
}

TEST_CASE("choice and regex constraints, cached by text", "[grammar][constraint]") {
  Matcher m(compile({"choice", R"(["yes","no","maybe so"])"}));
  CHECK(m.accept("maybe so"));
  CHECK(m.finished());
  CHECK(compile({"regex", "a+"}) == compile({"regex", "a+"}));
  CHECK(compile({"regex", "a+"}) != compile({"regex", "b+"}));
  CHECK_THROWS_AS(compile({"choice", "[1]"}), Error);
  CHECK_THROWS_AS(compile({"what", ""}), Error);
}
