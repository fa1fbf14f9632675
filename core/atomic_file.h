#pragma once
// A file written under "<path>.tmp" and renamed to `path` by commit(), so that a failed run
// leaves no half-written file under the final name (a reader would take it for a whole one).
#include <cstddef>
#include <fstream>
#include <string>

namespace troupe {

class AtomicFile {
 public:
  explicit AtomicFile(std::string path);
  ~AtomicFile();  // removes the temporary file unless commit() succeeded
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  // Creates (or truncates) the temporary file. Throws troupe::Error if it cannot.
  void open();
  // Appends bytes. Throws troupe::Error naming the temporary file if the write fails.
  void write(const void* p, size_t n);
  // Flushes, closes and renames the temporary file into place.
  void commit();

  const std::string& path() const { return path_; }
  const std::string& tmp_path() const { return tmp_path_; }

 private:
  std::string path_, tmp_path_;
  std::ofstream out_;
  bool committed_ = false;
};

}  // namespace troupe
