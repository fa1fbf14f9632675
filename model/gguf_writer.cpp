#include "model/gguf_writer.h"

#include <cstdio>

#include "core/error.h"

namespace troupe {

namespace {
constexpr uint32_t kVersion = 3;
constexpr size_t kMaxNameLen = 63;  // GGML_MAX_NAME is 64 including the terminator
uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }
}  // namespace

GgufWriter::GgufWriter(std::string path) : path_(path), file_(std::move(path)) {}

void GgufWriter::check_open() const {
  if (header_written_) fail("{}: GGUF writer: metadata and tensors must be declared before begin_data()", path_);
}

void GgufWriter::set(const std::string& key, GgufValue v) {
  check_open();
  if (key.empty()) fail("{}: GGUF writer: empty metadata key", path_);
  if (key == "general.alignment") {
    if (v.type != GgufType::U32) fail("{}: GGUF writer: general.alignment must be u32", path_);
    uint64_t a = std::get<uint64_t>(v.scalar);
    if (a == 0 || (a & (a - 1)) != 0) fail("{}: GGUF writer: alignment {} is not a power of two", path_, a);
    alignment_ = a;
  }
  for (auto& [k, old] : kv_) {
    if (k == key) {
      old = std::move(v);
      return;
    }
  }
  kv_.emplace_back(key, std::move(v));
}

size_t GgufWriter::add_tensor(const std::string& name, uint32_t ggml_type, const std::vector<int64_t>& shape) {
  check_open();
  if (name.empty() || name.size() > kMaxNameLen) {
    fail("{}: GGUF writer: tensor name '{}' must have 1 to {} bytes", path_, name, kMaxNameLen);
  }
  for (auto& t : tensors_) {
    if (t.name == name) fail("{}: GGUF writer: duplicate tensor {}", path_, name);
  }
  auto dt = ggml_to_dtype(ggml_type);
  if (!dt) fail("{}: GGUF writer: tensor {}: unsupported ggml type {}", path_, name, ggml_type_name(ggml_type));
  if (shape.empty() || shape.size() > 4) fail("{}: GGUF writer: tensor {}: needs 1 to 4 dimensions", path_, name);
  GgufTensorInfo t;
  t.name = name;
  t.ggml_type = ggml_type;
  int64_t numel = 1;
  for (auto it = shape.rbegin(); it != shape.rend(); ++it) {
    if (*it <= 0) fail("{}: GGUF writer: tensor {}: dimension {} is not positive", path_, name, *it);
    t.ne.push_back(static_cast<uint64_t>(*it));
    numel *= *it;
  }
  if (shape.back() % dtype_block_elems(*dt) != 0) {
    fail("{}: GGUF writer: tensor {}: row length {} is not a multiple of the {} block size {}",
         path_, name, shape.back(), dtype_name(*dt), dtype_block_elems(*dt));
  }
  t.nbytes = numel / dtype_block_elems(*dt) * dtype_block_bytes(*dt);
  // Tensors are laid out back to back, each padded to the alignment.
  t.offset = tensors_.empty() ? 0 : align_up(tensors_.back().offset + tensors_.back().nbytes, alignment_);
  tensors_.push_back(std::move(t));
  return tensors_.size() - 1;
}

void GgufWriter::put(const void* p, size_t n) {
  file_.write(p, n);
  pos_ += n;
}

void GgufWriter::put_string(const std::string& s) {
  uint64_t n = s.size();
  put(&n, 8);
  put(s.data(), s.size());
}

