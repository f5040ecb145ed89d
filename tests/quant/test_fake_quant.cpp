// The seed's fake-quant: hand-computed vectors, the clip grid, tie rules, and the fast CPU path and the CUDA
// kernel against the scalar reference, bit for bit (house style 1).
#include <gtest/gtest.h>

#include <bit>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "kernels/cuda_info.h"
#include "kernels/fake_quant_cuda.h"
#include "quant/fake_quant.h"
#include "util/numeric.h"

using namespace razor;
using namespace razor::quant;

namespace {

// The per-tensor error statistics are double sums whose order differs between the reference (sequential),
// the fast path (16 lanes per group, blocks of rows) and the GPU (lane trees + atomics); with at most ~1e6
// terms the relative difference stays far below 1e-12.
constexpr double kStatsRelTol = 1e-12;

uint32_t bits_of(float f) { return std::bit_cast<uint32_t>(f); }
float from_bits(uint32_t u) { return std::bit_cast<float>(u); }

uint16_t to_bf16_canon(float f) { return f != f ? uint16_t(0x7fc0) : f32_to_bf16(f); }

std::vector<float> bf16_to_float(const std::vector<uint16_t>& v) {
  std::vector<float> o(v.size());
  for (size_t i = 0; i < v.size(); ++i) o[i] = bf16_to_f32(v[i]);
  return o;
}

// the reference on BF16 data, cast to BF16 (what every fast path must reproduce)
std::vector<uint16_t> ref_bf16(const std::vector<uint16_t>& in, size_t rows, size_t cols, const fq_params& p,
                               fq_stats* st = nullptr) {
  std::vector<float> f = bf16_to_float(in), o(f.size());
  EXPECT_TRUE(fake_quant_rows_ref(f.data(), o.data(), rows, cols, p, st).ok());
  std::vector<uint16_t> r(o.size());
  for (size_t i = 0; i < o.size(); ++i) r[i] = to_bf16_canon(o[i]);
  return r;
}

::testing::AssertionResult same_bits(const std::vector<uint16_t>& a, const std::vector<uint16_t>& b,
                                     size_t cols) {
  if (a.size() != b.size()) return ::testing::AssertionFailure() << "size " << a.size() << " vs " << b.size();
  size_t bad = 0, first = 0;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i] != b[i] && bad++ == 0) first = i;
  if (!bad) return ::testing::AssertionSuccess();
  char buf[160];
  std::snprintf(buf, sizeof buf, "%zu mismatches; first at row %zu col %zu: 0x%04x vs 0x%04x", bad,
                first / cols, first % cols, a[first], b[first]);
  return ::testing::AssertionFailure() << buf;
}

// Realistic weights: gaussian (sigma 0.02) with 0.2% outliers up to 30 sigma, a zero row, and a row of
// tiny (subnormal-scale) values; drawn fresh from `seed`.
std::vector<uint16_t> make_weights(size_t rows, size_t cols, uint64_t seed, bool specials = false) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> g(0.0f, 0.02f);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  std::vector<uint16_t> w(rows * cols);
  for (auto& x : w) {
    float v = g(rng);
    if (u(rng) < 0.002f) v *= 10.0f + 20.0f * u(rng);
    x = f32_to_bf16(v);
  }
  if (rows > 2) std::fill(w.begin() + cols, w.begin() + 2 * cols, uint16_t(0));  // row 1: zeros
  if (rows > 3)
    for (size_t c = 0; c < cols; ++c) w[2 * cols + c] = f32_to_bf16(g(rng) * 1e-37f);  // row 2: tiny
  if (specials && rows > 8) {
    w[3 * cols + 5] = 0x7fc0;                       // NaN
    w[4 * cols + 7] = 0x7f80;                       // +inf
    w[5 * cols + 1] = 0xff80;                       // -inf
    w[6 * cols + 3] = f32_to_bf16(3.0e38f);         // huge: squared errors overflow
    for (size_t c = 0; c < cols; ++c) w[7 * cols + c] = uint16_t(rng() & 0x807f);  // subnormals only
    w[8 * cols + 2] = 0x8000;                       // -0
  }
  return w;
}

uint64_t fresh_seed() { return uint64_t(std::chrono::steady_clock::now().time_since_epoch().count()); }

struct cfg {
  float tag;
  int group;
  int clip;
};
const cfg kConfigs[] = {
    {3, 128, 16}, {3, 128, 0}, {4, 128, 16}, {2, 128, 16}, {8, 128, 16}, {3, 64, 16}, {3, 32, 16},
    {3, 0, 16},   {4, 32, 8},  {3, 128, 24}, {1.58f, 128, 0}, {1.58f, 0, 0}, {16, 128, 0}, {5, 64, 1},
};

std::string name_of(const cfg& c) {
  return "tag " + std::to_string(c.tag) + " group " + std::to_string(c.group) + " clip " + std::to_string(c.clip);
}

}  // namespace

// ---------------------------------------------------------------------------------------------------
// parameters and the clip grid
// ---------------------------------------------------------------------------------------------------

