// Hugging Face directory -> ModelWeights: config.json (+ generation_config.json) and
// model.safetensors or a sharded model.safetensors.index.json.
#include <algorithm>
#include <filesystem>
#include <unordered_map>
#include <unordered_set>

#include "core/error.h"
#include "model/json_util.h"
#include "model/loaders.h"
#include "model/safetensors.h"
#include "model/tensor_names.h"

namespace fs = std::filesystem;

namespace troupe::detail {

namespace {

struct ArchClass {
  const char* cls;
  Arch arch;
};
constexpr ArchClass kClasses[] = {{"LlamaForCausalLM", Arch::Llama},
                                  {"MistralForCausalLM", Arch::Mistral},
                                  {"Qwen2ForCausalLM", Arch::Qwen2},
                                  {"Qwen3ForCausalLM", Arch::Qwen3}};

// bos/eos from config.json or generation_config.json; eos may be a single id or a list.
void read_special_ids(const boost::json::object& o, const std::string& src, ModelConfig& c) {
  if (auto b = json::get_int(o, "bos_token_id", src)) {
    if (*b < INT32_MIN || *b > INT32_MAX) fail("{}: bos_token_id {} is out of range", src, *b);
    c.bos_token_id = static_cast<int32_t>(*b);
  }
  auto it = o.find("eos_token_id");
  if (it == o.end() || it->value().is_null()) return;
  std::vector<int32_t> eos;
  auto add = [&](const boost::json::value& v) {
    if (!v.is_int64() || v.get_int64() < 0 || v.get_int64() > INT32_MAX) {
      fail("{}: eos_token_id must be a token id or a list of them", src);
    }
    eos.push_back(static_cast<int32_t>(v.get_int64()));
  };
  if (it->value().is_array()) {
    for (const auto& v : it->value().get_array()) add(v);
  } else {
    add(it->value());
  }
  c.eos_token_ids = std::move(eos);
}

ModelConfig read_config(const std::string& path) {
  const boost::json::value root = json::parse_file(path);
  const auto& o = json::as_object(root, path);
  ModelConfig c;

  std::optional<Arch> from_classes;
  std::string cls_name;
  if (auto it = o.find("architectures"); it != o.end() && it->value().is_array() && !it->value().get_array().empty()) {
    const auto& first = it->value().get_array()[0];
    if (!first.is_string()) fail("{}: architectures must be a list of class names", path);
    cls_name = std::string(first.get_string());
    for (const auto& k : kClasses) {
      if (cls_name == k.cls) from_classes = k.arch;
    }
    if (!cls_name.ends_with("ForCausalLM")) fail("{}: architecture {} is not a causal language model", path, cls_name);
  }
  auto model_type = json::get_string(o, "model_type", path);
  if (model_type) {
    auto a = parse_arch(*model_type);
    if (!a) fail("{}: unsupported model_type '{}' (supported: llama, mistral, qwen2, qwen3)", path, *model_type);
    if (from_classes && *from_classes != *a) {
      fail("{}: model_type '{}' contradicts architectures '{}'", path, *model_type, cls_name);
    }
    c.arch = *a;
  } else if (from_classes) {
    c.arch = *from_classes;
  } else {
    fail("{}: no model_type and no known architectures entry (supported: llama, mistral, qwen2, qwen3)", path);
  }
  c.arch_name = arch_name(c.arch);

  auto required = [&](const char* k) {
    auto v = json::get_int(o, k, path);
    if (!v) fail("{}: missing {}", path, k);
    return *v;
  };
  c.vocab_size = required("vocab_size");
  c.hidden_size = required("hidden_size");
  c.intermediate_size = required("intermediate_size");
  c.num_layers = required("num_hidden_layers");
  c.num_heads = required("num_attention_heads");
  if (c.num_heads <= 0) fail("{}: num_attention_heads = {} must be positive", path, c.num_heads);
  c.num_kv_heads = json::get_int(o, "num_key_value_heads", path).value_or(c.num_heads);
  if (auto hd = json::get_int(o, "head_dim", path)) {
    c.head_dim = *hd;
  } else {
    if (c.hidden_size % c.num_heads != 0) {
      fail("{}: hidden_size {} is not a multiple of num_attention_heads {}", path, c.hidden_size, c.num_heads);
    }
    c.head_dim = c.hidden_size / c.num_heads;
  }
  c.max_position_embeddings = json::get_int(o, "max_position_embeddings", path).value_or(2048);
  c.rms_norm_eps = static_cast<float>(json::get_number(o, "rms_norm_eps", path).value_or(1e-6));
  c.rope_theta = static_cast<float>(json::get_number(o, "rope_theta", path).value_or(10000.0));
  c.tie_word_embeddings = json::get_bool(o, "tie_word_embeddings", path).value_or(false);
  c.rope_style = RopeStyle::Halves;
  // Qwen2 always has q/k/v biases (its config has no switch); Qwen3 always normalises q and k.
  c.attention_bias = c.arch == Arch::Qwen2 || json::get_bool(o, "attention_bias", path).value_or(false);
  c.qk_norm = c.arch == Arch::Qwen3;

  // Refuse what would silently compute a different function.
  for (const char* k : {"rope_scaling", "rope_parameters"}) {
    auto it = o.find(k);
    if (it == o.end() || it->value().is_null()) continue;
    if (!it->value().is_object()) fail("{}: {} must be an object", path, k);
    const auto& rs = it->value().get_object();
    auto type = json::get_string(rs, "rope_type", path);
    if (!type) type = json::get_string(rs, "type", path);
    if (type && *type != "default") fail("{}: RoPE scaling '{}' ({}) is not supported", path, *type, k);
    if (auto th = json::get_number(rs, "rope_theta", path)) c.rope_theta = static_cast<float>(*th);
  }
  if (auto act = json::get_string(o, "hidden_act", path); act && *act != "silu") {
    fail("{}: hidden_act '{}' is not supported (only silu)", path, *act);
  }
  if (json::get_bool(o, "mlp_bias", path).value_or(false)) fail("{}: mlp_bias is not supported", path);
  if (json::get_bool(o, "use_sliding_window", path).value_or(false)) {
    fail("{}: use_sliding_window is not supported", path);
  }
  // Mistral's sliding window: attention beyond it differs from full attention, so cap the
  // usable context at the window instead of computing wrong results past it.
  if (c.arch == Arch::Mistral) {
    if (auto sw = json::get_int(o, "sliding_window", path); sw && *sw > 0 && *sw < c.max_position_embeddings) {
      c.max_position_embeddings = *sw;
    }
  }
  read_special_ids(o, path, c);
  return c;
}

DType float_dtype(const SafetensorsEntry& e, const std::string& file) {
  if (!e.dtype) fail("{}: tensor {}: dtype {} is not supported (F32, F16, BF16)", file, e.name, e.dtype_name);
  return *e.dtype;
}

}  // namespace

TensorIndex open_tensors(const std::string& dir_str) {
  const fs::path dir(dir_str);
  TensorIndex idx;
  const fs::path single = dir / "model.safetensors";
  const fs::path index = dir / "model.safetensors.index.json";
  if (fs::exists(single)) {
    idx.add_file(single.string());
    return idx;
  }
  if (!fs::exists(index)) {
    if (fs::exists(dir / "pytorch_model.bin") || fs::exists(dir / "pytorch_model.bin.index.json")) {
      fail("{}: only safetensors checkpoints are supported (found pytorch_model.bin)", dir.string());
    }
    fail("{}: no model.safetensors or model.safetensors.index.json", dir.string());
  }
  const std::string ipath = index.string();
  const boost::json::value root = json::parse_file(ipath);
  const auto& o = json::as_object(root, ipath);
  auto wm = o.find("weight_map");
  if (wm == o.end() || !wm->value().is_object()) fail("{}: no weight_map object", ipath);
  std::vector<std::string> shards;
  for (const auto& kv : wm->value().get_object()) {
    if (!kv.value().is_string()) fail("{}: weight_map entry {} is not a file name", ipath, std::string(kv.key()));
    std::string shard(kv.value().get_string());
    // Shards live beside the index: no absolute paths or escapes out of the directory.
    fs::path sp(shard);
    if (shard.empty() || sp.is_absolute() || sp.filename() != sp) {
      fail("{}: weight_map names '{}', which is not a file in the model directory", ipath, shard);
    }
    if (std::find(shards.begin(), shards.end(), shard) == shards.end()) shards.push_back(shard);
  }
  if (shards.empty()) fail("{}: weight_map is empty", ipath);
  for (const auto& s : shards) {
    const fs::path sp = dir / s;
    if (!fs::exists(sp)) fail("{}: missing shard (listed in {})", sp.string(), ipath);
    idx.add_file(sp.string());
  }
  for (const auto& kv : wm->value().get_object()) {
    std::string name(kv.key());
    auto it = idx.by_name.find(name);
    const fs::path sp = dir / std::string(kv.value().get_string());
    if (it == idx.by_name.end() || it->second.first->path() != sp.string()) {
      fail("{}: tensor {} is not in {} where {} puts it", sp.string(), name, sp.filename().string(), ipath);
    }
  }
  return idx;
}

ModelConfig read_hf_config(const std::string& dir_str) {
  const fs::path dir(dir_str);
  const fs::path cfg_path = dir / "config.json";
  if (!fs::exists(cfg_path)) fail("{}: not a model directory (no config.json)", dir_str);
  ModelConfig c = read_config(cfg_path.string());
  // generation_config.json decides what generation stops at, as in transformers.
  const fs::path gen_path = dir / "generation_config.json";
  if (fs::exists(gen_path)) {
    const boost::json::value g = json::parse_file(gen_path.string());
    read_special_ids(json::as_object(g, gen_path.string()), gen_path.string(), c);
  }
  c.validate(cfg_path.string());
  return c;
}

TakeTensor hf_tensor_taker(ModelWeights& w, const TensorIndex& idx, std::unordered_set<std::string>& used,
                           StoredDType dtype_of) {
  return [&w, &idx, &used, dtype_of](const std::string& name, bool required) -> TensorView {
    auto it = idx.by_name.find(name);
    if (it == idx.by_name.end()) {
      if (required) fail("{}: missing tensor {}", w.source, name);
      return {};
    }
    used.insert(name);
    const auto& [file, e] = it->second;
    return make_view(w, name, dtype_of(*e, file->path()), e->shape, file->data(*e),
                     static_cast<int64_t>(e->end - e->begin));
  };
}

void refuse_unused(const TensorIndex& idx, const std::unordered_set<std::string>& used,
                   const std::string& model) {
  for (const auto& f : idx.files) {
    for (const auto& e : f->tensors()) {
      if (!used.count(e.name)) {
        fail("{}: unexpected tensor {} (not part of a {} model as troupe runs it)", f->path(), e.name, model);
      }
    }
  }
}

void take_hf_tensors(ModelWeights& w, const TensorIndex& idx, std::unordered_set<std::string>& used,
                     const TakeTensor& take, bool linears) {
  const ModelConfig& c = w.config;
  const ModelTensorNames& n = kHfModelTensors;
  // Tied embeddings come in two forms: only the embedding stored (the usual one), or only
  // lm_head.weight stored (some exports). Either way both views share the same data.
  const bool has_embed = idx.by_name.count(n.embeddings) > 0;
  const bool has_head = idx.by_name.count(n.lm_head) > 0;
  if (c.tie_word_embeddings) {
    w.tok_embeddings = take(has_embed || !has_head ? n.embeddings : n.lm_head, true);
    w.lm_head = w.tok_embeddings;
    if (has_head) used.insert(n.lm_head);  // a stored copy is ignored, as transformers does
  } else {
    w.tok_embeddings = take(n.embeddings, true);
    if (!has_head) fail("{}: missing tensor {} (config.json says tie_word_embeddings is false)", w.source, n.lm_head);
    w.lm_head = take(n.lm_head, true);
  }
  w.final_norm = take(n.final_norm, true);
  w.layers.resize(static_cast<size_t>(c.num_layers));
  for (int64_t i = 0; i < c.num_layers; ++i) {
    LayerWeights& l = w.layers[static_cast<size_t>(i)];
    const std::string p = hf_block_prefix(i);
    for (const BlockTensor& t : kBlockTensors) {
      if (has_block_tensor(c, t) && (linears || t.linear < 0)) l.*t.view = take(p + t.hf, true);
    }
    used.insert(p + kHfRotaryInvFreq);  // old exports store this derived buffer
  }
}

ModelWeights load_hf_dir(const std::string& dir_str) {
  ModelWeights w;
  w.source = dir_str;
  w.config = read_hf_config(dir_str);
  const ModelConfig& c = w.config;

  TensorIndex idx = open_tensors(dir_str);
  for (const auto& f : idx.files) w.owners.push_back(f->file());
  std::unordered_set<std::string> used;
  take_hf_tensors(w, idx, used, hf_tensor_taker(w, idx, used, float_dtype), true);
  refuse_unused(idx, used, c.arch_name);
  check_weights(w);
  return w;
}

}  // namespace troupe::detail
