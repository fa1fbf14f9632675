#pragma once
// safetensors reader and streaming writer. Format: u64 little-endian header length N, N
// bytes of JSON {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}},
// then the byte buffer the offsets index. The reader checks every entry against the file;
// tensor data stays in the memory map.
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/atomic_file.h"
#include "core/dtype.h"
#include "core/mapped_file.h"

namespace troupe {

struct SafetensorsEntry {
  std::string name;
  std::string dtype_name;        // as written ("F32", "BF16", "I64", ...)
  std::optional<DType> dtype;    // F32/F16/BF16; nullopt for dtypes troupe cannot use
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;   // relative to the byte buffer
};

class SafetensorsFile {
 public:
  // Throws troupe::Error naming the file (and tensor) on a malformed header, unknown dtype
  // string, inconsistent size or data beyond the end of the file.
  static SafetensorsFile open(const std::string& path);

  const std::string& path() const { return file_->path(); }
  const std::shared_ptr<MappedFile>& file() const { return file_; }
  const std::vector<SafetensorsEntry>& tensors() const { return tensors_; }
  const SafetensorsEntry* find(const std::string& name) const;
  const uint8_t* data(const SafetensorsEntry& e) const { return file_->data() + data_start_ + e.begin; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  std::shared_ptr<MappedFile> file_;
  uint64_t data_start_ = 0;
  std::vector<SafetensorsEntry> tensors_;
  std::unordered_map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// Declare tensors, begin_data(), stream each tensor's bytes in declaration order, finish().
// Written to "<path>.tmp" and renamed by finish(). The header is space-padded so the data
// starts 8-byte aligned (what the reference implementation does). Dtypes: F32, F16, BF16, and
// I32 / I8 for the integer tensors of pre-quantized checkpoints.
class SafetensorsWriter {
 public:
  explicit SafetensorsWriter(std::string path);
  // Dropping a writer before finish() removes its temporary file.
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;

  void set_metadata(const std::string& key, const std::string& value);
  void add_tensor(const std::string& name, DType dtype, const std::vector<int64_t>& shape);
  void begin_data();
  void write_data(const void* p, size_t n);
  void finish();

 private:
  struct Decl {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    uint64_t begin, end;
  };
  std::string path_;
  AtomicFile file_;
  std::map<std::string, std::string> metadata_;
  std::vector<Decl> decls_;
  uint64_t total_ = 0, written_ = 0;
  bool started_ = false, finished_ = false;
};

}  // namespace troupe
