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
using troupe::test::ScatteredKv;

TEST_CASE("attention matches reference", "[cpu][attention]") {
  test::for_each_target([&] {
    uint32_t seed = 1;
    for (int64_t hd : {64, 128, 20})
      for (int64_t ratio : {1, 2, 4})
        for (int64_t bs : {16, 1})
          for (int64_t n_ctx : {1, 3, 4, 15, 16, 17, 33, 100}) {
            const int64_t n_kv = 2, n_heads = n_kv * ratio;
            INFO("hd " << hd << " ratio " << ratio << " bs " << bs << " n_ctx " << n_ctx);
            const ScatteredKv cache(n_ctx, bs, n_kv, hd, 3, seed);  // pool larger than the table
            const auto q = random_floats(n_heads * hd, seed + 3, -3, 3);  // peaky softmax too
            seed += 4;
            const PagedKv kv = cache.view(bs, n_kv, hd);
            const float scale = 1.0f / std::sqrt(float(hd));
            std::vector<float> got(n_heads * hd, NAN), want(n_heads * hd), scratch(n_ctx);
            attention_one(q.data(), n_heads, kv, n_ctx, scale, got.data(), scratch.data());
            ref::attention_one(q.data(), n_heads, kv, n_ctx, scale, want.data());
            // The output is a convex combination of |v| <= 1: absolute tolerance.
            for (size_t i = 0; i < got.size(); ++i)
              if (!(std::fabs(got[i] - want[i]) <= 1e-5)) FAIL("[" << i << "] " << got[i] << " vs " << want[i]);
            // attention_head per head and attention_kv_group per KV head agree too.
            std::vector<float> per_head(n_heads * hd, NAN), per_group(n_heads * hd, NAN);
            for (int64_t h = 0; h < n_heads; ++h)
              attention_head(q.data() + h * hd, h, n_heads, kv, n_ctx, scale,
                             per_head.data() + h * hd, scratch.data());
            for (int64_t g = 0; g < n_kv; ++g)
              attention_kv_group(q.data(), g, n_heads, kv, n_ctx, scale, per_group.data());
            for (size_t i = 0; i < got.size(); ++i) {
              if (!(std::fabs(per_head[i] - want[i]) <= 1e-5))
                FAIL("head [" << i << "] " << per_head[i] << " vs " << want[i]);
              REQUIRE(per_group[i] == got[i]);
            }
          }
  });
}

TEST_CASE("attention with a dominant position and large scores", "[cpu][attention]") {
  // Scores up to +-80 stress the online softmax's rescaling: position 40 must dominate.
  const int64_t hd = 64, n_ctx = 50, bs = 16;
  const int64_t nb = (n_ctx + bs - 1) / bs;
  std::vector<int32_t> table(nb);
  for (int64_t i = 0; i < nb; ++i) table[i] = int32_t(nb - 1 - i);
  std::vector<float> k(nb * bs * hd, 0.0f), q(hd, 0.0f);
  const auto v = random_floats(nb * bs * hd, 5);
  q[0] = 1.0f;
  for (int64_t p = 0; p < n_ctx; ++p) {
    const int64_t slot = table[p / bs] * bs + p % bs;
    k[slot * hd] = p <= 40 ? -80.0f + 4.0f * float(p) : 80.0f - float(p);  // max at p = 40
  }
  PagedKv kv{k.data(), v.data(), table.data(), bs, 1, hd};
  std::vector<float> got(hd), want(hd);
  attention_one(q.data(), 1, kv, n_ctx, 1.0f, got.data(), nullptr);
  ref::attention_one(q.data(), 1, kv, n_ctx, 1.0f, want.data());
  for (int64_t i = 0; i < hd; ++i) CHECK(got[i] == Approx(want[i]).margin(1e-6));
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

TEST_CASE("causal attention tile matches reference and the per-token kernel bit for bit",
          "[cpu][attention]") {
  // A tile of consecutive positions (a prefill chunk or a 1 + k verification run) that may
  // start mid-block, over a scattered block table: each row against the scalar reference
  // with its own causal context, and exactly equal to the decode kernel for that position
  // alone (rows must not depend on which rows share their tile: batch invariance).
  test::for_each_target([&] {
    uint32_t seed = 100;
    for (int64_t hd : {64, 20})
      for (int64_t ratio : {1, 4})
        for (int64_t bs : {16, 5, 1})
          for (int64_t first_pos : {0, 3, 16, 37})
            for (int64_t n_pos : {1, 2, 7, 16, 33, 70}) {
              const int64_t n_kv = 2, n_heads = n_kv * ratio, row = n_heads * hd;
              const int64_t stride = row + 3;  // rows of a wider activation buffer
              const int64_t n_ctx = first_pos + n_pos;
              INFO("hd " << hd << " ratio " << ratio << " bs " << bs << " first " << first_pos
                         << " n " << n_pos);
              const ScatteredKv cache(n_ctx, bs, n_kv, hd, 2, seed);
              const auto q = random_floats(n_pos * stride, seed + 3, -3, 3);
              seed += 4;
              const PagedKv kv = cache.view(bs, n_kv, hd);
              const float scale = 1.0f / std::sqrt(float(hd));
              std::vector<float> got(n_pos * stride, NAN);
              for (int64_t g = 0; g < n_kv; ++g)
                attention_causal_tile(q.data(), stride, g, n_heads, kv, first_pos, n_pos, scale,
                                      got.data(), stride);
              std::vector<float> want(row), one(row, NAN);
              for (int64_t i = 0; i < n_pos; ++i) {
                const float* qi = q.data() + i * stride;
                const float* gi = got.data() + i * stride;
                ref::attention_one(qi, n_heads, kv, first_pos + i + 1, scale, want.data());
                for (int64_t g = 0; g < n_kv; ++g)
                  attention_kv_group(qi, g, n_heads, kv, first_pos + i + 1, scale, one.data());
                for (int64_t x = 0; x < row; ++x) {
                  if (!(std::fabs(gi[x] - want[x]) <= 1e-5))
                    FAIL("row " << i << " [" << x << "] " << gi[x] << " vs " << want[x]);
                  if (gi[x] != one[x]) FAIL("row " << i << " [" << x << "] " << gi[x] << " != " << one[x]);
                }
                for (int64_t x = row; x < stride; ++x) REQUIRE(std::isnan(gi[x]));  // untouched
              }
            }
  });
}
