#pragma once
// `--config FILE`: a JSON object (Boost.JSON) or a YAML mapping (yaml-cpp) whose keys are
// the command's flags without dashes ("max-num-seqs" or "max_num_seqs"). Values come back
// as the strings a user would have typed after the flag; lists give one string per element.
#include <string>
#include <vector>

namespace troupe {

struct ConfigEntry {
  std::string key;                  // normalized: lowercase, '_' -> '-'
  std::vector<std::string> values;  // booleans as written ("true", "no", ...)
};

// Throws troupe::Error naming the file (and key or line) on anything it cannot read. JSON
// when the file ends in .json or its text starts with '{', else YAML.
std::vector<ConfigEntry> read_config_file(const std::string& path);
// The same from text; `yaml` selects YAML (else JSON); `source` names it in errors.
std::vector<ConfigEntry> parse_config_text(const std::string& text, bool yaml, const std::string& source);

}  // namespace troupe
