#include "engine/ops.h"

#include <algorithm>
#include <cmath>

#include "util/numeric.h"
#include "util/parallel.h"

namespace razor::engine {

linear make_linear(const tensor_f32& w, int64_t row0, int64_t n_rows) {
  linear l;
  int64_t rows = w.rows();
  if (n_rows < 0) n_rows = rows - row0;
  l.in = w.cols();
  l.out = n_rows;
  l.wt.resize(size_t(l.in * l.out));
  for (int64_t o = 0; o < l.out; ++o) {
    const float* src = w.data.data() + size_t((row0 + o) * l.in);
    for (int64_t i = 0; i < l.in; ++i) l.wt[size_t(i * l.out + o)] = src[i];
  }
  return l;
}

linear make_linear_cat(const std::vector<const tensor_f32*>& ws) {
  linear l;
  l.in = ws.empty() ? 0 : ws[0]->cols();
  for (auto* w : ws) l.out += w->rows();
  l.wt.resize(size_t(l.in * l.out));
  int64_t o0 = 0;
  for (auto* w : ws) {
    for (int64_t o = 0; o < w->rows(); ++o) {
      const float* src = w->data.data() + size_t(o * l.in);
      for (int64_t i = 0; i < l.in; ++i) l.wt[size_t(i * l.out + o0 + o)] = src[i];
    }
    o0 += w->rows();
  }
  return l;
}

linear make_linear(tensor_f32&& w, weight_layout layout) {
  if (layout == weight_layout::transposed) return make_linear(w);
  linear l;
  l.in = w.cols();
  l.out = w.rows();
  l.wt = std::move(w.data);
  l.rows = true;
  return l;
}

linear make_linear_cat(std::vector<tensor_f32>&& ws, weight_layout layout) {
  if (layout == weight_layout::transposed) {
    std::vector<const tensor_f32*> ps;
    for (const auto& w : ws) ps.push_back(&w);
    return make_linear_cat(ps);
  }
  if (ws.size() == 1) return make_linear(std::move(ws[0]), layout);
  linear l;
  l.in = ws.empty() ? 0 : ws[0].cols();
  l.rows = true;
  for (const auto& w : ws) l.out += w.rows();
  l.wt.reserve(size_t(l.in * l.out));
  for (const auto& w : ws) l.wt.insert(l.wt.end(), w.data.begin(), w.data.end());
  return l;
}

float linear::at(int64_t r, int64_t i) const {
  if (bf16) return bf16_to_f32(bf16[size_t(r * in + i)]);
  return rows ? wt[size_t(r * in + i)] : wt[size_t(i * out + r)];
}

double linear::row_norm(int64_t r) const {
  double s = 0;
  for (int64_t i = 0; i < in; ++i) {
    const double v = at(r, i);
    s += v * v;
  }
  return std::sqrt(s);
}

namespace {
// Sum of squares in double with eight independent partial sums (3-4x a single chain on one core).
template <class Get>
double sum_sq_of(size_t n, Get get) {
  double a[8] = {};
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) {
      const double v = get(i + size_t(k));
      a[k] += v * v;
    }
  for (; i < n; ++i) {
    const double v = get(i);
    a[0] += v * v;
  }
  return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}
}  // namespace

double linear::sum_sq() const {
  if (bf16) return sum_sq_of(size_t(in * out), [&](size_t i) { return bf16_to_f32(bf16[i]); });
  return sum_sq_of(wt.size(), [&](size_t i) { return wt[i]; });
}

namespace {

constexpr size_t kRows = 4;    // rows of x per register block
constexpr size_t kCols = 64;   // outputs per block: 4 x 64 accumulators stay in L1

// One block: y[r][j0 .. j0+nc) for r < nr, over all of `in`.
__attribute__((target_clones("avx512f", "avx2", "default"))) void gemm_block(const float* x, size_t ldx, size_t nr,
                                                                              const float* wt, size_t out,
                                                                              size_t in, size_t j0, size_t nc,
                                                                              float* y, size_t ldy) {
  float acc[kRows][kCols];
  for (size_t r = 0; r < kRows; ++r)
    for (size_t j = 0; j < kCols; ++j) acc[r][j] = 0.0f;
  if (nr == kRows && nc == kCols) {
    for (size_t k = 0; k < in; ++k) {
      const float* w = wt + k * out + j0;
      float x0 = x[k], x1 = x[ldx + k], x2 = x[2 * ldx + k], x3 = x[3 * ldx + k];
      for (size_t j = 0; j < kCols; ++j) {
        float wj = w[j];
        acc[0][j] += x0 * wj;
        acc[1][j] += x1 * wj;
        acc[2][j] += x2 * wj;
        acc[3][j] += x3 * wj;
      }
    }
  } else {
    for (size_t k = 0; k < in; ++k) {
      const float* w = wt + k * out + j0;
      for (size_t r = 0; r < nr; ++r) {
        float xr = x[r * ldx + k];
        for (size_t j = 0; j < nc; ++j) acc[r][j] += xr * w[j];
      }
    }
  }
  for (size_t r = 0; r < nr; ++r)
    for (size_t j = 0; j < nc; ++j) y[r * ldy + j0 + j] = acc[r][j];
}

}  // namespace

