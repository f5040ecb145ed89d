// The seed's comparison quantizers (methods.h says what each computes).
#include "quant/methods.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/cuda_info.h"
#include "kernels/gptq.h"
#include "kernels/gptq_cuda.h"
#include "quant/fake_quant.h"
#include "util/enum_table.h"
#include "util/parallel.h"
#include "util/strformat.h"

namespace razor::quant {

namespace {

// The one table of methods: id, name, needs calibration tokens.
#define RAZOR_QUANT_METHODS(X)       \
  X(clip, "clip", false)             \
  X(absmax, "absmax", false)         \
  X(rtn_asym, "rtn-asym", false)     \
  X(awq, "awq", true)                \
  X(gptq, "gptq", true)              \
  X(hqq, "hqq", false)

constexpr enum_row<quant_method, bool> k_methods[] = {
#define X(id, name, tokens) {quant_method::id, name, tokens},
    RAZOR_QUANT_METHODS(X)
#undef X
};

constexpr int64_t kMaxGptqCols = 16384;  // H is cols^2 doubles (2 GiB at this bound)

// The hot loops are compiled for AVX-512, AVX2 and the baseline, chosen at load time (the engine's matmul does the
// same); sums run in a fixed order per clone, so results agree across machines to rounding, not bits.
#define RAZOR_METHODS_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))

// dot product of two double rows, 32 lanes (four independent vector accumulators hide the add latency).
RAZOR_METHODS_CLONES double dot_d(const double* a, const double* b, int64_t n) {
  double acc[32] = {};
  int64_t k = 0;
  for (; k + 32 <= n; k += 32)
    for (int j = 0; j < 32; ++j) acc[j] += a[k + j] * b[k + j];
  double s = 0;
  for (; k < n; ++k) s += a[k] * b[k];
  for (int j = 0; j < 32; ++j) s += acc[j];
  return s;
}

constexpr int64_t kTR = 4;   // rows of a register block
constexpr int64_t kTC = 64;  // columns of a register block

// y[r][j] = sum_k x[r][k] * bt[k][j0 + j] for r < nr, j < nc (x rows of length kk, stride ldx; bt [kk x ldb]):
// one register block of a product, then the sum of squares of the block (double).
RAZOR_METHODS_CLONES double gemm_sumsq_block(const float* x, int64_t ldx, int64_t nr, const float* bt, int64_t ldb,
                                             int64_t kk, int64_t j0, int64_t nc) {
  float acc[kTR][kTC] = {};
  if (nr == kTR && nc == kTC) {
    for (int64_t k = 0; k < kk; ++k) {
      const float* b = bt + k * ldb + j0;
      const float x0 = x[k], x1 = x[ldx + k], x2 = x[2 * ldx + k], x3 = x[3 * ldx + k];
      for (int64_t j = 0; j < kTC; ++j) {
        const float bj = b[j];
        acc[0][j] += x0 * bj;
        acc[1][j] += x1 * bj;
        acc[2][j] += x2 * bj;
        acc[3][j] += x3 * bj;
      }
    }
  } else {
    for (int64_t k = 0; k < kk; ++k) {
      const float* b = bt + k * ldb + j0;
      for (int64_t r = 0; r < nr; ++r) {
        const float xr = x[r * ldx + k];
        for (int64_t j = 0; j < nc; ++j) acc[r][j] += xr * b[j];
      }
    }
  }
  double s = 0;
  for (int64_t r = 0; r < nr; ++r)
    for (int64_t j = 0; j < nc; ++j) s += double(acc[r][j]) * double(acc[r][j]);
  return s;
}

// w[r][j] -= sum_{k < kb} e[r][k] * u[k][j] for r < nr, j in [j0, jend) (strides ldw, lde, ldu): registers hold a
// 4 x C block of w across the k loop. GPTQ's block update (float) and the Cholesky's trailing update (double).
template <class T, int64_t C>
[[gnu::always_inline]] inline void block_update_body(T* w, int64_t ldw, int64_t nr, const T* e, int64_t lde,
                                                     const T* u, int64_t ldu, int64_t kb, int64_t j0, int64_t jend) {
  for (int64_t jb = j0; jb < jend; jb += C) {
    const int64_t nc = std::min(C, jend - jb);
    for (int64_t r0 = 0; r0 < nr; r0 += kTR) {
      const int64_t nrr = std::min(kTR, nr - r0);
      T* wb = w + r0 * ldw + jb;
      const T* eb = e + r0 * lde;
      if (nrr == kTR && nc == C) {
        T acc[kTR][C];
        for (int64_t r = 0; r < kTR; ++r)
          for (int64_t j = 0; j < C; ++j) acc[r][j] = wb[r * ldw + j];
        for (int64_t k = 0; k < kb; ++k) {
          const T* uk = u + k * ldu + jb;
          const T e0 = eb[k], e1 = eb[lde + k], e2 = eb[2 * lde + k], e3 = eb[3 * lde + k];
          for (int64_t j = 0; j < C; ++j) {
            const T uj = uk[j];
            acc[0][j] -= e0 * uj;
            acc[1][j] -= e1 * uj;
            acc[2][j] -= e2 * uj;
            acc[3][j] -= e3 * uj;
          }
        }
        for (int64_t r = 0; r < kTR; ++r)
          for (int64_t j = 0; j < C; ++j) wb[r * ldw + j] = acc[r][j];
      } else {
        for (int64_t k = 0; k < kb; ++k) {
          const T* uk = u + k * ldu + jb;
          for (int64_t r = 0; r < nrr; ++r) {
            const T er = eb[r * lde + k];
            for (int64_t j = 0; j < nc; ++j) wb[r * ldw + j] -= er * uk[j];
          }
        }
      }
    }
  }
}
RAZOR_METHODS_CLONES void block_update_f(float* w, int64_t ldw, int64_t nr, const float* e, int64_t lde,
                                         const float* u, int64_t ldu, int64_t kb, int64_t j0, int64_t jend) {
  block_update_body<float, kTC>(w, ldw, nr, e, lde, u, ldu, kb, j0, jend);
}
RAZOR_METHODS_CLONES void block_update_d(double* w, int64_t ldw, int64_t nr, const double* e, int64_t lde,
                                         const double* u, int64_t ldu, int64_t kb, int64_t j0, int64_t jend) {
  block_update_body<double, kTC / 2>(w, ldw, nr, e, lde, u, ldu, kb, j0, jend);
}

// parallel_for over i in [0, n) where item i costs about (n - i) (a triangle): items are handed out in pairs
// (p, n-1-p) so that every chunk has the same work.
void parallel_triangle(int64_t n, const std::function<void(int64_t)>& item, int threads) {
  int64_t pairs = (n + 1) / 2;
  parallel_for(
      size_t(pairs),
      [&](size_t b, size_t e) {
        for (size_t p = b; p < e; ++p) {
          item(int64_t(p));
          int64_t q = n - 1 - int64_t(p);
          if (q != int64_t(p)) item(q);
        }
      },
      1, threads);
}

status check_args(quant_method m, const float* w, int64_t rows, int64_t cols, const calib_view& tk,
                  const method_options& o) {
  std::string name(quant_method_name(m));
  if (rows <= 0 || cols <= 0)
    return make_error(errc::invalid_argument, strformat("%s: weight shape %lld x %lld is empty", name.c_str(),
                                                        (long long)rows, (long long)cols));
  if (!w) return make_error(errc::invalid_argument, name + ": no weight data");
  int lo = (m == quant_method::clip || m == quant_method::absmax) ? 2 : 1;
  if (o.bits < lo || o.bits > 8)
    return make_error(errc::invalid_argument,
                      strformat("%s: bits %d outside [%d, 8]", name.c_str(), o.bits, lo));
  if (o.group < 0 || o.group > std::numeric_limits<int>::max())
    return make_error(errc::invalid_argument, strformat("%s: group %lld is invalid", name.c_str(), (long long)o.group));
  if (tk.n < 0 || (tk.n > 0 && !tk.x))
    return make_error(errc::invalid_argument, name + ": calibration tokens without data");
  if (tk.n > 0 && tk.cols != cols)
    return make_error(errc::invalid_argument,
                      strformat("%s: calibration tokens have %lld columns, the weight %lld", name.c_str(),
                                (long long)tk.cols, (long long)cols));
  if (m == quant_method::gptq && cols > kMaxGptqCols)
    return make_error(errc::invalid_argument, strformat("gptq: %lld input columns exceed the limit %lld",
                                                        (long long)cols, (long long)kMaxGptqCols));
  if (m == quant_method::gptq && (o.gptq_block <= 0 || !(o.gptq_damp >= 0)))
    return make_error(errc::invalid_argument, "gptq: block must be > 0 and damping >= 0");
  if (m == quant_method::awq && (o.awq_grid < 1 || o.awq_grid > 1000))
    return make_error(errc::invalid_argument, strformat("awq: grid %d outside [1, 1000]", o.awq_grid));
  if (m == quant_method::hqq &&
      (o.hqq_iters < 0 || o.hqq_iters > 10000 || !(o.hqq_beta > 0) || !(o.hqq_kappa > 0) || !(o.hqq_lp_norm > 0)))
    return make_error(errc::invalid_argument, "hqq: iterations in [0, 10000], beta, kappa and p > 0");
  return {};
}

std::vector<float> awq(const float* w, int64_t rows, int64_t cols, const calib_view& tk, const method_options& o,
                       method_report* rep) {
  const int64_t n = tk.n;
  std::vector<float> xs(size_t(cols), 0.0f);
  {
    std::vector<double> acc(size_t(cols), 0.0);
    for (int64_t t = 0; t < n; ++t) {
      const float* x = tk.x + t * cols;
      for (int64_t c = 0; c < cols; ++c) acc[c] += std::fabs(double(x[c]));
    }
    for (int64_t c = 0; c < cols; ++c) xs[c] = std::max(float(acc[c] / double(n)), 1e-6f);
  }
  const size_t N = size_t(rows * cols);
  std::vector<float> best, wq(N), s(static_cast<size_t>(cols));
  double best_err = std::numeric_limits<double>::infinity();
  double best_alpha = 0;
  for (int i = 0; i < o.awq_grid; ++i) {
    double alpha = o.awq_grid > 1 ? double(i) / double(o.awq_grid - 1) : 0.0;
    double sum = 0;
    for (int64_t c = 0; c < cols; ++c) {
      s[c] = std::pow(xs[c], float(alpha));
      sum += s[c];
    }
    float mean = float(sum / double(cols));
    for (int64_t c = 0; c < cols; ++c) s[c] = std::max(s[c] / mean, 1e-4f);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) wq[r * cols + c] = w[r * cols + c] * s[c];
    rtn_asym(wq.data(), wq.data(), rows, cols, o.bits, o.group, o.threads);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) wq[r * cols + c] /= s[c];
    // error on the difference (X Wq^T - X W^T = X (Wq - W)^T)
    std::vector<float> d(N);
    for (size_t k = 0; k < N; ++k) d[k] = wq[k] - w[k];
    double err = sum_sq_xat(tk, d.data(), rows, o.threads);
    if (err < best_err || best.empty()) {
      best_err = err;
      best_alpha = alpha;
      best = wq;
    }
  }
  if (rep) rep->awq_alpha = best_alpha;
  return best;
}

