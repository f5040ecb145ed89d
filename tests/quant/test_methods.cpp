// The seed's comparison quantizers (core/quant/methods.h): each method on a hand-computed case, worked out here
// independently of methods.cpp (double precision, the textbook formulas: explicit inverse, no lazy blocks, no
// reversal trick), the fallbacks, and the NMSE formula.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "quant/fake_quant.h"
#include "quant/methods.h"

using namespace razor;
using namespace razor::quant;

namespace {

using vecd = std::vector<double>;
using matd = std::vector<vecd>;

// The seed's rtn_asym of one group, in double (the method is float32; the test's cases keep away from ties that
// float and double would round differently, except where a tie is the point and is exact in both).
vecd rtn_group(const vecd& g, int bits) {
  double lo = g[0], hi = g[0];
  for (double v : g) lo = std::min(lo, v), hi = std::max(hi, v);
  double maxq = std::pow(2.0, bits) - 1;
  double s = std::max(hi - lo, 1e-8) / maxq;
  double z = std::nearbyint(-lo / s);
  vecd out;
  for (double v : g) out.push_back((std::clamp(std::nearbyint(v / s) + z, 0.0, maxq) - z) * s);
  return out;
}

// rtn of a rows x cols matrix with groups of `group` columns.
matd rtn_mat(const matd& w, int bits, size_t group) {
  matd out = w;
  for (size_t r = 0; r < w.size(); ++r)
    for (size_t g0 = 0; g0 < w[r].size(); g0 += group) {
      vecd g(w[r].begin() + g0, w[r].begin() + g0 + group);
      vecd q = rtn_group(g, bits);
      std::copy(q.begin(), q.end(), out[r].begin() + g0);
    }
  return out;
}

std::vector<float> flat(const matd& m) {
  std::vector<float> f;
  for (const auto& r : m)
    for (double v : r) f.push_back(float(v));
  return f;
}

// sum over tokens and rows of (x_t . d_r)^2, double.
double out_err(const matd& x, const matd& d) {
  double s = 0;
  for (const auto& xt : x)
    for (const auto& dr : d) {
      double v = 0;
      for (size_t c = 0; c < xt.size(); ++c) v += xt[c] * dr[c];
      s += v * v;
    }
  return s;
}

matd sub(const matd& a, const matd& b) {
  matd d = a;
  for (size_t r = 0; r < a.size(); ++r)
    for (size_t c = 0; c < a[r].size(); ++c) d[r][c] = a[r][c] - b[r][c];
  return d;
}

// Gauss-Jordan inverse with partial pivoting.
matd inverse(matd a) {
  size_t n = a.size();
  matd inv(n, vecd(n, 0.0));
  for (size_t i = 0; i < n; ++i) inv[i][i] = 1;
  for (size_t c = 0; c < n; ++c) {
    size_t p = c;
    for (size_t r = c + 1; r < n; ++r)
      if (std::fabs(a[r][c]) > std::fabs(a[p][c])) p = r;
    std::swap(a[p], a[c]);
    std::swap(inv[p], inv[c]);
    double d = a[c][c];
    for (size_t k = 0; k < n; ++k) a[c][k] /= d, inv[c][k] /= d;
    for (size_t r = 0; r < n; ++r)
      if (r != c) {
        double f = a[r][c];
        for (size_t k = 0; k < n; ++k) a[r][k] -= f * a[c][k], inv[r][k] -= f * inv[c][k];
      }
  }
  return inv;
}

// Upper Cholesky factor U of a (a = U^T U), textbook order.
matd chol_upper(const matd& a) {
  size_t n = a.size();
  matd u(n, vecd(n, 0.0));
  for (size_t i = 0; i < n; ++i) {
    double s = a[i][i];
    for (size_t k = 0; k < i; ++k) s -= u[k][i] * u[k][i];
    u[i][i] = std::sqrt(s);
    for (size_t j = i + 1; j < n; ++j) {
      double t = a[i][j];
      for (size_t k = 0; k < i; ++k) t -= u[k][i] * u[k][j];
      u[i][j] = t / u[i][i];
    }
  }
  return u;
}

// The damped Hessian as the seed builds it (dead columns not handled: the tests' tokens have none).
matd hessian(const matd& x, double damp) {
  size_t n = x[0].size();
  matd h(n, vecd(n, 0.0));
  for (const auto& t : x)
    for (size_t i = 0; i < n; ++i)
      for (size_t j = 0; j < n; ++j) h[i][j] += t[i] * t[j];
  double m = 0;
  for (size_t i = 0; i < n; ++i) m += h[i][i];
  for (size_t i = 0; i < n; ++i) h[i][i] += damp * m / double(n);
  return h;
}

// GPTQ without lazy blocks (every column's error goes to every later column at once), group params from the
// current row when the group starts.
matd gptq_plain(matd w, const matd& x, int bits, size_t group, double damp) {
  matd u = chol_upper(inverse(hessian(x, damp)));
  size_t n = w[0].size();
  matd q = w;
  for (auto& row : w) {
    size_t r = size_t(&row - &w[0]);
    double lo = 0, s = 1, z = 0, maxq = std::pow(2.0, bits) - 1;
    for (size_t i = 0; i < n; ++i) {
      if (i % group == 0) {
        lo = row[i];
        double hi = row[i];
        for (size_t k = i; k < i + group; ++k) lo = std::min(lo, row[k]), hi = std::max(hi, row[k]);
        s = std::max(hi - lo, 1e-8) / maxq;
        z = std::nearbyint(-lo / s);
      }
      double qi = (std::clamp(std::nearbyint(row[i] / s) + z, 0.0, maxq) - z) * s;
      q[r][i] = qi;
      double e = (row[i] - qi) / u[i][i];
      for (size_t j = i + 1; j < n; ++j) row[j] -= e * u[i][j];
    }
  }
  return q;
}

// The 4 x 8 case: weights and 12 tokens with one loud input channel (column 2) and one quiet (column 5).
const matd kW = {{0.31, -0.42, 0.05, 0.77, -0.13, 0.26, -0.58, 0.49},
                 {-0.21, 0.64, -0.37, 0.12, 0.45, -0.71, 0.08, -0.16},
                 {0.52, 0.03, 0.29, -0.44, -0.66, 0.17, 0.38, -0.09},
                 {-0.07, -0.25, 0.61, 0.34, 0.19, -0.53, -0.31, 0.72}};

matd tokens12() {
  matd x;
  std::mt19937 g(7);
  std::uniform_real_distribution<double> u(-1, 1);
  for (int t = 0; t < 12; ++t) {
    vecd v(8);
    for (int c = 0; c < 8; ++c) v[c] = std::round(u(g) * 8) / 8 * (c == 2 ? 6.0 : (c == 5 ? 0.1 : 1.0));
    x.push_back(v);
  }
  return x;
}

calib_view view(const std::vector<float>& xf, int64_t cols) { return {xf.data(), int64_t(xf.size()) / cols, cols}; }

void expect_near_mat(const std::vector<float>& got, const matd& want, double tol) {
  size_t k = 0;
  for (size_t r = 0; r < want.size(); ++r)
    for (size_t c = 0; c < want[r].size(); ++c, ++k)
      EXPECT_NEAR(got[k], want[r][c], tol) << "row " << r << " col " << c;
}

}  // namespace