TEST(FakeQuantGrid, SixteenRatiosMatchSeedBitForBit) {
  // docs: seed-clip-ratios.md (torch.linspace(1.0, 0.65, 16) in float32, torch 2.11)
  const uint32_t want[16] = {0x3f800000, 0x3f7a06d4, 0x3f740da7, 0x3f6e147b, 0x3f681b4e, 0x3f622222,
                             0x3f5c28f6, 0x3f562fc9, 0x3f50369d, 0x3f4a3d70, 0x3f444444, 0x3f3e4b18,
                             0x3f3851eb, 0x3f3258bf, 0x3f2c5f92, 0x3f266666};
  auto r = clip_ratios(16);
  ASSERT_EQ(r.size(), 16u);
  for (int i = 0; i < 16; ++i) EXPECT_EQ(bits_of(r[size_t(i)]), want[i]) << "k=" << i;
  // k = 13 is where the naive start + k*step differs: the symmetric (halfway) formula matters
  const float step = (0.65f - 1.0f) / 15.0f;
  EXPECT_NE(bits_of(1.0f + step * 13.0f), want[13]);
}

TEST(FakeQuantGrid, OtherStepCountsFollowLinspace) {
  for (int n : {8, 24}) {
    auto r = clip_ratios(n);
    ASSERT_EQ(r.size(), size_t(n));
    EXPECT_EQ(r.front(), 1.0f);
    EXPECT_EQ(r.back(), 0.65f);  // end - step*0: exactly the float 0.65
    for (int i = 1; i < n; ++i) EXPECT_LT(r[size_t(i)], r[size_t(i - 1)]);
  }
  EXPECT_EQ(bits_of(clip_ratios(8)[1]), bits_of(1.0f + ((0.65f - 1.0f) / 7.0f) * 1.0f));
  EXPECT_EQ(clip_ratios(1), std::vector<float>{1.0f});
}

TEST(FakeQuantPlan, ResolvesTagsAndGroups) {
  auto p = make_plan({3, 128, 16}, 3072);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->mode, fq_mode::integer);
  EXPECT_EQ(p->qmax, 3.0f);
  EXPECT_EQ(p->group_len, 128u);
  EXPECT_EQ(p->n_ratios, 16);
  EXPECT_EQ(make_plan({3, 128, 0}, 300)->group_len, 300u);  // not divisible: whole row
  EXPECT_EQ(make_plan({3, 0, 0}, 1024)->group_len, 1024u);  // 0: whole row
  EXPECT_EQ(make_plan({1.58f, 128, 0}, 256)->mode, fq_mode::ternary);
  EXPECT_EQ(make_plan({1.3f, 128, 0}, 256)->mode, fq_mode::ternary);
  EXPECT_EQ(make_plan({16, 128, 0}, 256)->mode, fq_mode::identity);
  EXPECT_EQ(make_plan({2.5f, 128, 0}, 256)->bits, 2);  // Python round(): half to even
  EXPECT_EQ(make_plan({3.5f, 128, 0}, 256)->bits, 4);
  EXPECT_EQ(make_plan({8, 128, 0}, 256)->qmax, 127.0f);
  EXPECT_EQ(make_plan({1.0f, 128, 0}, 256).error().code(), errc::invalid_argument);
  EXPECT_EQ(make_plan({3, -1, 0}, 256).error().code(), errc::invalid_argument);
  EXPECT_EQ(make_plan({3, 128, 33}, 256).error().code(), errc::invalid_argument);
}

TEST(FakeQuantSum, Lane16OrderIsTheDocumentedTree) {
  // 32 values: lanes hold e[l] + e[l+16]; fold l+8, l+4, l+2, l+1. 1e8 + 1 - 1e8 shows the order.
  std::vector<float> e(32, 0.0f);
  e[0] = 1e8f;
  e[16] = 1.0f;   // same lane as e[0]: 1e8 + 1 rounds to 1e8
  e[8] = -1e8f;   // lane 8 folds into lane 0 first
  e[1] = 1.0f;
  float l0 = (1e8f + 1.0f) + -1e8f;  // 0 (the 1 was lost in lane 0)
  EXPECT_EQ(lane16_sum(e.data(), e.size()), l0 + 1.0f);
}

// ---------------------------------------------------------------------------------------------------
// hand-computed vectors (reference)
// ---------------------------------------------------------------------------------------------------

TEST(FakeQuantRef, TiesRoundHalfToEvenAndKeepNegativeZero) {
  // int3, amax 3 -> scale 1: w/scale = 3, 1.5, -0.5, 2.5, -1.5, 0.5 -> 3, 2, -0, 2, -2, 0
  std::vector<float> w = {3.0f, 1.5f, -0.5f, 2.5f, -1.5f, 0.5f}, q(6);
  ASSERT_TRUE(fake_quant_rows_ref(w.data(), q.data(), 1, 6, {3, 0, 0}).ok());
  EXPECT_EQ(q, (std::vector<float>{3, 2, -0.0f, 2, -2, 0}));
  EXPECT_TRUE(std::signbit(q[2]));
  EXPECT_FALSE(std::signbit(q[5]));
  // scale 2 (amax 6): 6, 3, -1, 5 -> codes 3, 2 (1.5), -0 (-0.5), 2 (2.5) -> 6, 4, -0, 4
  std::vector<float> w2 = {6, 3, -1, 5}, q2(4);
  ASSERT_TRUE(fake_quant_rows_ref(w2.data(), q2.data(), 1, 4, {3, 0, 0}).ok());
  EXPECT_EQ(q2, (std::vector<float>{6, 4, -0.0f, 4}));
  EXPECT_TRUE(std::signbit(q2[2]));
}

