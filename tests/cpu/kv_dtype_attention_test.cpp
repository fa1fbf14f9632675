// The KV cache stored as f16 / bf16 / int8 (--kv-cache-dtype): rows written and read back
// by kv_store_row / kv_load_row, and the attention kernels (decode group, causal tile) over
// such a cache equal the F32 kernels over the dequantized cache bit for bit, and the scalar
// reference (which decodes each element itself) within the F32 tolerance.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>

#include "core/half.h"
#include "cpu/kernels.h"
#include "cpu/reference.h"
#include "test_data.h"

using namespace troupe;
using namespace troupe::cpu;
using troupe::test::random_floats;
using troupe::test::ScatteredKv;
using troupe::test::StoredKv;

namespace {

constexpr KvDtype kStored[] = {KvDtype::F16, KvDtype::BF16, KvDtype::Int8};

}  // namespace

TEST_CASE("KV rows stored as f16, bf16 and int8 read back as their scalar conversions",
          "[cpu][attention][kv_dtype]") {
  test::for_each_target([&] {
    for (int64_t hd : {64, 20, 3}) {
      const int64_t n_kv = 3, row = n_kv * hd;
      auto x = random_floats(row, 7 + uint32_t(hd), -4, 4);
      std::fill(x.begin() + hd, x.begin() + 2 * hd, 0.0f);  // an all-zero head
      std::vector<uint8_t> bytes(size_t(row) * 4);
      std::vector<float> scales(size_t(n_kv), NAN), back(size_t(row), NAN);
      for (KvDtype dt : {KvDtype::F32, KvDtype::F16, KvDtype::BF16, KvDtype::Int8}) {
        INFO(kv_dtype_name(dt) << " hd " << hd);
        kv_store_row(dt, x.data(), n_kv, hd, bytes.data(), scales.data());
        kv_load_row(dt, bytes.data(), scales.data(), n_kv, hd, back.data());
        {  // With a head stride (a token into a cache block's runs): the same bytes per head.
          const int64_t stride = 5, eb = kv_dtype_elem_bytes(dt);
          std::vector<uint8_t> strided(size_t(n_kv * stride * hd * eb), 0xAB);
          std::vector<float> sscales(size_t(n_kv * stride), -1.0f);
          kv_store_row(dt, x.data(), n_kv, hd, strided.data(), sscales.data(), stride);
          for (int64_t h = 0; h < n_kv; ++h) {
            REQUIRE(std::equal(bytes.begin() + h * hd * eb, bytes.begin() + (h + 1) * hd * eb,
                               strided.begin() + h * stride * hd * eb));
            REQUIRE(strided[size_t((h * stride + 1) * hd * eb)] == 0xAB);  // the rows between untouched
            if (dt == KvDtype::Int8) REQUIRE(sscales[size_t(h * stride)] == scales[size_t(h)]);
            if (dt == KvDtype::Int8) REQUIRE(sscales[size_t(h * stride + 1)] == -1.0f);
          }
        }
        for (int64_t h = 0; h < n_kv; ++h) {
          float amax = 0;
          for (int64_t d = 0; d < hd; ++d) amax = std::max(amax, std::fabs(x[h * hd + d]));
          if (dt == KvDtype::Int8) REQUIRE(scales[h] == amax / 127.0f);
          for (int64_t d = 0; d < hd; ++d) {
            const int64_t i = h * hd + d;
            switch (dt) {
              case KvDtype::F32: REQUIRE(back[i] == x[i]); break;
              case KvDtype::F16: REQUIRE(back[i] == f16_to_f32(f32_to_f16(x[i]))); break;
              case KvDtype::BF16: REQUIRE(back[i] == bf16_to_f32(f32_to_bf16(x[i]))); break;
              case KvDtype::Int8: {
                const auto q = int8_t(bytes[size_t(i)]);
                REQUIRE(back[i] == float(q) * scales[h]);
                // Half a quantization step, plus float rounding of x / scale and q * scale.
                REQUIRE(std::fabs(back[i] - x[i]) <= scales[h] * 0.5f + amax * 1e-6f);
                break;
              }
            }
          }
        }
      }
    }
  });
}

