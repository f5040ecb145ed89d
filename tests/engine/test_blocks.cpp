// Each block of the reference engine against a naive transcription of the model's formulas, on small random
// weights: different loop order, [out, in] weights used directly, no shared helpers beyond std::.
#include <gtest/gtest.h>

#include <cmath>
#include <algorithm>
#include <numeric>
#include <random>

#include "engine/model_runner.h"

namespace {

using namespace razor::engine;
using vec = std::vector<float>;

// Float32 results of the engine and of the naive code differ by summation order only; with O(1) values and
// sums of at most a few hundred terms that stays far below 1e-4 absolute.
constexpr float k_block_tol = 1e-4f;

vec rnd(size_t n, std::mt19937& g, float scale = 0.5f) {
  std::normal_distribution<float> d(0.0f, scale);
  vec v(n);
  for (auto& x : v) x = d(g);
  return v;
}
tensor_f32 mat(int64_t rows, int64_t cols, std::mt19937& g, float scale = 0.3f) {
  return {{rows, cols}, rnd(size_t(rows * cols), g, scale)};
}
// y = W x with W [out, in] row-major
vec mv(const tensor_f32& W, const float* x) {
  vec y(size_t(W.rows()), 0.0f);
  for (int64_t o = 0; o < W.rows(); ++o)
    for (int64_t i = 0; i < W.cols(); ++i) y[size_t(o)] += W.data[size_t(o * W.cols() + i)] * x[i];
  return y;
}
vec rms(const vec& x, const vec& w, float eps) {
  double ss = 0;
  for (float v : x) ss += double(v) * v;
  float r = float(1.0 / std::sqrt(ss / double(x.size()) + eps));
  vec o(x.size());
  for (size_t i = 0; i < x.size(); ++i) o[i] = x[i] * r * w[i];
  return o;
}
float sigm(float x) { return 1.0f / (1.0f + std::exp(-x)); }
float silu_(float x) { return x * sigm(x); }

model_dims small_dims(arch a) {
  model_dims d;
  d.a = a;
  d.hidden = 32;
  d.n_layers = 1;
  d.vocab = 50;
  d.n_heads = 4;
  d.n_kv_heads = 2;
  d.head_dim = 8;
  d.rot_dims = a == arch::qwen3_5_moe ? 4 : 8;
  d.rope_theta = 10000.0;
  d.n_experts = 6;
  d.top_k = 2;
  d.moe_ff = 16;
  d.shared_ff = a == arch::qwen3_5_moe ? 12 : 0;
  d.lin_k_heads = 2;
  d.lin_v_heads = 4;
  d.lin_k_dim = 8;
  d.lin_v_dim = 8;
  d.conv_kernel = 4;
  d.linear_layer = {false};
  return d;
}

const std::vector<size_t> k_seqs = {0, 5, 12};  // two sequences: 5 and 7 tokens

TEST(blocks, matmul_matches_naive_on_ragged_shapes) {
  std::mt19937 g(1);
  for (auto [n, in, out] : {std::tuple{1, 3, 5}, {7, 33, 70}, {9, 64, 129}, {4, 16, 64}}) {
    auto W = mat(out, in, g);
    auto x = rnd(size_t(n * in), g);
    vec y(size_t(n * out));
    matmul(x.data(), size_t(n), make_linear(W), y.data());
    for (int r = 0; r < n; ++r) {
      auto ref = mv(W, x.data() + r * in);
      for (int o = 0; o < out; ++o) EXPECT_NEAR(y[size_t(r * out + o)], ref[size_t(o)], k_block_tol);
    }
  }
}

// Naive causal attention, GQA, optional per-head [q | gate] rows and partial NeoX rotary.
void naive_attention(const model_dims& d, const tensor_f32& Wq, const tensor_f32& Wk, const tensor_f32& Wv,
                     const tensor_f32& Wo, const vec& qn, const vec& kn, bool gated, const vec& x, vec& y) {
  const int64_t hd = d.head_dim, nh = d.n_heads, nkv = d.n_kv_heads, H = d.hidden, rot = d.rot_dims;
  size_t n = k_seqs.back();
  std::vector<std::vector<vec>> Q(n), Kh(n), Vh(n), G(n);
  for (size_t s = 0; s + 1 < k_seqs.size(); ++s)
    for (size_t t = k_seqs[s]; t < k_seqs[s + 1]; ++t) {
      double pos = double(t - k_seqs[s]);
      auto rope = [&](vec v) {
        vec o = v;
        for (int64_t i = 0; i < rot / 2; ++i) {
          float ang = float(pos) * float(1.0 / std::pow(d.rope_theta, 2.0 * double(i) / double(rot)));
          o[size_t(i)] = v[size_t(i)] * std::cos(ang) - v[size_t(i + rot / 2)] * std::sin(ang);
          o[size_t(i + rot / 2)] = v[size_t(i + rot / 2)] * std::cos(ang) + v[size_t(i)] * std::sin(ang);
        }
        return o;
      };
      auto q = mv(Wq, x.data() + t * size_t(H)), k = mv(Wk, x.data() + t * size_t(H)), v = mv(Wv, x.data() + t * size_t(H));
      for (int64_t h = 0; h < nh; ++h) {
        size_t off = size_t(h * hd * (gated ? 2 : 1));
        Q[t].push_back(rope(rms(vec(q.begin() + off, q.begin() + off + hd), qn, float(d.eps))));
        if (gated) G[t].push_back(vec(q.begin() + off + hd, q.begin() + off + 2 * hd));
      }
      for (int64_t h = 0; h < nkv; ++h) {
        Kh[t].push_back(rope(rms(vec(k.begin() + h * hd, k.begin() + (h + 1) * hd), kn, float(d.eps))));
        Vh[t].push_back(vec(v.begin() + h * hd, v.begin() + (h + 1) * hd));
      }
    }
  y.assign(n * size_t(H), 0.0f);
  for (size_t s = 0; s + 1 < k_seqs.size(); ++s)
    for (size_t t = k_seqs[s]; t < k_seqs[s + 1]; ++t) {
      vec cat;
      for (int64_t h = 0; h < nh; ++h) {
        int64_t kh = h / (nh / nkv);
        std::vector<double> sc;
        for (size_t j = k_seqs[s]; j <= t; ++j) {
          double dot = 0;
          for (int64_t c = 0; c < hd; ++c) dot += Q[t][size_t(h)][size_t(c)] * Kh[j][size_t(kh)][size_t(c)];
          sc.push_back(dot / std::sqrt(double(hd)));
        }
        double mx = *std::max_element(sc.begin(), sc.end()), z = 0;
        for (auto& v : sc) z += (v = std::exp(v - mx));
        for (int64_t c = 0; c < hd; ++c) {
          double o = 0;
          for (size_t j = k_seqs[s]; j <= t; ++j) o += sc[j - k_seqs[s]] / z * Vh[j][size_t(kh)][size_t(c)];
          if (gated) o *= sigm(G[t][size_t(h)][size_t(c)]);
          cat.push_back(float(o));
        }
      }
      auto o = mv(Wo, cat.data());
      std::copy(o.begin(), o.end(), y.begin() + std::ptrdiff_t(t * size_t(H)));
    }
}

void check_attention(arch a) {
  std::mt19937 g(2);
  auto d = small_dims(a);
  bool gated = a == arch::qwen3_5_moe;
  int64_t qd = d.n_heads * d.head_dim, kvd = d.n_kv_heads * d.head_dim;
  auto Wq = mat(gated ? 2 * qd : qd, d.hidden, g), Wk = mat(kvd, d.hidden, g), Wv = mat(kvd, d.hidden, g),
       Wo = mat(d.hidden, qd, g);
  auto qn = rnd(size_t(d.head_dim), g, 1.0f), kn = rnd(size_t(d.head_dim), g, 1.0f);
  auto x = rnd(k_seqs.back() * size_t(d.hidden), g, 1.0f);
  attention_weights w;
  w.q = make_linear(Wq);
  w.k = make_linear(Wk);
  w.v = make_linear(Wv);
  w.o = make_linear(Wo);
  w.q_norm = qn;
  w.k_norm = kn;
  w.gated = gated;
  vec y(x.size()), ref;
  attention_block(d, w, x.data(), k_seqs, y.data());
  naive_attention(d, Wq, Wk, Wv, Wo, qn, kn, gated, x, ref);
  for (size_t i = 0; i < y.size(); ++i) ASSERT_NEAR(y[i], ref[i], k_block_tol) << i;
}

TEST(blocks, attention_qwen3_full_rotary) { check_attention(arch::qwen3_moe); }
TEST(blocks, attention_qwen3_5_gated_partial_rotary) { check_attention(arch::qwen3_5_moe); }

TEST(blocks, gated_deltanet_matches_recurrence) {
  std::mt19937 g(3);
  auto d = small_dims(arch::qwen3_5_moe);
  const int64_t nk = d.lin_k_heads, nv = d.lin_v_heads, dk = d.lin_k_dim, dv = d.lin_v_dim, K = d.conv_kernel;
  const int64_t kd = nk * dk, vd = nv * dv, ch = 2 * kd + vd, H = d.hidden;
  auto Wqkv = mat(ch, H, g), Wz = mat(vd, H, g), Wb = mat(nv, H, g), Wa = mat(nv, H, g), Wout = mat(H, vd, g);
  auto conv = rnd(size_t(ch * K), g, 0.5f), a_log = rnd(size_t(nv), g, 0.5f), dt = rnd(size_t(nv), g, 0.5f),
       nw = rnd(size_t(dv), g, 1.0f);
  auto x = rnd(k_seqs.back() * size_t(H), g, 1.0f);
  deltanet_weights w;
  w.qkv = make_linear(Wqkv);
  w.z = make_linear(Wz);
  w.b = make_linear(Wb);
  w.a = make_linear(Wa);
  w.out = make_linear(Wout);
  w.conv = conv;
  w.a_log = a_log;
  w.dt_bias = dt;
  w.norm = nw;
  vec y(x.size());
  deltanet_block(d, w, x.data(), k_seqs, y.data());

  // Naive: per sequence, state M[h] as [dv][dk] (the transpose of the engine's), formulas of the HF docstring:
  // S_t = exp(g) S_{t-1}; S_t += beta k (v - S_t^T k)^T; o_t = S_t^T q.
  vec ref(y.size());
  for (size_t s = 0; s + 1 < k_seqs.size(); ++s) {
    size_t t0 = k_seqs[s], t1 = k_seqs[s + 1];
    std::vector<vec> raw;
    for (size_t t = t0; t < t1; ++t) raw.push_back(mv(Wqkv, x.data() + t * size_t(H)));
    std::vector<std::vector<double>> M(size_t(nv), std::vector<double>(size_t(dv * dk), 0.0));
    for (size_t t = t0; t < t1; ++t) {
      vec c(static_cast<size_t>(ch));
      for (int64_t cc = 0; cc < ch; ++cc) {
        double acc = 0;
        for (int64_t j = 0; j < K; ++j) {
          int64_t back = K - 1 - j;  // tap j reads the token `back` steps earlier
          if (int64_t(t - t0) - back < 0) continue;
          acc += conv[size_t(cc * K + j)] * raw[size_t(int64_t(t - t0) - back)][size_t(cc)];
        }
        c[size_t(cc)] = silu_(float(acc));
      }
      auto xt = x.data() + t * size_t(H);
      auto z = mv(Wz, xt), b = mv(Wb, xt), a = mv(Wa, xt);
      vec cat;
      for (int64_t h = 0; h < nv; ++h) {
        int64_t hk = h / (nv / nk);
        auto l2 = [&](size_t off) {
          double ss = 0;
          for (int64_t i = 0; i < dk; ++i) ss += double(c[off + size_t(i)]) * c[off + size_t(i)];
          vec o(static_cast<size_t>(dk));
          for (int64_t i = 0; i < dk; ++i) o[size_t(i)] = float(c[off + size_t(i)] / std::sqrt(ss + 1e-6));
          return o;
        };
        vec q = l2(size_t(hk * dk)), k = l2(size_t(kd + hk * dk));
        for (auto& v : q) v /= std::sqrt(float(dk));
        const float* v = c.data() + 2 * kd + h * dv;
        double beta = sigm(b[size_t(h)]);
        double sp = std::log1p(std::exp(double(a[size_t(h)] + dt[size_t(h)])));
        double gdec = std::exp(-std::exp(double(a_log[size_t(h)])) * sp);
        auto& S = M[size_t(h)];
        for (auto& e : S) e *= gdec;
        vec o(static_cast<size_t>(dv));
        for (int64_t j = 0; j < dv; ++j) {
          double pred = 0;
          for (int64_t i = 0; i < dk; ++i) pred += S[size_t(j * dk + i)] * k[size_t(i)];
          double delta = (v[j] - pred) * beta;
          for (int64_t i = 0; i < dk; ++i) S[size_t(j * dk + i)] += delta * k[size_t(i)];
          double oj = 0;
          for (int64_t i = 0; i < dk; ++i) oj += S[size_t(j * dk + i)] * q[size_t(i)];
          o[size_t(j)] = float(oj);
        }
        auto on = rms(o, nw, float(d.eps));
        for (int64_t j = 0; j < dv; ++j) cat.push_back(on[size_t(j)] * silu_(z[size_t(h * dv + j)]));
      }
      auto out = mv(Wout, cat.data());
      std::copy(out.begin(), out.end(), ref.begin() + std::ptrdiff_t(t * size_t(H)));
    }
  }
  for (size_t i = 0; i < y.size(); ++i) ASSERT_NEAR(y[i], ref[i], k_block_tol) << i;
}

void check_moe(arch a) {
  std::mt19937 g(4);
  auto d = small_dims(a);
  const int64_t H = d.hidden, E = d.n_experts, ff = d.moe_ff;
  auto R = mat(E, H, g, 1.0f);
  std::vector<tensor_f32> G, U, D;
  moe_weights w;
  w.router = make_linear(R);
  for (int64_t e = 0; e < E; ++e) {
    G.push_back(mat(ff, H, g));
    U.push_back(mat(ff, H, g));
    D.push_back(mat(H, ff, g));
    w.gate_up.push_back(make_linear_cat({&G.back(), &U.back()}));
    w.down.push_back(make_linear(D.back()));
  }
  tensor_f32 SG, SU, SD, SGate;
  if (d.shared_ff) {
    SG = mat(d.shared_ff, H, g);
    SU = mat(d.shared_ff, H, g);
    SD = mat(H, d.shared_ff, g);
    SGate = mat(1, H, g);
    w.shared_gate_up = make_linear_cat({&SG, &SU});
    w.shared_down = make_linear(SD);
    w.shared_gate = make_linear(SGate);
  }
  size_t n = 9;
  auto x = rnd(n * size_t(H), g, 1.0f);
  vec y(x.size());
  moe_block(d, w, x.data(), n, y.data());
  auto mlp = [&](const tensor_f32& Gm, const tensor_f32& Um, const tensor_f32& Dm, const float* xt) {
    auto gg = mv(Gm, xt), uu = mv(Um, xt);
    for (size_t j = 0; j < gg.size(); ++j) gg[j] = silu_(gg[j]) * uu[j];
    return mv(Dm, gg.data());
  };
  for (size_t t = 0; t < n; ++t) {
    const float* xt = x.data() + t * size_t(H);
    auto l = mv(R, xt);
    double mx = *std::max_element(l.begin(), l.end()), z = 0;
    std::vector<double> p(static_cast<size_t>(E));
    for (int64_t e = 0; e < E; ++e) z += (p[size_t(e)] = std::exp(l[size_t(e)] - mx));
    for (auto& v : p) v /= z;
    std::vector<int> idx(static_cast<size_t>(E));
    std::iota(idx.begin(), idx.end(), 0);
    std::sort(idx.begin(), idx.end(), [&](int a1, int b1) { return p[size_t(a1)] > p[size_t(b1)]; });
    double tot = 0;
    for (int64_t k = 0; k < d.top_k; ++k) tot += p[size_t(idx[size_t(k)])];
    vec ref(size_t(H), 0.0f);
    for (int64_t k = 0; k < d.top_k; ++k) {
      int e = idx[size_t(k)];
      auto o = mlp(G[size_t(e)], U[size_t(e)], D[size_t(e)], xt);
      for (int64_t j = 0; j < H; ++j) ref[size_t(j)] += float(p[size_t(e)] / tot) * o[size_t(j)];
    }
    if (d.shared_ff) {
      auto o = mlp(SG, SU, SD, xt);
      float gs = sigm(mv(SGate, xt)[0]);
      for (int64_t j = 0; j < H; ++j) ref[size_t(j)] += gs * o[size_t(j)];
    }
    for (int64_t j = 0; j < H; ++j) ASSERT_NEAR(y[t * size_t(H) + size_t(j)], ref[size_t(j)], k_block_tol);
  }
}

TEST(blocks, moe_qwen3_topk_renormalised) { check_moe(arch::qwen3_moe); }
TEST(blocks, moe_qwen3_5_with_shared_expert) { check_moe(arch::qwen3_5_moe); }

TEST(blocks, memory_plan_counts_one_layer) {
  auto d = small_dims(arch::qwen3_moe);
  auto p = plan_memory(d, 1024, 4, 256, 256);
  EXPECT_EQ(p.hidden_bytes, 1024u * 32u * 4u);
  // attention (q, k, v, o) + router + experts + 2 norms + q/k norms
  uint64_t w = (32 * 32 + 2 * 16 * 32 + 32 * 32 + 2 * 8) + 6 * 32 + 6 * 3 * 16 * 32 + 2 * 32;
  EXPECT_EQ(p.layer_weight_bytes, w * 4);
  EXPECT_EQ(p.kv_bytes_per_seq, 2u * 16u * 256u * 4u);
  EXPECT_FALSE(p.to_string().empty());
}

}  // namespace
