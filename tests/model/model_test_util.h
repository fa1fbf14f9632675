#pragma once
// Helpers shared by the model/ tests: byte-level file surgery and error capture.
#include <catch2/catch.hpp>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "model/safetensors.h"
#include "test_util.h"

namespace troupe::test {

inline void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(f.good());
}

// Overwrites bytes in place. Damage loops use this and fs::resize_file rather than writing a
// fresh file per case: rewriting costs milliseconds a time on a disk-backed /tmp.
inline void poke(const std::string& path, size_t at, const std::string& bytes) {
  std::fstream f(path, std::ios::binary | std::ios::in | std::ios::out);
  f.seekp(static_cast<std::streamoff>(at));
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(f.good());
}

// Runs f, which must throw troupe::Error (any other exception fails the test as
// unexpected); returns the message.
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const troupe::Error& e) {
    return e.what();
  }
  FAIL("expected a troupe::Error");
  return {};
}

// Either loads or throws troupe::Error whose message names `path`; returns true if it threw.
template <typename F>
bool loads_or_names(F&& f, const std::string& path) {
  try {
    f();
    return false;
  } catch (const troupe::Error& e) {
    std::string msg = e.what();
    if (msg.find(path) == std::string::npos) FAIL("error does not name " << path << ": " << msg);
    return true;
  }
}

template <typename T>
void put_le(std::string& bytes, size_t at, T v) {
  REQUIRE(at + sizeof(T) <= bytes.size());
  std::memcpy(bytes.data() + at, &v, sizeof(T));
}

template <typename T>
T get_le(const std::string& bytes, size_t at) {
  T v;
  std::memcpy(&v, bytes.data() + at, sizeof(T));
  return v;
}

// Offset of a GGUF tensor-info record's n_dims field: just after the (length-prefixed) name.
inline size_t gguf_tensor_info_at(const std::string& bytes, const std::string& name) {
  std::string needle(8, '\0');
  uint64_t n = name.size();
  std::memcpy(needle.data(), &n, 8);
  needle += name;
  size_t at = bytes.rfind(needle);  // tensor infos follow the metadata
  REQUIRE(at != std::string::npos);
  return at + needle.size();
}

// A tensor for a hand-built safetensors file.
struct StTensor {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<float> values;  // written as F32
};

inline void write_safetensors(const std::string& path, const std::vector<StTensor>& ts) {
  SafetensorsWriter w(path);
  for (auto& t : ts) w.add_tensor(t.name, DType::F32, t.shape);
  w.begin_data();
  for (auto& t : ts) w.write_data(t.values.data(), t.values.size() * 4);
  w.finish();
}

inline std::vector<float> ramp(int64_t n, float scale = 0.01f) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = static_cast<float>(i % 97) * scale - 0.3f;
  return v;
}

}  // namespace troupe::test
