// load_sentencepiece_model: libsentencepiece parses and validates the .model protobuf and
// gives pieces, scores and special ids; the few settings it has no accessor for (piece
// types such as USER_DEFINED, normaliser flags, model type) are read from the serialized
// proto (tokenizer/sentencepiece_proto.h).
// Encoding then runs our own SPM BPE so GGUF vocabularies and .model files share it.
#include <sentencepiece_processor.h>

#include <filesystem>

#include "core/error.h"
#include "core/mapped_file.h"
#include "tokenizer/sentencepiece_proto.h"
#include "tokenizer/spm.h"
#include "tokenizer/tokenizer.h"

namespace troupe {

std::unique_ptr<Tokenizer> load_sentencepiece_model(const std::string& model_path) {
  if (!std::filesystem::is_regular_file(model_path))
    fail("{}: sentencepiece model not found", model_path);
  // Our bounds-checked reader first, so what our encoder does not reproduce is refused before
  // libsentencepiece sees it; libsentencepiece also throws on some corrupt models (its trie
  // builder, on a piece holding a NUL byte: found by tests/fuzz), so its exceptions become
  // ours too.
  const auto file = MappedFile::open(model_path);
  const SpmProto s =
      parse_spm_proto({reinterpret_cast<const char*>(file->data()), file->size()}, model_path);
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

  sentencepiece::SentencePieceProcessor sp;
  try {
    if (const auto st = sp.Load(model_path); !st.ok())
      fail("{}: cannot load sentencepiece model: {}", model_path, st.ToString());
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    fail("{}: cannot load sentencepiece model: {}", model_path, e.what());
  }
  const int n = sp.GetPieceSize();
  if (int(s.pieces.size()) != n)
    fail("{}: proto lists {} pieces, sentencepiece {}", model_path, s.pieces.size(), n);

  SpmVocab v;
  v.tokens.reserve(n);
  v.scores.reserve(n);
  for (int i = 0; i < n; ++i) {
    v.tokens.push_back(sp.IdToPiece(i));
    v.scores.push_back(sp.GetScore(i));
  }
  for (const SpmProto::Piece& p : s.pieces) v.types.push_back(p.type);
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
