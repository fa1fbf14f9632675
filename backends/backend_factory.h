#pragma once
// Building a Backend without naming its implementation: callers above the backends
// (spec/, actors/) describe what they need in device-neutral terms and make_backend()
// picks the implementation named by BackendOptions::device. Only backend_factory.cpp
// includes the concrete backends (cpu/cpu_backend.h).
#include <cstdint>
#include <memory>
#include <string>

#include "model/backend.h"
#include "model/quantized_checkpoint.h"
#include "quant/options.h"

namespace troupe {

struct BackendOptions {
  std::string device = "cpu";        // "cpu" (the only one so far)
  int num_threads = 0;               // 0: all hardware threads
  int64_t block_size = 16;           // tokens per KV block
  int64_t num_blocks = 0;            // 0: derive from kv_cache_bytes
  int64_t kv_cache_bytes = int64_t(256) << 20;
  KvDtype kv_dtype = KvDtype::F32;   // stored K/V element type (core/kv_dtype.h)
  quant::Options quantization;       // round-to-nearest at load, or as stored (see quant/options.h)
  bool huge_page_weights = true;     // copy streamed float weights into panels, on huge pages (cpu)
  LayerRange layers;                 // a pipeline stage's layers ({0, 0}: the whole model)
};

// Any checkpoint (load_checkpoint()). Throws troupe::Error for an unknown device, or
// whatever the backend throws for weights it cannot run.
std::shared_ptr<Backend> make_backend(Checkpoint checkpoint, const BackendOptions& opts);

}  // namespace troupe
