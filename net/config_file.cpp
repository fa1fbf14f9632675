// Config files for `troupe serve`. YAML support is the subset a flat config needs
// (key: value lines, comments, quoted strings, [a, b] or "- item" lists); anything nested
// is rejected rather than misread.
#include "net/config_file.h"

#include <boost/json.hpp>

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

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
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

// A YAML scalar: strips quotes and trailing comments.
std::string scalar_yaml(std::string s, const std::string& where) {
  s = trim(s);
  if (!s.empty() && (s[0] == '"' || s[0] == '\'')) {
    const char q = s[0];
    size_t end = s.find(q, 1);
    if (end == std::string::npos) fail("{}: unterminated quoted string", where);
    std::string rest = trim(s.substr(end + 1));
    if (!rest.empty() && rest[0] != '#') fail("{}: unexpected text after the quoted string", where);
    return s.substr(1, end - 1);
  }
  size_t hash = s.find(" #");
  if (hash != std::string::npos) s = trim(s.substr(0, hash));
  if (s == "yes" || s == "on" || s == "True" || s == "TRUE") return "true";
  if (s == "no" || s == "off" || s == "False" || s == "FALSE") return "false";
  if (s == "~" || s == "null") fail("{}: null is not a value (remove the key instead)", where);
  return s;
}

std::vector<ConfigEntry> parse_yaml(const std::string& text, const std::string& source) {
  std::vector<ConfigEntry> out;
  std::istringstream in(text);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    const std::string where = source + ":" + std::to_string(n);
    std::string t = trim(line);
    if (t.empty() || t[0] == '#' || t == "---") continue;
    if (t.rfind("- ", 0) == 0 || t == "-") {
      if (out.empty() || line.find_first_not_of(" \t") == 0)
        fail("{}: a list item must be indented under its key", where);
      out.back().values.push_back(scalar_yaml(t.substr(1), where));
      continue;
    }
    if (line[0] == ' ' || line[0] == '\t') fail("{}: nested mappings are not supported", where);
    size_t colon = t.find(':');
    if (colon == std::string::npos) fail("{}: expected 'key: value'", where);
    ConfigEntry e{normalize_key(trim(t.substr(0, colon))), {}};
    if (e.key.empty()) fail("{}: empty key", where);
    std::string v = trim(t.substr(colon + 1));
    if (!v.empty() && v[0] == '[') {
      size_t close = v.find(']');
      if (close == std::string::npos) fail("{}: unterminated [list]", where);
      std::stringstream items(v.substr(1, close - 1));
      std::string item;
      while (std::getline(items, item, ','))
        if (!trim(item).empty()) e.values.push_back(scalar_yaml(item, where));
    } else if (!v.empty() && v[0] != '#') {
      e.values.push_back(scalar_yaml(v, where));
    }
    out.push_back(std::move(e));
  }
  for (const auto& e : out)
    if (e.values.empty()) fail("{}: key '{}' has no value", source, e.key);
  return out;
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
