// The type table, name lookup, fallback resolution and the tensor-level quantizer's contract
// (threads, imatrix policy, errors). No oracle needed.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <set>
#include <vector>

#include "ggml/blocks.h"
#include "ggml/quants.h"
#include "ggml/quants_internal.h"
#include "ggml/types.h"
#include "test_data.h"

using namespace razor;
using ggml::type;

TEST(ggml_types, table_is_consistent) {
  std::set<uint32_t> ids;
  std::set<std::string_view> names;
  for (const auto& ti : ggml::all_types()) {
    EXPECT_TRUE(ids.insert(ti.id).second) << ti.name;
    EXPECT_TRUE(names.insert(ti.name).second) << ti.name;
    EXPECT_EQ(uint32_t(ti.t), ti.id);
    EXPECT_EQ(&ggml::info(ti.t), &ti);
    const auto& fb = ggml::info(ti.fallback);
    EXPECT_LE(fb.block_size, ti.block_size) << ti.name;  // a fallback divides more row lengths
    if (ti.block_size > 1) {
      EXPECT_LT(fb.block_size, ti.block_size) << ti.name;  // llama.cpp demotes every quantized type
      if (ti.t != type::q8_0 && ti.t != type::mxfp4) {  // ggml's quantize_q8_0 / quantize_mxfp4 ignore them
        EXPECT_NE(ti.weights, ggml::weights_use::ignored) << ti.name;
      }
    }
    EXPECT_EQ(ggml::row_size(ti.t, 8 * ti.block_size), size_t(8 * ti.type_size)) << ti.name;
  }
  EXPECT_EQ(sizeof(ggml::block_q4_k), size_t(ggml::info(type::q4_k).type_size));
  EXPECT_EQ(sizeof(ggml::block_iq3_xxs), size_t(ggml::info(type::iq3_xxs).type_size));
  EXPECT_TRUE(ggml::info(type::iq3_xxs).needs_imatrix);
  EXPECT_FALSE(ggml::info(type::q4_k).needs_imatrix);
  EXPECT_EQ(ggml::info(type::iq2_xs).weights, ggml::weights_use::required);
  EXPECT_EQ(ggml::info(type::iq2_s).weights, ggml::weights_use::optional);
  EXPECT_EQ(ggml::info(type::q8_0).weights, ggml::weights_use::ignored);
  // llama.cpp's file types (LLAMA_FTYPE_MOSTLY_*) of the pure mixes
  EXPECT_EQ(ggml::info(type::q4_k).ftype, 15u);
  EXPECT_EQ(ggml::info(type::iq2_xxs).ftype, 19u);
  EXPECT_EQ(ggml::info(type::iq3_s).ftype, 26u);
  EXPECT_EQ(ggml::info(type::iq1_s).weights, ggml::weights_use::required);
  EXPECT_EQ(ggml::info(type::iq1_m).weights, ggml::weights_use::optional);
}

TEST(ggml_types, lookup_by_name_is_case_insensitive) {
  EXPECT_EQ(*ggml::type_from_name("q4_K"), type::q4_k);
  EXPECT_EQ(*ggml::type_from_name("Q4_K"), type::q4_k);
  EXPECT_EQ(*ggml::type_from_name("q4_k"), type::q4_k);
  EXPECT_EQ(*ggml::type_from_name("IQ3_XXS"), type::iq3_xxs);
  EXPECT_EQ(*ggml::type_from_name("BF16"), type::bf16);
  EXPECT_EQ(ggml::type_name(type::q6_k), "q6_K");
  const auto bad = ggml::type_from_name("q4_k_m");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), errc::invalid_argument);
  EXPECT_NE(bad.error().message().find("q4_K"), std::string::npos);  // lists the known names
  EXPECT_EQ(*ggml::type_from_id(23), type::iq4_xs);
  EXPECT_EQ(*ggml::type_from_id(6), type::q5_0);
  EXPECT_EQ(*ggml::type_from_name("IQ2_XXS"), type::iq2_xxs);
  EXPECT_FALSE(ggml::type_from_id(15).ok());  // q8_K: read-only in the GGUF table, not quantized here
}

