// config/config_file.h: JSON (Boost.JSON) and YAML (yaml-cpp) config files read into
// flag-name -> values entries.
#include <catch2/catch.hpp>

#include "config/config_file.h"
#include "core/error.h"

using namespace troupe;

TEST_CASE("config files: JSON object and YAML mapping") {
  auto j = parse_config_text(R"({"max_num_seqs": 8, "host": "0.0.0.0", "enable-prefix-caching": false, "stop": ["a","b"]})",
                             false, "c.json");
  REQUIRE(j.size() == 4);
  CHECK(j[0].key == "max-num-seqs");
  CHECK(j[0].values == std::vector<std::string>{"8"});
  CHECK(j[2].values == std::vector<std::string>{"false"});
  CHECK(j[3].values == std::vector<std::string>{"a", "b"});
  auto y = parse_config_text(
      "# comment\nport: 9000\napi_key: \"s3cret # not a comment\"\nwarmup: 2  # two\nflags:\n  - a\n  - b\nlist: [x, y]\n",
      true, "c.yaml");
  REQUIRE(y.size() == 5);
  CHECK(y[0].key == "port");
  CHECK(y[1].key == "api-key");
  CHECK(y[1].values[0] == "s3cret # not a comment");
  CHECK(y[2].values[0] == "2");
  CHECK(y[3].values == std::vector<std::string>{"a", "b"});
  CHECK(y[4].values == std::vector<std::string>{"x", "y"});
  CHECK(parse_config_text("", true, "empty.yaml").empty());
}

TEST_CASE("config files: what cannot be read is an error naming the file and key") {
  CHECK_THROWS_WITH(parse_config_text("a: 1\nA: 2\n", true, "d.yaml"), Catch::Contains("d.yaml") && Catch::Contains("'a' appears twice"));
  CHECK_THROWS_WITH(parse_config_text("a:\n  b: 1\n", true, "n.yaml"), Catch::Contains("n.yaml") && Catch::Contains("key 'a'") && Catch::Contains("nested"));
  CHECK_THROWS_WITH(parse_config_text("a: ~\n", true, "z.yaml"), Catch::Contains("key 'a'") && Catch::Contains("null"));
  CHECK_THROWS_WITH(parse_config_text("a: [1, 2\n", true, "bad.yaml"), Catch::Contains("bad.yaml") && Catch::Contains("not valid YAML"));
  CHECK_THROWS_WITH(parse_config_text("- a\n- b\n", true, "l.yaml"), Catch::Contains("top level must be a mapping"));
  CHECK_THROWS_WITH(parse_config_text(R"({"a": {"b": 1}})", false, "n.json"), Catch::Contains("n.json: key 'a'"));
  CHECK_THROWS_WITH(parse_config_text(R"({"a": 1,)", false, "bad.json"), Catch::Contains("bad.json") && Catch::Contains("not valid JSON"));
  CHECK_THROWS_WITH(read_config_file("/nonexistent/c.yaml"), Catch::Contains("cannot read config file /nonexistent/c.yaml"));
}
