// Fuzz target: the safetensors header (model/safetensors.cpp): the 8-byte length, the JSON
// header, dtypes, shapes and data offsets. Every tensor it accepts is read at its first and
// last byte, so an entry that points outside the file shows up under AddressSanitizer.
#include "core/error.h"
#include "fuzz_support.h"
#include "model/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = troupe::fuzz::scratch_file(data, size, "model.safetensors");
  try {
    const auto f = troupe::SafetensorsFile::open(path);
    volatile uint8_t sink = 0;
    for (const auto& e : f.tensors()) {
      if (e.end == e.begin) continue;
      const uint8_t* p = f.data(e);
      sink = sink ^ p[0] ^ p[e.end - e.begin - 1];
    }
    for (const auto& [k, v] : f.metadata()) sink = sink ^ uint8_t(k.size() + v.size());
  } catch (const troupe::Error&) {
  }
  return 0;
}