TEST(ggml_types, row_fallback_follows_llama_cpp) {
  // src/llama-quant.cpp tensor_type_fallback
  EXPECT_EQ(*ggml::resolve_row_type(type::q4_k, 4096), type::q4_k);
  EXPECT_EQ(*ggml::resolve_row_type(type::q4_k, 4096 + 32), type::q5_0);
  EXPECT_EQ(*ggml::resolve_row_type(type::q5_k, 96), type::q5_1);
  EXPECT_EQ(*ggml::resolve_row_type(type::q6_k, 96), type::q8_0);
  EXPECT_EQ(*ggml::resolve_row_type(type::q2_k, 96), type::q4_0);
  EXPECT_EQ(*ggml::resolve_row_type(type::q3_k, 96), type::q4_0);
  EXPECT_EQ(*ggml::resolve_row_type(type::iq3_xxs, 96), type::iq4_nl);
  EXPECT_EQ(*ggml::resolve_row_type(type::iq2_xxs, 96), type::iq4_nl);
  EXPECT_EQ(*ggml::resolve_row_type(type::iq2_s, 96), type::iq4_nl);
  EXPECT_EQ(*ggml::resolve_row_type(type::iq3_s, 96), type::iq4_nl);
  EXPECT_EQ(*ggml::resolve_row_type(type::iq4_xs, 96), type::iq4_nl);
  EXPECT_EQ(*ggml::resolve_row_type(type::q4_k, 100), type::f16);  // fallback's block does not divide either
  EXPECT_EQ(*ggml::resolve_row_type(type::f16, 7), type::f16);
  // a 32-element type has no smaller block: llama.cpp stores the tensor as f16
  EXPECT_EQ(*ggml::resolve_row_type(type::q8_0, 100), type::f16);
  EXPECT_EQ(*ggml::resolve_row_type(type::q5_1, 100), type::f16);
  EXPECT_EQ(*ggml::resolve_row_type(type::mxfp4, 100), type::f16);
}

TEST(ggml_tensor, threads_give_single_thread_bytes) {
  const auto mats = razor_test::synthetic_matrices(37, 512, 5);
  const auto w = razor_test::synthetic_imatrix(512, 6, false);
  for (type t : {type::q4_k, type::q6_k, type::q2_k, type::iq4_xs, type::iq3_xxs, type::q4_0, type::f16, type::q5_1,
                 type::iq2_xs, type::iq3_s}) {
    const auto& m = mats[2];  // heavy tailed
    const size_t bytes = 37 * ggml::row_size(t, 512);
    std::vector<uint8_t> one(bytes), many(bytes), rows(bytes);
    ASSERT_TRUE(ggml::quantize_rows(t, m.data.data(), rows.data(), 37, 512, w.data()).ok());
    ggml::quantize_options o1;
    o1.threads = 1;
    ggml::quantize_options o4;
    o4.threads = 4;
    int calls = 0;
    o4.progress = [&](double done, double total, const char*) {
      ++calls;
      EXPECT_LE(done, total);
      return true;
    };
    ASSERT_EQ(*ggml::quantize_tensor(t, m.data.data(), one.data(), bytes, 37, 512, w.data(), o1), bytes);
    ASSERT_EQ(*ggml::quantize_tensor(t, m.data.data(), many.data(), bytes, 37, 512, w.data(), o4), bytes);
    EXPECT_EQ(one, rows) << ggml::type_name(t);
    EXPECT_EQ(many, rows) << ggml::type_name(t);
    EXPECT_GE(calls, 1);
  }
}