TEST(QuantMethods, TableNamesAndParse) {
  for (quant_method m : all_quant_methods()) {
    auto p = parse_quant_method(quant_method_name(m));
    ASSERT_TRUE(p.ok());
    EXPECT_EQ(*p, m);
  }
  EXPECT_EQ(quant_method_name(quant_method::rtn_asym), "rtn-asym");
  ASSERT_TRUE(parse_quant_method("rtn_asym").ok());
  EXPECT_EQ(*parse_quant_method("rtn_asym"), quant_method::rtn_asym);
  auto bad = parse_quant_method("spinquant");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), errc::invalid_argument);
  EXPECT_NE(bad.error().message().find("spinquant"), std::string::npos);
  EXPECT_TRUE(quant_method_needs_tokens(quant_method::awq));
  EXPECT_TRUE(quant_method_needs_tokens(quant_method::gptq));
  EXPECT_FALSE(quant_method_needs_tokens(quant_method::hqq));
  EXPECT_FALSE(quant_method_needs_tokens(quant_method::clip));
}

TEST(QuantMethods, RtnAsymByHand) {
  // Row 0: 0..7 at 3 bits: s = 1, z = 0, exact. Row 1 at 2 bits: s = 3.5/3, z = rint(0.857) = 1.
  // Row 2: ties at s = 1 (w/s = 0.5, 1.5, 2.5 round half to even: 0, 2, 2). Row 3: a constant group.
  const float w[4 * 8] = {0, 1, 2, 3, 4, 5, 6, 7,                          //
                          -1, -0.5f, 0, 0.5f, 1, 1.5f, 2, 2.5f,             //
                          0, 0.5f, 1.5f, 2.5f, 3, 3, 3, 3,                  //
                          0.3f, 0.3f, 0.3f, 0.3f, 0.3f, 0.3f, 0.3f, 0.3f};
  method_options o;
  o.group = 8;
  calib_view none;
  const double s1 = 3.5 / 3;
  const double want[3][8] = {{0, 1, 2, 3, 4, 5, 6, 7},
                             {-s1, 0, 0, 0, s1, s1, 2 * s1, 2 * s1},
                             {0, 0, 2, 2, 3, 3, 3, 3}};
  o.bits = 3;
  auto r3 = fake_quant_method(quant_method::rtn_asym, w, 4, 8, none, o);
  ASSERT_TRUE(r3.ok());
  for (int c = 0; c < 8; ++c) EXPECT_EQ((*r3)[c], float(want[0][c]));
  for (int c = 0; c < 8; ++c) EXPECT_NEAR((*r3)[24 + c], 0.3, 1e-6);
  o.bits = 2;
  auto r2 = fake_quant_method(quant_method::rtn_asym, w, 4, 8, none, o);
  ASSERT_TRUE(r2.ok());
  for (int c = 0; c < 8; ++c) EXPECT_NEAR((*r2)[8 + c], want[1][c], 1e-6) << c;
  for (int c = 0; c < 8; ++c) EXPECT_EQ((*r2)[16 + c], float(want[2][c])) << c;
  // group 4: each half of row 1 on its own ([-1, 0.5] and [1, 2.5], both s = 0.5 at 2 bits)
  o.group = 4;
  auto g4 = fake_quant_method(quant_method::rtn_asym, w, 4, 8, none, o);
  ASSERT_TRUE(g4.ok());
  const float want_g4[8] = {-1, -0.5f, 0, 0.5f, 1, 1.5f, 2, 2.5f};
  for (int c = 0; c < 8; ++c) EXPECT_NEAR((*g4)[8 + c], want_g4[c], 1e-6) << c;
  // group 3 does not divide 8: the whole row is one group (same as group 8)
  o.group = 3;
  auto g3 = fake_quant_method(quant_method::rtn_asym, w, 4, 8, none, o);
  ASSERT_TRUE(g3.ok());
  EXPECT_EQ(*g3, *r2);
}