std::vector<float> hqq(const float* w, int64_t rows, int64_t cols, const method_options& o, method_report* rep) {
  const int64_t G = effective_group(o.group, cols);
  const int64_t ng = rows * cols / G;  // groups are consecutive runs of G values (rows are multiples of G)
  const float maxq = float((1u << o.bits) - 1u);
  std::vector<float> a(static_cast<size_t>(ng)), z(static_cast<size_t>(ng));
  for (int64_t g = 0; g < ng; ++g) {
    const float* v = w + g * G;
    float lo = v[0], hi = v[0];
    for (int64_t k = 1; k < G; ++k) {
      lo = std::min(lo, v[k]);
      hi = std::max(hi, v[k]);
    }
    a[g] = std::min(maxq / (hi - lo), 2e4f);
    z[g] = -lo * a[g];
    if (o.bits == 4) z[g] = std::rint(z[g]);
  }
  const float p1 = float(o.hqq_lp_norm - 1.0);
  double beta = o.hqq_beta, best = 1e4;
  std::vector<double> gerr(static_cast<size_t>(ng));
  std::vector<float> znew(static_cast<size_t>(ng));
  int rounds = 0;
  for (int it = 0; it < o.hqq_iters; ++it) {
    ++rounds;
    const float inv_beta = float(1.0 / beta);
    parallel_for(
        size_t(ng),
        [&](size_t b, size_t e) {
          for (size_t g = b; g < e; ++g) {
            const float* v = w + int64_t(g) * G;
            const float ag = a[g], zg = z[g];
            double zs = 0, es = 0;
            for (int64_t k = 0; k < G; ++k) {
              float wq = std::clamp(std::rint(v[k] * ag + zg), 0.0f, maxq);
              float wr = (wq - zg) / ag;
              float d = v[k] - wr;
              float ad = std::fabs(d);
              float sh = std::max(ad - inv_beta * std::pow(ad, p1), 0.0f);
              float we = d > 0 ? sh : (d < 0 ? -sh : 0.0f);
              zs += double(wq - (v[k] - we) * ag);
              es += double(ad);
            }
            znew[g] = float(zs / double(G));
            gerr[g] = es;
          }
        },
        64, o.threads);
    z.swap(znew);
    beta *= o.hqq_kappa;
    double sum = 0;
    for (double e : gerr) sum += e;
    double cur = sum / double(rows * cols);
    if (cur < best)
      best = cur;
    else
      break;
  }
  if (rep) rep->hqq_rounds = rounds;
  std::vector<float> out(size_t(rows * cols));
  parallel_for(
      size_t(ng),
      [&](size_t b, size_t e) {
        for (size_t g = b; g < e; ++g) {
          const float* v = w + int64_t(g) * G;
          float* q = out.data() + int64_t(g) * G;
          const float inv = 1.0f / a[g];
          for (int64_t k = 0; k < G; ++k) q[k] = (std::clamp(std::rint(v[k] * a[g] + z[g]), 0.0f, maxq) - z[g]) * inv;
        }
      },
      64, o.threads);
  return out;
}

}  // namespace

