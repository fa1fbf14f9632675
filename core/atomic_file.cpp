#include "core/atomic_file.h"

#include <filesystem>

#include "core/error.h"

namespace troupe {

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)), tmp_path_(path_ + ".tmp") {}

AtomicFile::~AtomicFile() {
  if (committed_) return;
  if (out_.is_open()) out_.close();
  std::error_code ec;
  std::filesystem::remove(tmp_path_, ec);
}

void AtomicFile::open() {
  out_.open(tmp_path_, std::ios::binary | std::ios::trunc);
  if (!out_) fail("{}: cannot create file", tmp_path_);
}

void AtomicFile::write(const void* p, size_t n) {
  out_.write(static_cast<const char*>(p), static_cast<std::streamsize>(n));
  if (!out_) fail("{}: write failed (disk full?)", tmp_path_);
}

void AtomicFile::commit() {
  out_.flush();
  out_.close();
  if (!out_) fail("{}: write failed (disk full?)", tmp_path_);
  std::error_code ec;
  std::filesystem::rename(tmp_path_, path_, ec);
  if (ec) fail("{}: cannot rename {} into place: {}", path_, tmp_path_, ec.message());
  committed_ = true;
}

}  // namespace troupe
