#include "config/config_file.h"

#include <boost/json.hpp>
#include <yaml-cpp/yaml.h>

#include <cctype>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace troupe {

namespace {

std::string normalize_key(std::string k) {
  for (char& c : k) {
    if (c == '_') c = '-';
    c = char(std::tolower(static_cast<unsigned char>(c)));
  }
  while (!k.empty() && k[0] == '-') k.erase(0, 1);
  return k;
}

std::string scalar_json(const boost::json::value& v, const std::string& where) {
  switch (v.kind()) {
    case boost::json::kind::bool_: return v.get_bool() ? "true" : "false";
    case boost::json::kind::int64: return std::to_string(v.get_int64());
    case boost::json::kind::uint64: return std::to_string(v.get_uint64());
    case boost::json::kind::double_: {
      std::ostringstream os;
      os.precision(17);
      os << v.get_double();
      return os.str();
    }
    case boost::json::kind::string: return std::string(v.get_string());
    default: fail("{}: expected a string, number or boolean", where);
  }
}

std::vector<ConfigEntry> parse_json(const std::string& text, const std::string& source) {
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(text, ec);
  if (ec) fail("{}: not valid JSON: {}", source, ec.message());
  if (!v.is_object()) fail("{}: the top level must be an object", source);
  std::vector<ConfigEntry> out;
  for (const auto& kv : v.get_object()) {
    const std::string where = source + ": key '" + std::string(kv.key()) + "'";
    ConfigEntry e{normalize_key(std::string(kv.key())), {}};
    if (kv.value().is_null()) fail("{}: null is not a value (remove the key instead)", where);
    if (kv.value().is_array()) {
      for (const auto& x : kv.value().get_array()) e.values.push_back(scalar_json(x, where));
    } else {
      e.values.push_back(scalar_json(kv.value(), where));
    }
    out.push_back(std::move(e));
  }
  return out;
}

std::string scalar_yaml(const YAML::Node& n, const std::string& where) {
  if (n.IsNull()) fail("{}: null is not a value (remove the key instead)", where);
  if (!n.IsScalar()) fail("{}: nested mappings are not supported (keys are flat flag names)", where);
  return n.Scalar();
}

std::vector<ConfigEntry> parse_yaml(const std::string& text, const std::string& source) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    fail("{}:{}: not valid YAML: {}", source, e.mark.line + 1, e.msg);
  }
  std::vector<ConfigEntry> out;
  if (root.IsNull()) return out;  // an empty file
  if (!root.IsMap()) fail("{}: the top level must be a mapping of flag names to values", source);
  for (const auto& kv : root) {
    if (!kv.first.IsScalar()) fail("{}:{}: keys must be flag names", source, kv.first.Mark().line + 1);
    const std::string key = kv.first.Scalar();
    const std::string where = source + ":" + std::to_string(kv.second.Mark().line + 1) + ": key '" + key + "'";
    ConfigEntry e{normalize_key(key), {}};
    if (e.key.empty()) fail("{}: empty key", where);
    if (kv.second.IsSequence()) {
      for (const auto& x : kv.second) e.values.push_back(scalar_yaml(x, where));
    } else {
      e.values.push_back(scalar_yaml(kv.second, where));
    }
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace

std::vector<ConfigEntry> parse_config_text(const std::string& text, bool yaml, const std::string& source) {
  auto entries = yaml ? parse_yaml(text, source) : parse_json(text, source);
  for (size_t i = 0; i < entries.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      if (entries[i].key == entries[j].key) fail("{}: key '{}' appears twice", source, entries[i].key);
  return entries;
}

std::vector<ConfigEntry> read_config_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail("cannot read config file {}", path);
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string text = ss.str();
  const size_t first = text.find_first_not_of(" \t\r\n");
  const bool json = (first != std::string::npos && text[first] == '{') || path.ends_with(".json");
  return parse_config_text(text, !json, path);
}

}  // namespace troupe
