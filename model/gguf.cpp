#include "model/gguf.h"

#include <bit>
#include <cstring>
#include <limits>

#include "core/error.h"

static_assert(std::endian::native == std::endian::little, "GGUF reader assumes a little-endian host");

namespace troupe {

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian u32
constexpr uint64_t kDefaultAlignment = 32;
constexpr int kMaxArrayDepth = 4;              // nested arrays: recursion stays shallow
constexpr uint64_t kMaxArrayLen = 1ull << 26;  // 67M elements: far above any real vocab
constexpr uint32_t kMaxDims = 4;               // GGML_MAX_DIMS

// Bounds-checked little-endian reader over the mapped file. Every failure names the file,
// what was being read and where.
class Cursor {
 public:
  Cursor(const MappedFile& f) : base_(f.data()), size_(f.size()), path_(f.path()) {}

  size_t pos() const { return pos_; }
  size_t remaining() const { return size_ - pos_; }

  void need(uint64_t n, std::string_view what) const {
    if (n > remaining()) {
      fail("{}: truncated GGUF: {} needs {} bytes at offset {}, but the file ends at {}", path_,
           what, n, pos_, size_);
    }
  }
  template <typename T>
  T read(std::string_view what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, base_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string read_string(std::string_view what) {
    uint64_t n = read<uint64_t>(what);
    if (n > remaining()) {
      fail("{}: corrupt GGUF: {} has length {} at offset {}, but only {} bytes remain", path_,
           what, n, pos_ - 8, remaining());
    }
    std::string s(reinterpret_cast<const char*>(base_ + pos_), n);
    pos_ += n;
    return s;
  }

 private:
  const uint8_t* base_;
  size_t size_;
  size_t pos_ = 0;
  const std::string& path_;
};

// Size in bytes of a fixed-size value type; 0 for string/array.
size_t scalar_size(GgufType t) {
  switch (t) {
    case GgufType::U8: case GgufType::I8: case GgufType::Bool: return 1;
    case GgufType::U16: case GgufType::I16: return 2;
    case GgufType::U32: case GgufType::I32: case GgufType::F32: return 4;
    case GgufType::U64: case GgufType::I64: case GgufType::F64: return 8;
    default: return 0;
  }
}

bool valid_type(uint32_t t) { return t <= static_cast<uint32_t>(GgufType::F64); }

GgufValue read_value(Cursor& c, GgufType type, const std::string& path, const std::string& key,
                     int depth) {
  GgufValue v;
  v.type = type;
  switch (type) {
    case GgufType::U8: v.scalar = uint64_t{c.read<uint8_t>(key)}; break;
    case GgufType::I8: v.scalar = int64_t{c.read<int8_t>(key)}; break;
    case GgufType::U16: v.scalar = uint64_t{c.read<uint16_t>(key)}; break;
    case GgufType::I16: v.scalar = int64_t{c.read<int16_t>(key)}; break;
    case GgufType::U32: v.scalar = uint64_t{c.read<uint32_t>(key)}; break;
    case GgufType::I32: v.scalar = int64_t{c.read<int32_t>(key)}; break;
    case GgufType::U64: v.scalar = c.read<uint64_t>(key); break;
    case GgufType::I64: v.scalar = c.read<int64_t>(key); break;
    case GgufType::F32: v.scalar = double{c.read<float>(key)}; break;
    case GgufType::F64: v.scalar = c.read<double>(key); break;
    case GgufType::Bool: {
      uint8_t b = c.read<uint8_t>(key);
      if (b > 1) fail("{}: corrupt GGUF: key '{}': bool value {} is neither 0 nor 1", path, key, b);
      v.scalar = b != 0;
      break;
    }
    case GgufType::String: v.scalar = c.read_string(key); break;
    case GgufType::Array: {
      if (depth >= kMaxArrayDepth) fail("{}: corrupt GGUF: key '{}': arrays nested too deeply", path, key);
      uint32_t et = c.read<uint32_t>(key);
      if (!valid_type(et)) fail("{}: corrupt GGUF: key '{}': unknown array element type {}", path, key, et);
      uint64_t n = c.read<uint64_t>(key);
      // Every element takes at least this many bytes, so a count the file cannot hold is
      // rejected before anything is allocated.
      GgufType elem = static_cast<GgufType>(et);
      uint64_t min_bytes = elem == GgufType::String ? 8 : elem == GgufType::Array ? 12 : scalar_size(elem);
      if (n > kMaxArrayLen || n > c.remaining() / min_bytes) {
        fail("{}: corrupt GGUF: key '{}': array length {} is impossible ({} bytes remain)", path,
             key, n, c.remaining());
      }
      v.elem_type = elem;
      v.items.reserve(n);
      for (uint64_t i = 0; i < n; ++i) v.items.push_back(read_value(c, elem, path, key, depth + 1));
      break;
    }
  }
  return v;
}

uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

}  // namespace

const char* gguf_type_name(GgufType t) {
  static const char* names[] = {"u8",  "i8",     "u16",   "i16", "u32", "i32", "f32",
                                "bool", "string", "array", "u64", "i64", "f64"};
  auto i = static_cast<uint32_t>(t);
  return i < std::size(names) ? names[i] : "?";
}

std::string ggml_type_name(uint32_t t) {
  // ggml's type numbering (ggml.h); gaps are removed types.
  static const char* names[] = {"F32",     "F16",    "Q4_0",    "Q4_1",  "Q4_2",   "Q4_3",
                                "Q5_0",    "Q5_1",   "Q8_0",    "Q8_1",  "Q2_K",   "Q3_K",
                                "Q4_K",    "Q5_K",   "Q6_K",    "Q8_K",  "IQ2_XXS", "IQ2_XS",
                                "IQ3_XXS", "IQ1_S",  "IQ4_NL",  "IQ3_S", "IQ2_S",  "IQ4_XS",
                                "I8",      "I16",    "I32",     "I64",   "F64",    "IQ1_M",
                                "BF16"};
  if (t < std::size(names)) return names[t];
  return fmt::format("unknown ({})", t);
}

std::optional<DType> ggml_to_dtype(uint32_t t) {
  switch (t) {
    case kGgmlF32: return DType::F32;
    case kGgmlF16: return DType::F16;
    case kGgmlBF16: return DType::BF16;
    case kGgmlQ8_0: return DType::Q8_0;
    case kGgmlQ4_0: return DType::Q4_0;
    default: return std::nullopt;
  }
}

uint32_t dtype_to_ggml(DType t) {
  switch (t) {
    case DType::F32: return kGgmlF32;
    case DType::F16: return kGgmlF16;
    case DType::BF16: return kGgmlBF16;
    case DType::Q8_0: return kGgmlQ8_0;
    case DType::Q4_0: return kGgmlQ4_0;
    default: fail("dtype {} cannot be stored in a GGUF file", dtype_name(t));
  }
}

GgufValue GgufValue::str_array(const std::vector<std::string>& v) {
  std::vector<GgufValue> items;
  items.reserve(v.size());
  for (auto& s : v) items.push_back(str(s));
  return array(GgufType::String, std::move(items));
}

GgufValue GgufValue::f32_array(const std::vector<float>& v) {
  std::vector<GgufValue> items;
  items.reserve(v.size());
  for (float x : v) items.push_back(f32(x));
  return array(GgufType::F32, std::move(items));
}

GgufValue GgufValue::i32_array(const std::vector<int32_t>& v) {
  std::vector<GgufValue> items;
  items.reserve(v.size());
  for (int32_t x : v) items.push_back(i32(x));
  return array(GgufType::I32, std::move(items));
}

bool GgufValue::is_integer() const {
  switch (type) {
    case GgufType::U8: case GgufType::I8: case GgufType::U16: case GgufType::I16:
    case GgufType::U32: case GgufType::I32: case GgufType::U64: case GgufType::I64: return true;
    default: return false;
  }
}

std::vector<int64_t> GgufTensorInfo::shape() const {
  return std::vector<int64_t>(ne.rbegin(), ne.rend());
}

GgufFile GgufFile::open(const std::string& path) {
  GgufFile g;
  g.file_ = MappedFile::open(path);
  Cursor c(*g.file_);

  uint32_t magic = c.read<uint32_t>("magic");
  if (magic != kMagic) fail("{}: not a GGUF file (bad magic)", path);
  g.version_ = c.read<uint32_t>("version");
  if (g.version_ == 1) fail("{}: GGUF version 1 is not supported (re-convert the model)", path);
  if (g.version_ != 2 && g.version_ != 3) {
    if (__builtin_bswap32(g.version_) == 2 || __builtin_bswap32(g.version_) == 3) {
      fail("{}: big-endian GGUF files are not supported", path);
    }
    fail("{}: unsupported GGUF version {} (expected 3)", path, g.version_);
  }
  uint64_t n_tensors = c.read<uint64_t>("tensor count");
  uint64_t n_kv = c.read<uint64_t>("metadata count");
  // A key/value pair takes at least 8 (key length) + 4 (type) + 1 bytes; a tensor info at
  // least 8 + 4 + 4 + 8: absurd counts are rejected before any allocation.
  if (n_kv > c.remaining() / 13) fail("{}: corrupt GGUF: metadata count {} is impossible", path, n_kv);
  if (n_tensors > c.remaining() / 24) fail("{}: corrupt GGUF: tensor count {} is impossible", path, n_tensors);

  g.kv_.reserve(n_kv);
  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string key = c.read_string(fmt::format("metadata key #{}", i));
    if (key.empty()) fail("{}: corrupt GGUF: metadata key #{} is empty", path, i);
    uint32_t t = c.read<uint32_t>(key);
    if (!valid_type(t)) fail("{}: corrupt GGUF: key '{}' has unknown value type {}", path, key, t);
    GgufValue v = read_value(c, static_cast<GgufType>(t), path, key, 0);
    if (!g.kv_index_.emplace(key, g.kv_.size()).second) {
      fail("{}: corrupt GGUF: duplicate metadata key '{}'", path, key);
    }
    g.kv_.emplace_back(std::move(key), std::move(v));
  }

