// load_tokenizer(): the embedded GGUF vocabulary, .model files and tokenizer directories
// reproduce the reference ids of fixtures/tokenizer_reference.json.
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include "model/gguf.h"
#include "model/gguf_writer.h"
#include "model/synth.h"
#include "model/tokenizer_loader.h"
#include "model/vocab_io.h"
#include "model_test_util.h"
#include "tokenizer_fixture_corrections.h"

using namespace troupe;
using namespace troupe::test;

namespace {

// Texts sentencepiece's remove_extra_whitespaces changes: leading, trailing or repeated spaces.
bool has_extra_spaces(const std::string& t) {
  return t.find("  ") != std::string::npos || t.starts_with(' ') || t.ends_with(' ');
}

// Every fixture case of `key` (optionally only those `keep` accepts) encodes to its ids.
void check_fixture(const Tokenizer& tok, const std::string& key, bool (*keep)(const std::string&) = nullptr) {
  const auto root = boost::json::parse(read_file(fixture_path("tokenizer_reference.json")));
  const auto& cases = root.at(key).as_array();
  REQUIRE(!cases.empty());
  for (const auto& c : cases) {
    const std::string text(c.at("text").as_string());
    if (keep && !keep(text)) continue;
    std::vector<int32_t> want;
    for (const auto& id : c.at("ids").as_array()) want.push_back(static_cast<int32_t>(id.as_int64()));
    INFO(key << ": " << text);
    CHECK(tok.encode(text, false) == corrected_reference_ids(key, text, want));
  }
}

}  // namespace

TEST_CASE("the vocabulary inside stories260K.gguf is tok512.model's", "[model][tokenizer]") {
  const GgufFile g = GgufFile::open(model_path("stories260k/stories260K.gguf"));
  const SpmSource as = spm_vocab_from_gguf(g), bs = read_spm_model(model_path("stories260k/tok512.model"));
  const SpmVocab &a = as.vocab, &b = bs.vocab;
  CHECK(a.tokens == b.tokens);
  CHECK(a.scores == b.scores);
  CHECK(a.types == b.types);
  CHECK(a.bos_id == 1);
  CHECK(a.eos_id == 2);
  CHECK(a.unk_id == 0);
  CHECK(b.bos_id == 1);
  CHECK(b.eos_id == 2);
  CHECK(b.unk_id == 0);
  CHECK(a.add_bos);
  CHECK(a.add_space_prefix);
  // What the conversion lost: tok512 collapses spaces (sentencepiece's default), and the
  // GGUF has no tokenizer.ggml.remove_extra_whitespaces to say so.
  CHECK(bs.remove_extra_whitespaces);
  CHECK_FALSE(as.remove_extra_whitespaces);
  // The Llama-2 sentencepiece model: 32000 pieces, byte pieces typed 6, spaces kept.
  const SpmSource l2s = read_spm_model(model_path("llama2-tokenizer/tokenizer.model"));
  const SpmVocab& l2 = l2s.vocab;
  CHECK_FALSE(l2s.remove_extra_whitespaces);
  CHECK(l2.tokens.size() == 32000);
  CHECK(l2.tokens[3] == "<0x00>");
  CHECK(l2.types[3] == 6);
  CHECK(l2.tokens[29871] == "\xe2\x96\x81");  // "▁"
}

TEST_CASE("stories260K.gguf's embedded tokenizer matches sentencepiece", "[model][tokenizer]") {
  const std::string path = model_path("stories260k/stories260K.gguf");
  const auto tok = load_tokenizer(path);
  CHECK(tok->vocab_size() == 512);
  CHECK(tok->bos_id() == 1);
  CHECK(tok->eos_ids() == std::vector<int32_t>{2});
  CHECK(tok->add_bos());
  // The file as llama2.c's converter wrote it: exact wherever spaces are single. With extra
  // spaces it keeps them, as llama.cpp does for this file (the flag was not recorded).
  check_fixture(*tok, "stories260k_spm", [](const std::string& t) { return !has_extra_spaces(t); });
  CHECK(tok->encode("  a", false) != tok->encode("a", false));

  // The same file with the flag troupe writes when it converts tok512.model: exact on all.
  const std::string fixed = temp_dir("tok-stories") + "/stories260K.gguf";
  const GgufFile g = GgufFile::open(path);
  {
    GgufWriter w(fixed);
    for (const auto& [k, v] : g.metadata()) w.set(k, v);
    w.set("tokenizer.ggml.remove_extra_whitespaces", GgufValue::boolean(true));
    for (const auto& t : g.tensors()) w.add_tensor(t.name, t.ggml_type, t.shape());
    w.begin_data();
    for (const auto& t : g.tensors()) w.write_data(g.tensor_data(t), static_cast<size_t>(t.nbytes));
    w.finish();
  }
  check_fixture(*load_tokenizer(fixed), "stories260k_spm");
}

