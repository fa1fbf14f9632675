// The vocabulary of a sentencepiece .model file, as SpmSource (tokenizer/sentencepiece_proto.h
// parses the protobuf).
#include <string_view>

#include "core/error.h"
#include "core/mapped_file.h"
#include "model/vocab_io.h"
#include "tokenizer/sentencepiece_proto.h"

namespace troupe {

SpmSource read_spm_model(const std::string& path) {
  auto file = MappedFile::open(path);
  SpmProto proto = parse_spm_proto(
      std::string_view(reinterpret_cast<const char*>(file->data()), file->size()), path);
  SpmSource src;
  src.remove_extra_whitespaces = proto.remove_extra_whitespaces;
  SpmVocab& v = src.vocab;
  v.bos_id = proto.bos_id, v.eos_id = proto.eos_id, v.unk_id = proto.unk_id;
  v.add_bos = true;
  v.add_space_prefix = proto.add_dummy_prefix;
  for (SpmProto::Piece& p : proto.pieces) {
    if (p.type < 1 || p.type > 6) fail("{}: piece {} has unknown type {}", path, v.tokens.size(), p.type);
    v.tokens.push_back(std::move(p.text));
    v.scores.push_back(p.score);
    v.types.push_back(p.type);
  }
  if (v.tokens.empty()) fail("{}: sentencepiece model has no pieces", path);
  const auto n = static_cast<int32_t>(v.tokens.size());
  if (v.unk_id < 0 || v.unk_id >= n) fail("{}: unk_id {} is outside the vocabulary of {}", path, v.unk_id, n);
  if (v.bos_id >= n || v.eos_id >= n) fail("{}: bos/eos id outside the vocabulary of {}", path, n);
  if (v.bos_id < 0) v.add_bos = false;  // a model trained without BOS
  return src;
}

}  // namespace troupe
