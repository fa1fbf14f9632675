#pragma once
// `troupe serve --config FILE`: a JSON object or a flat YAML mapping whose keys are the
// command-line flags without dashes ("max-num-seqs" or "max_num_seqs"). Values come back
// as the strings a user would have typed after the flag; lists give one string per element.
#include <string>
#include <utility>
#include <vector>

namespace troupe {

struct ConfigEntry {
  std::string key;                  // normalized: lowercase, '_' -> '-'
  std::vector<std::string> values;  // booleans as "true"/"false"
};

// Throws troupe::Error naming the file and line/key on anything it cannot read.
std::vector<ConfigEntry> read_config_file(const std::string& path);
// The same from text; `yaml` selects the YAML subset (else JSON).
std::vector<ConfigEntry> parse_config_text(const std::string& text, bool yaml, const std::string& source);

}  // namespace troupe
