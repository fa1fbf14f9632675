#pragma once
// The one case of the shared fixtures/tokenizer_reference.json that disagrees with
// transformers.js 4.3.2 (and with HF tokenizers, which never drop the "▁"): it lost the
// dummy prefix in front of an unknown character, the bug of issue 14. The tokenizer and
// model suites read the fixture through this; tests/tokenizer/reference/oov_reference.json
// has regenerated ids for many such strings.
#include <cstdint>
#include <string>
#include <vector>

namespace troupe::test {

inline std::vector<int32_t> corrected_reference_ids(const std::string& key, const std::string& text,
                                                    const std::vector<int32_t>& ids) {
  if (key == "tinystories656k" && text == "日本語のテキスト" && ids == std::vector<int32_t>{0}) return {80, 0};
  return ids;
}

}  // namespace troupe::test
