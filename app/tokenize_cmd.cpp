// `troupe tokenize --model PATH --text TEXT [--json]`: ids without special tokens added.
#include <boost/json.hpp>

#include <cstdio>
#include <memory>

#include "app/commands.h"
#include "model/tokenizer_loader.h"

namespace troupe::app {

void register_tokenize(CLI::App& app) {
  struct Opts {
    std::string model, text;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("tokenize", "Print the token ids of a text (no special tokens added)");
  cmd->add_option("--model", o->model, "Model file/directory, or a directory with only tokenizer files")->required();
  cmd->add_option("--text", o->text, "Text to tokenize")->required();
  cmd->add_flag("--json", o->json, "Print a JSON object");
  cmd->callback([o] {
    auto tok = load_tokenizer(o->model);
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
