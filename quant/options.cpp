#include "quant/options.h"

#include "core/error.h"

namespace troupe::quant {

std::string_view method_name(Method m) {
  switch (m) {
    case Method::None: return "none";
    case Method::Int8: return "int8";
    case Method::Int4: return "int4";
    case Method::Awq: return "awq";
  }
  return "?";
}

std::string_view lm_head_name(LmHead h) {
  switch (h) {
    case LmHead::Auto: return "auto";
    case LmHead::Float: return "float";
    case LmHead::Int8: return "int8";
    case LmHead::Int4: return "int4";
  }
  return "?";
}

Method parse_method(std::string_view s) {
  for (Method m : {Method::None, Method::Int8, Method::Int4, Method::Awq})
    if (s == method_name(m)) return m;
  fail("quantization '{}' is not one of none, int8, int4, awq", s);
}

LmHead parse_lm_head(std::string_view s) {
  for (LmHead h : {LmHead::Auto, LmHead::Float, LmHead::Int8, LmHead::Int4})
    if (s == lm_head_name(h)) return h;
  fail("lm_head quantization '{}' is not one of auto, float, int8, int4", s);
}

void validate(const Options& o) {
  const bool int4 = o.method == Method::Int4 || o.lm_head == LmHead::Int4;
  if (int4 && o.group_size != 32 && o.group_size != 64 && o.group_size != 128)
    fail("INT4 group size {} is not supported (32, 64 or 128)", o.group_size);
}

std::string describe(const Options& o) {
  std::string s(method_name(o.method));
  if (o.method == Method::Int4) s += "-g" + std::to_string(o.group_size);
  if (o.lm_head != LmHead::Auto) s += ", lm_head " + std::string(lm_head_name(o.lm_head));
  return s;
}

}  // namespace troupe::quant
