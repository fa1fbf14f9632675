#include "model/safetensors.h"

#include <cstring>
#include <limits>

#include "core/error.h"
#include "model/json_util.h"

namespace troupe {

namespace {

// The header cap of the reference implementation (100 MB): a larger length is corruption.
constexpr uint64_t kMaxHeader = 100ull << 20;

// Element size of every dtype the format defines (0 = not a safetensors dtype).
int64_t st_elem_size(std::string_view d) {
  if (d == "F64" || d == "I64" || d == "U64") return 8;
  if (d == "F32" || d == "I32" || d == "U32") return 4;
  if (d == "F16" || d == "BF16" || d == "I16" || d == "U16") return 2;
  if (d == "BOOL" || d == "U8" || d == "I8" || d == "F8_E4M3" || d == "F8_E5M2") return 1;
  return 0;
}

std::optional<DType> st_dtype(std::string_view d) {
  if (d == "F32") return DType::F32;
  if (d == "F16") return DType::F16;
  if (d == "BF16") return DType::BF16;
  return std::nullopt;
}

const char* st_name(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::I32: return "I32";  // the integer tensors of pre-quantized checkpoints
    case DType::I8: return "I8";
    default: fail("dtype {} cannot be stored in safetensors here", dtype_name(t));
  }
}

}  // namespace

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  SafetensorsFile s;
  s.file_ = MappedFile::open(path);
  const uint64_t size = s.file_->size();
  if (size < 8) fail("{}: truncated safetensors file ({} bytes, no header length)", path, size);
  uint64_t n;
  std::memcpy(&n, s.file_->data(), 8);
  if (n > kMaxHeader) fail("{}: corrupt safetensors: header length {} is absurd", path, n);
  if (n > size - 8) fail("{}: truncated safetensors: header of {} bytes but the file has {}", path, n, size);
  s.data_start_ = 8 + n;
  const uint64_t data_size = size - s.data_start_;

  std::string_view text(reinterpret_cast<const char*>(s.file_->data() + 8), n);
  boost::json::value root = json::parse(text, path + " (safetensors header)");
  const auto& obj = json::as_object(root, path, "safetensors header");
  for (const auto& kv : obj) {
    std::string name(kv.key());
    if (name == "__metadata__") {
      if (!kv.value().is_object()) fail("{}: corrupt safetensors: __metadata__ is not an object", path);
      for (const auto& m : kv.value().get_object()) {
        if (m.value().is_string()) s.metadata_[std::string(m.key())] = std::string(m.value().get_string());
      }
      continue;
    }
    if (!kv.value().is_object()) fail("{}: corrupt safetensors: tensor {}: entry is not an object", path, name);
    const auto& e = kv.value().get_object();
    const std::string where = fmt::format("{}: tensor {}", path, name);
    SafetensorsEntry t;
    t.name = name;
    auto dt = json::get_string(e, "dtype", where);
    if (!dt) fail("{}: corrupt safetensors: no dtype", where);
    t.dtype_name = *dt;
    const int64_t es = st_elem_size(t.dtype_name);
    if (es == 0) fail("{}: corrupt safetensors: unknown dtype '{}'", where, t.dtype_name);
    t.dtype = st_dtype(t.dtype_name);

    auto shp = e.find("shape");
    if (shp == e.end() || !shp->value().is_array()) fail("{}: corrupt safetensors: shape is not an array", where);
    uint64_t numel = 1;
    for (const auto& d : shp->value().get_array()) {
      if (!d.is_int64() && !d.is_uint64()) fail("{}: corrupt safetensors: shape holds a non-integer", where);
      if (d.is_int64() && d.get_int64() < 0) fail("{}: corrupt safetensors: negative dimension", where);
      uint64_t v = d.is_uint64() ? d.get_uint64() : static_cast<uint64_t>(d.get_int64());
      if (v > 0 && numel > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / 8 / v) {
        fail("{}: corrupt safetensors: dimensions overflow", where);
      }
      numel *= v;
      t.shape.push_back(static_cast<int64_t>(v));
    }
    if (t.shape.size() > 8) fail("{}: corrupt safetensors: {} dimensions", where, t.shape.size());

    auto off = e.find("data_offsets");
    if (off == e.end() || !off->value().is_array() || off->value().get_array().size() != 2) {
      fail("{}: corrupt safetensors: data_offsets must be [begin, end]", where);
    }
    const auto& oa = off->value().get_array();
    for (const auto& o : oa) {
      if (!(o.is_uint64() || (o.is_int64() && o.get_int64() >= 0))) {
        fail("{}: corrupt safetensors: data_offsets must be non-negative integers", where);
      }
    }
    t.begin = oa[0].to_number<uint64_t>();
    t.end = oa[1].to_number<uint64_t>();
    if (t.begin > t.end) fail("{}: corrupt safetensors: data_offsets [{}, {}] are reversed", where, t.begin, t.end);
    if (t.end > data_size) {
      fail("{}: truncated safetensors: data [{}, {}) lies beyond the end of the file (data holds {} bytes)",
           where, t.begin, t.end, data_size);
    }
    if (t.end - t.begin != numel * static_cast<uint64_t>(es)) {
      fail("{}: corrupt safetensors: {} bytes of data for {} {} elements", where, t.end - t.begin, numel, t.dtype_name);
    }
    s.index_.emplace(name, s.tensors_.size());
    s.tensors_.push_back(std::move(t));
  }
  return s;
}