TEST(FakeQuantRef, AllZeroGroupGivesZerosWithScaleOne) {
  std::vector<float> w(128, 0.0f), q(128, 7.0f);
  w[5] = -0.0f;
  fq_stats st;
  ASSERT_TRUE(fake_quant_rows_ref(w.data(), q.data(), 1, 128, {3, 128, 16}, &st).ok());
  for (size_t i = 0; i < 128; ++i) EXPECT_EQ(bits_of(q[i]), bits_of(w[i])) << i;  // 0/1*1 keeps the sign
  EXPECT_EQ(st.clip_hist[0], 1u);  // all 16 errors are 0: the tie keeps candidate 0
  EXPECT_EQ(st.groups, 1u);
}

TEST(FakeQuantRef, OneOutlierGroup) {
  // group of 128: outlier 96, the rest +-1 and 0.25. int3 absmax: scale 96/3 = 32 exactly; 1/32 rounds to
  // code 0 (sign kept), 96/32 = 3 -> 96.
  std::vector<float> w(128), q(128);
  for (size_t i = 0; i < 128; ++i) w[i] = (i % 3 == 0) ? 1.0f : (i % 3 == 1 ? -1.0f : 0.25f);
  w[17] = 96.0f;
  for (int clip : {0, 16}) {
    fq_stats st;
    ASSERT_TRUE(fake_quant_rows_ref(w.data(), q.data(), 1, 128, {3, 128, clip}, &st).ok());
    for (size_t i = 0; i < 128; ++i) {
      if (i == 17) EXPECT_EQ(q[i], 96.0f);
      else EXPECT_EQ(bits_of(q[i]), w[i] < 0 ? 0x80000000u : 0u) << i;
    }
    // clip search: any ratio < 1 clamps the outlier at 3*scale < 96 and still zeroes the rest, so the
    // error only grows: candidate 0
    EXPECT_EQ(st.clip_hist[0], 1u);
    EXPECT_EQ(st.groups, 1u);
  }
}

TEST(FakeQuantRef, RowNotDivisibleByGroupIsOneGroup) {
  // cols 96, group 64: the whole row is one group. The first 64 are small, the last 32 large: per-64
  // groups would quantize the small ones finely; one 96-group zeroes them.
  std::vector<float> w(96), q(96);
  for (size_t i = 0; i < 96; ++i) w[i] = i < 64 ? 0.1f : 3.0f;
  ASSERT_TRUE(fake_quant_rows_ref(w.data(), q.data(), 1, 96, {3, 64, 0}).ok());
  for (size_t i = 0; i < 64; ++i) EXPECT_EQ(q[i], 0.0f) << i;  // 0.1 / 1 -> 0
  for (size_t i = 64; i < 96; ++i) EXPECT_EQ(q[i], 3.0f) << i;
  ASSERT_TRUE(fake_quant_rows_ref(w.data(), q.data(), 1, 96, {3, 32, 0}).ok());  // 96 % 32 == 0
  EXPECT_EQ(q[0], 3.0f * (0.1f / 3.0f));  // own group: amax 0.1 -> code 3 -> 3*(0.1/3)
}

TEST(FakeQuantRef, TernaryHandVector) {
  // mean|w| = (1 + 2 + 0.1 + 0.1 + 0 + 0.8) / 6 = 0.6666667; thr = 0.5; kept {1, -2, 0.8}: alpha = 3.8/3
  std::vector<float> w = {1.0f, -2.0f, 0.1f, -0.1f, 0.0f, 0.8f}, q(6);
  ASSERT_TRUE(fake_quant_rows_ref(w.data(), q.data(), 1, 6, {1.58f, 0, 0}).ok());
  // one element per lane; the fold adds lane 5 to lane 1 first: (1 + 0) + (2 + 0.8)
  const float alpha = (1.0f + (2.0f + 0.8f)) / 3.0f;
  EXPECT_EQ(q[0], alpha);
  EXPECT_EQ(q[1], -alpha);
  EXPECT_EQ(bits_of(q[2]), 0u);
  EXPECT_EQ(bits_of(q[3]), 0x80000000u);  // sign(-0.1) * 0 * alpha = -0
  EXPECT_EQ(bits_of(q[4]), 0u);
  EXPECT_EQ(q[5], alpha);
  // all zero: nothing kept, alpha = max|w| = 0
  std::vector<float> z(8, 0.0f), qz(8, 1.0f);
  ASSERT_TRUE(fake_quant_rows_ref(z.data(), qz.data(), 1, 8, {1.58f, 0, 0}).ok());
  for (float v : qz) EXPECT_EQ(bits_of(v), 0u);
}

