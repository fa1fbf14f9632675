#pragma once
// One exception type for every user-facing failure (bad model file, bad request, bad flag).
// The message is meant to be shown as is: it names the file/tensor/field and the reason.
#include <fmt/format.h>
#include <stdexcept>
#include <string>

namespace troupe {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format(f, std::forward<Args>(args)...));
}

// Directory holding the shared real models: $TROUPE_MODELS or ../shared/models.
std::string models_dir();

}  // namespace troupe