TEST(ggml_tensor, lane_paths_equal_scalar_reference) {
  // House style 1: the fast (lane-parallel) k-quant paths against our scalar ground truth, without the
  // oracle, on every synthetic distribution, with and without weights; the AVX2 and the SSE2 builds.
  const auto mats = razor_test::synthetic_matrices(8, 768, 21);
  const auto w = razor_test::synthetic_imatrix(768, 22, true);
  auto check_all = [&](const char* isa) {
    for (const auto& ti : ggml::all_types()) {
      for (const auto& m : mats) {
        for (const float* qw : {static_cast<const float*>(nullptr), w.data()}) {
          if (!qw && ti.weights == ggml::weights_use::required) continue;
          const size_t bytes = 8 * ggml::row_size(ti.t, 768);
          std::vector<uint8_t> fast(bytes), ref(bytes);
          ASSERT_TRUE(ggml::quantize_rows(ti.t, m.data.data(), fast.data(), 8, 768, qw).ok());
          ASSERT_TRUE(ggml::quantize_rows_reference(ti.t, m.data.data(), ref.data(), 8, 768, qw).ok());
          EXPECT_EQ(fast, ref) << ti.name << " " << m.name << (qw ? " imatrix " : " ") << isa;
        }
      }
    }
  };
  check_all("native lanes");
  ggml::detail::force_baseline_lanes(true);
  check_all("baseline lanes");
  ggml::detail::force_baseline_lanes(false);
}

TEST(ggml_tensor, iq3_lane_search_equals_scalar_on_extreme_inputs) {
  // The iq3 lane search (quant_search_lanes.inc) regroups the scalar search: distances from a table of
  // terms, one scan per distinct code, the trials in lanes. Ties, distances that overflow and NaN must
  // resolve as in the scalar scan. ggml asserts on non-finite rows, so these compare with our scalar
  // reference only (the oracle tests cover the finite ones).
  const int64_t n = 512, rows = 8;
  std::vector<float> x(size_t(rows * n));
  std::mt19937 rng(5);
  std::normal_distribution<float> g(0.0f, 1.0f);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < n; ++c) {
      float v = 0.02f * g(rng);
      switch (r) {
        case 0: break;                                                  // plain (ties through the weights below)
        case 1: v *= 5e14f; break;  // with weights ~|x|, distances overflow: every one +inf
        case 2: v = c % 97 == 5 ? std::numeric_limits<float>::quiet_NaN() : v; break;
        case 3: v = c % 61 == 7 ? std::numeric_limits<float>::infinity() : v; break;
        case 4: v *= 1e-37f; break;                                     // subnormal products
        case 5: v = c % 32 == 0 ? 1e4f : v; break;                      // one outlier per sub-block
        case 6: v = 0.25f * float(int(std::lround(8.0f * v / 0.02f))); break;  // quarter steps: rounding ties
        default: v = float(c % 8) - 3.5f; break;                        // every group alike
      }
      x[size_t(r * n + c)] = v;
    }
  }
  // weight on the first coordinate of each group of 4 only: candidates with its level tie, the first wins
  std::vector<float> w_first(static_cast<size_t>(n));
  for (int64_t c = 0; c < n; ++c) w_first[size_t(c)] = c % 4 == 0 ? 1.0f : 0.0f;
  std::vector<float> w_mixed(static_cast<size_t>(n));
  for (int64_t c = 0; c < n; ++c) w_mixed[size_t(c)] = c % 5 == 0 ? -1.0f : (c % 5 == 1 ? 0.0f : std::exp(g(rng)));
  auto check = [&](const char* isa) {
    for (type t : {type::iq3_xxs, type::iq3_s}) {
      for (const float* qw : {static_cast<const float*>(nullptr), static_cast<const float*>(w_first.data()),
                              static_cast<const float*>(w_mixed.data())}) {
        const size_t bytes = size_t(rows) * ggml::row_size(t, n);
        std::vector<uint8_t> fast(bytes), ref(bytes);
        ASSERT_TRUE(ggml::quantize_rows(t, x.data(), fast.data(), rows, n, qw).ok());
        ASSERT_TRUE(ggml::quantize_rows_reference(t, x.data(), ref.data(), rows, n, qw).ok());
        const size_t rs = ggml::row_size(t, n);
        for (int64_t r = 0; r < rows; ++r)
          EXPECT_TRUE(std::equal(fast.begin() + long(r * rs), fast.begin() + long((r + 1) * rs), ref.begin() + long(r * rs)))
              << ggml::type_name(t) << " row " << r << (qw == nullptr ? " no imatrix" : qw == w_first.data() ? " first-coordinate imatrix" : " mixed imatrix") << " " << isa;
      }
    }
  };
  check("native lanes");
  ggml::detail::force_baseline_lanes(true);
  check("baseline lanes");
  ggml::detail::force_baseline_lanes(false);
}

