// Damaged model files must give one troupe::Error naming the file (and tensor), never a
// crash, a hang, a huge allocation or another exception type. Run under the sanitizer build
// (-DTROUPE_SANITIZE=ON) to catch out-of-bounds reads the assertions cannot see.
#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>

#include "model/gguf.h"
#include "model/gguf_writer.h"
#include "model/weights.h"
#include "model_test_util.h"

using namespace troupe;
using namespace troupe::test;
namespace fs = std::filesystem;

namespace {

const std::string& stories_bytes() {
  static const std::string b = read_file(model_path("stories260k/stories260K.gguf"));
  return b;
}
constexpr size_t kStoriesHeaderEnd = 14176;  // data section start

// Writes stories260K.gguf through GgufWriter after letting `edit` change metadata/tensors.
std::string rewrite_stories(const std::string& out,
                            const std::function<void(std::vector<std::pair<std::string, GgufValue>>&,
                                                     std::vector<GgufTensorInfo>&)>& edit) {
  const GgufFile g = GgufFile::open(model_path("stories260k/stories260K.gguf"));
  auto kv = g.metadata();
  auto ts = g.tensors();
  edit(kv, ts);
  GgufWriter w(out);
  for (auto& [k, v] : kv) w.set(k, v);
  for (auto& t : ts) w.add_tensor(t.name, t.ggml_type, t.shape());
  w.begin_data();
  for (size_t i = 0; i < w.tensors().size(); ++i) {
    const auto* src = g.find_tensor(ts[i].name);
    std::string bytes(static_cast<size_t>(w.tensors()[i].nbytes), '\0');
    if (src) std::memcpy(bytes.data(), g.tensor_data(*src), std::min<size_t>(bytes.size(), static_cast<size_t>(src->nbytes)));
    w.write_data(bytes.data(), bytes.size());
  }
  w.finish();
  return out;
}

std::string patched(const std::string& dir, const std::string& name, const std::function<void(std::string&)>& f) {
  std::string b = stories_bytes();
  f(b);
  const std::string path = dir + "/" + name;
  write_file(path, b);
  return path;
}

}  // namespace

TEST_CASE("GGUF truncated anywhere gives an error naming the file", "[model][corrupt][gguf]") {
  const std::string path = temp_dir("gguf-trunc") + "/truncated.gguf";
  const std::string& full = stories_bytes();
  std::vector<size_t> cuts;
  for (size_t n = 0; n < kStoriesHeaderEnd + 64; ++n) cuts.push_back(n);           // every header byte
  for (size_t n = kStoriesHeaderEnd + 64; n < full.size(); n += 9973) cuts.push_back(n);  // through the data
  cuts.push_back(full.size() - 1);
  write_file(path, full);
  for (auto it = cuts.rbegin(); it != cuts.rend(); ++it) {  // shrinking the one file
    const size_t n = *it;
    fs::resize_file(path, n);
    INFO("truncated to " << n << " bytes");
    CHECK(loads_or_names([&] { load_model(path); }, path));
  }
}

TEST_CASE("GGUF with flipped header bytes loads or gives an error naming the file", "[model][corrupt][gguf]") {
  const std::string path = temp_dir("gguf-flip") + "/flipped.gguf";
  const std::string& b = stories_bytes();
  write_file(path, b);
  int errors = 0;
  for (size_t at = 0; at < kStoriesHeaderEnd; ++at) {
    // Every byte of the header: fixed fields, metadata, vocabulary, tensor directory.
    poke(path, at, std::string(1, static_cast<char>(b[at] ^ 0xff)));
    INFO("flipped byte " << at);
    errors += loads_or_names([&] { load_model(path); }, path);
    poke(path, at, std::string(1, b[at]));
  }
  CHECK(errors > 1000);
}

