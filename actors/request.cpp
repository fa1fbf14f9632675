#include "actors/request.h"

namespace troupe {

const char* to_string(FinishReason r) {
  switch (r) {
    case FinishReason::None: return "";
    case FinishReason::Stop: return "stop";
    case FinishReason::Length: return "length";
    case FinishReason::Cancelled: return "cancelled";
    case FinishReason::Error: return "error";
  }
  return "";
}

const char* to_string(ErrorKind k) {
  switch (k) {
    case ErrorKind::None: return "";
    case ErrorKind::InvalidRequest: return "invalid_request";
    case ErrorKind::Overloaded: return "overloaded";
    case ErrorKind::Internal: return "internal";
  }
  return "";
}

}  // namespace troupe