// ---- the table ----

result<quant_method> parse_quant_method(std::string_view name) {
  std::string n(name);
  std::replace(n.begin(), n.end(), '_', '-');
  if (const auto* r = find_row_named(k_methods, std::string_view(n))) return r->value;
  std::string known;
  for (const auto& r : k_methods) known += (known.empty() ? "" : ", ") + std::string(r.name);
  return make_error(errc::invalid_argument,
                    "unknown quantization method '" + std::string(name) + "' (known: " + known + ")");
}

std::string_view quant_method_name(quant_method m) { return enum_name(k_methods, m, "?"); }
bool quant_method_needs_tokens(quant_method m) { return enum_info(k_methods, m, false); }
std::vector<quant_method> all_quant_methods() {
  std::vector<quant_method> v;
  for (const auto& r : k_methods) v.push_back(r.value);
  return v;
}

int64_t effective_group(int64_t group, int64_t cols) {
  return (group > 0 && cols % group == 0) ? group : cols;
}

// ---- building blocks ----

void rtn_asym(const float* w, float* out, int64_t rows, int64_t cols, int bits, int64_t group, int threads) {
  const int64_t G = effective_group(group, cols);
  parallel_for(
      size_t(rows),
      [&](size_t b, size_t e) {
        for (size_t r = b; r < e; ++r)
          for (int64_t g = 0; g < cols; g += G) {
            const float* v = w + int64_t(r) * cols + g;
            float* q = out + int64_t(r) * cols + g;
            cu::asym_params p = cu::asym_params_of(v, G, 1, bits);
            for (int64_t k = 0; k < G; ++k) q[k] = cu::asym_fake(v[k], p);
          }
      },
      16, threads);
}

