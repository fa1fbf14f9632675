// The vocabulary of a sentencepiece .model file: a ModelProto protobuf, parsed by hand.
#include "model/vocab_io.h"

#include <cstring>

#include "core/error.h"
#include "core/mapped_file.h"

namespace troupe {

namespace {

// Minimal protobuf wire-format reader: varints, fixed32/64 and length-delimited fields, with
// unknown fields skipped. Every read is checked against the end of its message.
class PbReader {
 public:
  PbReader(const uint8_t* p, const uint8_t* end, const std::string& path) : p_(p), end_(end), path_(path) {}
  bool done() const { return p_ >= end_; }

  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p_ >= end_) truncated();
      const uint8_t b = *p_++;
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
    fail("{}: corrupt sentencepiece model: varint too long", path_);
  }
  uint32_t fixed32() {
    if (end_ - p_ < 4) truncated();
    uint32_t v;
    std::memcpy(&v, p_, 4);
    p_ += 4;
    return v;
  }
  PbReader sub() {  // a length-delimited field as its own reader
    const uint64_t n = varint();
    if (n > static_cast<uint64_t>(end_ - p_)) truncated();
    PbReader r(p_, p_ + n, path_);
    p_ += n;
    return r;
  }
  std::string bytes() {
    PbReader r = sub();
    return std::string(reinterpret_cast<const char*>(r.p_), static_cast<size_t>(r.end_ - r.p_));
  }
  void skip(uint32_t wire) {
    switch (wire) {
      case 0: varint(); break;
      case 1: if (end_ - p_ < 8) truncated(); p_ += 8; break;
      case 2: sub(); break;
      case 5: fixed32(); break;
      default: fail("{}: corrupt sentencepiece model: wire type {}", path_, wire);
    }
  }

 private:
  [[noreturn]] void truncated() const { fail("{}: truncated or corrupt sentencepiece model", path_); }
  const uint8_t* p_;
  const uint8_t* end_;
  const std::string& path_;
};

int32_t as_int32(uint64_t v) { return static_cast<int32_t>(static_cast<int64_t>(v)); }  // proto int32

}  // namespace

SpmSource read_spm_model(const std::string& path) {
  auto file = MappedFile::open(path);
  PbReader r(file->data(), file->data() + file->size(), path);
  SpmSource src;
  src.remove_extra_whitespaces = true;  // NormalizerSpec default
  SpmVocab& v = src.vocab;
  v.bos_id = 1, v.eos_id = 2, v.unk_id = 0;  // TrainerSpec defaults
  v.add_bos = true;
  v.add_space_prefix = true;                  // NormalizerSpec.add_dummy_prefix default
  while (!r.done()) {
    const uint64_t key = r.varint();
    const uint32_t field = static_cast<uint32_t>(key >> 3), wire = key & 7;
    if (field == 1 && wire == 2) {  // repeated SentencePiece pieces
      PbReader p = r.sub();
      std::string piece;
      float score = 0.0f;
      int32_t type = 1;  // NORMAL
      while (!p.done()) {
        const uint64_t k = p.varint();
        const uint32_t f = static_cast<uint32_t>(k >> 3), wt = k & 7;
        if (f == 1 && wt == 2) piece = p.bytes();
        else if (f == 2 && wt == 5) { uint32_t b = p.fixed32(); std::memcpy(&score, &b, 4); }
        else if (f == 3 && wt == 0) type = as_int32(p.varint());
        else p.skip(wt);
      }
      if (type < 1 || type > 6) fail("{}: piece {} has unknown type {}", path, v.tokens.size(), type);
      v.tokens.push_back(std::move(piece));
      v.scores.push_back(score);
      v.types.push_back(type);
    } else if (field == 2 && wire == 2) {  // TrainerSpec: special token ids
      PbReader t = r.sub();
      while (!t.done()) {
        const uint64_t k = t.varint();
        const uint32_t f = static_cast<uint32_t>(k >> 3), wt = k & 7;
        if (wt == 0 && f == 40) v.unk_id = as_int32(t.varint());
        else if (wt == 0 && f == 41) v.bos_id = as_int32(t.varint());
        else if (wt == 0 && f == 42) v.eos_id = as_int32(t.varint());
        else t.skip(wt);
      }
    } else if (field == 3 && wire == 2) {  // NormalizerSpec
      PbReader n = r.sub();
      while (!n.done()) {
        const uint64_t k = n.varint();
        const uint32_t f = static_cast<uint32_t>(k >> 3), wt = k & 7;
        if (f == 3 && wt == 0) v.add_space_prefix = n.varint() != 0;
        else if (f == 4 && wt == 0) src.remove_extra_whitespaces = n.varint() != 0;
        else n.skip(wt);
      }
    } else {
      r.skip(wire);
    }
  }
  if (v.tokens.empty()) fail("{}: sentencepiece model has no pieces", path);
  const auto n = static_cast<int32_t>(v.tokens.size());
  if (v.unk_id < 0 || v.unk_id >= n) fail("{}: unk_id {} is outside the vocabulary of {}", path, v.unk_id, n);
  if (v.bos_id >= n || v.eos_id >= n) fail("{}: bos/eos id outside the vocabulary of {}", path, n);
  if (v.bos_id < 0) v.add_bos = false;  // a model trained without BOS
  return src;
}

}  // namespace troupe