TEST_CASE("a synth GGUF carries its sentencepiece tokenizer exactly", "[model][tokenizer][synth]") {
  SynthOptions o;
  o.out = temp_dir("tok-synth") + "/tiny.gguf";
  o.format = "gguf";
  o.tokenizer = model_path("stories260k/tok512.model");
  check_fixture(*load_tokenizer(synth_model(o)), "stories260k_spm");
  o.out = temp_dir("tok-synth-l2") + "/tiny.gguf";
  o.tokenizer = model_path("llama2-tokenizer/tokenizer.model");
  check_fixture(*load_tokenizer(synth_model(o)), "llama2_spm");
  // The HF form: tokenizer.model copied beside the weights.
  o.out = temp_dir("tok-synth-hf");
  o.format = "hf";
  check_fixture(*load_tokenizer(synth_model(o)), "llama2_spm");
}

TEST_CASE("load_tokenizer finds .model files and tokenizer directories", "[model][tokenizer]") {
  check_fixture(*load_tokenizer(model_path("stories260k/tok512.model")), "stories260k_spm");
  check_fixture(*load_tokenizer(model_path("llama2-tokenizer/tokenizer.model")), "llama2_spm");
  check_fixture(*load_tokenizer(model_path("llama2-tokenizer")), "llama2_spm");
  check_fixture(*load_tokenizer(model_path("tinystories-656k")), "tinystories656k");
  check_fixture(*load_tokenizer(tokenizer_path("llama3")), "llama3");
}

TEST_CASE("a GGUF with a byte-level BPE vocabulary gives a working tokenizer", "[model][tokenizer]") {
  // Re-embed Llama-3's tokenizer.json in a tensor-less GGUF, as a converter would.
  const std::string path = temp_dir("tok-gguf") + "/llama3-vocab.gguf";
  {
    GgufWriter w(path);
    write_byte_bpe_vocab(w, read_byte_bpe_json(tokenizer_path("llama3") + "/tokenizer.json"));
    w.finish();
  }
  const auto tok = load_tokenizer(path);
  CHECK(tok->vocab_size() == 128256);
  CHECK(tok->bos_id() == 128000);
  check_fixture(*tok, "llama3");
}

TEST_CASE("a GGUF export starts and stops where the HF tokenizer does", "[model][tokenizer]") {
  // One policy for bos/eos/add_bos: the export reads them from the runnable tokenizer, and
  // the GGUF's two EOS slots (eos, eot) are the HF tokenizer's first two.
  for (const char* name : {"llama3", "qwen3"}) {
    INFO(name);
    const auto hf = load_tokenizer(tokenizer_path(name));
    const std::string path = temp_dir("tok-gguf-specials") + "/" + name + ".gguf";
    {
      GgufWriter w(path);
      write_byte_bpe_vocab(w, read_byte_bpe_json(tokenizer_path(name) + "/tokenizer.json"));
      w.finish();
    }
    const auto gguf = load_tokenizer(path);
    CHECK(gguf->bos_id() == hf->bos_id());
    CHECK(gguf->add_bos() == hf->add_bos());
    REQUIRE(!hf->eos_ids().empty());
    const size_t slots = std::min<size_t>(2, hf->eos_ids().size());
    REQUIRE(gguf->eos_ids().size() >= slots);
    for (size_t i = 0; i < slots; ++i) CHECK(gguf->eos_ids()[i] == hf->eos_ids()[i]);
    const std::string text = "Hello, world! 12345";
    CHECK(gguf->encode(text, true) == hf->encode(text, true));
  }
}

TEST_CASE("load_tokenizer errors name the path", "[model][tokenizer]") {
  const std::string dir = temp_dir("tok-bad");
  CHECK_THAT(error_of([&] { load_tokenizer(dir); }), Catch::Contains(dir));
  CHECK_THAT(error_of([&] { load_tokenizer(dir + "/missing.model"); }), Catch::Contains("missing.model"));
  write_file(dir + "/bad.model", std::string("\x0a\xff\xff\xff\xff\x0f", 6));
  CHECK_THAT(error_of([&] { read_spm_model(dir + "/bad.model"); }), Catch::Contains("bad.model"));
  // A GGUF without tokenizer keys.
  {
    GgufWriter w(dir + "/empty.gguf");
    w.set("general.architecture", GgufValue::str("llama"));
    w.finish();
  }
  CHECK_THAT(error_of([&] { load_tokenizer(dir + "/empty.gguf"); }),
             Catch::Contains("empty.gguf") && Catch::Contains("tokenizer.ggml.model"));
}
