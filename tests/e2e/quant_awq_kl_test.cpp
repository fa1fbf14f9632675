// AWQ's reason to exist, measured: on TinyStories-656K, with calibration text and evaluation
// text sampled from the FP32 model under disjoint seeds, the AWQ checkpoint's next-token
// distributions are closer to FP32 (KL divergence, via `troupe eval`) than round-to-nearest
// at the same bits and group size.
#include <boost/json.hpp>
#include <fmt/format.h>
#include <catch2/catch.hpp>

#include <set>

#include "model/tokenizer_loader.h"
#include "quant_util.h"
#include "test_util.h"

using namespace troupe;

namespace {

struct Eval {
  double kl = 0, p99 = 0, top1 = 0, ppl = 0;
};

Eval eval(const std::string& model, const std::string& ref, const std::string& data,
          const std::string& dir, const std::string& tag) {
  const std::string js = dir + "/" + tag + ".json";
  test::run_troupe(fmt::format("eval --model {} --reference {} --data {} --json {} --threads 2", model, ref, data, js), dir);
  const auto o = boost::json::parse(test::read_file(js)).as_object();
  return {o.at("kl_mean").to_number<double>(), o.at("kl_p99").to_number<double>(),
          o.at("top1_agreement").to_number<double>(), o.at("perplexity").to_number<double>()};
}

}  // namespace

TEST_CASE("AWQ is closer to FP32 than RTN on TinyStories-656K", "[e2e][quant][awq]") {
  const std::string fp = test::model_path("tinystories-656k");
  const std::string dir = test::temp_dir("quant-kl");
  auto tok = load_tokenizer(fp);
  {
    cpu::CpuBackendOptions o;
    o.num_threads = 2;
    o.num_blocks = 32;
    cpu::CpuBackend be(load_model(fp), o);
    const auto calib = test::sample_texts(be, *tok, 64, 256, 1000);
    const auto evalset = test::sample_texts(be, *tok, 64, 256, 900000);
    // Disjoint: different seeds, and no text in both.
    const std::set<std::string> c(calib.begin(), calib.end());
    for (const auto& t : evalset) REQUIRE(c.count(t) == 0);
    test::write_jsonl(dir + "/calib.jsonl", calib);
    test::write_jsonl(dir + "/eval.jsonl", evalset);
  }
  const std::string data = dir + "/eval.jsonl";
  auto quantize = [&](const std::string& method, int bits, int group) {
    const std::string out = fmt::format("{}/{}-{}-g{}", dir, method, bits, group);
    test::run_troupe(fmt::format("quantize --model {} --out {} --method {} --bits {} --group-size {} "
                                 "--calib {}/calib.jsonl --calib-samples 64 --threads 2",
                                 fp, out, method, bits, group, dir),
                     dir);
    return out;
  };

  std::string table = "bits group  method  KL mean   KL p99   top-1   ppl\n";
  auto row = [&](int bits, int group, const char* m, const Eval& e) {
    table += fmt::format("{:>4} {:>5}  {:<6} {:.5f}  {:.5f}  {:.4f}  {:.4f}\n", bits, group, m, e.kl, e.p99, e.top1, e.ppl);
  };
  for (int group : {32, 64, 128}) {  // the INT4 orderings docs/benchmarks.md reports
    const Eval awq = eval(quantize("awq", 4, group), fp, data, dir, fmt::format("awq4-g{}", group));
    const Eval rtn = eval(quantize("rtn", 4, group), fp, data, dir, fmt::format("rtn4-g{}", group));
    row(4, group, "awq", awq);
    row(4, group, "rtn", rtn);
    INFO(table);
    CHECK(awq.kl < rtn.kl);
    CHECK(awq.top1 >= rtn.top1 - 0.005);
  }
  const Eval awq8 = eval(quantize("awq", 8, 128), fp, data, dir, "awq8");
  const Eval rtn8 = eval(quantize("rtn", 8, 128), fp, data, dir, "rtn8");
  row(8, -1, "awq", awq8);
  row(8, -1, "rtn", rtn8);
  INFO(table);
  // INT8 is close to lossless either way; AWQ must at least not hurt.
  CHECK(awq8.kl <= rtn8.kl * 1.05);
  CHECK(rtn8.kl < 0.01);
  WARN(table);
}
