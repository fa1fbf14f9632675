#include "core/error.h"

#include <cstdlib>

namespace troupe {

std::string models_dir() {
  if (const char* env = std::getenv("TROUPE_MODELS"); env && *env) return env;
  return "../shared/models";
}

}  // namespace troupe