TEST_CASE("GGUF structural damage gets a specific message", "[model][corrupt][gguf]") {
  const std::string dir = temp_dir("gguf-damage");
  auto msg = [&](const std::string& name, const std::function<void(std::string&)>& f) {
    const std::string p = patched(dir, name, f);
    std::string m = error_of([&] { load_model(p); });
    CHECK_THAT(m, Catch::Contains(p));
    return m;
  };
  CHECK_THAT(msg("magic.gguf", [](std::string& b) { b[0] = 'X'; }), Catch::Contains("bad magic"));
  CHECK_THAT(msg("v4.gguf", [](std::string& b) { put_le<uint32_t>(b, 4, 4); }), Catch::Contains("version 4"));
  CHECK_THAT(msg("v1.gguf", [](std::string& b) { put_le<uint32_t>(b, 4, 1); }), Catch::Contains("version 1"));
  CHECK_THAT(msg("be.gguf", [](std::string& b) { put_le<uint32_t>(b, 4, 0x03000000); }), Catch::Contains("big-endian"));
  CHECK_THAT(msg("ntensors.gguf", [](std::string& b) { put_le<uint64_t>(b, 8, 1ull << 40); }),
             Catch::Contains("tensor count"));
  CHECK_THAT(msg("nkv.gguf", [](std::string& b) { put_le<uint64_t>(b, 16, ~0ull); }), Catch::Contains("metadata count"));
  // The first key's length (at 24) set to 2^60.
  CHECK_THAT(msg("strlen.gguf", [](std::string& b) { put_le<uint64_t>(b, 24, 1ull << 60); }),
             Catch::Contains("length 1152921504606846976"));
  // tokenizer.ggml.tokens is the first key: its array length follows key (8 + 21) and type (4)
  // and element type (4).
  CHECK_THAT(msg("arraylen.gguf", [](std::string& b) { put_le<uint64_t>(b, 24 + 8 + 21 + 4 + 4, 1ull << 58); }),
             Catch::Contains("tokenizer.ggml.tokens") && Catch::Contains("array length"));
  CHECK_THAT(msg("kvtype.gguf", [](std::string& b) { put_le<uint32_t>(b, 24 + 8 + 21, 99); }),
             Catch::Contains("unknown value type 99"));

  // Tensor directory: n_dims, ne[], type, offset follow each name.
  const std::string q = "blk.2.attn_q.weight";
  const size_t qi = gguf_tensor_info_at(stories_bytes(), q);
  CHECK_THAT(msg("ndims.gguf", [&](std::string& b) { put_le<uint32_t>(b, qi, 9); }),
             Catch::Contains(q) && Catch::Contains("dimensions"));
  CHECK_THAT(msg("ne-overflow.gguf", [&](std::string& b) { put_le<uint64_t>(b, qi + 4, 1ull << 62); }),
             Catch::Contains(q));
  CHECK_THAT(msg("qtype.gguf", [&](std::string& b) { put_le<uint32_t>(b, qi + 4 + 16, 12); }),
             Catch::Contains(q) && Catch::Contains("Q4_K") && Catch::Contains("not supported"));
  CHECK_THAT(msg("badtype.gguf", [&](std::string& b) { put_le<uint32_t>(b, qi + 4 + 16, 1234); }),
             Catch::Contains(q) && Catch::Contains("unknown (1234)"));
  CHECK_THAT(msg("misaligned.gguf", [&](std::string& b) { put_le<uint64_t>(b, qi + 4 + 16 + 4, get_le<uint64_t>(b, qi + 24) + 4); }),
             Catch::Contains(q) && Catch::Contains("alignment"));
  CHECK_THAT(msg("beyond.gguf", [&](std::string& b) { put_le<uint64_t>(b, qi + 4 + 16 + 4, 1ull << 40); }),
             Catch::Contains(q) && Catch::Contains("beyond the end"));
  // Q8_0 rows must be whole blocks: ne[0] = 64 is, but 48 is not.
  CHECK_THAT(msg("q8rows.gguf", [&](std::string& b) {
               put_le<uint32_t>(b, qi + 4 + 16, 8);
               put_le<uint64_t>(b, qi + 4, 48);
             }),
             Catch::Contains(q) && Catch::Contains("block"));
}

