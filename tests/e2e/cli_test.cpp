// The `troupe` command line on the real models: `generate --json` reproduces the greedy
// reference, `tokenize` prints the reference ids, bad input gives one clear error line.
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <sstream>

#include <array>
#include <cstdio>
#include <fstream>
#include <sys/wait.h>

#include "model/tokenizer_loader.h"
#include "test_util.h"

using namespace troupe;

namespace {

using test::shell_quote;

test::CommandResult run(const std::string& args) {
  return test::run_command(shell_quote(test::troupe_bin()) + " " + args);
}

std::vector<int64_t> ints(const boost::json::value& v) {
  std::vector<int64_t> r;
  for (auto& x : v.as_array()) r.push_back(x.as_int64());
  return r;
}

}  // namespace

TEST_CASE("troupe generate --json reproduces the greedy reference on both models", "[cli]") {
  auto root = boost::json::parse(test::read_file(test::fixture_path("greedy_reference.json")));
  for (auto [key, model] : {std::pair{"stories260k", test::model_path("stories260k/stories260K.gguf")},
                            std::pair{"tinystories-656k", test::model_path("tinystories-656k")}}) {
    for (auto& e : root.at(key).as_array()) {
      const auto& c = e.as_object();
      const auto greedy = ints(c.at("greedy_ids"));
      const auto margins = c.at("greedy_margins").as_array();
      auto r = run("generate --model " + shell_quote(model) + " --prompt " +
                   shell_quote(std::string(c.at("prompt").as_string())) + " --temperature 0 --max-tokens " +
                   std::to_string(greedy.size()) + " --json");
      INFO(r.out);
      REQUIRE(r.status == 0);
      auto out = boost::json::parse(r.out).as_object();
      CHECK(ints(out.at("prompt_token_ids")) == ints(c.at("prompt_ids")));
      const auto got = ints(out.at("token_ids"));
      REQUIRE(got.size() == greedy.size());
      for (size_t k = 0; k < greedy.size(); ++k) {
        if (got[k] == greedy[k]) continue;
        CHECK(margins[k].to_number<double>() < 1e-3);  // only a near-tie may flip
        break;
      }
      CHECK(out.at("finish_reason").as_string() == "length");
      CHECK(out.at("decode_tokens_per_s").to_number<double>() > 0);
      CHECK(out.at("prefill_tokens_per_s").to_number<double>() > 0);
      if (greedy == got) {
        // The fixture decodes the ids on their own (SentencePiece drops a leading space);
        // as a continuation of the prompt, that space is real.
        const std::string text(out.at("text").as_string()), ref(c.at("greedy_text").as_string());
        CHECK((text == ref || text == " " + ref));
      }
    }
  }
}

TEST_CASE("troupe tokenize prints the reference ids", "[cli]") {
  auto r = run("tokenize --model " + shell_quote(test::tokenizer_path("llama3")) + " --text 'Hello, world!' --json");
  REQUIRE(r.status == 0);
  CHECK(ints(boost::json::parse(r.out).at("ids")) == std::vector<int64_t>{9906, 11, 1917, 0});
}

TEST_CASE("troupe tokenize reads the text from a file or stdin, byte for byte", "[cli]") {
  const std::string model = test::tokenizer_path("llama3");
  const std::string text("tab\tNUL\0 and a newline\n", 23);  // no command-line argument can hold the NUL
  const std::string file = test::temp_dir("tokenize-file") + "/text.bin";
  std::ofstream(file, std::ios::binary) << text;
  const auto expected = load_tokenizer(model)->encode(text, false);
  std::vector<int64_t> want(expected.begin(), expected.end());
  auto from_file = run("tokenize --model " + shell_quote(model) + " --text-file " + shell_quote(file) + " --json");
  REQUIRE(from_file.status == 0);
  CHECK(ints(boost::json::parse(from_file.out).at("ids")) == want);
  auto from_stdin = run("tokenize --model " + shell_quote(model) + " --json < " + shell_quote(file));
  REQUIRE(from_stdin.status == 0);
  CHECK(ints(boost::json::parse(from_stdin.out).at("ids")) == want);
  CHECK(run("tokenize --model " + shell_quote(model) + " --text x --text-file " + shell_quote(file)).status != 0);
}

TEST_CASE("troupe reports bad input as one clear error", "[cli]") {
  const auto dir = test::temp_dir("cli");
  {
    auto r = run("generate --model " + dir + "/missing.gguf --prompt hi");
    CHECK(r.status == 1);
    CHECK(r.out.find("error:") != std::string::npos);
    CHECK(r.out.find("missing.gguf") != std::string::npos);
  }
  {
    auto r = run("generate --model " + shell_quote(test::model_path("tinystories-656k")) + " --prompt hi --top-p 3");
    CHECK(r.status == 1);
    CHECK(r.out.find("top_p") != std::string::npos);
  }
  {
    // A truncated copy of a real GGUF file.
    const auto src = test::read_file(test::model_path("stories260k/stories260K.gguf"));
    const auto path = dir + "/truncated.gguf";
    FILE* f = std::fopen(path.c_str(), "wb");
    std::fwrite(src.data(), 1, src.size() / 2, f);
    std::fclose(f);
    auto r = run("generate --model " + path + " --prompt hi");
    CHECK(r.status == 1);
    CHECK(r.out.find("truncated.gguf") != std::string::npos);
  }
}

TEST_CASE("troupe quantize into a pipe writes plain progress lines, a bounded number of them", "[cli]") {
  const std::string dir = test::temp_dir("quantize-pipe");
  // ~1000 calibration steps: a redrawn bar per step (or per bar move) would flood a log.
  auto [rc, out] = test::run_troupe("quantize --model " + test::model_path("tinystories-656k") + " --out " + dir +
                                    "/q --method awq --bits 4 --group-size 32 --calib-samples 64 --calib-len 256 --threads 2");
  INFO(out);
  REQUIRE(rc == 0);
  CHECK(out.find('\r') == std::string::npos);
  CHECK(out.find("\033[") == std::string::npos);
  int progress_lines = 0;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) progress_lines += line.rfind("calibration [", 0) == 0;
  CHECK(progress_lines >= 1);  // the final count, at least
  CHECK(progress_lines <= 4);  // one per 10 s, and the end
  CHECK(out.find("calibration [########################] 1020/1020 steps") != std::string::npos);
}
