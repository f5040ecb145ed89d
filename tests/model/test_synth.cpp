// synth --heavy-tails (model/synth.h): the realistic distribution the 122B-layout slices use for timing,
// checked by its moments and its outlier columns; the same seed writes the same bytes.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

#include "common/test_util.h"
#include "model/checkpoint.h"
#include "model/synth.h"
#include "util/json_limits.h"

namespace fs = std::filesystem;
using namespace razor;

namespace {

struct scratch : razor::test::scratch_dir {
  scratch() : scratch_dir("synth-heavy") {}
};

std::string file_bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

}  // namespace

TEST(SynthHeavyTails, MomentsOutlierColumnsAndDeterminism) {
  scratch d;
  auto j = read_json_file(std::string(RAZOR_MODELS_DIR) + "/tiny-qwen3-moe/config.json", json_limits{});
  ASSERT_TRUE(j.ok());
  synth_options opt;
  opt.heavy_tails = true;
  ASSERT_TRUE(synth_checkpoint(*j, (d.dir / "a").string(), opt).ok());
  ASSERT_TRUE(synth_checkpoint(*j, (d.dir / "b").string(), opt).ok());
  for (auto& e : fs::directory_iterator(d.dir / "a"))
    if (e.path().extension() == ".safetensors")
      EXPECT_EQ(file_bytes(e.path()), file_bytes(d.dir / "b" / e.path().filename())) << e.path();

  auto ck = checkpoint::open((d.dir / "a").string());
  ASSERT_TRUE(ck.ok());
  // Pooled over every routed expert matrix (the largest sample): variance, kurtosis and the share of values
  // beyond 4 standard deviations (a Gaussian has 6e-5; the 4-uniform sum of the default has none).
  double s2 = 0, s4 = 0, n = 0, beyond = 0;
  int checked_cols = 0;
  for (auto& t : ck->tensors()) {
    if (t.cls.role != tensor_role::routed_expert) continue;
    auto v = ck->read_f32(t);
    ASSERT_TRUE(v.ok());
    for (float x : *v) {
      s2 += double(x) * x;
      s4 += double(x) * x * x * x;
      n += 1;
    }
    const int64_t cols = t.shape.back();
    const size_t rows = v->size() / size_t(cols);
    // Column mean squares: an outlier column's is 36x an ordinary one's, so the largest over the median of
    // a matrix with at least one outlier column is far above what row sampling noise gives (~1.5x here).
    std::vector<double> col(size_t(cols), 0.0);
    for (size_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) col[size_t(c)] += double((*v)[r * size_t(cols) + size_t(c)]) * (*v)[r * size_t(cols) + size_t(c)];
    std::vector<double> sorted = col;
    std::sort(sorted.begin(), sorted.end());
    if (sorted.back() > 10 * sorted[sorted.size() / 2]) ++checked_cols;
  }
  ASSERT_GT(n, 1e5);
  const double var = s2 / n, kurt = s4 / n / (var * var);
  const double sd = std::sqrt(var);
  // The overall deviation is opt.stddev within sampling and BF16 rounding (2 %).
  EXPECT_NEAR(sd, opt.stddev, 0.02 * opt.stddev);
  // Kurtosis of the mixture: ~10 by construction, 3 for a Gaussian, 2.6 for the default's 4-uniform sum.
  EXPECT_GT(kurt, 6.0);
  for (auto& t : ck->tensors()) {
    if (t.cls.role != tensor_role::routed_expert) continue;
    auto v = ck->read_f32(t);
    for (float x : *v) beyond += std::fabs(x) > 4 * sd ? 1 : 0;
  }
  EXPECT_GT(beyond / n, 1e-3);
  EXPECT_GT(checked_cols, 0);
}