TEST(ggml_tensor, imatrix_policy_and_errors) {
  std::vector<float> x(2 * 256, 0.5f);
  std::vector<uint8_t> out(2 * 4 * 256);  // room for two f32 rows
  const auto missing = ggml::quantize_tensor(type::iq3_xxs, x.data(), out.data(), out.size(), 2, 256, nullptr);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code(), errc::needs_imatrix);
  ggml::quantize_options allow;
  allow.allow_missing_imatrix = true;
  EXPECT_TRUE(ggml::quantize_tensor(type::iq3_xxs, x.data(), out.data(), out.size(), 2, 256, nullptr, allow).ok());
  EXPECT_TRUE(ggml::quantize_tensor(type::iq2_s, x.data(), out.data(), out.size(), 2, 256, nullptr, allow).ok());
  // ggml itself cannot quantize iq2_xxs / iq2_xs / iq1_s without weights: refused even when allowed
  for (type t : {type::iq2_xxs, type::iq2_xs, type::iq1_s}) {
    const auto none = ggml::quantize_tensor(t, x.data(), out.data(), out.size(), 2, 256, nullptr, allow);
    ASSERT_FALSE(none.ok()) << ggml::type_name(t);
    EXPECT_EQ(none.error().code(), errc::needs_imatrix);
    EXPECT_NE(none.error().message().find(std::string(ggml::type_name(t))), std::string::npos);
    const auto rows = ggml::quantize_rows(t, x.data(), out.data(), 2, 256, nullptr);
    EXPECT_EQ(rows.code(), errc::needs_imatrix);
  }

  const auto bad_row = ggml::quantize_tensor(type::q4_k, x.data(), out.data(), out.size(), 4, 128, nullptr);
  ASSERT_FALSE(bad_row.ok());
  EXPECT_EQ(bad_row.error().code(), errc::invalid_argument);
  const auto small = ggml::quantize_tensor(type::q8_0, x.data(), out.data(), 10, 2, 256, nullptr);
  ASSERT_FALSE(small.ok());
  EXPECT_EQ(small.error().code(), errc::invalid_argument);

  ggml::quantize_options cancel;
  cancel.progress = [](double, double, const char*) { return false; };
  const auto c = ggml::quantize_tensor(type::q8_0, x.data(), out.data(), out.size(), 2, 256, nullptr, cancel);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code(), errc::cancelled);
}