  if (const GgufValue* a = g.find("general.alignment")) {
    if (a->type != GgufType::U32) {
      fail("{}: corrupt GGUF: general.alignment has type {}, expected u32", path, gguf_type_name(a->type));
    }
    uint64_t al = std::get<uint64_t>(a->scalar);
    if (al == 0 || (al & (al - 1)) != 0) {
      fail("{}: corrupt GGUF: general.alignment {} is not a power of two", path, al);
    }
    g.alignment_ = al;
  } else {
    g.alignment_ = kDefaultAlignment;
  }

  g.tensors_.reserve(n_tensors);
  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensorInfo t;
    t.name = c.read_string(fmt::format("tensor name #{}", i));
    uint32_t nd = c.read<uint32_t>(t.name);
    if (nd == 0 || nd > kMaxDims) {
      fail("{}: corrupt GGUF: tensor {}: {} dimensions (1 to {} allowed)", path, t.name, nd, kMaxDims);
    }
    uint64_t numel = 1;
    for (uint32_t d = 0; d < nd; ++d) {
      uint64_t n = c.read<uint64_t>(t.name);
      // Keep every product representable in int64 (nbytes, TensorView::numel).
      if (n > 0 && numel > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / n) {
        fail("{}: corrupt GGUF: tensor {}: dimensions overflow", path, t.name);
      }
      numel *= n;
      t.ne.push_back(n);
    }
    t.ggml_type = c.read<uint32_t>(t.name);
    t.offset = c.read<uint64_t>(t.name);
    if (auto dt = ggml_to_dtype(t.ggml_type)) {
      uint64_t be = static_cast<uint64_t>(dtype_block_elems(*dt));
      if (t.ne[0] % be != 0) {
        fail("{}: corrupt GGUF: tensor {}: row length {} is not a multiple of the {} block size {}",
             path, t.name, t.ne[0], ggml_type_name(t.ggml_type), be);
      }
      uint64_t blocks = numel / be, bb = static_cast<uint64_t>(dtype_block_bytes(*dt));
      if (blocks > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / bb) {
        fail("{}: corrupt GGUF: tensor {}: size overflows", path, t.name);
      }
      t.nbytes = static_cast<int64_t>(blocks * bb);
    }
    if (!g.tensor_index_.emplace(t.name, g.tensors_.size()).second) {
      fail("{}: corrupt GGUF: duplicate tensor name '{}'", path, t.name);
    }
    g.tensors_.push_back(std::move(t));
  }

  // The data section starts at the next multiple of the alignment (padding may run to EOF
  // only when there are no tensors).
  g.data_offset_ = align_up(c.pos(), g.alignment_);
  const uint64_t size = g.file_->size();
  if (g.data_offset_ > size && !g.tensors_.empty()) {
    fail("{}: truncated GGUF: data section would start at {}, but the file ends at {}", path,
         g.data_offset_, size);
  }
  const uint64_t data_size = size > g.data_offset_ ? size - g.data_offset_ : 0;
  for (const auto& t : g.tensors_) {
    if (t.offset % g.alignment_ != 0) {
      fail("{}: corrupt GGUF: tensor {}: data offset {} is not a multiple of the alignment {}",
           path, t.name, t.offset, g.alignment_);
    }
    if (t.nbytes < 0) continue;  // unknown type: size unknown; unusable, reported on use
    if (t.offset > data_size || static_cast<uint64_t>(t.nbytes) > data_size - t.offset) {
      fail("{}: truncated GGUF: tensor {}: data [{}, {}) lies beyond the end of the file "
           "(data section holds {} bytes)", path, t.name, t.offset,
           t.offset + static_cast<uint64_t>(t.nbytes), data_size);
    }
  }
  return g;
}

