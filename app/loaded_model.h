#pragma once
// A model ready to run on the CPU: its tokenizer and a backend with a KV pool.
#include <memory>
#include <string>

#include "cpu/cpu_backend.h"
#include "tokenizer/tokenizer.h"

namespace troupe::app {

struct LoadedModel {
  std::unique_ptr<Tokenizer> tokenizer;
  std::unique_ptr<cpu::CpuBackend> backend;
};

LoadedModel load_cpu_model(const std::string& path, const cpu::CpuBackendOptions& opts);

}  // namespace troupe::app
