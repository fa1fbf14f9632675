#pragma once
// Internal helpers for reading JSON files (config.json, safetensors headers, tokenizer
// files) with errors that name the file and the key.
#include <boost/json.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace troupe::json {

// Parses `text` (from `source`); throws troupe::Error naming the source on a syntax error.
boost::json::value parse(std::string_view text, const std::string& source);
// Reads and parses a whole file.
boost::json::value parse_file(const std::string& path);
// The top-level object, or an error naming `source`.
const boost::json::object& as_object(const boost::json::value& v, const std::string& source,
                                     std::string_view what = "top level");

// Optional typed fields of an object. Absent or null -> nullopt; present with the wrong
// type (or an integer out of range) -> troupe::Error naming source and key.
std::optional<int64_t> get_int(const boost::json::object& o, std::string_view key, const std::string& source);
std::optional<double> get_number(const boost::json::object& o, std::string_view key, const std::string& source);
std::optional<bool> get_bool(const boost::json::object& o, std::string_view key, const std::string& source);
std::optional<std::string> get_string(const boost::json::object& o, std::string_view key, const std::string& source);

}  // namespace troupe::json
