#include "test_util.h"

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>

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

std::string temp_dir(const std::string& tag) {
  auto p = fs::temp_directory_path() / ("troupe-test-" + tag + "-" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) FAIL("cannot read " << path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string troupe_bin() {
  const char* b = std::getenv("TROUPE_BIN");
  if (!b || !*b) FAIL("TROUPE_BIN is not set (run the tests through ctest)");
  return b;
}

std::pair<int, std::string> run_troupe(const std::string& args) {
  const std::string cmd = troupe_bin() + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  REQUIRE(p);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int rc = pclose(p);
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, out};
}

}  // namespace troupe::test