double sum_sq_xat(const calib_view& x, const float* a, int64_t rows, int threads) {
  if (x.n <= 0 || rows <= 0) return 0.0;
  const int64_t cols = x.cols;
  // A^T [cols x rows], so that the product X A^T runs as register blocks of 4 tokens x 64 rows.
  std::vector<float> at(static_cast<size_t>(cols * rows));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) at[size_t(c * rows + r)] = a[r * cols + c];
  const int64_t ntb = (x.n + kTR - 1) / kTR, nrb = (rows + kTC - 1) / kTC;
  std::vector<double> part(size_t(ntb * nrb), 0.0);  // one partial sum per block: the total is thread-independent
  parallel_for(
      size_t(ntb * nrb),
      [&](size_t b, size_t e) {
        for (size_t t = b; t < e; ++t) {
          const int64_t rb = int64_t(t) / ntb, tb = int64_t(t) % ntb;  // row-block major: one A^T slice per thread
          const int64_t t0 = tb * kTR, j0 = rb * kTC;
          part[t] = gemm_sumsq_block(x.x + t0 * cols, cols, std::min(kTR, x.n - t0), at.data(), rows, cols, j0,
                                     std::min(kTC, rows - j0));
        }
      },
      1, threads);
  double s = 0;
  for (double v : part) s += v;
  return s;
}

