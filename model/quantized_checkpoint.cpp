// Pre-quantized HF checkpoints (AutoAWQ GEMM, troupe INT8) -> Checkpoint. Config parsing and
// the shard index are shared with the float loader (loaders.h); only the tensor mapping of
// the linear layers differs.
#include "model/quantized_checkpoint.h"

#include <cctype>
#include <filesystem>
#include <tuple>
#include <unordered_set>

#include "core/error.h"
#include "model/json_util.h"
#include "model/loaders.h"

namespace fs = std::filesystem;

namespace troupe {

namespace {

std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

// [out, in] of linear i.
std::pair<int64_t, int64_t> linear_shape(const ModelConfig& c, int i) {
  switch (i) {
    case kLinQ: return {c.q_dim(), c.hidden_size};
    case kLinK:
    case kLinV: return {c.kv_dim(), c.hidden_size};
    case kLinO: return {c.hidden_size, c.q_dim()};
    case kLinGate:
    case kLinUp: return {c.intermediate_size, c.hidden_size};
    default: return {c.hidden_size, c.intermediate_size};
  }
}

DType stored_dtype(const SafetensorsEntry& e, const std::string& file) {
  if (e.dtype) return *e.dtype;
  if (e.dtype_name == "I32") return DType::I32;
  if (e.dtype_name == "I8") return DType::I8;
  fail("{}: tensor {}: dtype {} is not supported", file, e.name, e.dtype_name);
}

// The directory of an HF checkpoint given as the directory, its config.json or a
// .safetensors file (the forms load_model() accepts); "" for anything else.
std::string hf_dir(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) return path;
  const fs::path p(path);
  if (p.filename() == "config.json" || p.extension() == ".safetensors")
    return p.parent_path().empty() ? "." : p.parent_path().string();
  return "";
}

}  // namespace

TensorView& linear_view(LayerWeights& l, int i) {
  TensorView* v[kNumLinears] = {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down};
  return *v[i];
}
const TensorView& linear_view(const LayerWeights& l, int i) {
  return linear_view(const_cast<LayerWeights&>(l), i);
}

std::optional<QuantizationConfig> read_quantization_config(const std::string& path) {
  const std::string dir = hf_dir(path);
  const fs::path cfg = fs::path(dir) / "config.json";
  std::error_code ec;
  if (dir.empty() || !fs::exists(cfg, ec)) return std::nullopt;
  const std::string src = cfg.string();
  const boost::json::value root = json::parse_file(src);
  const auto& o = json::as_object(root, src);
  auto it = o.find("quantization_config");
  if (it == o.end() || it->value().is_null()) return std::nullopt;
  if (!it->value().is_object()) fail("{}: quantization_config must be an object", src);
  const auto& q = it->value().get_object();
  const std::string where = src + " (quantization_config)";
  QuantizationConfig c;
  c.quant_method = json::get_string(q, "quant_method", where).value_or("");
  // AutoAWQ's own configs say bits / group_size; its older quant_config.json w_bit /
  // q_group_size.
  auto bits = json::get_int(q, "bits", where);
  if (!bits) bits = json::get_int(q, "w_bit", where);
  auto group = json::get_int(q, "group_size", where);
  if (!group) group = json::get_int(q, "q_group_size", where);
  c.bits = static_cast<int>(bits.value_or(0));
  c.group_size = static_cast<int>(group.value_or(0));
  c.zero_point = json::get_bool(q, "zero_point", where).value_or(false);
  c.version = json::get_string(q, "version", where).value_or("gemm");
  for (auto& ch : c.version) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  if (c.quant_method == "awq") {
    if (c.bits != 4) fail("{}: AWQ with {} bits is not supported (4)", where, c.bits);
    if (c.group_size != 32 && c.group_size != 64 && c.group_size != 128)
      fail("{}: AWQ group_size {} is not supported (32, 64, 128)", where, c.group_size);
    if (!c.zero_point) fail("{}: AWQ without zero points is not supported", where);
    if (c.version != "gemm") fail("{}: AWQ version '{}' is not supported (gemm)", where, c.version);
  } else if (c.quant_method == "troupe_int8") {
    if (c.bits != 8) fail("{}: troupe_int8 with {} bits", where, c.bits);
  } else {
    fail("{}: quant_method '{}' is not supported (awq, troupe_int8)", where, c.quant_method);
  }
  return c;
}