TEST_CASE("GGUF content errors: shapes, missing tensors, architecture, alignment", "[model][corrupt][gguf]") {
  const std::string dir = temp_dir("gguf-content");
  auto load_err = [](const std::string& p) {
    std::string m = error_of([&] { load_model(p); });
    CHECK_THAT(m, Catch::Contains(p));
    return m;
  };
  // wq stored as [32, 64] where the config implies [64, 64].
  auto p = rewrite_stories(dir + "/shape.gguf", [](auto&, auto& ts) {
    for (auto& t : ts) {
      if (t.name == "blk.1.attn_q.weight") t.ne = {64, 32};
    }
  });
  CHECK_THAT(load_err(p), Catch::Contains("blk.1.attn_q.weight") && Catch::Contains("[32, 64]") &&
                              Catch::Contains("expected [64, 64]"));
  p = rewrite_stories(dir + "/missing.gguf", [](auto&, auto& ts) {
    ts.erase(std::remove_if(ts.begin(), ts.end(), [](auto& t) { return t.name == "blk.4.ffn_up.weight"; }), ts.end());
  });
  CHECK_THAT(load_err(p), Catch::Contains("missing tensor blk.4.ffn_up.weight"));
  p = rewrite_stories(dir + "/extra.gguf", [](auto&, auto& ts) {
    GgufTensorInfo t = ts.back();
    t.name = "blk.5.attn_norm.weight";
    ts.push_back(t);
  });
  CHECK_THAT(load_err(p), Catch::Contains("unexpected tensor blk.5.attn_norm.weight"));
  p = rewrite_stories(dir + "/arch.gguf", [](auto& kv, auto&) {
    for (auto& [k, v] : kv) {
      if (k == "general.architecture") v = GgufValue::str("gpt2");
    }
  });
  CHECK_THAT(load_err(p), Catch::Contains("unsupported architecture 'gpt2'"));
  p = rewrite_stories(dir + "/heads.gguf", [](auto& kv, auto&) {
    for (auto& [k, v] : kv) {
      if (k == "llama.attention.head_count_kv") v = GgufValue::u32(3);
    }
  });
  CHECK_THAT(load_err(p), Catch::Contains("not a multiple of num_kv_heads 3"));
  p = rewrite_stories(dir + "/nolayers.gguf", [](auto& kv, auto&) {
    kv.erase(std::remove_if(kv.begin(), kv.end(), [](auto& e) { return e.first == "llama.block_count"; }), kv.end());
  });
  CHECK_THAT(load_err(p), Catch::Contains("missing metadata llama.block_count"));
  p = rewrite_stories(dir + "/eps.gguf", [](auto& kv, auto&) {
    for (auto& [k, v] : kv) {
      if (k == "llama.attention.layer_norm_rms_epsilon") v = GgufValue::str("small");
    }
  });
  CHECK_THAT(load_err(p), Catch::Contains("layer_norm_rms_epsilon"));
  // A non-default alignment is honoured; a non-power-of-two one is rejected.
  p = rewrite_stories(dir + "/align64.gguf", [](auto& kv, auto&) { kv.push_back({"general.alignment", GgufValue::u32(64)}); });
  CHECK(load_model(p).config.num_layers == 5);
  std::string b = read_file(p);
  const GgufFile g = GgufFile::open(p);
  CHECK(g.alignment() == 64);
  // Patch the stored alignment value (last key: u32 after its name and type) to 48.
  const std::string key = "general.alignment";
  size_t at = b.find(key);
  REQUIRE(at != std::string::npos);
  put_le<uint32_t>(b, at + key.size() + 4, 48);
  write_file(dir + "/align48.gguf", b);
  CHECK_THAT(load_err(dir + "/align48.gguf"), Catch::Contains("power of two"));
}

TEST_CASE("Missing or odd paths are errors naming them", "[model][corrupt]") {
  const std::string dir = temp_dir("paths");
  CHECK_THAT(error_of([&] { load_model(dir + "/nope.gguf"); }), Catch::Contains("nope.gguf"));
  CHECK_THAT(error_of([&] { load_model(dir); }), Catch::Contains("no config.json"));
  write_file(dir + "/empty.gguf", "");
  CHECK_THAT(error_of([&] { load_model(dir + "/empty.gguf"); }), Catch::Contains("empty.gguf"));
  write_file(dir + "/text.bin", "hello");
  CHECK_THAT(error_of([&] { load_model(dir + "/text.bin"); }), Catch::Contains("text.bin"));
}