TEST(QuantMethods, ClipAndAbsmaxAreTheSeedFakeQuant) {
  std::vector<float> w = flat(kW);
  for (quant_method m : {quant_method::clip, quant_method::absmax}) {
    method_options o;
    o.group = 4;
    fq_params p;
    p.tag = 3;
    p.group = 4;
    p.clip_steps = m == quant_method::clip ? o.clip_steps : 0;
    std::vector<float> ref(w.size());
    ASSERT_TRUE(fake_quant_rows_ref(w.data(), ref.data(), 4, 8, p).ok());
    auto got = fake_quant_method(m, w.data(), 4, 8, {}, o);
    ASSERT_TRUE(got.ok());
    EXPECT_EQ(*got, ref) << quant_method_name(m);
  }
  // absmax by hand on row 0's first group {0.31, -0.42, 0.05, 0.77}: qmax 3, scale 0.77/3
  method_options o;
  o.group = 4;
  auto a = fake_quant_method(quant_method::absmax, flat(kW).data(), 4, 8, {}, o);
  ASSERT_TRUE(a.ok());
  double s = 0.77 / 3;
  const double want[4] = {1 * s, -2 * s, 0, 3 * s};
  for (int c = 0; c < 4; ++c) EXPECT_NEAR((*a)[c], want[c], 1e-6);
}