double output_nmse(const float* w, const float* wq, int64_t rows, int64_t cols, const calib_view& tokens) {
  if (tokens.n <= 0 || !tokens.x || tokens.cols != cols || rows <= 0 || cols <= 0)
    return std::numeric_limits<double>::quiet_NaN();
  std::vector<float> d(size_t(rows * cols));
  for (size_t k = 0; k < d.size(); ++k) d[k] = wq[k] - w[k];
  double num = sum_sq_xat(tokens, d.data(), rows);
  double den = sum_sq_xat(tokens, w, rows);
  if (den == 0) return num == 0 ? 0.0 : std::numeric_limits<double>::infinity();
  return num / den;
}

result<gptq_hinv> gptq_prepare(const calib_view& tk, double damp, int threads) {
  const int64_t n = tk.cols, T = tk.n;
  if (n <= 0 || T <= 0 || !tk.x) return make_error(errc::invalid_argument, "gptq: no calibration tokens");
  if (n > kMaxGptqCols)
    return make_error(errc::invalid_argument, strformat("gptq: %lld input columns exceed the limit %lld",
                                                        (long long)n, (long long)kMaxGptqCols));
  // Every O(n^3) loop below runs over blocks of rows / columns, so that the rows it streams are read once per
  // block instead of once per row (n = 3072 makes A 75 MB, far beyond the caches).
  constexpr int64_t kNB = 32;   // H's rows and the inverse's columns per block
  constexpr int64_t kCB = 128;  // the Cholesky's panel: the trailing matrix is swept once per panel
  const int64_t nblk = (n + kNB - 1) / kNB;
  // X^T in double, so that every H entry is a contiguous dot product.
  std::vector<double> xt(size_t(n * T));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t c = 0; c < n; ++c) xt[size_t(c * T + t)] = double(tk.x[t * n + c]);
  // A = J H J (the reversal of H), lower triangle: H[i][j] (j >= i) goes to A[n-1-i][n-1-j].
  std::vector<double> A(size_t(n * n), 0.0);
  parallel_triangle(
      nblk,
      [&](int64_t bi) {  // H rows [i0, i1), every column j >= i
        const int64_t i0 = bi * kNB, i1 = std::min(n, i0 + kNB);
        for (int64_t j = i0; j < n; ++j)
          for (int64_t i = i0; i < i1 && i <= j; ++i)
            A[size_t((n - 1 - i) * n + (n - 1 - j))] = dot_d(xt.data() + i * T, xt.data() + j * T, T);
      },
      threads);
  xt = {};
  gptq_hinv out;
  out.cols = n;
  out.dead.assign(size_t(n), 0);
  double diag = 0;
  for (int64_t i = 0; i < n; ++i) {
    double& d = A[size_t(i * n + i)];
    if (d == 0) {
      d = 1;
      out.dead[size_t(n - 1 - i)] = 1;
      ++out.n_dead;
    }
    diag += d;
  }
  const double add = damp * diag / double(n);
  for (int64_t i = 0; i < n; ++i) A[size_t(i * n + i)] += add;
  // Cholesky A = L L^T in place (lower), right-looking by panels of kCB columns: factor the diagonal block, solve
  // the panel below it (rows in parallel), then subtract the panel's outer product from the trailing lower triangle
  // (register blocks of 4 rows, rows in parallel; the upper triangle of A is never read, so the blocks that cross
  // the diagonal may write there).
  {
    std::vector<double> pt(size_t(kCB * n));  // the panel transposed: pt[k][j] = L[j][k0 + k]
    for (int64_t k0 = 0; k0 < n; k0 += kCB) {
      const int64_t k1 = std::min(n, k0 + kCB), nb = k1 - k0;
      for (int64_t i = k0; i < k1; ++i) {
        double* ai = A.data() + i * n;
        for (int64_t j = k0; j < i; ++j) {
          const double* aj = A.data() + j * n;
          ai[j] = (ai[j] - dot_d(ai + k0, aj + k0, j - k0)) / aj[j];
        }
        double s = ai[i] - dot_d(ai + k0, ai + k0, i - k0);
        if (!(s > 0) || !std::isfinite(s))
          return make_error(errc::unsupported,
                            strformat("gptq: cholesky failed (the damped Hessian is not positive definite at "
                                      "column %lld)",
                                      (long long)(n - 1 - i)));
        ai[i] = std::sqrt(s);
      }
      if (k1 == n) break;
      parallel_for(
          size_t(n - k1),
          [&](size_t b, size_t e) {
            for (int64_t i = k1 + int64_t(b); i < k1 + int64_t(e); ++i) {
              double* ai = A.data() + i * n;
              for (int64_t j = k0; j < k1; ++j) {
                const double* aj = A.data() + j * n;
                ai[j] = (ai[j] - dot_d(ai + k0, aj + k0, j - k0)) / aj[j];
              }
              for (int64_t k = 0; k < nb; ++k) pt[size_t(k * n + i)] = ai[k0 + k];
            }
          },
          16, threads);
      const int64_t nq = (n - k1 + kTR - 1) / kTR;
      parallel_triangle(
          nq,
          [&](int64_t q) {
            const int64_t r0 = k1 + q * kTR, nr = std::min(kTR, n - r0);
            block_update_d(A.data() + r0 * n, n, nr, A.data() + r0 * n + k0, n, pt.data(), n, nb, k1, r0 + nr);
          },
          threads);
    }
  }
  // M = L^-1 by blocks of kNB columns (forward substitution; V holds the block's columns row by row, so each row of
  // L is read once per block), stored as U = J M J: U[n-1-a][n-1-j] = M[a][j] for a >= j.
  out.u.assign(size_t(n * n), 0.0f);
  parallel_triangle(
      nblk,
      [&](int64_t bj) {
        const int64_t j0 = bj * kNB, nc = std::min(kNB, n - j0);
        std::vector<double> V(size_t((n - j0) * kNB), 0.0);  // V[a - j0][c] = M[a][j0 + c]
        // rows a in groups of kTR: the sum over the rows k before the group reads each V row once for the group,
        // the few k inside the group follow row by row
        for (int64_t a0 = j0; a0 < n; a0 += kTR) {
          const int64_t na = std::min(kTR, n - a0);
          double acc[kTR][kNB] = {};
          for (int64_t k = j0; k < a0; ++k) {
            const double* vk = V.data() + (k - j0) * kNB;
            for (int64_t r = 0; r < na; ++r) {
              const double l = A[size_t((a0 + r) * n + k)];
              for (int64_t c = 0; c < kNB; ++c) acc[r][c] += l * vk[c];
            }
          }
          for (int64_t r = 0; r < na; ++r) {
            const int64_t a = a0 + r;
            const double* la = A.data() + a * n;
            for (int64_t k = a0; k < a; ++k) {
              const double* vk = V.data() + (k - j0) * kNB;
              for (int64_t c = 0; c < kNB; ++c) acc[r][c] += la[k] * vk[c];
            }
            double* va = V.data() + (a - j0) * kNB;
            for (int64_t c = 0; c < nc; ++c) {
              // M[a][j] is 0 above the diagonal (a < j): the zero V rows keep it so.
              va[c] = a < j0 + c ? 0.0 : ((a == j0 + c ? 1.0 : 0.0) - acc[r][c]) / la[a];
              if (a >= j0 + c) out.u[size_t((n - 1 - a) * n + (n - 1 - (j0 + c)))] = float(va[c]);
            }
          }
        }
      },
      threads);
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(out.u[size_t(i * n + i)]) || !(out.u[size_t(i * n + i)] > 0))
      return make_error(errc::unsupported, strformat("gptq: cholesky failed (H^-1 is not finite at column %lld)",
                                                     (long long)i));
  return out;
}

