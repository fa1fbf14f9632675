#pragma once
// Tokenizer vocabularies in and out of model files: the tokenizer.ggml.* keys of GGUF, the
// sentencepiece .model protobuf, and byte-level BPE tokenizer.json files. Used by
// load_tokenizer() and by synth to embed a tokenizer into a GGUF it writes.
#include <string>

#include "model/gguf.h"
#include "model/gguf_writer.h"
#include "tokenizer/tokenizer.h"

namespace troupe {

// A SentencePiece vocabulary plus the one normaliser flag SpmVocab does not carry:
// sentencepiece's remove_extra_whitespaces (drop leading/trailing spaces, collapse runs).
// A .model file records it (default on); GGUF records it as
// tokenizer.ggml.remove_extra_whitespaces (llama.cpp's key; absent = off, as llama.cpp).
struct SpmSource {
  SpmVocab vocab;
  bool remove_extra_whitespaces = false;
};

// tokenizer.ggml.model "llama" -> SpmSource, "gpt2" -> ByteBpeVocab. Missing optional keys
// take llama.cpp's defaults. Throws troupe::Error naming the file and key.
SpmSource spm_vocab_from_gguf(const GgufFile& g);
ByteBpeVocab byte_bpe_vocab_from_gguf(const GgufFile& g);

// Adds the tokenizer.ggml.* keys for a vocabulary (remove_extra_whitespaces only when set,
// so files without it stay as other converters write them).
void write_spm_vocab(GgufWriter& w, const SpmSource& v);
void write_byte_bpe_vocab(GgufWriter& w, const ByteBpeVocab& v);

// Pieces, scores, types, special ids and normaliser flags (add_dummy_prefix,
// remove_extra_whitespaces) of a sentencepiece .model file (a ModelProto protobuf), read
// with a bounds-checked wire-format parser.
SpmSource read_spm_model(const std::string& path);

// A byte-level BPE tokenizer.json (Llama-3, Qwen, GPT-2 style) plus the tokenizer_config.json
// beside it (bos/eos/add_bos_token). Throws for other tokenizer types.
ByteBpeVocab read_byte_bpe_json(const std::string& tokenizer_json_path);

// What a model config needs from a tokenizer.json (+ tokenizer_config.json): the number of
// token ids (max id over vocab and added tokens, plus one) and the special ids.
struct TokenizerJsonInfo {
  int64_t vocab_size = 0;
  int32_t bos_id = -1;
  std::vector<int32_t> eos_ids;  // EOS first, then chat end-of-turn tokens
  bool add_bos = false;
  bool byte_level = false;       // a ByteLevel pre-tokenizer (else SentencePiece-style)
};
TokenizerJsonInfo read_tokenizer_json_info(const std::string& tokenizer_json_path);

}  // namespace troupe
