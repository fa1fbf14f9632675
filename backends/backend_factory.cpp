#include "backends/backend_factory.h"

#include "core/error.h"
#include "cpu/cpu_backend.h"

namespace troupe {

namespace {

cpu::CpuBackendOptions cpu_options(const BackendOptions& o) {
  cpu::CpuBackendOptions c;
  c.num_threads = o.num_threads;
  c.block_size = o.block_size;
  c.num_blocks = o.num_blocks;
  c.kv_cache_bytes = o.kv_cache_bytes;
  c.kv_dtype = o.kv_dtype;
  c.quantization = o.quantization;
  c.huge_page_weights = o.huge_page_weights;
  c.layer_begin = o.layers.begin;
  c.layer_end = o.layers.end;
  return c;
}

}  // namespace

std::shared_ptr<Backend> make_backend(Checkpoint checkpoint, const BackendOptions& opts) {
  if (opts.device == "cpu") return std::make_shared<cpu::CpuBackend>(std::move(checkpoint), cpu_options(opts));
  fail("unknown backend device '{}' (known: cpu)", opts.device);
}

}  // namespace troupe
