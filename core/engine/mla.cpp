#include "engine/mla.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "engine/model_runner.h"
#include "util/parallel.h"

namespace razor::engine {

size_t mla_weights::bytes() const {
  size_t b = q.bytes() + q_a.bytes() + q_b.bytes() + kv_a.bytes() + kv_b.bytes() + o.bytes();
  b += dense_gate_up.bytes() + dense_down.bytes();
  b += (q_a_norm.size() + kv_a_norm.size()) * sizeof(float);
  return b;
}

namespace {

result<linear> get_lin(weight_provider& wp, const std::string& name, int64_t out, int64_t in, weight_layout lay) {
  RAZOR_ASSIGN_OR_RETURN(tensor_f32 t, matrix_of_shape(wp, name, out, in));
  return make_linear(std::move(t), lay);
}

result<std::vector<float>> get_vec(weight_provider& wp, const std::string& name, int64_t n) {
  RAZOR_ASSIGN_OR_RETURN(tensor_f32 t, matrix_of_shape(wp, name, 1, n));
  return std::move(t.data);
}

result<linear> get_swiglu(weight_provider& wp, int layer, const char* gate, const char* up, int64_t ff, int64_t H,
                          weight_layout lay) {
  std::vector<tensor_f32> gu;
  RAZOR_ASSIGN_OR_RETURN(tensor_f32 g, matrix_of_shape(wp, layer_tensor(layer, gate), ff, H));
  RAZOR_ASSIGN_OR_RETURN(tensor_f32 u, matrix_of_shape(wp, layer_tensor(layer, up), ff, H));
  gu.push_back(std::move(g));
  gu.push_back(std::move(u));
  return make_linear_cat(std::move(gu), lay);
}

}  // namespace

result<mla_weights> load_mla(weight_provider& wp, const model_dims& d, int L, weight_layout lay) {
  const deepseek_dims& s = d.ds;
  mla_weights w;
  const int64_t H = d.hidden, nh = d.n_heads, qh = s.qk_head_dim();
  if (s.q_lora_rank > 0) {
    RAZOR_ASSIGN_OR_RETURN(w.q_a, get_lin(wp, layer_tensor(L, "self_attn.q_a_proj.weight"), s.q_lora_rank, H, lay));
    RAZOR_ASSIGN_OR_RETURN(w.q_a_norm, get_vec(wp, layer_tensor(L, "self_attn.q_a_layernorm.weight"), s.q_lora_rank));
    RAZOR_ASSIGN_OR_RETURN(w.q_b, get_lin(wp, layer_tensor(L, "self_attn.q_b_proj.weight"), nh * qh, s.q_lora_rank, lay));
  } else {
    RAZOR_ASSIGN_OR_RETURN(w.q, get_lin(wp, layer_tensor(L, "self_attn.q_proj.weight"), nh * qh, H, lay));
  }
  RAZOR_ASSIGN_OR_RETURN(w.kv_a, get_lin(wp, layer_tensor(L, "self_attn.kv_a_proj_with_mqa.weight"), s.kv_lora_rank + s.qk_rope, H, lay));
  RAZOR_ASSIGN_OR_RETURN(w.kv_a_norm, get_vec(wp, layer_tensor(L, "self_attn.kv_a_layernorm.weight"), s.kv_lora_rank));
  RAZOR_ASSIGN_OR_RETURN(w.kv_b, get_lin(wp, layer_tensor(L, "self_attn.kv_b_proj.weight"), nh * (s.qk_nope + s.v_head_dim),
                                         s.kv_lora_rank, lay));
  RAZOR_ASSIGN_OR_RETURN(w.o, get_lin(wp, layer_tensor(L, "self_attn.o_proj.weight"), H, nh * s.v_head_dim, lay));
  w.moe = L >= s.first_dense;
  if (!w.moe) {
    RAZOR_ASSIGN_OR_RETURN(w.dense_gate_up, get_swiglu(wp, L, "mlp.gate_proj.weight", "mlp.up_proj.weight", s.dense_ff, H, lay));
    RAZOR_ASSIGN_OR_RETURN(w.dense_down, get_lin(wp, layer_tensor(L, "mlp.down_proj.weight"), H, s.dense_ff, lay));
  }
  return w;
}

std::vector<float> mla_inv_freq(const deepseek_dims& s, double theta) {
  if (!s.yarn) return rope_inv_freq(s.qk_rope, theta);
  return rope_inv_freq_yarn(s.qk_rope, theta, s.yarn_factor, s.yarn_orig_ctx, s.yarn_beta_fast, s.yarn_beta_slow);
}

mla_footprint mla_plan(const model_dims& d) {
  const deepseek_dims& s = d.ds;
  const uint64_t H = uint64_t(d.hidden), nh = uint64_t(d.n_heads), qh = uint64_t(s.qk_head_dim());
  const uint64_t ql = uint64_t(s.q_lora_rank), kvl = uint64_t(s.kv_lora_rank), rope = uint64_t(s.qk_rope);
  const uint64_t kvw = nh * uint64_t(s.qk_nope + s.v_head_dim), od = nh * uint64_t(s.v_head_dim);
  mla_footprint f;
  f.weights = (ql ? ql * H + ql + nh * qh * ql : nh * qh * H) + (kvl + rope) * H + kvl + kvw * kvl + H * od;
  if (s.first_dense > 0) f.weights += 3 * uint64_t(s.dense_ff) * H;
  f.kv_per_token = kvw + kvl + rope;  // the expanded k_nope | v and the compressed KV with k_pe
  f.work_per_token = ql + nh * qh + kvl + od + (s.first_dense > 0 ? 3 * uint64_t(s.dense_ff) : 0);
  return f;
}

void rope_pairs(float* h, int64_t rot, const float* inv_freq, double pos) {
  for (int64_t i = 0; i < rot / 2; ++i) {
    const float ang = float(pos) * inv_freq[i];
    const float c = std::cos(ang), sn = std::sin(ang);
    const float a = h[2 * i], b = h[2 * i + 1];
    h[2 * i] = a * c - b * sn;
    h[2 * i + 1] = b * c + a * sn;
  }
}

void observe_inputs(forward_observer* obs, int layer, size_t n, const float* x, int64_t cols,
                    std::initializer_list<const char*> names) {
  if (!obs || !obs->wants_input_sums() || !n) return;
  std::vector<double> sq(size_t(cols), 0.0), su(size_t(cols), 0.0);
  for (size_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      const double v = x[r * size_t(cols) + size_t(c)];
      sq[size_t(c)] += v * v;
      su[size_t(c)] += v;
    }
  for (const char* nm : names) obs->on_input_sums(layer, layer_tensor(layer, nm), -1, n, cols, sq.data(), su.data());
}

void mla_attention_block(const model_dims& d, const mla_weights& w, const float* x,
                         const std::vector<size_t>& seq_start, float* y, int layer, forward_observer* obs) {
  const deepseek_dims& s = d.ds;
  const size_t n = seq_start.back();
  const int64_t nh = d.n_heads, qh = s.qk_head_dim(), nope = s.qk_nope, rope = s.qk_rope, vd = s.v_head_dim;
  const int64_t kvl = s.kv_lora_rank;
  const float eps = float(d.eps);
  observe_inputs(obs, layer, n, x, d.hidden,
                 {s.q_lora_rank > 0 ? "self_attn.q_a_proj.weight" : "self_attn.q_proj.weight",
                  "self_attn.kv_a_proj_with_mqa.weight"});
  std::vector<float> q(n * size_t(nh * qh));
  if (s.q_lora_rank > 0) {
    std::vector<float> qa(n * size_t(s.q_lora_rank));
    matmul(x, n, w.q_a, qa.data());
    parallel_for(n, [&](size_t b, size_t e) {
      rms_norm(qa.data() + b * size_t(s.q_lora_rank), e - b, size_t(s.q_lora_rank), w.q_a_norm.data(), eps,
               qa.data() + b * size_t(s.q_lora_rank));
    }, 64);
    observe_inputs(obs, layer, n, qa.data(), s.q_lora_rank, {"self_attn.q_b_proj.weight"});
    matmul(qa.data(), n, w.q_b, q.data());
  } else {
    matmul(x, n, w.q, q.data());
  }
  const size_t kaw = size_t(kvl + rope);
  std::vector<float> ka(n * kaw), c(n * size_t(kvl));
  matmul(x, n, w.kv_a, ka.data());
  parallel_for(n, [&](size_t b, size_t e) {
    for (size_t t = b; t < e; ++t) rms_norm(ka.data() + t * kaw, 1, size_t(kvl), w.kv_a_norm.data(), eps, c.data() + t * size_t(kvl));
  }, 64);
  observe_inputs(obs, layer, n, c.data(), kvl, {"self_attn.kv_b_proj.weight"});
  const size_t kvw = size_t(nh * (nope + vd));
  std::vector<float> kv(n * kvw);
  matmul(c.data(), n, w.kv_b, kv.data());
  // RoPE on q_pe (every head) and k_pe (shared), at the position within the sequence.
  const auto inv_freq = mla_inv_freq(s, d.rope_theta);
  std::vector<size_t> seq_of(n);
  for (size_t i = 0; i + 1 < seq_start.size(); ++i)
    for (size_t t = seq_start[i]; t < seq_start[i + 1]; ++t) seq_of[t] = i;
  parallel_for(n, [&](size_t b, size_t e) {
    for (size_t t = b; t < e; ++t) {
      const double pos = double(t - seq_start[seq_of[t]]);
      for (int64_t h = 0; h < nh; ++h) rope_pairs(q.data() + t * size_t(nh * qh) + size_t(h * qh + nope), rope, inv_freq.data(), pos);
      rope_pairs(ka.data() + t * kaw + size_t(kvl), rope, inv_freq.data(), pos);
    }
  }, 16);
  const size_t od = size_t(nh * vd);
  std::vector<float> att(n * od);
  const float scale = float(s.mscale * s.mscale / std::sqrt(double(qh)));
  const size_t n_seq = seq_start.size() - 1;
  parallel_for(n_seq * size_t(nh), [&](size_t b, size_t e) {
    std::vector<float> p;
    for (size_t job = b; job < e; ++job) {
      const size_t sq = job / size_t(nh);
      const int64_t h = int64_t(job % size_t(nh));
      const size_t t0 = seq_start[sq], t1 = seq_start[sq + 1];
      p.resize(t1 - t0);
      for (size_t i = t0; i < t1; ++i) {
        const float* qi = q.data() + i * size_t(nh * qh) + size_t(h * qh);
        float mx = -INFINITY;
        for (size_t j = t0; j <= i; ++j) {
          const float* kn = kv.data() + j * kvw + size_t(h * (nope + vd));
          const float* kp = ka.data() + j * kaw + size_t(kvl);
          float sij = 0.0f;
          for (int64_t c2 = 0; c2 < nope; ++c2) sij += qi[c2] * kn[c2];
          for (int64_t c2 = 0; c2 < rope; ++c2) sij += qi[nope + c2] * kp[c2];
          sij *= scale;
          p[j - t0] = sij;
          mx = std::max(mx, sij);
        }
        float sum = 0.0f;
        for (size_t j = t0; j <= i; ++j) sum += (p[j - t0] = std::exp(p[j - t0] - mx));
        const float inv = 1.0f / sum;
        float* o = att.data() + i * od + size_t(h * vd);
        std::fill_n(o, vd, 0.0f);
        for (size_t j = t0; j <= i; ++j) {
          const float* vj = kv.data() + j * kvw + size_t(h * (nope + vd) + nope);
          const float pj = p[j - t0] * inv;
          for (int64_t c2 = 0; c2 < vd; ++c2) o[c2] += pj * vj[c2];
        }
      }
    }
  });
  observe_inputs(obs, layer, n, att.data(), int64_t(od), {"self_attn.o_proj.weight"});
  matmul(att.data(), n, w.o, y);
}

void dense_mlp_block(const model_dims& d, const mla_weights& w, const float* x, size_t n, float* y, int layer,
                     forward_observer* obs) {
  const size_t ff = size_t(w.dense_down.in);
  observe_inputs(obs, layer, n, x, d.hidden, {"mlp.gate_proj.weight", "mlp.up_proj.weight"});
  std::vector<float> hu(n * 2 * ff), act(n * ff);
  matmul(x, n, w.dense_gate_up, hu.data());
  parallel_for(n, [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i)
      for (size_t j = 0; j < ff; ++j) act[i * ff + j] = silu(hu[i * 2 * ff + j]) * hu[i * 2 * ff + ff + j];
  }, 64);
  observe_inputs(obs, layer, n, act.data(), int64_t(ff), {"mlp.down_proj.weight"});
  matmul(act.data(), n, w.dense_down, y);
}

void deepseek_route(const model_dims& d, const std::vector<float>& bias, const float* l, int32_t* ids, float* wts) {
  const cu::moe_route r = moe_route_of(d);
  std::vector<float> scratch(size_t(cu::route_scratch_floats(r)));
  cu::route_token(r, l, bias.empty() ? nullptr : bias.data(), scratch.data(), ids, wts);
}

}  // namespace razor::engine
