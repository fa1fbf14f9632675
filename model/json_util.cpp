#include "model/json_util.h"

#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>

#include "core/error.h"

namespace troupe::json {

boost::json::value parse(std::string_view text, const std::string& source) {
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(text, ec);
  if (ec) fail("{}: invalid JSON: {}", source, ec.message());
  return v;
}

boost::json::value parse_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail("{}: cannot open", path);
  std::ostringstream ss;
  ss << f.rdbuf();
  if (f.bad()) fail("{}: read error", path);
  return parse(ss.str(), path);
}

const boost::json::object& as_object(const boost::json::value& v, const std::string& source,
                                     std::string_view what) {
  if (!v.is_object()) fail("{}: {} is not a JSON object", source, what);
  return v.get_object();
}

namespace {
// A value for an error message, cut short so a huge array cannot flood it.
std::string brief(const boost::json::value& v) {
  std::string s = boost::json::serialize(v);
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return s;
}

const boost::json::value* lookup(const boost::json::object& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end() || it->value().is_null()) return nullptr;
  return &it->value();
}
}  // namespace

std::optional<int64_t> get_int(const boost::json::object& o, std::string_view key, const std::string& source) {
  const auto* v = lookup(o, key);
  if (!v) return std::nullopt;
  if (v->is_int64()) return v->get_int64();
  if (v->is_uint64()) {
    if (v->get_uint64() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      fail("{}: {} = {} is out of range", source, key, v->get_uint64());
    }
    return static_cast<int64_t>(v->get_uint64());
  }
  // Some exporters write integral values as 128.0; accept those, nothing fractional.
  if (v->is_double()) {
    double d = v->get_double();
    if (d == static_cast<double>(static_cast<int64_t>(d)) && std::abs(d) < 9.0e15) return static_cast<int64_t>(d);
  }
  fail("{}: {} must be an integer, found {}", source, key, brief(*v));
}

std::optional<double> get_number(const boost::json::object& o, std::string_view key, const std::string& source) {
  const auto* v = lookup(o, key);
  if (!v) return std::nullopt;
  if (v->is_double()) return v->get_double();
  if (v->is_int64()) return static_cast<double>(v->get_int64());
  if (v->is_uint64()) return static_cast<double>(v->get_uint64());
  fail("{}: {} must be a number, found {}", source, key, brief(*v));
}

std::optional<bool> get_bool(const boost::json::object& o, std::string_view key, const std::string& source) {
  const auto* v = lookup(o, key);
  if (!v) return std::nullopt;
  if (v->is_bool()) return v->get_bool();
  fail("{}: {} must be true or false, found {}", source, key, brief(*v));
}

std::optional<std::string> get_string(const boost::json::object& o, std::string_view key, const std::string& source) {
  const auto* v = lookup(o, key);
  if (!v) return std::nullopt;
  if (v->is_string()) return std::string(v->get_string());
  fail("{}: {} must be a string, found {}", source, key, brief(*v));
}

}  // namespace troupe::json
