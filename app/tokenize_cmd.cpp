// `troupe tokenize --model PATH [--text TEXT | --text-file FILE] [--json]`: ids without
// special tokens added. Without --text the text comes from a file or stdin, byte for byte:
// a command-line argument cannot carry every string (NUL, say).
#include <boost/json.hpp>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>

#include "app/commands.h"
#include "core/error.h"
#include "model/tokenizer_loader.h"

namespace troupe::app {

namespace {

// The whole of a file, or of stdin for "-".
std::string read_all(const std::string& path) {
  if (path == "-") return std::string(std::istreambuf_iterator<char>(std::cin), {});
  std::ifstream f(path, std::ios::binary);
  if (!f) fail("--text-file: cannot read {}", path);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

}  // namespace

void register_tokenize(CLI::App& app) {
  struct Opts {
    std::string model, text, text_file;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("tokenize", "Print the token ids of a text (no special tokens added)");
  cmd->add_option("--model", o->model, "Model file/directory, or a directory with only tokenizer files")->required();
  auto* text = cmd->add_option("--text", o->text, "Text to tokenize (default: read it from stdin)");
  cmd->add_option("--text-file", o->text_file, "Read the text from this file ('-': stdin), byte for byte")
      ->excludes(text);
  cmd->add_flag("--json", o->json, "Print a JSON object");
  cmd->callback([o, text] {
    auto tok = load_tokenizer(o->model);
    if (text->count() == 0) o->text = read_all(o->text_file.empty() ? "-" : o->text_file);
    auto ids = tok->encode(o->text, false);
    if (o->json) {
      boost::json::array arr;
      for (auto id : ids) arr.push_back(id);
      boost::json::object obj{{"ids", arr}, {"count", ids.size()}};
      std::printf("%s\n", boost::json::serialize(obj).c_str());
    } else {
      for (size_t i = 0; i < ids.size(); ++i) std::printf("%s%d", i ? " " : "", ids[i]);
      std::printf("\n");
    }
  });
}

}  // namespace troupe::app