const GgufValue* GgufFile::find(std::string_view key) const {
  auto it = kv_index_.find(std::string(key));
  return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

const GgufTensorInfo* GgufFile::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(std::string(name));
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

namespace {

// Integer value of an integer-typed scalar, range-checked into int64.
std::optional<int64_t> as_int64(const GgufValue& v) {
  if (!v.is_integer()) return std::nullopt;
  if (auto* u = std::get_if<uint64_t>(&v.scalar)) {
    if (*u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
    return static_cast<int64_t>(*u);
  }
  return std::get<int64_t>(v.scalar);
}

}  // namespace

std::optional<int64_t> GgufFile::get_int(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  auto r = as_int64(*v);
  if (!r) fail("{}: metadata {} has type {}, expected an integer in int64 range", path(), key, gguf_type_name(v->type));
  return r;
}

std::optional<double> GgufFile::get_float(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->is_float()) return std::get<double>(v->scalar);
  if (auto i = as_int64(*v)) return static_cast<double>(*i);
  fail("{}: metadata {} has type {}, expected a number", path(), key, gguf_type_name(v->type));
}

std::optional<bool> GgufFile::get_bool(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != GgufType::Bool) fail("{}: metadata {} has type {}, expected bool", path(), key, gguf_type_name(v->type));
  return std::get<bool>(v->scalar);
}

