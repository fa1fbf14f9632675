#pragma once
// Text <-> token ids. Two algorithms cover the Llama family:
//  - SentencePiece-style BPE over a Metaspace-normalised string with byte fallback
//    (GGUF "llama" vocab, sentencepiece .model files, tokenizer.json with
//    Prepend/Replace normalizers or a Metaspace pre-tokenizer);
//  - byte-level BPE (GPT-2 / Llama-3 / Qwen tokenizer.json) with its regex pre-tokenizer.
// Added/special tokens found in the text are matched first, as Hugging Face does.
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace troupe {

// A SentencePiece vocabulary as GGUF (tokenizer.ggml.*) or a .model file stores it.
struct SpmVocab {
  std::vector<std::string> tokens;  // pieces, "▁" for spaces, "<0x0A>" byte tokens
  std::vector<float> scores;        // merge priority: higher merges first
  std::vector<int32_t> types;       // sentencepiece types: 1 normal, 2 unknown, 3 control,
                                    // 4 user-defined, 5 unused, 6 byte
  int32_t bos_id = 1, eos_id = 2, unk_id = 0;
  bool add_bos = true;
  bool add_space_prefix = true;     // prepend "▁" to the input (sentencepiece default)
};

// A byte-level BPE vocabulary as GGUF ("gpt2" tokenizer model) stores it.
struct ByteBpeVocab {
  std::vector<std::string> tokens;  // in GPT-2's byte-to-unicode alphabet ("Ġ" = space)
  std::vector<std::string> merges;  // "left right", highest priority first
  std::vector<int32_t> types;       // as SpmVocab::types (3 control / 4 user-defined = special)
  std::string pre = "llama-bpe";    // pre-tokenizer regex family: "llama-bpe", "qwen2", "gpt2"
  int32_t bos_id = -1;
  std::vector<int32_t> eos_ids;
  bool add_bos = false;
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Ids for `text`. Special/added tokens written in the text are recognised. With
  // add_special the model's configured prefix (usually BOS) is prepended.
  virtual std::vector<int32_t> encode(std::string_view text, bool add_special = false) const = 0;
  // Bytes of one token as it appears in decoded text (byte tokens give their raw byte;
  // SentencePiece "▁" becomes a space). May be an incomplete UTF-8 sequence.
  virtual std::string token_bytes(int32_t id) const = 0;
  // Full decode. Drops special tokens when skip_special; strips the leading space a
  // SentencePiece tokenizer adds in front of the first token.
  virtual std::string decode(std::span<const int32_t> ids, bool skip_special = true) const = 0;

  virtual int32_t vocab_size() const = 0;
  virtual std::optional<int32_t> token_id(std::string_view piece) const = 0;
  virtual bool is_special(int32_t id) const = 0;

  int32_t bos_id() const { return bos_id_; }
  const std::vector<int32_t>& eos_ids() const { return eos_ids_; }
  bool add_bos() const { return add_bos_; }

 protected:
  int32_t bos_id_ = -1;
  std::vector<int32_t> eos_ids_;
  bool add_bos_ = false;
};

// Factories. All throw troupe::Error naming the file and reason on bad input.
std::unique_ptr<Tokenizer> make_spm_tokenizer(SpmVocab vocab);
std::unique_ptr<Tokenizer> make_byte_bpe_tokenizer(ByteBpeVocab vocab);
// tokenizer.json (+ tokenizer_config.json beside it for bos/eos/add_bos_token, if present).
std::unique_ptr<Tokenizer> load_tokenizer_json(const std::string& tokenizer_json_path);
// sentencepiece .model protobuf.
std::unique_ptr<Tokenizer> load_sentencepiece_model(const std::string& model_path);

// Streams text token by token without ever emitting a broken UTF-8 sequence: bytes of an
// incomplete character are held back until the character completes. The text is a
// continuation (generated after a prompt), so a leading "▁" of the first token stays a space.
class IncrementalDecoder {
 public:
  explicit IncrementalDecoder(const Tokenizer& tok, bool skip_special = true);
  // New text made printable by this token (possibly empty).
  std::string push(int32_t id);
  // Whatever is still held back (invalid bytes become U+FFFD).
  std::string flush();

 private:
  const Tokenizer& tok_;
  bool skip_special_;
  std::string pending_;
};

}  // namespace troupe