void gptq_quantize(const float* w, float* out, int64_t rows, int64_t cols, const gptq_hinv& h, int bits,
                   int64_t group, int64_t block, int threads) {
  const int64_t G = effective_group(group, cols);
  const int64_t B = block > 0 ? std::min(block, cols) : cols;
  constexpr int64_t kTile = 32;  // rows that share each slab of U (4 x 64 register blocks inside)
  const int64_t tiles = (rows + kTile - 1) / kTile;
  const float* U = h.u.data();
  parallel_for(
      size_t(tiles),
      [&](size_t tb, size_t te) {
        std::vector<float> wt(size_t(kTile * cols)), err(size_t(kTile * B));
        std::vector<cu::asym_params> par(static_cast<size_t>(kTile));
        for (size_t tile = tb; tile < te; ++tile) {
          const int64_t r0 = int64_t(tile) * kTile, nr = std::min(kTile, rows - r0);
          for (int64_t r = 0; r < nr; ++r) {
            std::copy(w + (r0 + r) * cols, w + (r0 + r + 1) * cols, wt.data() + r * cols);
            for (int64_t c = 0; c < cols; ++c)
              if (h.dead[size_t(c)]) wt[size_t(r * cols + c)] = 0.0f;
          }
          for (int64_t i1 = 0, i2 = 0; i1 < cols; i1 = i2) {
            i2 = cu::gptq_block_end(i1, B, G, cols);
            for (int64_t r = 0; r < nr; ++r) {
              float* wr = wt.data() + r * cols;
              float* qr = out + (r0 + r) * cols;
              for (int64_t i = i1; i < i2; ++i) {
                if (i % G == 0) par[size_t(r)] = cu::asym_params_of(wr + i, G, 1, bits);
                err[size_t(r * B + (i - i1))] = cu::gptq_column_step(wr, U + i * cols, i, i2, par[size_t(r)], qr + i);
              }
            }
            if (i2 == cols) continue;
            // the block's error to the remaining columns: W[:, i2:] -= Err * U[i1:i2, i2:]
            block_update_f(wt.data(), cols, nr, err.data(), B, U + i1 * cols, cols, i2 - i1, i2, cols);
          }
        }
      },
      1, threads);
}

