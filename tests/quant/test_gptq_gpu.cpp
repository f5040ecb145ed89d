// GPTQ batched over experts (quant::gptq_quantize_batch): the CPU path equals fake_quant_method everywhere, and the
// GPU path (kernels/gptq/gptq_cuda.cu, suite GptqGpu, ctest label gpu, skipped without a GPU) equals the CPU
// reference except where a rounding tie flips (its sums are ordered differently: cuBLAS's H and block updates).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "kernels/cuda_info.h"
#include "quant/methods.h"

using namespace razor;
using namespace razor::quant;

namespace {

bool have_gpu(std::string* why) {
  if (!cu::built_with_cuda()) {
    *why = "built without CUDA";
    return false;
  }
  if (cu::devices(why).empty()) {
    if (why->empty()) *why = "no CUDA device";
    return false;
  }
  return true;
}

#define REQUIRE_GPU()                           \
  do {                                          \
    std::string why_;                           \
    if (!have_gpu(&why_)) GTEST_SKIP() << why_; \
  } while (0)

// One expert's slice: heavy-tailed weights (sigma ~0.02) and tokens with log-normal per-channel scales, so that
// H is far from diagonal and GPTQ differs clearly from rtn-asym.
struct expert {
  int64_t rows, cols, ntok;
  std::vector<float> w, x;
  calib_view tokens() const { return {x.data(), ntok, cols}; }
};

expert make(int64_t rows, int64_t cols, int64_t ntok, unsigned seed) {
  std::mt19937 gen(seed);
  std::student_t_distribution<float> td(4.0f);
  std::lognormal_distribution<float> ln(0.0f, 0.7f);
  std::normal_distribution<float> nd;
  expert e{rows, cols, ntok, std::vector<float>(size_t(rows * cols)), std::vector<float>(size_t(ntok * cols))};
  std::vector<float> chs(static_cast<size_t>(cols));
  for (auto& v : e.w) v = 0.014f * td(gen);
  for (auto& v : chs) v = ln(gen);
  for (int64_t t = 0; t < ntok; ++t)
    for (int64_t c = 0; c < cols; ++c) e.x[size_t(t * cols + c)] = chs[size_t(c)] * nd(gen);
  return e;
}

struct comparison {
  int64_t n = 0, equal = 0;
  double abs_diff = 0, abs_ref = 0;
};

// "Equal": within 1e-5 of the row's largest |w| (the params of both sides come from row values that differ in the
// last bits, so the levels are the same while the dequantized values may differ by an ulp).
void compare(const std::vector<float>& ref, const std::vector<float>& got, const expert& e, comparison* c) {
  for (int64_t r = 0; r < e.rows; ++r) {
    float m = 0;
    for (int64_t k = 0; k < e.cols; ++k) m = std::max(m, std::fabs(e.w[size_t(r * e.cols + k)]));
    for (int64_t k = 0; k < e.cols; ++k) {
      const size_t i = size_t(r * e.cols + k);
      const double d = std::fabs(double(ref[i]) - double(got[i]));
      ++c->n;
      if (d <= 1e-5 * m) ++c->equal;
      c->abs_diff += d;
      c->abs_ref += std::fabs(double(ref[i]));
    }
  }
}

method_options int3_g128() {
  method_options o;
  o.bits = 3;
  o.group = 128;
  return o;
}

}  // namespace

// The CPU path is fake_quant_method item by item (this runs everywhere).
TEST(GptqBatch, cpu_path_equals_fake_quant_method) {
  std::vector<expert> ex = {make(32, 256, 40, 1), make(32, 256, 5, 2), make(32, 256, 0, 3)};
  method_options o = int3_g128();
  o.device = compute_device::cpu;
  std::vector<std::vector<float>> out(ex.size(), std::vector<float>(32 * 256));
  std::vector<method_report> rep(ex.size());
  std::vector<gptq_batch_item> items;
  for (size_t k = 0; k < ex.size(); ++k) items.push_back({ex[k].w.data(), ex[k].tokens(), out[k].data(), &rep[k]});
  bool gpu = true;
  ASSERT_TRUE(gptq_quantize_batch(items, 32, 256, o, &gpu).ok());
  EXPECT_FALSE(gpu);
  for (size_t k = 0; k < ex.size(); ++k) {
    method_report r;
    auto ref = fake_quant_method(quant_method::gptq, ex[k].w.data(), 32, 256, ex[k].tokens(), o, &r);
    ASSERT_TRUE(ref.ok());
    EXPECT_EQ(*ref, out[k]) << k;
    EXPECT_EQ(rep[k].fallback, r.fallback) << k;
  }
  EXPECT_EQ(rep[0].fallback, "");
  EXPECT_EQ(rep[1].fallback, "fewer than 8 tokens");
  EXPECT_EQ(rep[2].fallback, "no tokens");
}

// Argument errors name the item; device cuda without a GPU is errc::device (with one, it runs).
TEST(GptqBatch, errors) {
  expert e = make(8, 128, 16, 4);
  std::vector<float> out(8 * 128);
  method_options o = int3_g128();
  std::vector<gptq_batch_item> bad = {{e.w.data(), e.tokens(), out.data(), nullptr},
                                      {e.w.data(), {e.x.data(), 16, 64}, out.data(), nullptr}};
  status st = gptq_quantize_batch(bad, 8, 128, o);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), errc::invalid_argument);
  EXPECT_NE(st.message().find("item 1"), std::string::npos) << st.message();
  o.device = compute_device::cuda;
  std::vector<gptq_batch_item> one = {{e.w.data(), e.tokens(), out.data(), nullptr}};
  std::string why;
  st = gptq_quantize_batch(one, 8, 128, o);
  if (have_gpu(&why)) {
    EXPECT_TRUE(st.ok()) << st.to_string();
  } else {
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.code(), errc::device);
  }
  // auto without a GPU runs on the CPU
  o.device = compute_device::auto_;
  bool gpu = false;
  ASSERT_TRUE(gptq_quantize_batch(one, 8, 128, o, &gpu).ok());
  EXPECT_EQ(gpu, have_gpu(&why));
}

