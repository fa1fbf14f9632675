#pragma once
// One access-log line per HTTP request, through spdlog (stderr): what an operator greps for
// when a client complains. key=value pairs, one request per line:
//   access id=cmpl-9f2c route="POST /v1/completions" status=200 prompt_tokens=12
//          output_tokens=16 ttft_ms=8.4 e2e_ms=41.0 finish=length
// /health and /metrics (polled by load balancers and Prometheus) log at debug level.
#include <chrono>
#include <cstdint>
#include <string>

namespace troupe {

struct AccessRecord {
  std::string id = "-";     // the completion's id, or req-N for other requests
  std::string route = "-";  // "METHOD /path" (no query string)
  int status = 0;
  int64_t prompt_tokens = 0, output_tokens = 0;  // the prompt once; outputs summed over the choices
  double ttft_ms = -1;                           // < 0: no token was produced
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  std::string finish = "-";  // the choices' finish reasons, comma-separated
};

std::string format_access(const AccessRecord& r, std::chrono::steady_clock::time_point end);
void log_access(const AccessRecord& r);
// A process-wide id for requests that are not completions ("req-1", "req-2", ...).
std::string next_request_id();

}  // namespace troupe
