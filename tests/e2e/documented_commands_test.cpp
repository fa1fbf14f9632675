// Every `troupe` command the documentation names answers `--help` with its own usage
// line. The commands are read from the docs themselves (README.md, docs/*.md,
// net/README.md), so a newly documented command is covered without touching this test, and
// a documented command nobody registered (as `bench serve` once was) fails here.
#include <catch2/catch.hpp>

#include <filesystem>
#include <regex>
#include <set>
#include <sstream>

#include "test_util.h"

namespace fs = std::filesystem;

namespace {

// "bench serve" from "bench serve --url ..." : the leading bare words (at most two: the
// command and a subcommand), stopping at flags, paths and values.
std::string command_words(const std::string& rest) {
  std::istringstream in(rest);
  std::string word, out;
  static const std::regex bare("[a-z][a-z-]*");
  for (int i = 0; i < 2 && in >> word && std::regex_match(word, bare); ++i) out += (out.empty() ? "" : " ") + word;
  return out;
}

// Commands in a Markdown file: in code blocks, lines that run the binary ($B, troupe,
// build/app/troupe); in prose, inline code spans that start with `troupe `.
void collect(const std::string& path, std::set<std::string>& commands) {
  std::istringstream in(troupe::test::read_file(path));
  static const std::regex run_line(R"(^\s*(?:\$B|troupe|\.?/?build/app/troupe|"\$TROUPE_BIN")\s+(.*)$)");
  static const std::regex inline_span("`troupe ([^`]*)`");
  bool in_code = false;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("```", 0) == 0) {
      in_code = !in_code;
      continue;
    }
    std::smatch m;
    if (in_code) {
      if (std::regex_match(line, m, run_line))
        if (auto c = command_words(m[1]); !c.empty()) commands.insert(c);
      continue;
    }
    for (auto it = std::sregex_iterator(line.begin(), line.end(), inline_span); it != std::sregex_iterator(); ++it)
      if (auto c = command_words((*it)[1]); !c.empty()) commands.insert(c);
  }
}

}  // namespace

TEST_CASE("every command named in README.md and docs/ answers --help", "[cli][docs]") {
  const fs::path root = fs::path(troupe::test::source_path("README.md")).parent_path();
  std::vector<std::string> files = {(root / "README.md").string(), (root / "net/README.md").string()};
  for (const auto& e : fs::directory_iterator(root / "docs"))
    if (e.path().extension() == ".md") files.push_back(e.path().string());
  std::set<std::string> commands;
  for (const auto& f : files) collect(f, commands);
  // The parser must see what the docs obviously hold (or this test would pass vacuously).
  for (const char* known : {"serve", "generate", "tokenize", "quantize", "bench serve", "bench throughput"})
    CHECK(commands.count(known) == 1);

  for (const auto& cmd : commands) {
    INFO("troupe " << cmd << " --help");
    const auto r = troupe::test::run_command(troupe::test::shell_quote(troupe::test::troupe_bin()) + " " + cmd + " --help");
    CHECK(r.status == 0);
    // CLI11 answers an unknown subcommand with its parent's help, so check the usage line
    // names this very command.
    const auto at = r.out.find("Usage: ");
    REQUIRE(at != std::string::npos);
    const std::string usage = r.out.substr(at, r.out.find('\n', at) - at);
    const std::string expected = troupe::test::troupe_bin() + " " + cmd;
    INFO(usage);
    const bool names_it = usage.find(expected + " [") != std::string::npos ||
                          (usage.size() >= expected.size() &&
                           usage.compare(usage.size() - expected.size(), expected.size(), expected) == 0);
    CHECK(names_it);
  }
}
