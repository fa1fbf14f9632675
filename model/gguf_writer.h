#pragma once
// GGUF v3 writer. Metadata and the tensor directory are declared first; then the header is
// written and tensor data is streamed in declaration order, so a model far larger than
// memory can be written a few rows at a time. The file appears under its final name only
// after finish() (it is written to "<path>.tmp" and renamed), so a failed run leaves no
// half-written model behind.
#include <cstdint>
#include <string>
#include <vector>

#include "core/atomic_file.h"
#include "model/gguf.h"

namespace troupe {

class GgufWriter {
 public:
  explicit GgufWriter(std::string path);
  // Dropping a writer before finish() removes its temporary file.
  GgufWriter(const GgufWriter&) = delete;
  GgufWriter& operator=(const GgufWriter&) = delete;

  // Metadata, written in the order first set (setting a key again replaces its value).
  // "general.alignment" (u32, a power of two) changes the data alignment from 32.
  void set(const std::string& key, GgufValue v);
  // Declares a tensor; `shape` is outermost first ({rows=out, cols=in} for a matrix) and is
  // written reversed, as GGUF's ne[]. Returns its index.
  size_t add_tensor(const std::string& name, uint32_t ggml_type, const std::vector<int64_t>& shape);
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }

  // Writes the header, metadata and tensor directory. No more set()/add_tensor() after it.
  void begin_data();
  // Appends bytes of the current tensor (tensors in declaration order; a tensor's padding is
  // written as soon as all its bytes have arrived).
  void write_data(const void* p, size_t n);
  // Checks every tensor got exactly its bytes, flushes and renames into place.
  void finish();

 private:
  void put(const void* p, size_t n);
  void put_string(const std::string& s);
  void put_value(const GgufValue& v, const std::string& key);
  void pad_to(uint64_t alignment);
  void check_open() const;

  std::string path_;
  AtomicFile file_;
  uint64_t pos_ = 0;
  uint64_t alignment_ = 32;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::vector<GgufTensorInfo> tensors_;
  bool header_written_ = false, finished_ = false;
  size_t cur_ = 0;          // tensor receiving data
  uint64_t cur_written_ = 0;
};

}  // namespace troupe