TEST(QuantMethods, AwqPicksTheBruteForceBestAlpha) {
  matd x = tokens12();
  std::vector<float> xf = flat(x), w = flat(kW);
  method_options o;
  o.group = 4;
  o.bits = 3;
  // brute force: every alpha of the 20-point grid, in double
  vecd xs(8, 0.0);
  for (const auto& t : x)
    for (int c = 0; c < 8; ++c) xs[c] += std::fabs(t[c]) / double(x.size());
  double best = 1e300;
  int best_i = -1;
  matd best_q;
  for (int i = 0; i < 20; ++i) {
    double alpha = i / 19.0;
    vecd s(8);
    double mean = 0;
    for (int c = 0; c < 8; ++c) mean += (s[c] = std::pow(std::max(xs[c], 1e-6), alpha)) / 8;
    for (int c = 0; c < 8; ++c) s[c] = std::max(s[c] / mean, 1e-4);
    matd ws = kW;
    for (auto& r : ws)
      for (int c = 0; c < 8; ++c) r[c] *= s[c];
    matd q = rtn_mat(ws, 3, 4);
    for (auto& r : q)
      for (int c = 0; c < 8; ++c) r[c] /= s[c];
    double e = out_err(x, sub(q, kW));
    if (e < best) best = e, best_i = i, best_q = q;
  }
  ASSERT_GT(best_i, 0);  // the case is built so that scaling helps (alpha 0 is plain RTN)
  method_report rep;
  auto got = fake_quant_method(quant_method::awq, w.data(), 4, 8, view(xf, 8), o, &rep);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(rep.fallback, "");
  EXPECT_NEAR(rep.awq_alpha, best_i / 19.0, 1e-12);
  expect_near_mat(*got, best_q, 1e-5);
  // and it beats plain RTN on the output error
  matd rtn = rtn_mat(kW, 3, 4);
  EXPECT_LT(best, out_err(x, sub(rtn, kW)));
}

TEST(QuantMethods, AwqWithoutTokensIsRtn) {
  std::vector<float> w = flat(kW);
  method_options o;
  o.group = 4;
  method_report rep;
  auto a = fake_quant_method(quant_method::awq, w.data(), 4, 8, {}, o, &rep);
  auto r = fake_quant_method(quant_method::rtn_asym, w.data(), 4, 8, {}, o);
  ASSERT_TRUE(a.ok() && r.ok());
  EXPECT_EQ(*a, *r);
  EXPECT_EQ(rep.fallback, "no tokens");
}

TEST(QuantMethods, GptqOneColumnIsRtn) {
  const float w[4] = {0.3f, -1.2f, 2.5f, 0.0f};
  std::vector<float> xf;
  for (int t = 0; t < 9; ++t) xf.push_back(0.5f + 0.25f * float(t));
  method_options o;
  o.bits = 2;
  method_report rep;
  auto g = fake_quant_method(quant_method::gptq, w, 4, 1, view(xf, 1), o, &rep);
  auto r = fake_quant_method(quant_method::rtn_asym, w, 4, 1, {}, o);
  ASSERT_TRUE(g.ok() && r.ok());
  EXPECT_EQ(rep.fallback, "");
  EXPECT_EQ(*g, *r);
}

TEST(QuantMethods, GptqTwoColumnsByHand) {
  // H = X^T X + damp; the upper Cholesky factor U of H^-1 has U01/U00 = Hinv01/Hinv00 = -H01/H11, so the first
  // column's error moves the second weight by (w0 - q0) * H01 / H11 before it is quantized.
  std::vector<float> xf = {1, 0.5f, 2, 1, -1, -0.5f, 0.5f, 1, 1, 1, 0, 1, 2, 1.5f, -1, 0};  // 8 tokens x 2
  double h00 = 0, h01 = 0, h11 = 0;
  for (int t = 0; t < 8; ++t) h00 += xf[2 * t] * xf[2 * t], h01 += xf[2 * t] * xf[2 * t + 1], h11 += xf[2 * t + 1] * xf[2 * t + 1];
  double damp = 0.01 * (h00 + h11) / 2;
  h11 += damp;
  const float w[4 * 2] = {0.4f, 1.0f, -0.7f, 0.2f, 1.3f, -0.9f, 0.05f, 0.6f};
  method_options o;
  o.bits = 2;
  o.group = 2;
  auto g = fake_quant_method(quant_method::gptq, w, 4, 2, view(xf, 2), o);
  ASSERT_TRUE(g.ok());
  for (int r = 0; r < 4; ++r) {
    vecd row = {w[2 * r], w[2 * r + 1]};
    double lo = std::min(row[0], row[1]), hi = std::max(row[0], row[1]);
    double s = (hi - lo) / 3, z = std::nearbyint(-lo / s);
    auto fq = [&](double v) { return (std::clamp(std::nearbyint(v / s) + z, 0.0, 3.0) - z) * s; };
    double q0 = fq(row[0]);
    double w1 = row[1] + (row[0] - q0) * h01 / h11;
    double q1 = fq(w1);
    EXPECT_NEAR((*g)[2 * r], q0, 1e-6) << r;
    EXPECT_NEAR((*g)[2 * r + 1], q1, 1e-5) << r;
  }
}

