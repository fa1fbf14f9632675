#include "tokenizer/unicode.h"

#include <algorithm>
#include <cstddef>
#include <unordered_map>
#include <vector>

namespace troupe::unicode {

namespace {

struct NfcDecomp {
  uint32_t cp, first, second;
  bool composes;
};
struct NfcCcc {
  uint32_t first, last;
  uint8_t ccc;
};
#include "tokenizer/nfc_data.inc"

// Hangul syllables decompose/compose algorithmically (Unicode 3.12), not through tables.
constexpr char32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr char32_t kLCount = 19, kVCount = 21, kTCount = 28;
constexpr char32_t kNCount = kVCount * kTCount, kSCount = kLCount * kNCount;

uint8_t ccc(char32_t cp) {
  if (cp < 0x300) return 0;  // nothing below U+0300 combines
  auto it = std::upper_bound(std::begin(kNfcCcc), std::end(kNfcCcc), cp,
                             [](char32_t c, const NfcCcc& r) { return c < r.first; });
  if (it == std::begin(kNfcCcc)) return 0;
  --it;
  return cp <= it->last ? it->ccc : 0;
}

const NfcDecomp* find_decomp(char32_t cp) {
  auto it = std::lower_bound(std::begin(kNfcDecomp), std::end(kNfcDecomp), cp,
                             [](const NfcDecomp& d, char32_t c) { return d.cp < c; });
  return (it != std::end(kNfcDecomp) && it->cp == cp) ? &*it : nullptr;
}

void decompose(char32_t cp, std::vector<char32_t>& out) {
  if (cp >= kSBase && cp < kSBase + kSCount) {
    const char32_t s = cp - kSBase;
    out.push_back(kLBase + s / kNCount);
    out.push_back(kVBase + (s % kNCount) / kTCount);
    if (s % kTCount) out.push_back(kTBase + s % kTCount);
    return;
  }
  const NfcDecomp* d = cp < 0xC0 ? nullptr : find_decomp(cp);
  if (!d) {
    out.push_back(cp);
    return;
  }
  decompose(d->first, out);
  if (d->second) decompose(d->second, out);
}

// (first, second) -> primary composite, built once (thread-safe static init).
const std::unordered_map<uint64_t, char32_t>& composition_map() {
  static const auto* m = [] {
    auto* map = new std::unordered_map<uint64_t, char32_t>();
    for (const auto& d : kNfcDecomp)
      if (d.composes) map->emplace(uint64_t(d.first) << 32 | d.second, d.cp);
    return map;
  }();
  return *m;
}

char32_t compose(char32_t a, char32_t b) {
  if (a >= kLBase && a < kLBase + kLCount && b >= kVBase && b < kVBase + kVCount)
    return kSBase + ((a - kLBase) * kVCount + (b - kVBase)) * kTCount;
  if (a >= kSBase && a < kSBase + kSCount && (a - kSBase) % kTCount == 0 && b > kTBase &&
      b < kTBase + kTCount)
    return a + (b - kTBase);
  const auto& m = composition_map();
  auto it = m.find(uint64_t(a) << 32 | b);
  return it == m.end() ? 0 : it->second;
}

}  // namespace

Utf8 check_utf8(std::string_view s, size_t i, size_t* len) {
  const auto b0 = uint8_t(s[i]);
  if (b0 < 0x80) {
    *len = 1;
    return Utf8::kComplete;
  }
  size_t n;
  uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    n = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    n = 3;
    if (b0 == 0xE0) lo = 0xA0;  // overlong
    if (b0 == 0xED) hi = 0x9F;  // surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    n = 4;
    if (b0 == 0xF0) lo = 0x90;  // overlong
    if (b0 == 0xF4) hi = 0x8F;  // above U+10FFFF
  } else {
    *len = 1;
    return Utf8::kInvalid;
  }
  for (size_t k = 1; k < n; ++k) {
    if (i + k >= s.size()) return Utf8::kIncomplete;
    const auto b = uint8_t(s[i + k]);
    const bool ok = k == 1 ? (b >= lo && b <= hi) : (b >= 0x80 && b <= 0xBF);
    if (!ok) {
      *len = k;  // the maximal subpart seen so far is one invalid unit
      return Utf8::kInvalid;
    }
  }
  *len = n;
  return Utf8::kComplete;
}

bool valid_utf8(std::string_view s) {
  size_t len = 0;
  for (size_t i = 0; i < s.size(); i += len)
    if (check_utf8(s, i, &len) != Utf8::kComplete) return false;
  return true;
}

