#pragma once
// Shared by the fuzz targets (tests/fuzz/*_fuzz.cpp, docs/fuzzing.md): the loaders under test
// read files by path, so an input is written to a scratch file first; the real models the
// request and chat targets need are found as the tests find them ($TROUPE_MODELS).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace troupe::fuzz {

// Writes `data` to <per-process scratch dir>/<name> (replaced on every call) and returns its path.
std::string scratch_file(const uint8_t* data, size_t size, const std::string& name);

// $TROUPE_MODELS/<rel>, or <source>/../shared/models/<rel> when TROUPE_MODELS is unset.
// Aborts with a message when the file is missing (a target without its model tests nothing).
std::string model_path(const std::string& rel);

inline std::string_view as_text(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

}  // namespace troupe::fuzz
