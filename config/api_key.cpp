// Where `troupe serve` takes its API key from (resolve_api_key in server_config.h).
#include <cstdlib>
#include <fstream>

#include "config/server_config.h"
#include "core/error.h"

namespace troupe {

void resolve_api_key(ServerOptions& o) {
  if (o.api_key == "<set>")
    fail("--api-key '<set>' is the placeholder --print-config writes, not a key; give the key through "
         "--api-key-file or the TROUPE_API_KEY environment variable");
  if (!o.api_key.empty() && !o.api_key_file.empty()) fail("--api-key and --api-key-file both given; use one");
  if (!o.api_key_file.empty()) {
    std::ifstream in(o.api_key_file);
    if (!in) fail("--api-key-file {}: cannot read it", o.api_key_file);
    std::getline(in, o.api_key);
    while (!o.api_key.empty() && (o.api_key.back() == '\r' || o.api_key.back() == ' ' || o.api_key.back() == '\t'))
      o.api_key.pop_back();
    if (o.api_key.empty()) fail("--api-key-file {}: the first line is empty", o.api_key_file);
    return;
  }
  if (o.api_key.empty())
    if (const char* env = std::getenv("TROUPE_API_KEY"); env && *env) o.api_key = env;
}

}  // namespace troupe
