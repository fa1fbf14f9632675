#include "test_util.h"

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <vector>

#include "core/error.h"

namespace fs = std::filesystem;

namespace troupe::test {

static std::string must_exist(const fs::path& p, const char* what) {
  if (!fs::exists(p)) {
    FAIL("missing " << what << ": " << p.string()
                    << " (set TROUPE_MODELS to the shared models directory)");
  }
  return p.string();
}

std::string model_path(const std::string& rel) {
  return must_exist(fs::path(models_dir()) / rel, "model file");
}

std::string fixture_path(const std::string& name) {
  return must_exist(fs::path(models_dir()) / ".." / "fixtures" / name, "fixture");
}

std::string tokenizer_path(const std::string& rel) {
  return must_exist(fs::path(models_dir()) / ".." / "tokenizers" / rel, "tokenizer");
}

std::string source_path(const std::string& rel) {
  const char* dir = std::getenv("TROUPE_SOURCE_DIR");
  if (!dir || !*dir) FAIL("TROUPE_SOURCE_DIR is not set (run through ctest)");
  return must_exist(fs::path(dir) / rel, "source file");
}

namespace {
// The directories temp_dir made in this process, removed when it exits (thousands piled up
// in /tmp otherwise: quantized checkpoints, server logs, bench JSON). TROUPE_KEEP_TEST_DIRS=1
// keeps them, e.g. to read a failed test's server log.
struct TempDirs {
  std::mutex mu;
  std::vector<fs::path> dirs;
  ~TempDirs() {
    const char* keep = std::getenv("TROUPE_KEEP_TEST_DIRS");
    if (keep && *keep && std::string(keep) != "0") return;
    std::error_code ec;  // a child may still hold a file there: best effort
    for (const fs::path& d : dirs) fs::remove_all(d, ec);
  }
};
TempDirs& temp_dirs() {
  static TempDirs t;
  return t;
}
}  // namespace

std::string temp_dir(const std::string& tag) {
  auto p = fs::temp_directory_path() / ("troupe-test-" + tag + "-" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  TempDirs& t = temp_dirs();
  const std::lock_guard<std::mutex> lock(t.mu);
  if (std::find(t.dirs.begin(), t.dirs.end(), p) == t.dirs.end()) t.dirs.push_back(p);
  return p.string();
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) FAIL("cannot read " << path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string write_file(const std::string& dir, const std::string& name, const std::string& text) {
  const std::string path = dir + "/" + name;
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

std::string troupe_bin() {
  const char* b = std::getenv("TROUPE_BIN");
  if (!b || !*b) FAIL("TROUPE_BIN is not set (run the tests through ctest)");
  return b;
}

std::string example_bin(const std::string& name) {
  const char* d = std::getenv("TROUPE_EXAMPLES_DIR");
  if (!d || !*d) FAIL("TROUPE_EXAMPLES_DIR is not set (run the tests through ctest)");
  return std::string(d) + "/" + name;
}

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

CommandResult run_command(const std::string& cmd) {
  CommandResult r;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  REQUIRE(p != nullptr);
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  const int st = ::pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

std::pair<int, std::string> run_troupe(const std::string& args) {
  auto r = run_command(troupe_bin() + " " + args);
  return {r.status, std::move(r.out)};
}

}  // namespace troupe::test
