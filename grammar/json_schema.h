#pragma once
// JSON Schema -> GBNF. Output is compact JSON (one optional space after ':' and ','), which
// keeps a small model from wandering off into whitespace. Supported keywords:
//   type (one or a list), properties, required, additionalProperties (false / true / a
//   schema; absent = no extra properties, as OpenAI's strict mode requires), enum, const,
//   anyOf, oneOf (as anyOf: exclusivity is not enforced), allOf with one entry, $ref to
//   #/$defs/.. or #/definitions/.. or # (recursion allowed), items, prefixItems, minItems,
//   maxItems, minLength, maxLength, pattern, minimum/maximum/exclusiveMinimum/
//   exclusiveMaximum on integers where expressible (both bounds within 4096 values, or a
//   lower bound of 0 or 1 alone), minimum 0 on numbers; annotations (title, description,
//   default, examples, $schema, $id, $comment) are ignored. Any other keyword throws
//   troupe::Error naming it.
#include <string>
#include <string_view>
#include <vector>

namespace troupe::grammar {

std::string json_schema_to_gbnf(std::string_view schema_json);

// Any JSON object (OpenAI's response_format json_object).
std::string json_object_gbnf();

// One of the given strings, verbatim (vLLM's guided_choice).
std::string choice_gbnf(const std::vector<std::string>& choices);

}  // namespace troupe::grammar
