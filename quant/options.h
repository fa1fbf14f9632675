#pragma once
// Names, parsing and validation of the quantization settings (the settings themselves,
// quant::Options, live with every other configuration struct in config/quant_config.h).
#include <cstdint>
#include <string>
#include <string_view>

#include "config/quant_config.h"  // Method, LmHead, Options: the configuration itself

namespace troupe::quant {

std::string_view method_name(Method m);
std::string_view lm_head_name(LmHead h);
// "none" | "int8" | "int4" | "awq"; throws troupe::Error on anything else.
Method parse_method(std::string_view s);
// "auto" | "float" | "int8" | "int4".
LmHead parse_lm_head(std::string_view s);
// Throws troupe::Error on an unsupported group size.
void validate(const Options& o);
// "none", "int8", "int4-g128", "awq" (+ ", lm_head int8" when not the default).
std::string describe(const Options& o);

}  // namespace troupe::quant