TEST(QuantMethods, GptqMatchesThePlainAlgorithmWithLazyBlocks) {
  matd x = tokens12();
  std::vector<float> xf = flat(x), w = flat(kW);
  matd want = gptq_plain(kW, x, 3, 4, 0.01);
  for (int64_t block : {1, 2, 3, 4, 8, 128}) {
    method_options o;
    o.bits = 3;
    o.group = 4;
    o.gptq_block = block;
    method_report rep;
    auto g = fake_quant_method(quant_method::gptq, w.data(), 4, 8, view(xf, 8), o, &rep);
    ASSERT_TRUE(g.ok());
    EXPECT_EQ(rep.fallback, "");
    SCOPED_TRACE("block " + std::to_string(block));
    expect_near_mat(*g, want, 2e-5);
  }
  // GPTQ lowers the in-sample output error against RTN on this case
  method_options o;
  o.group = 4;
  auto g = fake_quant_method(quant_method::gptq, w.data(), 4, 8, view(xf, 8), o);
  auto r = fake_quant_method(quant_method::rtn_asym, w.data(), 4, 8, {}, o);
  ASSERT_TRUE(g.ok() && r.ok());
  EXPECT_LT(output_nmse(w.data(), g->data(), 4, 8, view(xf, 8)), output_nmse(w.data(), r->data(), 4, 8, view(xf, 8)));
}

TEST(QuantMethods, GptqHinvIsTheUpperCholeskyOfTheInverse) {
  // 6 columns (one block of the blocked loops), 70 (three blocks of 32, the last one partial) and 300 (three
  // Cholesky panels of 128, the trailing updates between them)
  for (int n : {6, 70, 300}) {
    std::mt19937 gen(3);
    std::normal_distribution<double> nd;
    matd x(size_t(n + 30), vecd(size_t(n)));
    for (auto& t : x)
      for (auto& v : t) v = nd(gen);
    std::vector<float> xf = flat(x);
    for (size_t k = 0; k < xf.size(); ++k) x[k / size_t(n)][k % size_t(n)] = xf[k];  // the floats the method sees
    auto h = gptq_prepare(view(xf, n), 0.01, 2);
    ASSERT_TRUE(h.ok());
    EXPECT_EQ(h->n_dead, 0);
    matd want = chol_upper(inverse(hessian(x, 0.01)));
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < n; ++j)
        ASSERT_NEAR(h->u[size_t(i * n + j)], j >= i ? want[i][j] : 0.0, 1e-5 * std::fabs(want[i][i]) + 1e-7)
            << "n " << n << " at " << i << ", " << j;
  }
}

TEST(QuantMethods, GptqFallbacks) {
  std::vector<float> w = flat(kW);
  method_options o;
  o.group = 4;
  auto rtn = fake_quant_method(quant_method::rtn_asym, w.data(), 4, 8, {}, o);
  ASSERT_TRUE(rtn.ok());
  method_report rep;
  // no tokens
  auto a = fake_quant_method(quant_method::gptq, w.data(), 4, 8, {}, o, &rep);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(rep.fallback, "no tokens");
  EXPECT_EQ(*a, *rtn);
  // 7 tokens
  std::vector<float> x7 = flat(tokens12());
  x7.resize(7 * 8);
  auto b = fake_quant_method(quant_method::gptq, w.data(), 4, 8, view(x7, 8), o, &rep);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(rep.fallback, "fewer than 8 tokens");
  EXPECT_EQ(*b, *rtn);
  // a singular H without damping: every token is a constant vector, H = 4 * ones (rank 1), the second pivot is 0
  std::vector<float> xs;
  for (int t = 0; t < 8; ++t)
    for (int c = 0; c < 8; ++c) xs.push_back(t < 4 ? 1.0f : 0.0f);
  o.gptq_damp = 0;
  auto c = fake_quant_method(quant_method::gptq, w.data(), 4, 8, view(xs, 8), o, &rep);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(rep.fallback, "cholesky failed");
  EXPECT_EQ(*c, *rtn);
  // with the seed's damping the same tokens work
  o.gptq_damp = 0.01;
  auto d = fake_quant_method(quant_method::gptq, w.data(), 4, 8, view(xs, 8), o, &rep);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(rep.fallback, "");
  // NaN tokens: the Cholesky fails too
  std::vector<float> xn = flat(tokens12());
  xn[3] = std::nanf("");
  auto e = fake_quant_method(quant_method::gptq, w.data(), 4, 8, view(xn, 8), o, &rep);
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(rep.fallback, "cholesky failed");
  EXPECT_EQ(*e, *rtn);
}