void matmul(const float* x, size_t n, const linear& w, float* y, size_t ldx, size_t ldy, int threads) {
  size_t in = size_t(w.in), out = size_t(w.out);
  if (!ldx) ldx = in;
  if (!ldy) ldy = out;
  size_t n_rb = (n + kRows - 1) / kRows, n_cb = (out + kCols - 1) / kCols;
  // Tiles ordered column-block-major, so a thread's consecutive tiles reuse one [in x 64] slice of W.
  parallel_for(
      n_rb * n_cb,
      [&](size_t b, size_t e) {
        for (size_t t = b; t < e; ++t) {
          size_t cb = t / n_rb, rb = t % n_rb;
          size_t r0 = rb * kRows, j0 = cb * kCols;
          gemm_block(x + r0 * ldx, ldx, std::min(kRows, n - r0), w.wt.data(), out, in, j0,
                     std::min(kCols, out - j0), y + r0 * ldy, ldy);
        }
      },
      16, threads);
}

void rms_norm(const float* x, size_t n, size_t dim, const float* w, float eps, float* out) {
  for (size_t r = 0; r < n; ++r) {
    const float* a = x + r * dim;
    float ss = 0.0f;
    for (size_t i = 0; i < dim; ++i) ss += a[i] * a[i];
    float inv = 1.0f / std::sqrt(ss / float(dim) + eps);
    float* o = out + r * dim;
    for (size_t i = 0; i < dim; ++i) o[i] = a[i] * inv * w[i];
  }
}

std::vector<float> rope_inv_freq(int64_t rot, double theta) {
  std::vector<float> f(size_t(rot / 2));
  for (int64_t i = 0; i < rot / 2; ++i) f[size_t(i)] = float(1.0 / std::pow(theta, double(2 * i) / double(rot)));
  return f;
}

std::vector<float> rope_inv_freq_yarn(int64_t rot, double theta, double factor, int64_t orig_ctx, double beta_fast,
                                      double beta_slow) {
  std::vector<float> f = rope_inv_freq(rot, theta);
  // Pair i's frequency blends base^(-2i/rot) (extrapolated) into it / factor (interpolated) along a ramp between
  // the correction dimensions of beta_fast and beta_slow, floored / ceiled (ggml's rope_yarn_corr_dims / rope_yarn_ramp).
  const double r = double(rot), two_pi = 2.0 * 3.14159265358979323846;
  auto corr = [&](double beta) { return r * std::log(double(orig_ctx) / (beta * two_pi)) / (2.0 * std::log(theta)); };
  const double low = std::max(0.0, std::floor(corr(beta_fast)));
  const double high = std::min(r - 1.0, std::ceil(corr(beta_slow)));
  for (size_t i = 0; i < f.size(); ++i) {
    const double y = (double(i) - low) / std::max(0.001, high - low);
    const double extrap_mix = 1.0 - std::min(1.0, std::max(0.0, y));
    const double extrap = f[i], interp = extrap / factor;
    f[i] = float(interp * (1.0 - extrap_mix) + extrap * extrap_mix);
  }
  return f;
}

void rope_neox(float* h, int64_t rot, const float* inv_freq, double pos) {
  int64_t half = rot / 2;
  for (int64_t i = 0; i < half; ++i) {
    // PyTorch computes the angle in float32 (inv_freq float32 times position), then cos/sin of it.
    float ang = float(pos) * inv_freq[i];
    float c = std::cos(ang), s = std::sin(ang);
    float a = h[i], b = h[i + half];
    h[i] = a * c - b * s;
    h[i + half] = b * c + a * s;
  }
}

}  // namespace razor::engine
