#include "fuzz_support.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace troupe::fuzz {

namespace fs = std::filesystem;

namespace {
// One directory per process, removed at exit, so parallel fuzzers (-jobs) never share files.
struct ScratchDir {
  fs::path path;
  ScratchDir() {
    path = fs::temp_directory_path() / ("troupe-fuzz-" + std::to_string(::getpid()));
    fs::create_directories(path);
  }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};
}  // namespace

std::string scratch_file(const uint8_t* data, size_t size, const std::string& name) {
  static ScratchDir dir;
  const fs::path p = dir.path / name;
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), std::streamsize(size));
  out.close();
  if (!out) {
    std::fprintf(stderr, "fuzz: cannot write %s\n", p.c_str());
    std::abort();
  }
  return p.string();
}

std::string model_path(const std::string& rel) {
  const char* env = std::getenv("TROUPE_MODELS");
  const fs::path p = fs::path(env && *env ? env : TROUPE_FUZZ_DEFAULT_MODELS) / rel;
  if (!fs::exists(p)) {
    std::fprintf(stderr, "fuzz: %s not found (set TROUPE_MODELS to the shared models directory)\n", p.c_str());
    std::abort();
  }
  return p.string();
}

}  // namespace troupe::fuzz