TEST(QuantMethods, GptqDeadColumns) {
  std::vector<float> xf = flat(tokens12());
  for (int t = 0; t < 12; ++t) xf[t * 8 + 5] = 0;  // input channel 5 never fires
  std::vector<float> w = flat(kW);
  method_options o;
  o.group = 4;
  method_report rep;
  auto g = fake_quant_method(quant_method::gptq, w.data(), 4, 8, view(xf, 8), o, &rep);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(rep.fallback, "");
  EXPECT_EQ(rep.gptq_dead_columns, 1);
  // the dead column's weights are zeroed before quantization: the result does not depend on them
  std::vector<float> w2 = w;
  for (int r = 0; r < 4; ++r) w2[r * 8 + 5] = 0;
  auto g2 = fake_quant_method(quant_method::gptq, w2.data(), 4, 8, view(xf, 8), o);
  ASSERT_TRUE(g2.ok());
  EXPECT_EQ(*g, *g2);
}

TEST(QuantMethods, OutputNmseFormula) {
  // W = [1, 2], Wq = [1, 1], X = [[1, 1], [2, 0]]: X W^T = [3, 2], X Wq^T = [2, 2]; NMSE = (1 + 0) / (9 + 4)
  const float w[2] = {1, 2}, wq[2] = {1, 1}, x[4] = {1, 1, 2, 0};
  EXPECT_NEAR(output_nmse(w, wq, 1, 2, {x, 2, 2}), 1.0 / 13.0, 1e-12);
  EXPECT_EQ(output_nmse(w, w, 1, 2, {x, 2, 2}), 0.0);
  EXPECT_TRUE(std::isnan(output_nmse(w, wq, 1, 2, {})));
  // the 4 x 8 case against the double formula
  matd xm = tokens12();
  std::vector<float> xf = flat(xm), wf = flat(kW);
  matd q = rtn_mat(kW, 3, 4);
  std::vector<float> qf = flat(q);
  matd qm = kW;
  for (size_t k = 0; k < qf.size(); ++k) qm[k / 8][k % 8] = qf[k];
  matd wm = kW;
  for (size_t k = 0; k < wf.size(); ++k) wm[k / 8][k % 8] = wf[k];
  matd zero(4, vecd(8, 0.0));
  double want = out_err(xm, sub(qm, wm)) / out_err(xm, sub(wm, zero));
  EXPECT_NEAR(output_nmse(wf.data(), qf.data(), 4, 8, view(xf, 8)), want, 1e-6 * want);
}

namespace {
// HQQ's starting point (optimize=False) and its L1 error, in float as HQQ computes it.
std::vector<float> hqq_start(const std::vector<float>& w, int bits, size_t group) {
  std::vector<float> out(w.size());
  float maxq = float((1 << bits) - 1);
  for (size_t g0 = 0; g0 < w.size(); g0 += group) {
    float lo = w[g0], hi = w[g0];
    for (size_t k = g0; k < g0 + group; ++k) lo = std::min(lo, w[k]), hi = std::max(hi, w[k]);
    float a = std::min(maxq / (hi - lo), 2e4f), z = -lo * a;
    if (bits == 4) z = std::nearbyint(z);
    for (size_t k = g0; k < g0 + group; ++k) out[k] = (std::clamp(std::nearbyint(w[k] * a + z), 0.0f, maxq) - z) * (1.0f / a);
  }
  return out;
}
double l1(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t k = 0; k < a.size(); ++k) s += std::fabs(double(a[k]) - double(b[k]));
  return s / double(a.size());
}
}  // namespace

