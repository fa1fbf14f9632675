#include "app/loaded_model.h"

#include "model/quantized_checkpoint.h"
#include "model/tokenizer_loader.h"

namespace troupe::app {

LoadedModel load_cpu_model(const std::string& path, const cpu::CpuBackendOptions& opts) {
  LoadedModel m;
  m.tokenizer = load_tokenizer(path);
  m.backend = std::make_unique<cpu::CpuBackend>(load_checkpoint(path), opts);
  return m;
}

}  // namespace troupe::app
