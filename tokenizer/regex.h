#pragma once
// Thin PCRE2 wrapper for the pre-tokenizer split patterns (UTF-8, Unicode properties).
// The compiled pattern is immutable and shared; each call allocates its own match data,
// so one Regex can be used from many threads at once.
#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

namespace troupe {

class Regex {
 public:
  // `literal` matches the pattern text verbatim. Throws troupe::Error (prefixed with
  // `context`) when the pattern does not compile.
  Regex(std::string_view pattern, bool literal, std::string_view context);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Calls on_match(begin, end) for every non-empty, non-overlapping match, left to right.
  void for_each_match(std::string_view text,
                      const std::function<void(size_t, size_t)>& on_match) const;
  // True when the whole of `text` matches.
  bool full_match(std::string_view text) const;

 private:
  void* code_ = nullptr;  // pcre2_code_8*, kept opaque so pcre2.h stays private
  bool jit_ = false;
};

}  // namespace troupe
