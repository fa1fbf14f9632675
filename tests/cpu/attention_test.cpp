// Paged attention against the scalar reference: head_dim, GQA ratio, context length
// across block boundaries, block sizes 16 and 1, scattered block tables.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <numeric>
#include <random>

#include "cpu/kernels.h"
#include "cpu/reference.h"
#include "test_data.h"

using namespace troupe;
using namespace troupe::cpu;
using troupe::test::random_floats;

TEST_CASE("attention matches reference", "[cpu][attention]") {
  test::for_each_target([&] {
    uint32_t seed = 1;
    for (int64_t hd : {64, 128, 20})
      for (int64_t ratio : {1, 2, 4})
        for (int64_t bs : {16, 1})
          for (int64_t n_ctx : {1, 3, 4, 15, 16, 17, 33, 100}) {
            const int64_t n_kv = 2, n_heads = n_kv * ratio;
            const int64_t n_blocks_used = (n_ctx + bs - 1) / bs;
            const int64_t n_blocks = n_blocks_used + 3;  // pool larger than the table
            INFO("hd " << hd << " ratio " << ratio << " bs " << bs << " n_ctx " << n_ctx);
            // Block table: a random permutation of pool blocks, so positions are scattered.
            std::vector<int32_t> perm(n_blocks);
            std::iota(perm.begin(), perm.end(), 0);
            std::shuffle(perm.begin(), perm.end(), std::mt19937(seed));
            std::vector<int32_t> table(perm.begin(), perm.begin() + n_blocks_used);
            const auto k = random_floats(n_blocks * bs * n_kv * hd, seed + 1);
            const auto v = random_floats(n_blocks * bs * n_kv * hd, seed + 2);
            const auto q = random_floats(n_heads * hd, seed + 3, -3, 3);  // peaky softmax too
            seed += 4;
            PagedKv kv{k.data(), v.data(), table.data(), bs, n_kv, hd};
            const float scale = 1.0f / std::sqrt(float(hd));
            std::vector<float> got(n_heads * hd, NAN), want(n_heads * hd), scratch(n_ctx);
            attention_one(q.data(), n_heads, kv, n_ctx, scale, got.data(), scratch.data());
            ref::attention_one(q.data(), n_heads, kv, n_ctx, scale, want.data());
            // The output is a convex combination of |v| <= 1: absolute tolerance.
            for (size_t i = 0; i < got.size(); ++i)
              if (!(std::fabs(got[i] - want[i]) <= 1e-5)) FAIL("[" << i << "] " << got[i] << " vs " << want[i]);
            // attention_head on one head gives the same as attention_one's slice.
            const int64_t h = n_heads - 1;
            std::vector<float> one(hd);
            attention_head(q.data() + h * hd, h, n_heads, kv, n_ctx, scale, one.data(),
                           scratch.data());
            REQUIRE(std::equal(one.begin(), one.end(), got.begin() + h * hd));
          }
  });
}

TEST_CASE("attention over one position returns that value row", "[cpu][attention]") {
  const int64_t hd = 64;
  const auto k = random_floats(hd, 1), v = random_floats(hd, 2), q = random_floats(hd, 3);
  const int32_t table[] = {0};
  PagedKv kv{k.data(), v.data(), table, 16, 1, hd};
  std::vector<float> out(hd), scratch(1);
  attention_one(q.data(), 1, kv, 1, 0.125f, out.data(), scratch.data());
  for (int64_t i = 0; i < hd; ++i) CHECK(out[i] == Approx(v[i]).epsilon(1e-6));
}
