#include "cpu/host_tuning.h"

#include <cstdlib>
#include <string_view>

#include "core/error.h"

namespace troupe::cpu {

HostTuning amd_host_tuning() { return {"amd", GemvFetch::kL1, true, false, true, true}; }
HostTuning intel_host_tuning() { return {"intel", GemvFetch::kL2Paced, false, true, false, false}; }

namespace {

HostTuning detect() {
  if (const char* env = std::getenv("TROUPE_HOST_TUNING"); env && *env) {
    const std::string_view name = env;
    if (name == "amd") return amd_host_tuning();
    if (name == "intel") return intel_host_tuning();
    fail("TROUPE_HOST_TUNING='{}': expected amd or intel", name);
  }
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_is("amd")) return amd_host_tuning();
#endif
  return intel_host_tuning();
}

HostTuning& slot() {
  static HostTuning tuning = detect();
  return tuning;
}

}  // namespace

const HostTuning& host_tuning() { return slot(); }
void set_host_tuning(const HostTuning& t) { slot() = t; }

}  // namespace troupe::cpu
