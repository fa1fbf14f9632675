#include "tokenizer/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <memory>

#include "core/error.h"

namespace troupe {

namespace {

pcre2_code* as_code(void* p) { return static_cast<pcre2_code*>(p); }

struct MatchDataDeleter {
  void operator()(pcre2_match_data* m) const { pcre2_match_data_free(m); }
};

}  // namespace

Regex::Regex(std::string_view pattern, bool literal, std::string_view context) {
  // UCP makes \s, \w, \d and POSIX classes Unicode-aware as in the reference regex engines;
  // MATCH_INVALID_UTF lets ill-formed input through (it simply never matches).
  uint32_t options = PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF;
  if (literal) options |= PCRE2_LITERAL;
  int err = 0;
  PCRE2_SIZE err_off = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   options, &err, &err_off, nullptr);
  if (!code) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    fail("{}: bad regex at offset {}: {} (pattern: {})", context, err_off,
         reinterpret_cast<const char*>(msg), pattern);
  }
  code_ = code;
  // JIT makes matching several times faster; without it (unsupported CPU) the
  // interpreter gives the same results.
  jit_ = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
}

Regex::~Regex() { pcre2_code_free(as_code(code_)); }

void Regex::for_each_match(std::string_view text,
                           const std::function<void(size_t, size_t)>& on_match) const {
  std::unique_ptr<pcre2_match_data, MatchDataDeleter> md(
      pcre2_match_data_create_from_pattern(as_code(code_), nullptr));
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t pos = 0;
  while (pos < text.size()) {
    int rc = jit_ ? pcre2_jit_match(as_code(code_), subject, text.size(), pos, 0, md.get(), nullptr)
                  : -1;
    if (!jit_ || rc == PCRE2_ERROR_JIT_STACKLIMIT)  // very long runs: fall back to the interpreter
      rc = pcre2_match(as_code(code_), subject, text.size(), pos, 0, md.get(), nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) return;
    if (rc < 0) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(rc, msg, sizeof msg);
      fail("regex match failed: {}", reinterpret_cast<const char*>(msg));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.get());
    const size_t b = ov[0], e = ov[1];
    if (e > b) {
      on_match(b, e);
      pos = e;
    } else {
      // Empty match: step over one character and keep looking.
      pos = b + 1;
      while (pos < text.size() && (uint8_t(text[pos]) & 0xC0) == 0x80) ++pos;
    }
  }
}

bool Regex::full_match(std::string_view text) const {
  std::unique_ptr<pcre2_match_data, MatchDataDeleter> md(
      pcre2_match_data_create_from_pattern(as_code(code_), nullptr));
  const int rc = pcre2_match(as_code(code_), reinterpret_cast<PCRE2_SPTR>(text.data()),
                             text.size(), 0, PCRE2_ANCHORED | PCRE2_ENDANCHORED, md.get(), nullptr);
  return rc >= 0;
}

}  // namespace troupe