std::string sanitize_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    size_t len = 0;
    switch (check_utf8(s, i, &len)) {
      case Utf8::kComplete:
        out.append(s.substr(i, len));
        i += len;
        break;
      case Utf8::kInvalid:
        out.append(kReplacement);
        i += len;
        break;
      case Utf8::kIncomplete:  // truncated at the end
        out.append(kReplacement);
        i = s.size();
        break;
    }
  }
  return out;
}

char32_t next_cp(std::string_view s, size_t& i) {
  size_t len = 0;
  if (check_utf8(s, i, &len) != Utf8::kComplete) {
    ++i;
    return 0xFFFD;
  }
  const auto b0 = uint8_t(s[i]);
  char32_t cp = len == 1 ? b0 : len == 2 ? (b0 & 0x1F) : len == 3 ? (b0 & 0x0F) : (b0 & 0x07);
  for (size_t k = 1; k < len; ++k) cp = (cp << 6) | (uint8_t(s[i + k]) & 0x3F);
  i += len;
  return cp;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}

const std::array<char32_t, 256>& byte_to_cp() {
  // Printable Latin-1 bytes stand for themselves; the other 68 bytes are moved to
  // U+0100.. in byte order, so every byte has a visible, non-space character.
  static const std::array<char32_t, 256> table = [] {
    std::array<char32_t, 256> t{};
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      t[b] = printable ? char32_t(b) : next++;
    }
    return t;
  }();
  return table;
}

int cp_to_byte(char32_t cp) {
  static const std::array<int16_t, 324> inverse = [] {
    std::array<int16_t, 324> inv;
    inv.fill(-1);
    const auto& fwd = byte_to_cp();
    for (int b = 0; b < 256; ++b) inv[fwd[b]] = int16_t(b);
    return inv;
  }();
  return cp < inverse.size() ? inverse[cp] : -1;
}

bool decode_byte_level(std::string_view piece, std::string* out) {
  out->clear();
  size_t i = 0;
  while (i < piece.size()) {
    const int b = cp_to_byte(next_cp(piece, i));
    if (b < 0) return false;
    *out += char(b);
  }
  return true;
}

namespace {

// NFC of well-formed UTF-8 `s`, appended to `out`.
void nfc_valid(std::string_view s, std::string& out) {
  std::vector<char32_t> buf;
  buf.reserve(s.size());
  for (size_t i = 0; i < s.size();) decompose(next_cp(s, i), buf);

  // Canonical ordering: stable-sort every run of non-starters by combining class.
  for (size_t i = 0; i < buf.size();) {
    if (ccc(buf[i]) == 0) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < buf.size() && ccc(buf[j]) != 0) ++j;
    std::stable_sort(buf.begin() + i, buf.begin() + j,
                     [](char32_t a, char32_t b) { return ccc(a) < ccc(b); });
    i = j;
  }

  // Canonical composition: a character joins the last starter unless a character in
  // between has class 0 or a class >= its own ("blocked").
  std::vector<char32_t> res;
  res.reserve(buf.size());
  ptrdiff_t starter = -1;
  uint8_t last_cc = 0;
  for (char32_t c : buf) {
    const uint8_t cc = ccc(c);
    if (starter >= 0) {
      const bool adjacent = res.size() == size_t(starter) + 1;
      if (adjacent || (last_cc != 0 && last_cc < cc)) {
        if (char32_t comp = compose(res[starter], c)) {
          res[starter] = comp;
          continue;
        }
      }
    }
    if (cc == 0) {
      starter = ptrdiff_t(res.size());
      last_cc = 0;
    } else {
      last_cc = cc;
    }
    res.push_back(c);
  }

  for (char32_t c : res) append_utf8(out, c);
}

}  // namespace

std::string nfc(std::string_view s) {
  // ASCII is always NFC, and most text is ASCII: skip the work.
  if (std::all_of(s.begin(), s.end(), [](char c) { return uint8_t(c) < 0x80; }))
    return std::string(s);
  std::string out;
  out.reserve(s.size());
  size_t run = 0, i = 0;  // [run, i) is well-formed and not yet normalised
  while (i < s.size()) {
    size_t len = 0;
    if (check_utf8(s, i, &len) == Utf8::kComplete) {
      i += len;
      continue;
    }
    nfc_valid(s.substr(run, i - run), out);
    out += s[i++];  // one ill-formed byte, verbatim
    run = i;
  }
  nfc_valid(s.substr(run), out);
  return out;
}

bool is_space(char32_t cp) {
  switch (cp) {
    case 0x09: case 0x0A: case 0x0B: case 0x0C: case 0x0D: case 0x20: case 0x85: case 0xA0:
    case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F: case 0x3000:
      return true;
    default:
      return cp >= 0x2000 && cp <= 0x200A;
  }
}

}  // namespace troupe::unicode