Checkpoint load_checkpoint(const std::string& path_arg) {
  Checkpoint ck;
  ck.quant = read_quantization_config(path_arg);
  if (!ck.quant) {
    ck.weights = load_model(path_arg);
    return ck;
  }
  const QuantizationConfig& qc = *ck.quant;
  const std::string path = hf_dir(path_arg);
  ModelWeights& w = ck.weights;
  w.source = path;
  w.config = detail::read_hf_config(path);
  const ModelConfig& c = w.config;
  detail::TensorIndex idx = detail::open_tensors(path);
  for (const auto& f : idx.files) w.owners.push_back(f->file());

  std::unordered_set<std::string> used;
  auto find = [&](const std::string& name) { return idx.by_name.count(name) > 0; };
  const detail::TakeTensor take = detail::hf_tensor_taker(w, idx, used, stored_dtype);
  auto expect = [&](const TensorView& v, DType dt, std::vector<int64_t> shape) {
    if (v.dtype != dt || v.shape != shape)
      fail("{}: tensor {}: {} {}, expected {} {} ({} {}-bit, group {})", path, v.name,
           dtype_name(v.dtype), shape_str(v.shape), dtype_name(dt), shape_str(shape),
           qc.quant_method, qc.bits, qc.group_size);
  };

  // Non-linear tensors exactly as the float loader maps them.
  detail::take_hf_tensors(w, idx, used, take, false);
  ck.layers.resize(static_cast<size_t>(c.num_layers));
  for (int64_t li = 0; li < c.num_layers; ++li) {
    auto& l = w.layers[static_cast<size_t>(li)];
    const std::string p = hf_block_prefix(li);
    for (int i = 0; i < kNumLinears; ++i) {
      const std::string m = p + linear_module_name(i);
      StoredQuantLinear& q = ck.layers[static_cast<size_t>(li)][static_cast<size_t>(i)];
      std::tie(q.out, q.in) = linear_shape(c, i);
      if (!find(m + ".qweight")) {  // left in float (modules_to_not_convert)
        linear_view(l, i) = take(m + ".weight", true);
        continue;
      }
      q.qweight = take(m + ".qweight", true);
      q.scales = take(m + ".scales", true);
      if (qc.quant_method == "awq") {
        q.format = StoredQuantLinear::Format::Awq4;
        q.group = qc.group_size;
        if (q.out % 8 != 0 || q.in % q.group != 0)
          fail("{}: {} has in={} out={}: AWQ needs out % 8 == 0 and in % {} == 0", path, m, q.in,
               q.out, q.group);
        q.qzeros = take(m + ".qzeros", true);
        expect(q.qweight, DType::I32, {q.in, q.out / 8});
        expect(q.qzeros, DType::I32, {q.in / q.group, q.out / 8});
        expect(q.scales, DType::F16, {q.in / q.group, q.out});
      } else {
        q.format = StoredQuantLinear::Format::Int8;
        q.group = static_cast<int>(q.in);
        expect(q.qweight, DType::I8, {q.out, q.in});
        expect(q.scales, DType::F32, {q.out});
      }
    }
  }
  detail::refuse_unused(idx, used, qc.quant_method + " " + c.arch_name);

  // The float checks (shapes of embeddings, norms, biases; dtypes) are the loader's own. They
  // need every linear view present, so they run on a copy whose quantized layers get a
  // stand-in view of the float shape; only shapes and sizes are looked at.
  ModelWeights shadow;
  shadow.config = w.config;
  shadow.source = w.source;
  shadow.tok_embeddings = w.tok_embeddings;
  shadow.final_norm = w.final_norm;
  shadow.lm_head = w.lm_head;
  shadow.layers = w.layers;
  for (size_t li = 0; li < shadow.layers.size(); ++li)
    for (int i = 0; i < kNumLinears; ++i) {
      const StoredQuantLinear& q = ck.layers[li][static_cast<size_t>(i)];
      if (q.format == StoredQuantLinear::Format::Float) continue;
      TensorView& v = linear_view(shadow.layers[li], i);
      v = q.qweight;
      v.dtype = DType::F32;
      v.shape = {q.out, q.in};
      v.nbytes = q.out * q.in * 4;
    }
  detail::check_weights(shadow);
  return ck;
}

}  // namespace troupe
