#pragma once
// GGUF (v2/v3) reader: the header, typed metadata and tensor directory of a .gguf file,
// parsed with every read bounds-checked against the memory-mapped file. Tensor data is not
// copied: tensor_data() points into the map. Spec: ggml/docs/gguf.md.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

#include "core/dtype.h"
#include "core/mapped_file.h"

namespace troupe {

// Metadata value types, numbered as in the file.
enum class GgufType : uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, Bool = 7,
  String = 8, Array = 9, U64 = 10, I64 = 11, F64 = 12,
};
const char* gguf_type_name(GgufType t);

// ggml tensor types troupe reads and writes (the file may name others; see ggml_type_name).
enum GgmlType : uint32_t { kGgmlF32 = 0, kGgmlF16 = 1, kGgmlQ4_0 = 2, kGgmlQ8_0 = 8, kGgmlBF16 = 30 };
// "Q4_K" etc. for any ggml type number ("unknown (77)" otherwise).
std::string ggml_type_name(uint32_t t);
// The troupe dtype of a supported ggml type, nullopt otherwise.
std::optional<DType> ggml_to_dtype(uint32_t t);
uint32_t dtype_to_ggml(DType t);  // throws for dtypes GGUF cannot hold here

// One metadata value. Integers keep their exact file type so a file can be rewritten
// byte for byte; arrays hold their elements (all of elem_type) in `items`.
struct GgufValue {
  GgufType type = GgufType::U32;
  std::variant<uint64_t, int64_t, double, bool, std::string> scalar;  // unused for arrays
  GgufType elem_type = GgufType::U8;                                   // arrays only
  std::vector<GgufValue> items;                                        // arrays only

  static GgufValue u32(uint32_t v) { return {GgufType::U32, uint64_t{v}, {}, {}}; }
  static GgufValue i32(int32_t v) { return {GgufType::I32, int64_t{v}, {}, {}}; }
  static GgufValue u64(uint64_t v) { return {GgufType::U64, v, {}, {}}; }
  static GgufValue f32(float v) { return {GgufType::F32, double{v}, {}, {}}; }
  static GgufValue boolean(bool v) { return {GgufType::Bool, v, {}, {}}; }
  static GgufValue str(std::string v) { return {GgufType::String, std::move(v), {}, {}}; }
  static GgufValue array(GgufType elem, std::vector<GgufValue> items) {
    return {GgufType::Array, uint64_t{0}, elem, std::move(items)};
  }
  static GgufValue str_array(const std::vector<std::string>& v);
  static GgufValue f32_array(const std::vector<float>& v);
  static GgufValue i32_array(const std::vector<int32_t>& v);

  bool is_integer() const;
  bool is_float() const { return type == GgufType::F32 || type == GgufType::F64; }
  bool operator==(const GgufValue& o) const = default;
};

struct GgufTensorInfo {
  std::string name;
  std::vector<uint64_t> ne;  // ggml order: ne[0] is the innermost (contiguous) dimension
  uint32_t ggml_type = 0;
  uint64_t offset = 0;       // relative to the data section
  // Byte size, or -1 when ggml_type is not one troupe knows (such a tensor is listed but
  // its data is unchecked and unusable).
  int64_t nbytes = -1;
  // Shape outermost first, as TensorView wants it: {ne[n-1], ..., ne[0]}.
  std::vector<int64_t> shape() const;
};

class GgufFile {
 public:
  // Maps and parses `path`. Throws troupe::Error naming the file (and key/tensor) on any
  // structural problem: bad magic/version, truncation, absurd counts, duplicate names,
  // misaligned or out-of-file tensor data.
  static GgufFile open(const std::string& path);

  const std::string& path() const { return file_->path(); }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }
  const std::shared_ptr<MappedFile>& file() const { return file_; }

  // Metadata in file order.
  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return kv_; }
  const GgufValue* find(std::string_view key) const;
  // Typed getters: throw (naming file and key) when the key is present with the wrong type
  // or an out-of-range value; the optional forms return nullopt when the key is absent.
  std::optional<int64_t> get_int(std::string_view key) const;
  std::optional<double> get_float(std::string_view key) const;
  std::optional<bool> get_bool(std::string_view key) const;
  std::optional<std::string> get_string(std::string_view key) const;
  // Array getters (absent -> nullopt); element type checked.
  std::optional<std::vector<std::string>> get_string_array(std::string_view key) const;
  std::optional<std::vector<float>> get_float_array(std::string_view key) const;
  std::optional<std::vector<int32_t>> get_int_array(std::string_view key) const;

  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* find_tensor(std::string_view name) const;
  // Start of a tensor's data inside the map (bounds were checked at open for known types).
  const uint8_t* tensor_data(const GgufTensorInfo& t) const {
    return file_->data() + data_offset_ + t.offset;
  }

 private:
  std::shared_ptr<MappedFile> file_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::unordered_map<std::string, size_t> kv_index_;
  std::vector<GgufTensorInfo> tensors_;
  std::unordered_map<std::string, size_t> tensor_index_;
};

}  // namespace troupe