void GgufWriter::put_value(const GgufValue& v, const std::string& key) {
  auto as_u = [&]() -> uint64_t {
    if (auto* u = std::get_if<uint64_t>(&v.scalar)) return *u;
    if (auto* i = std::get_if<int64_t>(&v.scalar)) return static_cast<uint64_t>(*i);
    fail("{}: GGUF writer: key {}: value does not match its type {}", path_, key, gguf_type_name(v.type));
  };
  auto as_f = [&]() -> double {
    if (auto* d = std::get_if<double>(&v.scalar)) return *d;
    fail("{}: GGUF writer: key {}: value does not match its type {}", path_, key, gguf_type_name(v.type));
  };
  switch (v.type) {
    case GgufType::U8: case GgufType::I8: { uint8_t x = static_cast<uint8_t>(as_u()); put(&x, 1); break; }
    case GgufType::U16: case GgufType::I16: { uint16_t x = static_cast<uint16_t>(as_u()); put(&x, 2); break; }
    case GgufType::U32: case GgufType::I32: { uint32_t x = static_cast<uint32_t>(as_u()); put(&x, 4); break; }
    case GgufType::U64: case GgufType::I64: { uint64_t x = as_u(); put(&x, 8); break; }
    case GgufType::F32: { float x = static_cast<float>(as_f()); put(&x, 4); break; }
    case GgufType::F64: { double x = as_f(); put(&x, 8); break; }
    case GgufType::Bool: {
      auto* b = std::get_if<bool>(&v.scalar);
      if (!b) fail("{}: GGUF writer: key {}: value is not a bool", path_, key);
      uint8_t x = *b ? 1 : 0;
      put(&x, 1);
      break;
    }
    case GgufType::String: {
      auto* s = std::get_if<std::string>(&v.scalar);
      if (!s) fail("{}: GGUF writer: key {}: value is not a string", path_, key);
      put_string(*s);
      break;
    }
    case GgufType::Array: {
      uint32_t et = static_cast<uint32_t>(v.elem_type);
      uint64_t n = v.items.size();
      put(&et, 4);
      put(&n, 8);
      for (auto& e : v.items) {
        if (e.type != v.elem_type) fail("{}: GGUF writer: key {}: array element of type {} in an array of {}", path_, key, gguf_type_name(e.type), gguf_type_name(v.elem_type));
        put_value(e, key);
      }
      break;
    }
  }
}

void GgufWriter::pad_to(uint64_t alignment) {
  static const char zeros[256] = {};
  uint64_t n = align_up(pos_, alignment) - pos_;
  while (n > 0) {
    uint64_t k = std::min<uint64_t>(n, sizeof(zeros));
    put(zeros, k);
    n -= k;
  }
}

void GgufWriter::begin_data() {
  check_open();
  file_.open();
  header_written_ = true;
  uint32_t magic_version[2] = {0x46554747u, kVersion};
  put(magic_version, 8);
  uint64_t counts[2] = {tensors_.size(), kv_.size()};
  put(counts, 16);
  for (auto& [k, v] : kv_) {
    put_string(k);
    uint32_t t = static_cast<uint32_t>(v.type);
    put(&t, 4);
    put_value(v, k);
  }
  for (auto& t : tensors_) {
    put_string(t.name);
    uint32_t nd = static_cast<uint32_t>(t.ne.size());
    put(&nd, 4);
    put(t.ne.data(), t.ne.size() * 8);
    put(&t.ggml_type, 4);
    put(&t.offset, 8);
  }
  pad_to(alignment_);
  cur_ = 0;
  cur_written_ = 0;
}

void GgufWriter::write_data(const void* p, size_t n) {
  if (!header_written_ || finished_) fail("{}: GGUF writer: write_data() outside begin_data()/finish()", path_);
  const auto* b = static_cast<const uint8_t*>(p);
  while (n > 0) {
    if (cur_ >= tensors_.size()) fail("{}: GGUF writer: more data than the declared tensors hold", path_);
    const auto& t = tensors_[cur_];
    uint64_t k = std::min<uint64_t>(n, static_cast<uint64_t>(t.nbytes) - cur_written_);
    put(b, k);
    b += k;
    n -= k;
    cur_written_ += k;
    if (cur_written_ == static_cast<uint64_t>(t.nbytes)) {
      pad_to(alignment_);  // ggml pads after every tensor, the last one included
      ++cur_;
      cur_written_ = 0;
    }
  }
}

void GgufWriter::finish() {
  if (!header_written_) begin_data();
  if (cur_ != tensors_.size()) {
    fail("{}: GGUF writer: tensor {} received {} of its {} bytes", path_, tensors_[cur_].name,
         cur_written_, tensors_[cur_].nbytes);
  }
  file_.commit();
  finished_ = true;
}

}  // namespace troupe