TEST(ggml_tensor, dequantize_round_trip_error_is_small) {
  // Sanity beside the byte-exact oracle tests: relative RMS error per type on gaussian rows.
  // Bounds are ~2x the expected error of each format's bits per weight.
  const auto mats = razor_test::synthetic_matrices(16, 512, 11);
  const auto& m = mats[1];  // unit gaussian
  const auto w = razor_test::synthetic_imatrix(512, 12, false);
  const std::vector<std::pair<type, double>> bounds = {
      {type::q8_0, 0.01}, {type::q4_0, 0.15}, {type::iq4_nl, 0.12}, {type::iq4_xs, 0.12}, {type::q6_k, 0.04},
      {type::q5_k, 0.08}, {type::q4_k, 0.15}, {type::q3_k, 0.3},    {type::q2_k, 0.5},    {type::iq3_xxs, 0.35},
      {type::q4_1, 0.15}, {type::q5_0, 0.08}, {type::q5_1, 0.08},   {type::iq3_s, 0.3},   {type::iq2_s, 0.5},
      {type::iq2_xs, 0.6}, {type::iq2_xxs, 0.7}, {type::iq1_s, 1.0}, {type::iq1_m, 1.0},
      {type::f16, 1e-3},  {type::bf16, 1e-2}, {type::f32, 0.0}};
  for (auto [t, bound] : bounds) {
    std::vector<uint8_t> q(16 * ggml::row_size(t, 512));
    ASSERT_TRUE(ggml::quantize_rows(t, m.data.data(), q.data(), 16, 512, w.data()).ok());
    std::vector<float> back(m.data.size());
    ASSERT_TRUE(ggml::dequantize_row(t, q.data(), back.data(), int64_t(back.size())).ok());
    double num = 0, den = 0;
    for (size_t i = 0; i < back.size(); ++i) {
      num += double(back[i] - m.data[i]) * double(back[i] - m.data[i]);
      den += double(m.data[i]) * double(m.data[i]);
    }
    EXPECT_LE(std::sqrt(num / den), bound) << ggml::type_name(t);
  }
}

// mxfp4 by hand (ggml's block_mxfp4: the E8M0 exponent byte, byte j = level j | level j + 16 << 4, value =
// kvalues_mxfp4[level] x 2^(e - 128)). Two blocks as llama.cpp's converter repacks gpt-oss's Hub blocks
// (tests/model/test_mxfp4.cpp RepacksHubBlocksAsGgml): they decode to the Hub's values, every product exact.
TEST(ggml_types, mxfp4_ggml_blocks_decode_to_the_hub_values) {
  const uint8_t g[34] = {128, 0x01, 0x02, 0x08, 0x0F, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x30, 0x50,
                         125, 0x0B, 0x07, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0C, 0x04};
  std::vector<float> want(64, 0.0f);
  want[0] = 1.0f, want[1] = 2.0f, want[2] = 0.0f, want[3] = -12.0f, want[30] = 3.0f, want[31] = 6.0f;
  want[32] = -0.375f, want[33] = 1.5f, want[46] = -0.5f, want[47] = 0.5f;
  std::vector<float> out(64, NAN);
  ASSERT_TRUE(ggml::dequantize_row(ggml::type::mxfp4, g, out.data(), 64).ok());
  for (size_t i = 0; i < 64; ++i) EXPECT_EQ(out[i], want[i]) << "value " << i;
  // Quantizing: max |x| 12 -> e = floor(log2 12) - 2 + 127 = 128 (levels x 1); 12 -> level 7, -3 -> 11,
  // 0.9 -> 1 (1 is nearer than 0), 1 -> 1, 0.25 -> 0, the rest 0.
  float x[32] = {};
  x[0] = 12.0f, x[1] = -3.0f, x[16] = 0.9f, x[17] = 1.0f, x[31] = 0.25f;
  ggml::block_mxfp4 b{};
  ASSERT_TRUE(ggml::quantize_rows(ggml::type::mxfp4, x, &b, 1, 32, nullptr).ok());
  EXPECT_EQ(int(b.e), 128);
  EXPECT_EQ(int(b.qs[0]), 0x17);
  EXPECT_EQ(int(b.qs[1]), 0x1B);
  for (int j = 2; j < 16; ++j) EXPECT_EQ(int(b.qs[j]), 0) << "byte " << j;
  // An all-zero block: exponent 0, levels 0.
  float z[32] = {};
  ASSERT_TRUE(ggml::quantize_rows(ggml::type::mxfp4, z, &b, 1, 32, nullptr).ok());
  EXPECT_EQ(int(b.e), 0);
}
