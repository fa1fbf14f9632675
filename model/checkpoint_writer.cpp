#include "model/checkpoint_writer.h"

#include <boost/json.hpp>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "model/safetensors.h"

namespace fs = std::filesystem;

namespace troupe {

namespace {

void check_float(const StoredTensor& t) {
  if (t.dtype != DType::F32 && t.dtype != DType::F16 && t.dtype != DType::BF16)
    fail("checkpoint: float tensors must be F32, F16 or BF16, not {}", dtype_name(t.dtype));
}

void write_safetensors(const std::string& path, const CheckpointOut& ck) {
  SafetensorsWriter w(path);
  w.set_metadata("format", "pt");  // what transformers expects of a PyTorch checkpoint
  for (const auto* list : {&ck.floats, &ck.quantized})
    for (const StoredTensor& t : *list) w.add_tensor(t.name, t.dtype, t.shape);
  w.begin_data();
  for (const auto* list : {&ck.floats, &ck.quantized})
    for (const StoredTensor& t : *list) w.write_data(t.bytes.data(), t.bytes.size());
  w.finish();
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

  for (const StoredTensor& t : ck.floats) check_float(t);
  write_safetensors((out / "model.safetensors").string(), ck);

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

}  // namespace troupe