std::optional<std::string> GgufFile::get_string(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != GgufType::String) fail("{}: metadata {} has type {}, expected string", path(), key, gguf_type_name(v->type));
  return std::get<std::string>(v->scalar);
}

std::optional<std::vector<std::string>> GgufFile::get_string_array(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != GgufType::Array || v->elem_type != GgufType::String) {
    fail("{}: metadata {} is not an array of strings", path(), key);
  }
  std::vector<std::string> out;
  out.reserve(v->items.size());
  for (auto& e : v->items) out.push_back(std::get<std::string>(e.scalar));
  return out;
}

std::optional<std::vector<float>> GgufFile::get_float_array(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != GgufType::Array || (v->elem_type != GgufType::F32 && v->elem_type != GgufType::F64)) {
    fail("{}: metadata {} is not an array of floats", path(), key);
  }
  std::vector<float> out;
  out.reserve(v->items.size());
  for (auto& e : v->items) out.push_back(static_cast<float>(std::get<double>(e.scalar)));
  return out;
}

std::optional<std::vector<int32_t>> GgufFile::get_int_array(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != GgufType::Array) fail("{}: metadata {} is not an array", path(), key);
  std::vector<int32_t> out;
  out.reserve(v->items.size());
  for (auto& e : v->items) {
    auto i = as_int64(e);
    if (!i || *i < std::numeric_limits<int32_t>::min() || *i > std::numeric_limits<int32_t>::max()) {
      fail("{}: metadata {}: element {} is not an int32", path(), key, out.size());
    }
    out.push_back(static_cast<int32_t>(*i));
  }
  return out;
}

}  // namespace troupe
