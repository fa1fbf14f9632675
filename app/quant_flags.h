#pragma once
// The --quantization / --group-size / --lm-head flags, shared by every command that loads a
// model (generate, bench decode, bench throughput, eval).
#include <CLI/CLI.hpp>

#include "quant/options.h"

namespace troupe::app {

inline void add_quantization_flags(CLI::App* cmd, quant::Options& o) {
  cmd->add_option_function<std::string>(
         "--quantization", [&o](const std::string& s) { o.method = quant::parse_method(s); },
         "Weights: none (as stored; GGUF Q8_0/Q4_0 run natively) | int8 | int4 (round-to-nearest "
         "at load) | awq (pre-quantized checkpoint, e.g. from `troupe quantize`)")
      ->check(CLI::IsMember({"none", "int8", "int4", "awq"}))
      ->default_str("none");
  cmd->add_option("--group-size", o.group_size, "INT4 group size (32, 64, 128)")
      ->check(CLI::IsMember({32, 64, 128}))
      ->capture_default_str();
  cmd->add_option_function<std::string>(
         "--lm-head", [&o](const std::string& s) { o.lm_head = quant::parse_lm_head(s); },
         "LM head: auto (INT8 under int8/int4, else as stored) | float | int8 | int4")
      ->check(CLI::IsMember({"auto", "float", "int8", "int4"}))
      ->default_str("auto");
}

}  // namespace troupe::app