TEST_CASE("safetensors truncated or with flipped header bytes gives an error naming the file", "[model][corrupt][hf]") {
  const std::string src = model_path("tinystories-656k");
  const std::string dir = temp_dir("st-damage");
  for (const char* f : {"config.json", "generation_config.json"}) write_file(dir + "/" + f, read_file(src + "/" + f));
  const std::string full = read_file(src + "/model.safetensors");
  const std::string st = dir + "/model.safetensors";
  const size_t header_end = 8 + get_le<uint64_t>(full, 0);
  std::vector<size_t> cuts;
  for (size_t n = 0; n < full.size(); n += (n < header_end + 16 ? 1 : 4099)) cuts.push_back(n);
  write_file(st, full);
  for (auto it = cuts.rbegin(); it != cuts.rend(); ++it) {
    fs::resize_file(st, *it);
    INFO("truncated to " << *it);
    CHECK(loads_or_names([&] { load_model(dir); }, st));
  }
  write_file(st, full);
  int errors = 0;
  for (size_t at = 0; at < header_end; ++at) {
    poke(st, at, std::string(1, static_cast<char>(full[at] ^ 0x20)));
    struct Restore {
      const std::string& st;
      size_t at;
      char c;
      ~Restore() { poke(st, at, std::string(1, c)); }
    } restore{st, at, full[at]};
    INFO("flipped byte " << at);
    try {
      load_model(dir);
    } catch (const Error& e) {
      ++errors;
      // Either the file (header damage) or the directory (a renamed tensor is "missing").
      CHECK_THAT(std::string(e.what()), Catch::Contains(dir));
    }
  }
  CHECK(errors > 100);
}

TEST_CASE("safetensors structural damage gets a specific message", "[model][corrupt][hf]") {
  const std::string src = model_path("tinystories-656k");
  const std::string dir = temp_dir("st-struct");
  write_file(dir + "/config.json", read_file(src + "/config.json"));
  const std::string st = dir + "/model.safetensors";
  const std::string full = read_file(src + "/model.safetensors");
  const size_t n = get_le<uint64_t>(full, 0);
  auto with_header = [&](std::string header) {
    header.resize(n, ' ');
    std::string b = full;
    b.replace(8, n, header);
    write_file(st, b);
    std::string m = error_of([&] { load_model(dir); });
    CHECK_THAT(m, Catch::Contains(st) || Catch::Contains(dir));
    return m;
  };
  std::string header = full.substr(8, n);
  auto replaced = [&](const std::string& from, const std::string& to) {
    std::string h = header;
    size_t at = h.find(from);
    REQUIRE(at != std::string::npos);
    h.replace(at, from.size(), to);
    return h;
  };
  std::string b = full;
  put_le<uint64_t>(b, 0, 1ull << 60);
  write_file(st, b);
  CHECK_THAT(error_of([&] { load_model(dir); }), Catch::Contains(st) && Catch::Contains("header length"));
  CHECK_THAT(with_header("{not json"), Catch::Contains("invalid JSON"));
  CHECK_THAT(with_header("[1, 2]"), Catch::Contains("not a JSON object"));
  CHECK_THAT(with_header(replaced(R"("dtype":"F32","shape":[128,384])", R"("dtype":"I32","shape":[128,384])")),
             Catch::Contains("model.layers.0.mlp.down_proj.weight") && Catch::Contains("dtype I32 is not supported"));
  CHECK_THAT(with_header(replaced(R"("dtype":"F32","shape":[128,384])", R"("dtype":"F99","shape":[128,384])")),
             Catch::Contains("unknown dtype 'F99'"));
  CHECK_THAT(with_header(replaced(R"("shape":[128,384])", R"("shape":[128,385])")),
             Catch::Contains("model.layers.0.mlp.down_proj.weight") && Catch::Contains("bytes of data"));
  CHECK_THAT(with_header(replaced(R"("data_offsets":[2623488,2624000])", R"("data_offsets":[2623488,9624000])")),
             Catch::Contains("model.norm.weight") && Catch::Contains("beyond the end"));
  // A consistent entry with the wrong shape for the config.
  CHECK_THAT(with_header(replaced(R"("shape":[128,384],"data_offsets":[1049088,1245696])",
                                  R"("shape":[384,128],"data_offsets":[1049088,1245696])")),
             Catch::Contains("model.layers.0.mlp.down_proj.weight") && Catch::Contains("expected [128, 384]"));
}

