// load_sentencepiece_model: libsentencepiece parses and validates the .model protobuf and
// gives pieces, scores and special ids; the few settings it has no accessor for (piece
// types such as USER_DEFINED, normaliser flags, model type) are read from the serialized
// proto with a minimal wire-format reader, since Debian ships no sentencepiece_model.pb.h.
// Encoding then runs our own SPM BPE so GGUF vocabularies and .model files share it.
#include <sentencepiece_processor.h>

#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "tokenizer/spm.h"
#include "tokenizer/tokenizer.h"

namespace troupe {

namespace {

// Protobuf wire format, just enough to walk fields of length-delimited messages.
class ProtoReader {
 public:
  explicit ProtoReader(std::string_view buf) : buf_(buf) {}
  // Reads the next field; false at the end. Throws on truncated input.
  bool next(uint32_t* field, uint32_t* wire, uint64_t* varint, std::string_view* bytes) {
    if (pos_ >= buf_.size()) return false;
    const uint64_t key = read_varint();
    *field = uint32_t(key >> 3);
    *wire = uint32_t(key & 7);
    switch (*wire) {
      case 0: *varint = read_varint(); break;
      case 1: *bytes = take(8); break;
      case 2: *bytes = take(size_t(read_varint())); break;
      case 5: *bytes = take(4); break;
      default: throw Error("unsupported protobuf wire type " + std::to_string(*wire));
    }
    return true;
  }

 private:
  uint64_t read_varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= buf_.size()) throw Error("truncated protobuf");
      const auto b = uint8_t(buf_[pos_++]);
      v |= uint64_t(b & 0x7F) << shift;
      if (b < 0x80) return v;
    }
    throw Error("bad protobuf varint");
  }
  std::string_view take(size_t n) {
    if (n > buf_.size() - pos_) throw Error("truncated protobuf");
    auto s = buf_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  std::string_view buf_;
  size_t pos_ = 0;
};

// Fields of sentencepiece_model.proto that matter for encoding.
struct ModelSettings {
  std::vector<int32_t> types;            // ModelProto.pieces[].type (default NORMAL)
  int model_type = 1;                    // TrainerSpec.model_type: 1 unigram, 2 BPE
  bool treat_whitespace_as_suffix = false;
  std::string normalizer_name;           // NormalizerSpec.name
  bool has_charsmap = false;             // NormalizerSpec.precompiled_charsmap non-empty
  bool add_dummy_prefix = true;
  bool remove_extra_whitespaces = true;
  bool escape_whitespaces = true;
};

ModelSettings read_settings(std::string_view proto) {
  ModelSettings s;
  ProtoReader top(proto);
  uint32_t f, w;
  uint64_t v;
  std::string_view b;
  while (top.next(&f, &w, &v, &b)) {
    if (f == 1 && w == 2) {  // SentencePiece piece
      int32_t type = 1;
      ProtoReader piece(b);
      while (piece.next(&f, &w, &v, &b))
        if (f == 3 && w == 0) type = int32_t(v);
      s.types.push_back(type);
    } else if (f == 2 && w == 2) {  // TrainerSpec
      ProtoReader t(b);
      while (t.next(&f, &w, &v, &b)) {
        if (f == 3 && w == 0) s.model_type = int(v);
        if (f == 24 && w == 0) s.treat_whitespace_as_suffix = v != 0;
      }
    } else if (f == 3 && w == 2) {  // NormalizerSpec
      ProtoReader n(b);
      while (n.next(&f, &w, &v, &b)) {
        if (f == 1 && w == 2) s.normalizer_name = std::string(b);
        if (f == 2 && w == 2) s.has_charsmap = !b.empty();
        if (f == 3 && w == 0) s.add_dummy_prefix = v != 0;
        if (f == 4 && w == 0) s.remove_extra_whitespaces = v != 0;
        if (f == 5 && w == 0) s.escape_whitespaces = v != 0;
      }
    }
  }
  return s;
}

}  // namespace

std::unique_ptr<Tokenizer> load_sentencepiece_model(const std::string& model_path) {
  if (!std::filesystem::is_regular_file(model_path))
    fail("{}: sentencepiece model not found", model_path);
  sentencepiece::SentencePieceProcessor sp;
  if (const auto st = sp.Load(model_path); !st.ok())
    fail("{}: cannot load sentencepiece model: {}", model_path, st.ToString());

  ModelSettings s;
  try {
    s = read_settings(sp.serialized_model_proto());
  } catch (const Error& e) {
    fail("{}: {}", model_path, e.what());
  }
  const int n = sp.GetPieceSize();
  if (int(s.types.size()) != n)
    fail("{}: proto lists {} pieces, sentencepiece {}", model_path, s.types.size(), n);
  // Only what our encoder reproduces exactly; anything else would silently give
  // different ids than the model was trained with.
  if (s.model_type != 2)
    fail("{}: unsupported sentencepiece model type {} (only BPE is supported)", model_path,
         s.model_type == 1 ? "unigram" : std::to_string(s.model_type));
  if (s.has_charsmap)
    fail("{}: unsupported sentencepiece normalizer '{}' (only identity is supported)",
         model_path, s.normalizer_name);
  if (s.treat_whitespace_as_suffix || !s.escape_whitespaces)
    fail("{}: unsupported whitespace handling (treat_whitespace_as_suffix / no escaping)",
         model_path);

  SpmVocab v;
  v.tokens.reserve(n);
  v.scores.reserve(n);
  for (int i = 0; i < n; ++i) {
    v.tokens.push_back(sp.IdToPiece(i));
    v.scores.push_back(sp.GetScore(i));
  }
  v.types = std::move(s.types);
  v.bos_id = sp.bos_id();
  v.eos_id = sp.eos_id();
  v.unk_id = sp.unk_id();
  v.add_bos = v.bos_id >= 0;  // sentencepiece models (Llama 1/2) are trained with BOS
  v.add_space_prefix = s.add_dummy_prefix;
  detail::SpmOptions opts;
  opts.source = model_path;
  opts.remove_extra_whitespaces = s.remove_extra_whitespaces;
  return detail::make_spm(std::move(v), opts);
}

}  // namespace troupe