TEST(QuantMethods, HqqByHand) {
  std::vector<float> w = flat(kW);
  method_options o;
  o.group = 4;
  for (int bits : {3, 4}) {
    o.bits = bits;
    // zero iterations: HQQ's start
    o.hqq_iters = 0;
    auto s = fake_quant_method(quant_method::hqq, w.data(), 4, 8, {}, o);
    ASSERT_TRUE(s.ok());
    EXPECT_EQ(*s, hqq_start(w, bits, 4));
    // one iteration, in double: the zero moves to mean(Wq - (W - shrink(W - Wr)) * a) per group
    o.hqq_iters = 1;
    auto one = fake_quant_method(quant_method::hqq, w.data(), 4, 8, {}, o);
    ASSERT_TRUE(one.ok());
    double maxq = (1 << bits) - 1;
    for (size_t g0 = 0; g0 < w.size(); g0 += 4) {
      double lo = w[g0], hi = w[g0];
      for (size_t k = g0; k < g0 + 4; ++k) lo = std::min<double>(lo, w[k]), hi = std::max<double>(hi, w[k]);
      double a = float(maxq / float(hi - lo)), z = -lo * a;
      if (bits == 4) z = std::nearbyint(z);
      double zs = 0;
      for (size_t k = g0; k < g0 + 4; ++k) {
        double q = std::clamp(std::nearbyint(w[k] * a + z), 0.0, maxq);
        double d = w[k] - (q - z) / a;
        double sh = std::max(std::fabs(d) - std::pow(std::fabs(d), -0.3) / 10.0, 0.0);
        zs += q - (w[k] - (d > 0 ? sh : -sh)) * a;
      }
      double z1 = zs / 4;
      for (size_t k = g0; k < g0 + 4; ++k) {
        double want = (std::clamp(std::nearbyint(w[k] * a + z1), 0.0, maxq) - z1) / a;
        EXPECT_NEAR((*one)[k], want, 1e-5) << "bits " << bits << " k " << k;
      }
    }
  }
}

TEST(QuantMethods, HqqNeverWorseThanItsStart) {
  std::mt19937 gen(11);
  std::student_t_distribution<float> td(4.0f);  // heavy tails, like real weights
  std::vector<float> w(64 * 256);
  for (auto& v : w) v = 0.02f * td(gen);
  for (int bits : {2, 3, 4}) {
    method_options o;
    o.bits = bits;
    o.group = 64;
    method_report rep;
    auto h = fake_quant_method(quant_method::hqq, w.data(), 64, 256, {}, o, &rep);
    ASSERT_TRUE(h.ok());
    EXPECT_GE(rep.hqq_rounds, 1);
    double start = l1(hqq_start(w, bits, 64), w), got = l1(*h, w);
    EXPECT_LE(got, start) << "bits " << bits;
    // and the seed's rtn-asym (rounded zero) is not better in L1 either
    auto r = fake_quant_method(quant_method::rtn_asym, w.data(), 64, 256, {}, o);
    ASSERT_TRUE(r.ok());
    EXPECT_LE(got, l1(*r, w)) << "bits " << bits;
  }
}

TEST(QuantMethods, BadArgumentsNameTheProblem) {
  std::vector<float> w = flat(kW), xf = flat(tokens12());
  method_options o;
  o.bits = 9;
  auto a = fake_quant_method(quant_method::hqq, w.data(), 4, 8, {}, o);
  ASSERT_FALSE(a.ok());
  EXPECT_NE(a.error().message().find("bits 9"), std::string::npos);
  o.bits = 3;
  auto b = fake_quant_method(quant_method::gptq, w.data(), 4, 8, {xf.data(), 12, 7}, o);
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.error().message().find("columns"), std::string::npos);
  auto c = fake_quant_method(quant_method::rtn_asym, w.data(), 0, 8, {}, o);
  ASSERT_FALSE(c.ok());
  o.bits = 1;
  EXPECT_FALSE(fake_quant_method(quant_method::clip, w.data(), 4, 8, {}, o).ok());
  EXPECT_TRUE(fake_quant_method(quant_method::rtn_asym, w.data(), 4, 8, {}, o).ok());
}