// ---- the entry point ----

result<std::vector<float>> fake_quant_method(quant_method m, const float* w, int64_t rows, int64_t cols,
                                             const calib_view& tokens, const method_options& o,
                                             method_report* rep) {
  RAZOR_TRY(check_args(m, w, rows, cols, tokens, o));
  if (rep) *rep = method_report{};
  const size_t N = size_t(rows * cols);
  std::vector<float> out(N);
  auto fallback = [&](std::string why) {
    if (rep) rep->fallback = std::move(why);
    rtn_asym(w, out.data(), rows, cols, o.bits, o.group, o.threads);
    return out;
  };
  switch (m) {
    case quant_method::clip:
    case quant_method::absmax: {
      fq_params p;
      p.tag = float(o.bits);
      p.group = int(o.group);
      p.clip_steps = m == quant_method::clip ? o.clip_steps : 0;
      RAZOR_TRY(fake_quant(w, elem_type::f32, out.data(), elem_type::f32, size_t(rows), size_t(cols), p, nullptr, {},
                           o.threads));
      return out;
    }
    case quant_method::rtn_asym:
      rtn_asym(w, out.data(), rows, cols, o.bits, o.group, o.threads);
      return out;
    case quant_method::awq:
      if (tokens.n == 0) return fallback("no tokens");
      return awq(w, rows, cols, tokens, o, rep);
    case quant_method::gptq: {
      if (tokens.n == 0) return fallback("no tokens");
      if (tokens.n < o.gptq_min_tokens)
        return fallback(strformat("fewer than %lld tokens", (long long)o.gptq_min_tokens));
      auto h = gptq_prepare(tokens, o.gptq_damp, o.threads);
      if (!h.ok()) {
        if (h.error().code() == errc::unsupported) return fallback("cholesky failed");
        return h.error();
      }
      if (rep) rep->gptq_dead_columns = h->n_dead;
      gptq_quantize(w, out.data(), rows, cols, *h, o.bits, o.group, o.gptq_block, o.threads);
      return out;
    }
    case quant_method::hqq:
      return hqq(w, rows, cols, o, rep);
  }
  return make_error(errc::internal, "fake_quant_method: unknown method");
}

