#include "app/checkpoint_writer.h"

#include <boost/json.hpp>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "quant/stored.h"

namespace fs = std::filesystem;

namespace troupe::app {
using quant::AwqTensors;
using quant::Int8Tensors;
using quant::QFormat;
using quant::QuantizedMatrix;

namespace {

// One safetensors entry: dtype string as the format spells it, shape, bytes.
struct Entry {
  std::string name, dtype;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
};

template <typename T>
std::vector<uint8_t> as_bytes(const std::vector<T>& v) {
  std::vector<uint8_t> b(v.size() * sizeof(T));
  if (!v.empty()) std::memcpy(b.data(), v.data(), b.size());
  return b;
}

const char* st_dtype(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    default: fail("checkpoint: float tensors must be F32, F16 or BF16, not {}", dtype_name(t));
  }
}

// safetensors: u64 header length, JSON header (space-padded so the data starts 8-byte
// aligned), then the tensors back to back in header order. (model/safetensors.h's writer
// stores float dtypes only; the integer tensors of quantized layers need I32 and I8.)
void write_safetensors(const std::string& path, const std::vector<Entry>& entries) {
  boost::json::object header;
  header["__metadata__"] = boost::json::object{{"format", "pt"}};
  uint64_t off = 0;
  for (const Entry& e : entries) {
    boost::json::array shape;
    for (int64_t d : e.shape) shape.push_back(d);
    header[e.name] = boost::json::object{
        {"dtype", e.dtype}, {"shape", shape}, {"data_offsets", boost::json::array{off, off + e.bytes.size()}}};
    off += e.bytes.size();
  }
  std::string text = boost::json::serialize(header);
  text.append((8 - (8 + text.size()) % 8) % 8, ' ');
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) fail("{}: cannot create", tmp);
    const uint64_t n = text.size();
    f.write(reinterpret_cast<const char*>(&n), 8);
    f.write(text.data(), std::streamsize(text.size()));
    for (const Entry& e : entries) f.write(reinterpret_cast<const char*>(e.bytes.data()), std::streamsize(e.bytes.size()));
    f.close();
    if (!f) fail("{}: write failed (disk full?)", tmp);
  }
  fs::rename(tmp, path);
}

}  // namespace

void write_checkpoint(const CheckpointOut& ck) {
  if (ck.bits != 4 && ck.bits != 8) fail("checkpoint: {} bits unsupported (4 or 8)", ck.bits);
  const fs::path src(ck.src_dir), out(ck.out_dir);
  if (!fs::exists(src / "config.json")) fail("{}: no config.json to carry over", ck.src_dir);
  std::error_code ec;
  if (fs::exists(out) && fs::equivalent(src, out, ec))
    fail("{}: the output directory must differ from the source", ck.out_dir);
  fs::create_directories(out);

  std::vector<Entry> entries;
  for (const FloatTensor& t : ck.floats) entries.push_back({t.name, st_dtype(t.dtype), t.shape, t.bytes});
  for (const QuantLinearOut& l : ck.linears) {
    const QuantizedMatrix& m = l.matrix;
    if (ck.bits == 4) {
      if (m.format() != QFormat::Int4 || m.group() != ck.group)
        fail("checkpoint: {} is {} (group {}), the AWQ layout needs int4 with group {}", l.module,
             quant::qformat_name(m.format()), m.group(), ck.group);
      AwqTensors a = quant::to_awq(m);
      entries.push_back({l.module + ".qweight", "I32", {a.in, a.out / 8}, as_bytes(a.qweight)});
      entries.push_back({l.module + ".qzeros", "I32", {a.in / a.group, a.out / 8}, as_bytes(a.qzeros)});
      entries.push_back({l.module + ".scales", "F16", {a.in / a.group, a.out}, as_bytes(a.scales)});
    } else {
      if (m.format() != QFormat::Int8) fail("checkpoint: {} is {}, not int8", l.module, quant::qformat_name(m.format()));
      Int8Tensors t = quant::to_int8(m);
      entries.push_back({l.module + ".qweight", "I8", {m.rows(), m.cols()}, as_bytes(t.q)});
      entries.push_back({l.module + ".scales", "F32", {m.rows()}, as_bytes(t.s)});
    }
  }
  write_safetensors((out / "model.safetensors").string(), entries);

  // config.json: the source's, plus quantization_config (what vLLM / transformers read).
  std::ifstream cf(src / "config.json");
  std::string text((std::istreambuf_iterator<char>(cf)), std::istreambuf_iterator<char>());
  boost::system::error_code jec;
  boost::json::value cfg = boost::json::parse(text, jec);
  if (jec || !cfg.is_object()) fail("{}: config.json is not a JSON object", ck.src_dir);
  boost::json::object q;
  if (ck.bits == 4) {
    q = {{"quant_method", "awq"}, {"bits", 4}, {"group_size", ck.group},
         {"zero_point", true}, {"version", "gemm"}, {"modules_to_not_convert", nullptr}};
  } else {
    q = {{"quant_method", "troupe_int8"}, {"bits", 8}, {"group_size", -1},
         {"zero_point", false}, {"version", "per_channel"}};
  }
  cfg.as_object()["quantization_config"] = q;
  {
    std::ofstream f(out / "config.json", std::ios::trunc);
    f << boost::json::serialize(cfg) << "\n";
    if (!f) fail("{}: cannot write config.json", ck.out_dir);
  }
  // Tokenizer and generation settings travel with the model.
  for (const char* name : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                           "tokenizer.model", "generation_config.json", "added_tokens.json",
                           "vocab.json", "merges.txt"}) {
    if (fs::exists(src / name)) fs::copy_file(src / name, out / name, fs::copy_options::overwrite_existing);
  }
}

}  // namespace troupe::app