// Shapes large enough for the register blocks (4 x 64), several row tiles, lazy blocks and partial edges.
TEST(QuantMethods, BlockedPathsMatchThePlainFormulas) {
  std::mt19937 gen(5);
  std::normal_distribution<double> nd;
  const int rows = 70, cols = 200, ntok = 230;
  matd w(rows, vecd(cols)), x(ntok, vecd(cols));
  for (auto& r : w)
    for (auto& v : r) v = 0.02 * nd(gen);
  for (auto& t : x)
    for (size_t c = 0; c < t.size(); ++c) t[c] = nd(gen) * (1.0 + double(c % 7));
  std::vector<float> wf = flat(w), xf = flat(x);
  for (size_t k = 0; k < wf.size(); ++k) w[k / cols][k % cols] = wf[k];
  for (size_t k = 0; k < xf.size(); ++k) x[k / cols][k % cols] = xf[k];
  // output NMSE: X A^T in blocks of 4 tokens x 64 rows, against the double formula
  auto r = fake_quant_method(quant_method::rtn_asym, wf.data(), rows, cols, {}, method_options{});
  ASSERT_TRUE(r.ok());
  matd q = w;
  for (size_t k = 0; k < r->size(); ++k) q[k / cols][k % cols] = (*r)[k];
  double want = out_err(x, sub(q, w)) / out_err(x, w);
  EXPECT_NEAR(output_nmse(wf.data(), r->data(), rows, cols, view(xf, cols)), want, 1e-5 * want);
  // GPTQ with group 40 and block 64 (blocks cut at group starts, 4 x 64 update blocks, 3 row tiles) against the
  // plain double algorithm: float rounding may flip a rare level, so compare almost every entry and the NMSE
  method_options o;
  o.group = 40;
  o.gptq_block = 64;
  auto g = fake_quant_method(quant_method::gptq, wf.data(), rows, cols, view(xf, cols), o);
  ASSERT_TRUE(g.ok());
  matd plain = gptq_plain(w, x, 3, 40, 0.01);
  size_t close = 0;
  for (size_t k = 0; k < g->size(); ++k) close += std::fabs((*g)[k] - plain[k / cols][k % cols]) < 1e-5;
  EXPECT_GE(double(close), 0.995 * double(g->size()));
  std::vector<float> pf = flat(plain);
  double ng = output_nmse(wf.data(), g->data(), rows, cols, view(xf, cols));
  double np = output_nmse(wf.data(), pf.data(), rows, cols, view(xf, cols));
  EXPECT_NEAR(ng, np, 0.01 * np);
  EXPECT_LT(ng, want);  // and GPTQ beats RTN in sample
}

// Every method's output is independent of the thread count (partial sums are per block, in a fixed order).
TEST(QuantMethods, ThreadCountDoesNotChangeTheResult) {
  std::mt19937 gen(9);
  std::normal_distribution<float> nd;
  const int rows = 70, cols = 192, ntok = 40;
  std::vector<float> w(rows * cols), x(ntok * cols);
  for (auto& v : w) v = 0.02f * nd(gen);
  for (auto& v : x) v = nd(gen);
  for (quant_method m : all_quant_methods()) {
    method_options o;
    o.group = 64;
    o.gptq_block = 64;
    o.awq_grid = 5;
    o.threads = 1;
    auto a = fake_quant_method(m, w.data(), rows, cols, view(x, cols), o);
    o.threads = 3;
    auto b = fake_quant_method(m, w.data(), rows, cols, view(x, cols), o);
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(*a, *b) << quant_method_name(m);
  }
  std::vector<float> d(w.size());
  for (size_t k = 0; k < d.size(); ++k) d[k] = 0.5f * w[k];
  EXPECT_EQ(sum_sq_xat(view(x, cols), d.data(), rows, 1), sum_sq_xat(view(x, cols), d.data(), rows, 3));
}

// Degenerate inputs: an all-zero weight stays zero under every method; tokens that are all zero make every column
// dead (GPTQ quantizes the zeroed weight, H = I) and AWQ's scales uniform.
TEST(QuantMethods, ZeroWeightsAndSilentTokens) {
  std::vector<float> zw(4 * 8, 0.0f), zx(10 * 8, 0.0f), w = flat(kW);
  for (quant_method m : all_quant_methods()) {
    method_options o;
    o.group = 4;
    auto q = fake_quant_method(m, zw.data(), 4, 8, view(zx, 8), o);
    ASSERT_TRUE(q.ok());
    for (float v : *q) EXPECT_EQ(v, 0.0f) << quant_method_name(m);
    method_report rep;
    auto s = fake_quant_method(m, w.data(), 4, 8, view(zx, 8), o, &rep);
    ASSERT_TRUE(s.ok());
    for (float v : *s) EXPECT_TRUE(std::isfinite(v)) << quant_method_name(m);
    if (m == quant_method::gptq) {
      EXPECT_EQ(rep.fallback, "");
      EXPECT_EQ(rep.gptq_dead_columns, 8);
      for (float v : *s) EXPECT_EQ(v, 0.0f);  // every column dead: the weight is zeroed first
    }
  }
  // NMSE on silent tokens: 0 / 0 is 0
  EXPECT_EQ(output_nmse(w.data(), w.data(), 4, 8, view(zx, 8)), 0.0);
}
