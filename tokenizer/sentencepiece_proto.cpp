#include "tokenizer/sentencepiece_proto.h"

#include <cstring>

#include "core/error.h"

namespace troupe {

namespace {

// Protobuf wire format: varints, fixed32/64 and length-delimited fields. Every read is
// checked against the end of its message.
class PbReader {
 public:
  PbReader(std::string_view buf, const std::string& source) : buf_(buf), source_(source) {}

  // Reads the next field's key; false at the end of the message.
  bool next(uint32_t* field, uint32_t* wire) {
    if (pos_ >= buf_.size()) return false;
    const uint64_t key = varint();
    *field = static_cast<uint32_t>(key >> 3);
    *wire = static_cast<uint32_t>(key & 7);
    return true;
  }
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= buf_.size()) truncated();
      const auto b = static_cast<uint8_t>(buf_[pos_++]);
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
    fail("{}: corrupt sentencepiece model: varint too long", source_);
  }
  int32_t int32() { return static_cast<int32_t>(static_cast<int64_t>(varint())); }  // proto int32
  float float32() {
    float f;
    std::memcpy(&f, take(4).data(), 4);
    return f;
  }
  std::string_view bytes() { return take(static_cast<size_t>(varint())); }
  PbReader message() { return PbReader(bytes(), source_); }
  void skip(uint32_t wire) {
    switch (wire) {
      case 0: varint(); break;
      case 1: take(8); break;
      case 2: bytes(); break;
      case 5: take(4); break;
      default: fail("{}: corrupt sentencepiece model: wire type {}", source_, wire);
    }
  }

 private:
  std::string_view take(size_t n) {
    if (n > buf_.size() - pos_) truncated();
    const std::string_view s = buf_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  [[noreturn]] void truncated() const { fail("{}: truncated or corrupt sentencepiece model", source_); }

  std::string_view buf_;
  size_t pos_ = 0;
  const std::string& source_;
};

SpmProto::Piece read_piece(PbReader r) {
  SpmProto::Piece p;
  uint32_t f, w;
  while (r.next(&f, &w)) {
    if (f == 1 && w == 2) p.text = std::string(r.bytes());
    else if (f == 2 && w == 5) p.score = r.float32();
    else if (f == 3 && w == 0) p.type = r.int32();
    else r.skip(w);
  }
  return p;
}

void read_trainer_spec(PbReader r, SpmProto& s) {
  uint32_t f, w;
  while (r.next(&f, &w)) {
    if (f == 3 && w == 0) s.model_type = r.int32();
    else if (f == 24 && w == 0) s.treat_whitespace_as_suffix = r.varint() != 0;
    else if (f == 40 && w == 0) s.unk_id = r.int32();
    else if (f == 41 && w == 0) s.bos_id = r.int32();
    else if (f == 42 && w == 0) s.eos_id = r.int32();
    else r.skip(w);
  }
}

void read_normalizer_spec(PbReader r, SpmProto& s) {
  uint32_t f, w;
  while (r.next(&f, &w)) {
    if (f == 1 && w == 2) s.normalizer_name = std::string(r.bytes());
    else if (f == 2 && w == 2) s.has_charsmap = !r.bytes().empty();
    else if (f == 3 && w == 0) s.add_dummy_prefix = r.varint() != 0;
    else if (f == 4 && w == 0) s.remove_extra_whitespaces = r.varint() != 0;
    else if (f == 5 && w == 0) s.escape_whitespaces = r.varint() != 0;
    else r.skip(w);
  }
}

}  // namespace

SpmProto parse_spm_proto(std::string_view bytes, const std::string& source) {
  SpmProto s;
  PbReader r(bytes, source);
  uint32_t f, w;
  while (r.next(&f, &w)) {
    if (f == 1 && w == 2) s.pieces.push_back(read_piece(r.message()));  // repeated SentencePiece
    else if (f == 2 && w == 2) read_trainer_spec(r.message(), s);
    else if (f == 3 && w == 2) read_normalizer_spec(r.message(), s);
    else r.skip(w);
  }
  return s;
}

}  // namespace troupe