TEST_CASE("bad config.json and index files give errors naming them", "[model][corrupt][hf]") {
  const std::string src = model_path("tinystories-656k");
  const std::string dir = temp_dir("cfg-damage");
  write_file(dir + "/model.safetensors", read_file(src + "/model.safetensors"));
  const std::string cfg = read_file(src + "/config.json");
  const std::string cfg_path = dir + "/config.json";
  auto with_config = [&](const std::string& text) {
    write_file(cfg_path, text);
    std::string m = error_of([&] { load_model(dir); });
    CHECK_THAT(m, Catch::Contains(cfg_path));
    return m;
  };
  auto replaced = [&](const std::string& from, const std::string& to) {
    std::string c = cfg;
    size_t at = c.find(from);
    REQUIRE(at != std::string::npos);
    c.replace(at, from.size(), to);
    return c;
  };
  CHECK_THAT(with_config(cfg.substr(0, cfg.size() / 2)), Catch::Contains("invalid JSON"));
  CHECK_THAT(with_config(replaced(R"("model_type": "llama")", R"("model_type": "gpt2")")),
             Catch::Contains("unsupported model_type 'gpt2'"));
  CHECK_THAT(with_config(replaced(R"("hidden_size": 128)", R"("hidden_size": "128")")),
             Catch::Contains("hidden_size must be an integer"));
  CHECK_THAT(with_config(replaced(R"("hidden_size": 128,)", "")), Catch::Contains("missing hidden_size"));
  CHECK_THAT(with_config(replaced(R"("num_key_value_heads": 4)", R"("num_key_value_heads": 3)")),
             Catch::Contains("not a multiple of num_kv_heads 3"));
  CHECK_THAT(with_config(replaced(R"("rope_scaling": null)", R"("rope_scaling": {"rope_type": "llama3", "factor": 8.0})")),
             Catch::Contains("RoPE scaling 'llama3'"));
  CHECK_THAT(with_config(replaced(R"("hidden_act": "silu")", R"("hidden_act": "gelu")")), Catch::Contains("gelu"));
  CHECK_THAT(with_config(replaced(R"("LlamaForCausalLM")", R"("Qwen2ForCausalLM")")), Catch::Contains("contradicts"));
  CHECK_THAT(with_config(replaced(R"("vocab_size": 2048)", R"("vocab_size": 99999999999)")), Catch::Contains("vocab_size"));
  // A config that is fine but disagrees with the tensors: named by directory and tensor.
  write_file(cfg_path, replaced(R"("intermediate_size": 384)", R"("intermediate_size": 256)"));
  CHECK_THAT(error_of([&] { load_model(dir); }),
             Catch::Contains(dir) && Catch::Contains("mlp.gate_proj.weight") && Catch::Contains("expected [256, 128]"));

  // Index pointing outside the directory or at nothing.
  write_file(cfg_path, cfg);
  fs::remove(dir + "/model.safetensors");
  CHECK_THAT(error_of([&] { load_model(dir); }), Catch::Contains("no model.safetensors"));
  const std::string idx = dir + "/model.safetensors.index.json";
  write_file(idx, R"({"weight_map": {"lm_head.weight": "../escape.safetensors"}})");
  CHECK_THAT(error_of([&] { load_model(dir); }), Catch::Contains(idx) && Catch::Contains("escape"));
  write_file(idx, R"({"weight_map": 5})");
  CHECK_THAT(error_of([&] { load_model(dir); }), Catch::Contains(idx));
  write_file(idx, R"({"weight_map": {"lm_head.weight": "model.safetensors"})");
  CHECK_THAT(error_of([&] { load_model(dir); }), Catch::Contains(idx) && Catch::Contains("invalid JSON"));
}