TEST(FakeQuantRef, NanGroupKeepsCandidateZeroLikeTheSeed) {
  // torch: amax = NaN, scale = where(NaN > 0, .., 1) = 1 for every candidate, every error is NaN, the
  // first candidate stays. Finite elements are rint(w) clamped; the NaN stays NaN.
  std::vector<float> w = {0.4f, 2.6f, std::numeric_limits<float>::quiet_NaN(), -7.0f}, q(4);
  fq_stats st;
  ASSERT_TRUE(fake_quant_rows_ref(w.data(), q.data(), 1, 4, {3, 0, 16}, &st).ok());
  EXPECT_EQ(q[0], 0.0f);
  EXPECT_EQ(q[1], 3.0f);
  EXPECT_TRUE(std::isnan(q[2]));
  EXPECT_EQ(q[3], -3.0f);
  EXPECT_EQ(st.clip_hist[0], 1u);
}

TEST(FakeQuantRef, ClipSearchBeatsAbsmaxOnClusteredGroup) {
  // 127 values at 1.5 and one at 3 (int3): absmax (scale 1) puts 1.5 on a tie -> 2, error 127*0.25;
  // a smaller ratio lands 1.5 near a code and only pays on the single 3.
  std::vector<float> w(128, 1.5f), qa(128), qc(128);
  w[0] = 3.0f;
  fq_stats sa, sc;
  ASSERT_TRUE(fake_quant_rows_ref(w.data(), qa.data(), 1, 128, {3, 128, 0}, &sa).ok());
  ASSERT_TRUE(fake_quant_rows_ref(w.data(), qc.data(), 1, 128, {3, 128, 16}, &sc).ok());
  EXPECT_EQ(qa[1], 2.0f);
  EXPECT_EQ(sc.clip_hist[0], 0u);
  EXPECT_LT(sc.sq_err, sa.sq_err);
}

TEST(FakeQuantRef, ClipTieKeepsEarlierLargerRatio) {
  // The rule: the chosen candidate is the first index attaining the minimal float32 error. Search small
  // 2-bit groups on a coarse grid until some group has an exact tie for the minimum between two
  // different ratios, then check the rule on it (and on every group tried).
  auto plan = make_plan({2, 16, 16}, 16);
  ASSERT_TRUE(plan.ok());
  std::mt19937 rng(12345);
  int ties = 0;
  for (int trial = 0; trial < 20000 && ties < 3; ++trial) {
    std::vector<float> w(16), q(16);
    for (auto& x : w) x = float(int(rng() % 9) - 4) * 0.25f;
    std::vector<float> errs;
    for (int c = 0; c < 16; ++c) {
      fq_plan one = *plan;
      one.n_ratios = 1;
      one.ratios[0] = plan->ratios[size_t(c)];
      float e = 0;
      fake_quant_group_ref(w.data(), q.data(), 16, one, &e);
      errs.push_back(e);
    }
    int first = 0;
    for (int c = 1; c < 16; ++c)
      if (errs[size_t(c)] < errs[size_t(first)]) first = c;
    int nmin = 0;
    for (float e : errs) nmin += e == errs[size_t(first)];
    float e = 0;
    ASSERT_EQ(fake_quant_group_ref(w.data(), q.data(), 16, *plan, &e), first) << "trial " << trial;
    EXPECT_EQ(e, errs[size_t(first)]);
    if (nmin > 1 && first > 0) ++ties;  // a tie not involving candidate 0 (all-equal groups are trivial)
  }
  EXPECT_GE(ties, 1) << "no tie found; the test needs a new search grid";
}

TEST(FakeQuantRef, ErrorFallsWithBitsLikeTheSeedSelfTest) {
  std::mt19937 rng(0);
  std::normal_distribution<float> g;
  std::vector<float> w(256 * 512), q(w.size());
  for (auto& x : w) x = g(rng);
  double prev = 1e30;
  for (float tag : {1.58f, 3.0f, 4.0f, 8.0f}) {
    fq_stats st;
    ASSERT_TRUE(fake_quant_rows_ref(w.data(), q.data(), 256, 512, {tag, 128, 0}, &st).ok());
    EXPECT_LT(st.sq_err, prev) << tag;
    prev = st.sq_err;
  }
  ASSERT_TRUE(fake_quant_rows_ref(w.data(), q.data(), 256, 512, {16, 128, 0}).ok());
  EXPECT_EQ(q, w);
}