// The case: E = 4 experts of 256 x 512, 600 tokens each, int3 group 128: the GPU equals the CPU reference
// except where a rounding tie flips.
TEST(GptqGpu, matches_cpu_four_experts) {
  REQUIRE_GPU();
  const int64_t rows = 256, cols = 512, E = 4;
  std::vector<expert> ex;
  for (int64_t k = 0; k < E; ++k) ex.push_back(make(rows, cols, 600, 100 + unsigned(k)));
  method_options o = int3_g128();
  o.device = compute_device::cuda;
  std::vector<std::vector<float>> out(size_t(E), std::vector<float>(size_t(rows * cols)));
  std::vector<method_report> rep(static_cast<size_t>(E));
  std::vector<gptq_batch_item> items;
  for (int64_t k = 0; k < E; ++k) items.push_back({ex[k].w.data(), ex[k].tokens(), out[k].data(), &rep[k]});
  bool gpu = false;
  status st = gptq_quantize_batch(items, rows, cols, o, &gpu);
  ASSERT_TRUE(st.ok()) << st.to_string();
  EXPECT_TRUE(gpu);
  comparison c;
  for (int64_t k = 0; k < E; ++k) {
    EXPECT_EQ(rep[k].fallback, "") << k;
    o.device = compute_device::cpu;
    auto ref = fake_quant_method(quant_method::gptq, ex[k].w.data(), rows, cols, ex[k].tokens(), o);
    ASSERT_TRUE(ref.ok());
    compare(*ref, out[k], ex[k], &c);
    const double n_cpu = output_nmse(ex[k].w.data(), ref->data(), rows, cols, ex[k].tokens());
    const double n_gpu = output_nmse(ex[k].w.data(), out[k].data(), rows, cols, ex[k].tokens());
    std::vector<float> rtn(size_t(rows * cols));
    rtn_asym(ex[k].w.data(), rtn.data(), rows, cols, 3, 128);
    const double n_rtn = output_nmse(ex[k].w.data(), rtn.data(), rows, cols, ex[k].tokens());
    EXPECT_NEAR(n_gpu, n_cpu, 1e-4 * n_cpu) << "expert " << k;
    EXPECT_LT(n_gpu, n_rtn) << "expert " << k;
  }
  EXPECT_GE(double(c.equal), 0.999 * double(c.n)) << c.equal << " of " << c.n << " equal";
  EXPECT_LE(c.abs_diff, 1e-3 * c.abs_ref) << "mean |gpu - cpu| / mean |cpu|";
}

// One batch with every per-expert path: 5 tokens (rtn-asym on the CPU), a dead column, NaN tokens (the Cholesky
// fails -> rtn-asym), and a plain expert; each equals what fake_quant_method reports and computes.
TEST(GptqGpu, fallbacks_and_dead_column) {
  REQUIRE_GPU();
  const int64_t rows = 64, cols = 256;
  std::vector<expert> ex = {make(rows, cols, 5, 7), make(rows, cols, 300, 8), make(rows, cols, 300, 9),
                            make(rows, cols, 300, 10)};
  for (int64_t t = 0; t < 300; ++t) ex[1].x[size_t(t * cols + 7)] = 0.0f;  // column 7 is dead
  ex[2].x[3] = std::nanf("");
  method_options o = int3_g128();
  o.device = compute_device::cuda;
  std::vector<std::vector<float>> out(ex.size(), std::vector<float>(size_t(rows * cols)));
  std::vector<method_report> rep(ex.size());
  std::vector<gptq_batch_item> items;
  for (size_t k = 0; k < ex.size(); ++k) items.push_back({ex[k].w.data(), ex[k].tokens(), out[k].data(), &rep[k]});
  status st = gptq_quantize_batch(items, rows, cols, o);
  ASSERT_TRUE(st.ok()) << st.to_string();
  EXPECT_EQ(rep[0].fallback, "fewer than 8 tokens");
  EXPECT_EQ(rep[1].fallback, "");
  EXPECT_EQ(rep[1].gptq_dead_columns, 1);
  EXPECT_EQ(rep[2].fallback, "cholesky failed");
  EXPECT_EQ(rep[3].fallback, "");
  EXPECT_EQ(rep[3].gptq_dead_columns, 0);
  o.device = compute_device::cpu;
  for (size_t k = 0; k < ex.size(); ++k) {
    method_report r;
    auto ref = fake_quant_method(quant_method::gptq, ex[k].w.data(), rows, cols, ex[k].tokens(), o, &r);
    ASSERT_TRUE(ref.ok());
    EXPECT_EQ(r.fallback, rep[k].fallback) << k;
    EXPECT_EQ(r.gptq_dead_columns, rep[k].gptq_dead_columns) << k;
    if (!r.fallback.empty()) {
      EXPECT_EQ(*ref, out[k]) << k;  // rtn-asym, computed on the CPU by both
      continue;
    }
    comparison c;
    compare(*ref, out[k], ex[k], &c);
    EXPECT_GE(double(c.equal), 0.99 * double(c.n)) << k << ": " << c.equal << " of " << c.n << " equal";
    EXPECT_LE(c.abs_diff, 1e-3 * c.abs_ref) << k;
  }
  for (int64_t r = 0; r < rows; ++r) EXPECT_TRUE(std::isfinite(out[1][size_t(r * cols + 7)]));
}