TEST_CASE("decode group attention over f16/bf16/int8 KV equals F32 attention over the dequantized KV",
          "[cpu][attention][kv_dtype]") {
  test::for_each_target([&] {
    uint32_t seed = 500;
    for (KvDtype dt : kStored)
      for (int64_t hd : {64, 20})
        for (int64_t ratio : {1, 4})
          for (int64_t bs : {16, 5})
            for (int64_t n_ctx : {1, 16, 17, 100}) {
              const int64_t n_kv = 2, n_heads = n_kv * ratio;
              INFO(kv_dtype_name(dt) << " hd " << hd << " ratio " << ratio << " bs " << bs << " n_ctx " << n_ctx);
              const ScatteredKv f(n_ctx, bs, n_kv, hd, 3, seed);
              const StoredKv s(f, n_kv, hd, dt);
              const auto q = random_floats(n_heads * hd, seed + 3, -3, 3);
              seed += 4;
              const PagedKv stored = s.stored(f, bs, n_kv, hd), deq = s.dequantized(f, bs, n_kv, hd);
              const float scale = 1.0f / std::sqrt(float(hd));
              std::vector<float> got(n_heads * hd, NAN), want(n_heads * hd, NAN);
              std::vector<float> ref_stored(n_heads * hd), ref_deq(n_heads * hd);
              for (int64_t g = 0; g < n_kv; ++g) {
                attention_kv_group(q.data(), g, n_heads, stored, n_ctx, scale, got.data());
                attention_kv_group(q.data(), g, n_heads, deq, n_ctx, scale, want.data());
              }
              ref::attention_one(q.data(), n_heads, stored, n_ctx, scale, ref_stored.data());
              ref::attention_one(q.data(), n_heads, deq, n_ctx, scale, ref_deq.data());
              for (size_t i = 0; i < got.size(); ++i) {
                if (got[i] != want[i]) FAIL("[" << i << "] " << got[i] << " != " << want[i]);
                REQUIRE(ref_stored[i] == ref_deq[i]);
                if (!(std::fabs(got[i] - ref_stored[i]) <= 1e-5))
                  FAIL("ref [" << i << "] " << got[i] << " vs " << ref_stored[i]);
              }
            }
  });
}

TEST_CASE("causal tile over f16/bf16/int8 KV equals F32 attention over the dequantized KV and the decode kernel",
          "[cpu][attention][kv_dtype]") {
  test::for_each_target([&] {
    uint32_t seed = 900;
    for (KvDtype dt : kStored)
      for (int64_t hd : {64, 20})
        for (int64_t ratio : {1, 4})
          for (int64_t bs : {16, 5})
            for (int64_t first_pos : {0, 3, 37})
              for (int64_t n_pos : {1, 7, 33}) {
                const int64_t n_kv = 2, n_heads = n_kv * ratio, row = n_heads * hd;
                const int64_t stride = row + 3, n_ctx = first_pos + n_pos;
                INFO(kv_dtype_name(dt) << " hd " << hd << " ratio " << ratio << " bs " << bs << " first "
                                       << first_pos << " n " << n_pos);
                const ScatteredKv f(n_ctx, bs, n_kv, hd, 2, seed);
                const StoredKv s(f, n_kv, hd, dt);
                const auto q = random_floats(n_pos * stride, seed + 3, -3, 3);
                seed += 4;
                const PagedKv stored = s.stored(f, bs, n_kv, hd), deq = s.dequantized(f, bs, n_kv, hd);
                const float scale = 1.0f / std::sqrt(float(hd));
                std::vector<float> got(n_pos * stride, NAN), want(n_pos * stride, NAN);
                for (int64_t g = 0; g < n_kv; ++g) {
                  attention_causal_tile(q.data(), stride, g, n_heads, stored, first_pos, n_pos, scale, got.data(), stride);
                  attention_causal_tile(q.data(), stride, g, n_heads, deq, first_pos, n_pos, scale, want.data(), stride);
                }
                std::vector<float> ref_row(row), one(row, NAN);
                for (int64_t i = 0; i < n_pos; ++i) {
                  const float* qi = q.data() + i * stride;
                  const float* gi = got.data() + i * stride;
                  ref::attention_one(qi, n_heads, stored, first_pos + i + 1, scale, ref_row.data());
                  for (int64_t g = 0; g < n_kv; ++g)
                    attention_kv_group(qi, g, n_heads, stored, first_pos + i + 1, scale, one.data());
                  for (int64_t x = 0; x < row; ++x) {
                    if (gi[x] != want[i * stride + x]) FAIL("row " << i << " [" << x << "] " << gi[x] << " != " << want[i * stride + x]);
                    if (gi[x] != one[x]) FAIL("row " << i << " [" << x << "] " << gi[x] << " != decode " << one[x]);
                    if (!(std::fabs(gi[x] - ref_row[x]) <= 1e-5))
                      FAIL("ref row " << i << " [" << x << "] " << gi[x] << " vs " << ref_row[x]);
                  }
                }
              }
  });
}