TEST(FakeQuantStats, ChecksumCountsEveryNanSumAsCanonical) {
  // A group's float32 sum is NaN when the group holds a NaN or an infinity. Which NaN comes out is not
  // fixed by IEEE 754: on x86 inf - inf gives 0xffc00000 and an input NaN's payload propagates, a CUDA GPU
  // always gives 0x7fffffff. The checksum must not see that (the H100 run of 2026-11-27 differed from the
  // CPU by exactly 2*(0xffc00000 - 0x7fffffff) + (0x7fc00000 - 0x7fffffff) on the 16 x 256 special-value
  // shape: two infinite rows and one NaN row). Every NaN sum counts as 0x7fc00000, whatever its bits.
  EXPECT_EQ(checksum_bits(from_bits(0x7fc00000u)), 0x7fc00000u);
  EXPECT_EQ(checksum_bits(from_bits(0xffc00000u)), 0x7fc00000u);
  EXPECT_EQ(checksum_bits(from_bits(0x7fffffffu)), 0x7fc00000u);
  EXPECT_EQ(checksum_bits(from_bits(0x7f800001u)), 0x7fc00000u);
  EXPECT_EQ(checksum_bits(std::numeric_limits<float>::infinity()), 0x7f800000u);
  EXPECT_EQ(checksum_bits(-0.0f), 0x80000000u);
  EXPECT_EQ(checksum_bits(1.5f), bits_of(1.5f));

  const uint32_t specials[] = {0x7fc00000u, 0xffc00000u, 0x7fe12345u, 0xfff00001u,  // NaNs, several payloads
                               0x7f800000u, 0xff800000u};                           // +-inf: inf - inf inside
  for (const cfg& c : kConfigs) {
    const fq_params p{c.tag, 0, c.clip};  // one group of 128
    auto plan = make_plan(p, 128);
    ASSERT_TRUE(plan.ok());
    const bool has_sum = plan->mode == fq_mode::ternary || (plan->mode == fq_mode::integer && plan->n_ratios > 1);
    for (uint32_t sp : specials) {
      char hex[16];
      std::snprintf(hex, sizeof hex, "0x%08x", sp);
      SCOPED_TRACE(name_of(c) + " (as one group of 128) special " + hex);
      std::vector<float> w(128);
      for (size_t i = 0; i < w.size(); ++i) w[i] = 0.01f * float(int(i % 13) - 6);
      w[37] = from_bits(sp);
      fq_stats rs, fs;
      std::vector<float> q(w.size());
      ASSERT_TRUE(fake_quant_rows_ref(w.data(), q.data(), 1, 128, p, &rs).ok());
      ASSERT_TRUE(fake_quant(w.data(), elem_type::f32, q.data(), elem_type::f32, 1, 128, p, &fs).ok());
      float e = 0;
      fake_quant_group_ref(w.data(), q.data(), 128, *plan, &e);
      if (plan->mode == fq_mode::integer && has_sum) {
        EXPECT_TRUE(std::isnan(e));  // the group's error is NaN (a NaN code, or inf/inf)
        EXPECT_EQ(rs.sum_checksum, 0x7fc00000u);
      }
      if (plan->mode == fq_mode::ternary) {  // thr = 0.75*mean|w|: NaN for a NaN, +inf for an infinity
        EXPECT_EQ(rs.sum_checksum, (sp & 0x7fffffffu) == 0x7f800000u ? 0x7f800000u : 0x7fc00000u);
      }
      if (!has_sum) {
        EXPECT_EQ(rs.sum_checksum, 0u);
      }
      EXPECT_EQ(fs.sum_checksum, rs.sum_checksum);
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// fast CPU path == reference
// ---------------------------------------------------------------------------------------------------

TEST(FakeQuantFast, MatchesReferenceBitForBitOnRealShapes) {
  std::printf("fast path ISA: %s\n", isa_name(fast_path_isa()));
  const uint64_t seeds[] = {1, 2, fresh_seed()};
  for (uint64_t seed : seeds) {
    for (auto [rows, cols] : {std::pair<size_t, size_t>{64, 3072}, {48, 1024}}) {
      const auto w = make_weights(rows, cols, seed ^ cols);
      for (const cfg& c : kConfigs) {
        SCOPED_TRACE(name_of(c) + " shape " + std::to_string(rows) + "x" + std::to_string(cols) + " seed " +
                     std::to_string(seed));
        const fq_params p{c.tag, c.group, c.clip};
        fq_stats rs, fs;
        const auto ref = ref_bf16(w, rows, cols, p, &rs);
        std::vector<uint16_t> out(w.size(), 0xdead);
        ASSERT_TRUE(fake_quant_bf16(w.data(), out.data(), rows, cols, p, &fs).ok());
        EXPECT_TRUE(same_bits(out, ref, cols));
        EXPECT_EQ(fs.clip_hist, rs.clip_hist);
        EXPECT_EQ(fs.sum_checksum, rs.sum_checksum);  // every group's float32 sum bit-identical
        EXPECT_EQ(fs.groups, rs.groups);
        EXPECT_EQ(fs.n, rows * cols);
      }
    }
  }
}

TEST(FakeQuantFast, EveryIsaLevelMatchesReference) {
  // The CI machine's ISA is unknown: run each level this CPU can (a level it lacks is reported, not run).
  const size_t rows = 24, cols = 1024;
  for (fq_isa isa : {fq_isa::avx512, fq_isa::avx2, fq_isa::sse42, fq_isa::baseline}) {
    if (fast_path_isa(isa) != isa) {
      std::printf("  %s: not supported by this CPU, not tested here\n", isa_name(isa));
      continue;
    }
    for (bool specials : {false, true}) {
      const auto w = make_weights(rows, cols, fresh_seed(), specials);
      for (const cfg& c : kConfigs) {
        SCOPED_TRACE(name_of(c) + " isa " + isa_name(isa));
        const fq_params p{c.tag, c.group, c.clip};
        fq_stats rs, fs;
        const auto ref = ref_bf16(w, rows, cols, p, &rs);
        std::vector<uint16_t> out(w.size(), 0xdead);
        ASSERT_TRUE(fake_quant(w.data(), elem_type::bf16, out.data(), elem_type::bf16, rows, cols, p, &fs, {}, 0,
                               isa)
                        .ok());
        EXPECT_TRUE(same_bits(out, ref, cols));
        EXPECT_EQ(fs.clip_hist, rs.clip_hist);
        EXPECT_EQ(fs.sum_checksum, rs.sum_checksum);
      }
    }
  }
}

TEST(FakeQuantFast, MatchesReferenceOnSpecialValues) {
  // NaN, +-inf, values whose squares overflow, subnormal-only rows, -0: the fast path must still equal
  // the reference (NaN outputs are canonical 0x7fc0 in both).
  for (uint64_t seed : {uint64_t(7), fresh_seed()}) {
    const size_t rows = 16, cols = 256;
    const auto w = make_weights(rows, cols, seed, true);
    for (const cfg& c : kConfigs) {
      SCOPED_TRACE(name_of(c) + " seed " + std::to_string(seed));
      const fq_params p{c.tag, c.group, c.clip};
      const auto ref = ref_bf16(w, rows, cols, p);
      std::vector<uint16_t> out(w.size(), 0xdead);
      ASSERT_TRUE(fake_quant_bf16(w.data(), out.data(), rows, cols, p).ok());
      EXPECT_TRUE(same_bits(out, ref, cols));
    }
  }
}

TEST(FakeQuantFast, NearHalfIntegerQuotientsStayExact) {
  // The fast path rounds w*fl(1/scale) and falls back to w/scale near half-integers. Put many elements
  // within a few ulps of (k + 0.5)*scale for many scales, where a wrong shortcut would show.
  std::mt19937_64 rng(99);
  std::uniform_real_distribution<float> u(0.5f, 2.0f);
  const size_t rows = 512, cols = 128;
  std::vector<float> w(rows * cols);
  for (size_t r = 0; r < rows; ++r) {
    const float amax = u(rng) * std::ldexp(1.0f, int(rng() % 40) - 20);
    const float qmax = (r % 3 == 0) ? 3.0f : (r % 3 == 1 ? 7.0f : 127.0f);
    const float s = amax / qmax;
    w[r * cols] = amax;
    for (size_t c = 1; c < cols; ++c) {
      const float k = float(int(rng() % uint64_t(2 * qmax + 1)) - int(qmax)) + 0.5f;
      uint32_t b = bits_of(k * s);
      b += uint32_t(int(rng() % 7) - 3);
      float v = from_bits(b);
      if (std::fabs(v) > amax) v = amax;
      w[r * cols + c] = v;
    }
  }
  for (float tag : {3.0f, 4.0f, 8.0f}) {
    for (int clip : {0, 16}) {
      const fq_params p{tag, 128, clip};
      std::vector<float> ref(w.size()), out(w.size());
      ASSERT_TRUE(fake_quant_rows_ref(w.data(), ref.data(), rows, cols, p).ok());
      ASSERT_TRUE(fake_quant(w.data(), elem_type::f32, out.data(), elem_type::f32, rows, cols, p).ok());
      size_t bad = 0;
      for (size_t i = 0; i < w.size(); ++i) bad += bits_of(ref[i]) != bits_of(out[i]);
      EXPECT_EQ(bad, 0u) << "tag " << tag << " clip " << clip;
    }
  }
}

TEST(FakeQuantFast, OtherTypesOddShapesInPlaceAndThreads) {
  const size_t rows = 33;
  for (size_t cols : {size_t(100), size_t(48), size_t(1024)}) {  // 100: whole-row group, n % 16 != 0
    const auto wb = make_weights(rows, cols, 5 + cols, true);
    const auto wf = bf16_to_float(wb);
    for (const cfg& c : kConfigs) {
      SCOPED_TRACE(name_of(c) + " cols " + std::to_string(cols));
      const fq_params p{c.tag, c.group, c.clip};
      std::vector<float> ref(wf.size());
      ASSERT_TRUE(fake_quant_rows_ref(wf.data(), ref.data(), rows, cols, p).ok());
      // f32 in -> f32 out
      std::vector<float> of(wf.size());
      ASSERT_TRUE(fake_quant(wf.data(), elem_type::f32, of.data(), elem_type::f32, rows, cols, p).ok());
      for (size_t i = 0; i < of.size(); ++i)
        ASSERT_TRUE(bits_of(of[i]) == bits_of(ref[i]) || (ref[i] != ref[i] && bits_of(of[i]) == 0x7fc00000u))
            << i;
      // f32 in -> f16 out
      std::vector<uint16_t> oh(wf.size());
      ASSERT_TRUE(fake_quant(wf.data(), elem_type::f32, oh.data(), elem_type::f16, rows, cols, p).ok());
      for (size_t i = 0; i < oh.size(); ++i)
        ASSERT_EQ(oh[i], ref[i] != ref[i] ? uint16_t(0x7e00) : f32_to_f16(ref[i])) << i;
      // f16 in (the same values where representable) -> bf16 out, against the reference on f16 values
      std::vector<uint16_t> h(wf.size());
      for (size_t i = 0; i < h.size(); ++i) h[i] = f32_to_f16(wf[i]);
      std::vector<float> hf(h.size()), href(h.size());
      for (size_t i = 0; i < h.size(); ++i) hf[i] = f16_to_f32(h[i]);
      ASSERT_TRUE(fake_quant_rows_ref(hf.data(), href.data(), rows, cols, p).ok());
      std::vector<uint16_t> ob(h.size());
      ASSERT_TRUE(fake_quant(h.data(), elem_type::f16, ob.data(), elem_type::bf16, rows, cols, p).ok());
      for (size_t i = 0; i < ob.size(); ++i) ASSERT_EQ(ob[i], to_bf16_canon(href[i])) << i;
      // bf16 in place, 1 thread vs 2 threads: same bits and identical stats
      std::vector<uint16_t> a = wb, b = wb;
      fq_stats s1, s2;
      ASSERT_TRUE(fake_quant_bf16(a.data(), a.data(), rows, cols, p, &s1, {}, 1).ok());
      ASSERT_TRUE(fake_quant_bf16(b.data(), b.data(), rows, cols, p, &s2, {}, 2).ok());
      EXPECT_TRUE(same_bits(a, ref_bf16(wb, rows, cols, p), cols));
      EXPECT_EQ(a, b);
      EXPECT_EQ(std::bit_cast<uint64_t>(s1.sq_err), std::bit_cast<uint64_t>(s2.sq_err));  // NaN-safe
      EXPECT_EQ(s1.clip_hist, s2.clip_hist);
    }
  }
}

TEST(FakeQuantFast, StatsMatchADirectComputation) {
  const size_t rows = 64, cols = 3072;
  const auto w = make_weights(rows, cols, 11);
  const fq_params p{3, 128, 16};
  std::vector<uint16_t> out(w.size());
  fq_stats st;
  ASSERT_TRUE(fake_quant_bf16(w.data(), out.data(), rows, cols, p, &st).ok());
  double se = 0, sr = 0;
  for (size_t i = 0; i < w.size(); ++i) {
    const double x = bf16_to_f32(w[i]), d = double(bf16_to_f32(out[i])) - x;
    se += d * d;
    sr += x * x;
  }
  EXPECT_NEAR(st.sq_err, se, se * kStatsRelTol);
  EXPECT_NEAR(st.sq_ref, sr, sr * kStatsRelTol);
  EXPECT_NEAR(st.rel_error(), std::sqrt(se / sr), std::sqrt(se / sr) * kStatsRelTol);
  uint64_t total = 0;
  for (auto h : st.clip_hist) total += h;
  EXPECT_EQ(total, rows * cols / 128);
  EXPECT_EQ(st.groups, total);
  EXPECT_GT(st.rel_error(), 0.05);  // int3 on gaussian weights: roughly 0.1 to 0.3
  EXPECT_LT(st.rel_error(), 0.5);
}

TEST(FakeQuantFast, ProgressCancels) {
  const size_t rows = 4096, cols = 128;
  std::vector<uint16_t> w = make_weights(rows, cols, 3), out(w.size());
  int calls = 0;
  status s = fake_quant_bf16(w.data(), out.data(), rows, cols, {3, 128, 16}, nullptr,
                             [&](double, double, const char*) { return ++calls < 2; });
  EXPECT_EQ(s.code(), errc::cancelled);
  double last = 0;
  ASSERT_TRUE(fake_quant_bf16(w.data(), out.data(), rows, cols, {3, 128, 16}, nullptr,
                              [&](double d, double t, const char*) {
                                last = d / t;
                                return true;
                              })
                  .ok());
  EXPECT_EQ(last, 1.0);
}

// ---------------------------------------------------------------------------------------------------
// CUDA kernel == reference (skipped without a GPU)
// ---------------------------------------------------------------------------------------------------

namespace {
bool gpu_available(std::string& why) {
  if (!cu::built_with_cuda()) {
    why = "built without CUDA";
    return false;
  }
  return !cu::devices(&why).empty();
}
}  // namespace

TEST(FakeQuantGpu, MatchesReferenceBitForBit) {
  std::string why;
  if (!gpu_available(why)) GTEST_SKIP() << "no GPU: " << why;
  const uint64_t seeds[] = {1, fresh_seed()};
  for (uint64_t seed : seeds) {
    for (auto [rows, cols] :
         {std::pair<size_t, size_t>{64, 3072}, {48, 1024}, {33, 100}, {16, 256}, {40, 128}}) {
      auto w = make_weights(rows, cols, seed ^ cols, /*specials=*/rows == 16);
      if (rows == 40) {
        // exact ties: multiples of 2^e/4 with amax 3*2^e, so int3's absmax scale is 2^e and w/scale hits
        // every half-integer exactly (the rcp shortcut must fall back and round half to even)
        std::mt19937_64 rng(seed);
        for (size_t r = 0; r < rows; ++r) {
          const float unit = std::ldexp(1.0f, int(r % 30) - 20);
          for (size_t c = 0; c < cols; ++c)
            w[r * cols + c] = f32_to_bf16(float(int(rng() % 25) - 12) * 0.25f * unit);
          w[r * cols + (r % cols)] = f32_to_bf16((r & 1 ? -3.0f : 3.0f) * unit);
        }
      }
      for (const cfg& c : kConfigs) {
        const fq_params p{c.tag, c.group, c.clip};
        auto plan = make_plan(p, cols);
        ASSERT_TRUE(plan.ok());
        fq_stats rs;
        const auto ref = ref_bf16(w, rows, cols, p, &rs);
        double se = 0;
        for (size_t i = 0; i < w.size(); ++i) {
          const double d = double(bf16_to_f32(ref[i])) - double(bf16_to_f32(w[i]));
          se += d * d;
        }
        for (auto dm : {cu::fq_div_mode::exact_div, cu::fq_div_mode::rcp_check}) {
          SCOPED_TRACE(name_of(c) + " shape " + std::to_string(rows) + "x" + std::to_string(cols) + " seed " +
                       std::to_string(seed) + " div " + std::to_string(int(dm)));
          std::vector<uint16_t> out(w.size(), 0xdead);
          cu::fq_device_stats ds;
          ASSERT_TRUE(cu::fake_quant_bf16_host(w.data(), out.data(), rows, cols, kernel_params(*plan, dm), &ds).ok());
          EXPECT_TRUE(same_bits(out, ref, cols));
          if (plan->mode == fq_mode::integer) {
            for (int i = 0; i < 32; ++i) EXPECT_EQ(ds.hist[i], rs.clip_hist[size_t(i)]) << "bin " << i;
          }
          if (plan->mode != fq_mode::identity) {
            EXPECT_EQ(ds.sum_checksum, rs.sum_checksum);  // every group's float32 sum bit-identical
          }
          if (std::isfinite(se)) {
            EXPECT_NEAR(ds.sq_err, se, se * kStatsRelTol + 1e-300);
          }
        }
      }
    }
  }
}

TEST(FakeQuantGpu, StreamsLargeHostTensorsInChunks) {
  std::string why;
  if (!gpu_available(why)) GTEST_SKIP() << "no GPU: " << why;
  const size_t rows = 1000, cols = 3072;  // 5.9 MiB of BF16; 1 MiB chunks of 170 rows -> 5 full chunks and a short one
  const size_t chunk_bytes = size_t(1) << 20, chunk_rows = chunk_bytes / (cols * sizeof(uint16_t));
  const int chunks = int((rows + chunk_rows - 1) / chunk_rows);
  const auto w = make_weights(rows, cols, fresh_seed());
  const fq_params p{3, 128, 16};
  const auto ref = ref_bf16(w, rows, cols, p);
  std::vector<uint16_t> out(w.size(), 0xdead);
  int calls = 0;
  ASSERT_TRUE(cu::fake_quant_bf16_host(w.data(), out.data(), rows, cols, kernel_params(*make_plan(p, cols)),
                                       nullptr, [&](double, double, const char*) { return ++calls > 0; }, 0,
                                       chunk_bytes)
                  .ok());
  EXPECT_TRUE(same_bits(out, ref, cols));
  EXPECT_EQ(chunks, 6);
  EXPECT_GE(calls, chunks);  // one report as each chunk comes back
  std::vector<uint16_t> inplace = w;
  auto backend = fake_quant_bf16_auto(inplace.data(), inplace.data(), rows, cols, p);
  ASSERT_TRUE(backend.ok());
  EXPECT_EQ(*backend, fq_backend::cuda);
  EXPECT_TRUE(same_bits(inplace, ref, cols));
}

TEST(FakeQuantCuda, StubOrDeviceAnswersWithAStatus) {
  // Without CUDA every entry says so with errc::device; with CUDA bad parameters are invalid_argument.
  std::vector<uint16_t> w(256), o(256);
  cu::fq_kernel_params kp;
  kp.group_len = 100;  // does not divide 256
  status s = cu::fake_quant_bf16_host(w.data(), o.data(), 1, 256, kp);
  if (!cu::built_with_cuda()) {
    EXPECT_EQ(s.code(), errc::device);
    EXPECT_NE(s.message().find("built without CUDA"), std::string::npos);
    auto b = fake_quant_bf16_auto(w.data(), o.data(), 1, 256, {3, 128, 16});
    ASSERT_TRUE(b.ok());
    EXPECT_EQ(*b, fq_backend::cpu);
  } else {
    EXPECT_EQ(s.code(), errc::invalid_argument);
  }
}
