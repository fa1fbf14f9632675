#pragma once
// Helpers for the speculative-decoding tests: deliberately different draft models written
// to temporary directories, fixture prompts, and a chi-squared goodness-of-fit test.
#include <boost/json.hpp>
#include <boost/math/distributions/chi_squared.hpp>
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "test_util.h"

namespace troupe::test {

// A copy of a Hugging Face model directory (F32 safetensors) with every weight perturbed,
// w += noise * rms(w) * N(0, 1): a draft model of the same vocabulary that disagrees with
// the original as much as `noise` says.
inline std::string perturbed_copy(const std::string& src, double noise, uint64_t seed, const std::string& tag) {
  namespace fs = std::filesystem;
  const std::string dir = temp_dir(tag);
  for (const auto& e : fs::directory_iterator(src))
    if (e.path().filename() != "model.safetensors") fs::copy_file(e.path(), fs::path(dir) / e.path().filename());
  std::string raw = read_file(src + "/model.safetensors");
  uint64_t n = 0;
  std::memcpy(&n, raw.data(), 8);
  const auto hdr = boost::json::parse(raw.substr(8, n)).as_object();
  const size_t base = 8 + n;
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> gauss;
  for (const auto& [name, v] : hdr) {
    if (name == "__metadata__") continue;
    REQUIRE(v.at("dtype").as_string() == "F32");
    const auto& off = v.at("data_offsets").as_array();
    const size_t begin = base + size_t(off[0].as_int64()), end = base + size_t(off[1].as_int64());
    std::vector<float> w((end - begin) / 4);
    std::memcpy(w.data(), raw.data() + begin, end - begin);
    double ss = 0;
    for (float x : w) ss += double(x) * x;
    const double rms = std::sqrt(ss / double(std::max<size_t>(1, w.size())));
    for (float& x : w) x += float(noise * rms * gauss(rng));
    std::memcpy(raw.data() + begin, w.data(), end - begin);
  }
  std::ofstream(dir + "/model.safetensors", std::ios::binary).write(raw.data(), std::streamsize(raw.size()));
  return dir;
}

struct FixturePrompt {
  std::vector<int32_t> prompt_ids, greedy_ids;
};

inline std::vector<FixturePrompt> fixture_prompts(const std::string& key) {
  auto root = boost::json::parse(read_file(fixture_path("greedy_reference.json")));
  std::vector<FixturePrompt> out;
  for (auto& e : root.at(key).as_array()) {
    FixturePrompt f;
    for (auto& x : e.at("prompt_ids").as_array()) f.prompt_ids.push_back(int32_t(x.as_int64()));
    for (auto& x : e.at("greedy_ids").as_array()) f.greedy_ids.push_back(int32_t(x.as_int64()));
    out.push_back(std::move(f));
  }
  REQUIRE(!out.empty());
  return out;
}

// Pearson's chi-squared goodness of fit of `observed` counts against `expected`
// probabilities (same keys). Cells expected below 5 are pooled into one, as usual.
struct Chi2 {
  double stat = 0;
  int dof = 0;
  double p_value = 1;
};
template <typename Key>
Chi2 chi2_test(const std::map<Key, int64_t>& observed, const std::map<Key, double>& expected, int64_t n) {
  Chi2 r;
  double pooled_e = 0, pooled_o = 0;
  int cells = 0;
  for (const auto& [key, p] : expected) {
    const double e = p * double(n);
    const auto it = observed.find(key);
    const double o = it == observed.end() ? 0.0 : double(it->second);
    if (e < 5) {
      pooled_e += e;
      pooled_o += o;
      continue;
    }
    r.stat += (o - e) * (o - e) / e;
    ++cells;
  }
  // Outcomes the expectation gives no mass at all land in the pool too.
  for (const auto& [key, o] : observed)
    if (!expected.count(key)) pooled_o += double(o);
  if (pooled_e >= 5) {
    r.stat += (pooled_o - pooled_e) * (pooled_o - pooled_e) / pooled_e;
    ++cells;
  } else if (pooled_o > pooled_e + 10) {
    r.stat += 1e9;  // mass where there should be (almost) none
  }
  r.dof = std::max(1, cells - 1);
  r.p_value = boost::math::cdf(boost::math::complement(boost::math::chi_squared(r.dof), r.stat));
  return r;
}

}  // namespace troupe::test