const SafetensorsEntry* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

SafetensorsWriter::SafetensorsWriter(std::string path) : path_(path), file_(std::move(path)) {}

void SafetensorsWriter::set_metadata(const std::string& key, const std::string& value) {
  if (started_) fail("{}: safetensors writer: metadata after begin_data()", path_);
  metadata_[key] = value;
}

void SafetensorsWriter::add_tensor(const std::string& name, DType dtype, const std::vector<int64_t>& shape) {
  if (started_) fail("{}: safetensors writer: tensor {} declared after begin_data()", path_, name);
  if (name.empty() || name == "__metadata__") fail("{}: safetensors writer: bad tensor name '{}'", path_, name);
  for (auto& d : decls_) {
    if (d.name == name) fail("{}: safetensors writer: duplicate tensor {}", path_, name);
  }
  st_name(dtype);  // rejects dtypes the format cannot hold
  int64_t numel = 1;
  for (auto d : shape) {
    if (d < 0) fail("{}: safetensors writer: tensor {}: negative dimension", path_, name);
    numel *= d;
  }
  uint64_t bytes = static_cast<uint64_t>(numel * dtype_block_bytes(dtype));
  decls_.push_back({name, dtype, shape, total_, total_ + bytes});
  total_ += bytes;
}

void SafetensorsWriter::begin_data() {
  if (started_) fail("{}: safetensors writer: begin_data() twice", path_);
  started_ = true;
  boost::json::object hdr;
  if (!metadata_.empty()) {
    boost::json::object m;
    for (auto& [k, v] : metadata_) m[k] = v;
    hdr["__metadata__"] = std::move(m);
  }
  for (auto& d : decls_) {
    boost::json::array shape;
    for (auto x : d.shape) shape.push_back(x);
    hdr[d.name] = {{"dtype", st_name(d.dtype)}, {"shape", std::move(shape)},
                   {"data_offsets", boost::json::array{d.begin, d.end}}};
  }
  std::string text = boost::json::serialize(hdr);
  text.append((8 - text.size() % 8) % 8, ' ');  // 8 + N stays a multiple of 8
  file_.open();
  uint64_t n = text.size();
  file_.write(&n, 8);
  file_.write(text.data(), text.size());
}

void SafetensorsWriter::write_data(const void* p, size_t n) {
  if (!started_ || finished_) fail("{}: safetensors writer: write_data() outside begin_data()/finish()", path_);
  if (n > total_ - written_) fail("{}: safetensors writer: more data than the declared tensors hold", path_);
  file_.write(p, n);
  written_ += n;
}

void SafetensorsWriter::finish() {
  if (!started_) begin_data();
  if (written_ != total_) fail("{}: safetensors writer: {} of {} data bytes written", path_, written_, total_);
  file_.commit();
  finished_ = true;
}

}  // namespace troupe