// ---- GPTQ over many experts (the GPU when asked / present) ----

status gptq_quantize_batch(const std::vector<gptq_batch_item>& items, int64_t rows, int64_t cols,
                           const method_options& o, bool* used_gpu) {
  if (used_gpu) *used_gpu = false;
  for (size_t k = 0; k < items.size(); ++k) {
    const auto& it = items[k];
    status st = check_args(quant_method::gptq, it.w, rows, cols, it.tokens, o);
    if (!st.ok()) return make_error(st.code(), strformat("item %zu: %s", k, st.message().c_str()));
    if (!it.out) return make_error(errc::invalid_argument, strformat("gptq: item %zu has no output buffer", k));
  }
  bool gpu = o.device == compute_device::cuda;
  if (o.device == compute_device::auto_) gpu = cu::built_with_cuda() && !cu::devices(nullptr).empty();
  if (!gpu) {
    for (const auto& it : items) {
      auto q = fake_quant_method(quant_method::gptq, it.w, rows, cols, it.tokens, o, it.rep);
      if (!q.ok()) return q.error();
      std::copy(q->begin(), q->end(), it.out);
    }
    return {};
  }
  std::vector<size_t> run;
  std::vector<const float*> ws, xs;
  std::vector<float*> outs;
  std::vector<int64_t> nt;
  for (size_t k = 0; k < items.size(); ++k) {
    const auto& it = items[k];
    if (it.tokens.n < std::max<int64_t>(o.gptq_min_tokens, 1)) continue;
    run.push_back(k);
    ws.push_back(it.w);
    xs.push_back(it.tokens.x);
    outs.push_back(it.out);
    nt.push_back(it.tokens.n);
  }
  std::vector<cu::gptq_expert_result> res(run.size());
  if (!run.empty()) {
    cu::gptq_batch_shape s;
    s.rows = rows;
    s.cols = cols;
    s.bits = o.bits;
    s.group = effective_group(o.group, cols);
    s.block = std::min(o.gptq_block, cols);
    s.damp = o.gptq_damp;
    RAZOR_TRY(cu::gptq_batch_host(s, int64_t(run.size()), ws.data(), xs.data(), nt.data(), outs.data(), res.data()));
    if (used_gpu) *used_gpu = true;
  }
  std::vector<uint8_t> done(items.size(), 0);
  for (size_t j = 0; j < run.size(); ++j) {
    const auto& it = items[run[j]];
    done[run[j]] = 1;
    if (it.rep) *it.rep = method_report{};
    if (res[j].cholesky_failed) {
      if (it.rep) it.rep->fallback = "cholesky failed";
      rtn_asym(it.w, it.out, rows, cols, o.bits, o.group, o.threads);
    } else if (it.rep) {
      it.rep->gptq_dead_columns = res[j].n_dead;
    }
  }
  for (size_t k = 0; k < items.size(); ++k) {
    if (done[k]) continue;
    const auto& it = items[k];
    if (it.rep) {
      *it.rep = method_report{};
      it.rep->fallback = it.tokens.n == 0 ? std::string("no tokens")
                                          : strformat("fewer than %lld tokens", (long long)o.gptq_min_tokens);
    }
    rtn_asym(it.w, it.out, rows, cols, o.bits, o.group, o.threads);
  }
  return {};
}

}  // namespace razor::quant
