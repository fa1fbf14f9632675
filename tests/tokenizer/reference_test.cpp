// Every case of tokenizer_reference.json, produced by independent implementations
// (transformers.js for tokenizer.json files, the sentencepiece library for .model files).
#include <catch2/catch.hpp>

#include "fixtures.h"
#include "tokenizer_fixture_corrections.h"
#include "tokenizer/tokenizer.h"

using troupe::test::fixture_tokenizer;
using troupe::test::tokenizer_cases;

namespace {

const char* const kKeys[] = {"llama3", "qwen3", "llama2_spm", "stories260k_spm", "tinystories656k"};

// Whether the vocabulary can give back `text` exactly: byte-level BPE and byte fallback
// can, except that tok512.model's normaliser removes extra spaces, and TinyStories-656K
// has neither byte tokens nor most non-ASCII characters.
bool lossless(const std::string& key, const std::string& text) {
  if (key == "tinystories656k") return false;
  if (key == "stories260k_spm")
    return text.find("  ") == std::string::npos && text.front() != ' ' && text.back() != ' ';
  return true;
}

}  // namespace

TEST_CASE("tokenizers reproduce the reference ids", "[tokenizer][fixtures]") {
  for (const char* key : kKeys) {
    const auto& tok = fixture_tokenizer(key);
    for (const auto& c : tokenizer_cases(key)) {
      INFO(key << ": " << c.text);
      CHECK(tok.encode(c.text, /*add_special=*/false) == troupe::test::corrected_reference_ids(key, c.text, c.ids));
    }
  }
}

TEST_CASE("decode inverts encode where the vocabulary is lossless", "[tokenizer][fixtures]") {
  for (const char* key : kKeys) {
    const auto& tok = fixture_tokenizer(key);
    for (const auto& c : tokenizer_cases(key)) {
      if (!lossless(key, c.text)) continue;
      INFO(key << ": " << c.text);
      // The fixture's "<|begin_of_text|>" is a special token for Llama 3; keep it.
      CHECK(tok.decode(c.ids, /*skip_special=*/false) == c.text);
      CHECK(tok.decode(tok.encode(c.text), false) == c.text);
    }
  }
}

TEST_CASE("SentencePiece-style decode strips only the dummy prefix", "[tokenizer]") {
  const auto& tok = fixture_tokenizer("llama2_spm");
  CHECK(tok.decode(tok.encode("  two leading spaces")) == "  two leading spaces");
  CHECK(tok.decode(tok.encode("Hello", true)) == "Hello");  // BOS skipped, prefix stripped
  CHECK(tok.decode(tok.encode("Hello", true), false) == "<s> Hello");
  const auto& ts = fixture_tokenizer("tinystories656k");
  CHECK(ts.decode(ts.encode("Once upon a time")) == "Once upon a time");
}

TEST_CASE("special tokens written in the text are recognised", "[tokenizer]") {
  const auto& l3 = fixture_tokenizer("llama3");
  const auto ids = l3.encode("<|begin_of_text|> is special?");
  REQUIRE(!ids.empty());
  CHECK(ids.front() == 128000);
  CHECK(l3.is_special(128000));
  CHECK_FALSE(l3.is_special(9906));
  CHECK(l3.decode(ids) == " is special?");  // skip_special drops it

  // The Llama 3 chat template: each header/turn marker is one token.
  const auto chat = l3.encode(troupe::test::llama3_chat_text());
  CHECK(chat.front() == 128000);
  CHECK(std::count(chat.begin(), chat.end(), 128006) == 5);  // <|start_header_id|>
  CHECK(std::count(chat.begin(), chat.end(), 128009) == 4);  // <|eot_id|>
  CHECK(l3.decode(chat, false) == troupe::test::llama3_chat_text());

  // Qwen: special (<|im_start|>) and non-special (<tool_call>) added tokens.
  const auto& qw = fixture_tokenizer("qwen3");
  const auto q = qw.encode("<|im_start|>user\n<tool_call>x</tool_call><|im_end|>");
  REQUIRE(q.size() >= 4);
  CHECK(q.front() == *qw.token_id("<|im_start|>"));
  CHECK(q.back() == *qw.token_id("<|im_end|>"));
  CHECK(std::count(q.begin(), q.end(), *qw.token_id("<tool_call>")) == 1);
  CHECK(qw.is_special(*qw.token_id("<|im_end|>")));
  CHECK_FALSE(qw.is_special(*qw.token_id("<tool_call>")));
  CHECK(qw.decode(q) == "user\n<tool_call>x</tool_call>");

  // SentencePiece control tokens: <s>/</s> in the text are single tokens.
  const auto& l2 = fixture_tokenizer("llama2_spm");
  const auto s = l2.encode("<s>[INST] hi [/INST]</s>");
  CHECK(s.front() == 1);
  CHECK(s.back() == 2);
  CHECK(l2.decode(s) == "[INST] hi [/INST]");
}

