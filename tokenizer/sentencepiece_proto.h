#pragma once
// The fields troupe uses of a sentencepiece .model file (a ModelProto protobuf), read with a
// bounds-checked wire-format parser: Debian ships no sentencepiece_model.pb.h. Both the
// tokenizer (load_sentencepiece_model) and the vocabulary export (model/vocab_io.h) read
// .model files through it.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace troupe {

struct SpmProto {
  struct Piece {
    std::string text;
    float score = 0.0f;
    int32_t type = 1;  // NORMAL
  };
  std::vector<Piece> pieces;
  // TrainerSpec (defaults as in sentencepiece_model.proto).
  int model_type = 1;  // 1 unigram, 2 BPE
  int32_t unk_id = 0, bos_id = 1, eos_id = 2;
  bool treat_whitespace_as_suffix = false;
  // NormalizerSpec.
  std::string normalizer_name;
  bool has_charsmap = false;  // precompiled_charsmap is not empty
  bool add_dummy_prefix = true;
  bool remove_extra_whitespaces = true;
  bool escape_whitespaces = true;
};

// Throws troupe::Error naming `source` on truncated or corrupt input. Unknown fields are
// skipped.
SpmProto parse_spm_proto(std::string_view bytes, const std::string& source);

}  // namespace troupe
