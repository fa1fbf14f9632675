#pragma once
// Paths to the shared real models and fixtures. A missing file fails the test loudly
// (never a silent skip).
#include <string>
#include <utility>

namespace troupe::test {

// $TROUPE_MODELS/<rel>; fails the current test if it does not exist.
std::string model_path(const std::string& rel);
// $TROUPE_MODELS/../fixtures/<name>; fails the current test if it does not exist.
std::string fixture_path(const std::string& name);
// $TROUPE_MODELS/../tokenizers/<rel>.
std::string tokenizer_path(const std::string& rel);
// $TROUPE_SOURCE_DIR/<rel> (a file in this repository); fails the test if it does not exist.
std::string source_path(const std::string& rel);

// A fresh empty temporary directory for this test (per tag and process), removed when the
// process exits unless TROUPE_KEEP_TEST_DIRS=1.
std::string temp_dir(const std::string& tag);
// Reads a whole file.
std::string read_file(const std::string& path);
// Writes `text` to dir/name; returns that path.
std::string write_file(const std::string& dir, const std::string& name, const std::string& text);
// Path of the built `troupe` binary ($TROUPE_BIN).
std::string troupe_bin();
// Path of a built example program ($TROUPE_EXAMPLES_DIR/<name>).
std::string example_bin(const std::string& name);

// A shell command's exit status (-1: killed) and its stdout + stderr.
struct CommandResult {
  int status = -1;
  std::string out;
};
CommandResult run_command(const std::string& cmd);
std::string shell_quote(const std::string& s);
// Runs `troupe ARGS` through the shell: (exit code, stdout + stderr).
std::pair<int, std::string> run_troupe(const std::string& args);

}  // namespace troupe::test