TEST_CASE("BOS/EOS and add_special follow the tokenizer configuration", "[tokenizer]") {
  const auto& l3 = fixture_tokenizer("llama3");
  CHECK(l3.bos_id() == 128000);
  CHECK(l3.add_bos());
  CHECK(l3.encode("Hello, world!", true) == std::vector<int32_t>{128000, 9906, 11, 1917, 0});
  const auto& eos = l3.eos_ids();
  CHECK(std::find(eos.begin(), eos.end(), 128001) != eos.end());  // <|end_of_text|>
  CHECK(std::find(eos.begin(), eos.end(), 128009) != eos.end());  // <|eot_id|>
  CHECK(l3.vocab_size() == 128256);

  const auto& qw = fixture_tokenizer("qwen3");
  CHECK_FALSE(qw.add_bos());
  CHECK(qw.encode("Hello", true) == qw.encode("Hello", false));
  CHECK(qw.eos_ids().front() == *qw.token_id("<|im_end|>"));

  const auto& l2 = fixture_tokenizer("llama2_spm");
  CHECK(l2.bos_id() == 1);
  CHECK(l2.eos_ids() == std::vector<int32_t>{2});
  CHECK(l2.encode("Hello", true) == std::vector<int32_t>{1, 15043});
  CHECK(l2.vocab_size() == 32000);

  const auto& ts = fixture_tokenizer("tinystories656k");
  CHECK(ts.bos_id() == 1);  // <|start_story|>
  CHECK(ts.add_bos());
  CHECK(std::find(ts.eos_ids().begin(), ts.eos_ids().end(), 2) != ts.eos_ids().end());
  const auto with = ts.encode("Once upon a time", true);
  CHECK(with.front() == 1);
  CHECK(std::vector<int32_t>(with.begin() + 1, with.end()) == ts.encode("Once upon a time"));
}

TEST_CASE("token_bytes and token_id", "[tokenizer]") {
  const auto& l3 = fixture_tokenizer("llama3");
  CHECK(l3.token_bytes(9906) == "Hello");
  CHECK(l3.token_bytes(220) == " ");                  // "Ġ"
  CHECK(l3.token_bytes(198) == "\n");                 // "Ċ"
  CHECK(l3.token_bytes(11410) == " \xF0\x9F");       // space + first 2 bytes of 🎉
  CHECK(l3.token_id("Ġworld") == 1917);
  CHECK(l3.token_id("<|eot_id|>") == 128009);
  CHECK_FALSE(l3.token_id("definitely not a token").has_value());
  CHECK(l3.token_bytes(-1).empty());
  CHECK(l3.token_bytes(1 << 20).empty());

  const auto& l2 = fixture_tokenizer("llama2_spm");
  CHECK(l2.token_bytes(15043) == " Hello");           // "▁Hello"
  CHECK(l2.token_bytes(13) == "\n");                  // <0x0A>
  CHECK(l2.token_bytes(243) == "\xF0");
  CHECK(l2.token_id("▁Hello") == 15043);
  CHECK(l2.token_bytes(1) == "<s>");
}
