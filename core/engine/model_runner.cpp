#include "engine/model_runner.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <initializer_list>
#include <numeric>

#include "engine/families.h"
#include "kernels/cuda_info.h"

namespace razor::engine {

// ------------------------------------------------------------------------------------------------
// configuration

const char* arch_name(arch a) {
  switch (a) {
    case arch::qwen3_moe: return "qwen3_moe";
    case arch::qwen3_5_moe: return "qwen3_5_moe";
    case arch::olmoe: return "olmoe";
    case arch::qwen2_moe: return "qwen2_moe";
    case arch::mixtral: return "mixtral";
    case arch::deepseek: return "deepseek_v3";
    case arch::qwen3_next: return "qwen3_next";
    case arch::gpt_oss: return "gpt_oss";
  }
  return "?";
}

result<model_dims> dims_from_config(const model_config& cfg) {
  model_dims d;
  const std::string& mt = cfg.model_type;
  if (mt == "qwen3_moe")
    d.a = arch::qwen3_moe;
  else if (mt == "qwen3_5_moe_text" || mt == "qwen3_5_moe")
    d.a = arch::qwen3_5_moe;
  else if (mt == "olmoe")
    d.a = arch::olmoe;
  else if (mt == "qwen2_moe")
    d.a = arch::qwen2_moe;
  else if (mt == "mixtral")
    d.a = arch::mixtral;
  else if (is_deepseek(mt))
    d.a = arch::deepseek;
  else if (mt == "qwen3_next")
    d.a = arch::qwen3_next;
  else if (mt == "gpt_oss")
    d.a = arch::gpt_oss;
  else
    return make_error(errc::unsupported, "model_type " + mt +
                                             ": the reference engine runs qwen3_moe, qwen3_5_moe(_text), qwen3_next, "
                                             "olmoe, qwen2_moe, mixtral, deepseek_v2, deepseek_v3, kimi_k2 and gpt_oss only");
  // Every value in range (rot_dims even and within head_dim, top-k within the experts, eps > 0, ...).
  RAZOR_TRY(check_config_values(cfg));
  d.hidden = cfg.hidden_size;
  d.n_layers = cfg.num_layers;
  d.vocab = cfg.vocab_size;
  d.n_heads = cfg.num_heads;
  d.n_kv_heads = cfg.num_kv_heads;
  d.head_dim = cfg.head_dim;
  d.eps = cfg.rms_norm_eps;
  d.rope_theta = cfg.rope_theta;
  d.rot_dims = cfg.rotary_dims();
  d.n_experts = cfg.num_experts;
  d.top_k = cfg.num_experts_per_tok;
  d.moe_ff = cfg.moe_intermediate_size;
  d.norm_topk = cfg.norm_topk_prob;
  d.linear_layer.assign(size_t(d.n_layers), false);
  d.qk_norm = d.a == arch::olmoe ? qk_norm_kind::whole
              : d.a == arch::qwen2_moe || d.a == arch::mixtral ? qk_norm_kind::none
                                                                : qk_norm_kind::per_head;
  d.qkv_bias = d.a == arch::qwen2_moe;
  // transformers' default of norm_topk_prob is false for OLMoE and Qwen2-MoE (model_config's is true); Mixtral
  // always renormalises (a softmax over the top-k logits).
  if (d.a == arch::olmoe || d.a == arch::qwen2_moe) d.norm_topk = cfg.text.contains("norm_topk_prob") && cfg.norm_topk_prob;
  if (d.a == arch::mixtral) d.norm_topk = true;
  if (d.a == arch::qwen2_moe) d.shared_ff = cfg.shared_expert_intermediate_size;
  if (d.a == arch::deepseek) {
    RAZOR_ASSIGN_OR_RETURN(d.ds, deepseek_dims_from_config(cfg));
    d.qk_norm = qk_norm_kind::none;
    d.rot_dims = d.ds.qk_rope;
    d.shared_ff = cfg.moe_intermediate_size * d.ds.n_shared;
    // transformers' default: V3 / Kimi-K2 renormalise the top-k weights, V2 does not
    d.norm_topk = cfg.text.contains("norm_topk_prob") ? cfg.norm_topk_prob : mt != "deepseek_v2";
  }
  if (d.a == arch::gpt_oss) RAZOR_TRY(gpt_oss_dims(cfg, d));
  if (d.a == arch::qwen3_5_moe || d.a == arch::qwen3_next) {
    d.zero_centred_norms = true;
    // Qwen3.5's router always renormalises the top-k weights; Qwen3-Next's as norm_topk_prob says (default true)
    if (d.a == arch::qwen3_5_moe) d.norm_topk = true;
    d.shared_ff = cfg.shared_expert_intermediate_size;
    for (int64_t l = 0; l < d.n_layers; ++l) d.linear_layer[size_t(l)] = cfg.layer_is_linear_attention(l);
    d.lin_k_heads = cfg.linear_num_key_heads;
    d.lin_v_heads = cfg.linear_num_value_heads;
    d.lin_k_dim = cfg.linear_key_head_dim;
    d.lin_v_dim = cfg.linear_value_head_dim;
    d.conv_kernel = cfg.linear_conv_kernel_dim ? cfg.linear_conv_kernel_dim : 4;
  }
  return d;
}

result<model_dims> dims_for(const weight_provider& wp) {
  RAZOR_ASSIGN_OR_RETURN(model_dims d, dims_from_config(wp.config()));
  RAZOR_TRY(check_config(wp));
  return d;
}

size_t layer_weights::bytes() const {
  size_t b = (in_norm.size() + post_norm.size()) * 4;
  b += attn.q.bytes() + attn.k.bytes() + attn.v.bytes() + attn.o.bytes() + (attn.q_norm.size() + attn.k_norm.size()) * 4;
  b += (attn.q_bias.size() + attn.k_bias.size() + attn.v_bias.size()) * 4;
  b += dn.qkv.bytes() + dn.z.bytes() + dn.a.bytes() + dn.b.bytes() + dn.out.bytes() +
       (dn.conv.size() + dn.a_log.size() + dn.dt_bias.size() + dn.norm.size()) * 4;
  b += mla.bytes() + moe.score_bias.size() * 4;
  b += (attn.o_bias.size() + attn.sinks.size() + moe.router_bias.size()) * 4;
  for (auto& v : moe.gate_up_bias) b += v.size() * 4;
  for (auto& v : moe.down_bias) b += v.size() * 4;
  b += moe.router.bytes() + moe.shared_gate_up.bytes() + moe.shared_down.bytes() + moe.shared_gate.bytes();
  for (auto& l : moe.gate_up) b += l.bytes();
  for (auto& l : moe.down) b += l.bytes();
  return b;
}

// ------------------------------------------------------------------------------------------------
// loading one layer

namespace {

std::string router_name(const model_dims& d, int layer) { return layer_tensor(layer, router_suffix(d)); }

// The rows layout takes the stored BF16 data when the provider has it (no float copy).
linear borrowed(const bf16_matrix& m) {
  linear l;
  l.in = m.cols;
  l.out = m.rows;
  l.rows = true;
  l.bf16 = m.data;
  return l;
}

result<linear> get_linear(weight_provider& wp, const std::string& name, int64_t out, int64_t in,
                          weight_layout layout = weight_layout::transposed) {
  if (layout == weight_layout::rows)
    if (auto m = wp.stored_bf16(name); m && m->rows == out && m->cols == in) return borrowed(*m);
  RAZOR_ASSIGN_OR_RETURN(tensor_f32 t, matrix_of_shape(wp, name, out, in));
  return make_linear(std::move(t), layout);
}

result<std::vector<float>> get_vec(weight_provider& wp, const std::string& name, int64_t n, bool plus_one) {
  RAZOR_ASSIGN_OR_RETURN(tensor_f32 t, wp.tensor(name));
  if (int64_t(t.data.size()) != n)
    return make_error(errc::shape_mismatch, name + ": expected " + std::to_string(n) + " values, got " +
                                                std::to_string(t.data.size()));
  if (plus_one)
    for (auto& v : t.data) v += 1.0f;
  return std::move(t.data);
}

}  // namespace

result<layer_weights> load_layer(weight_provider& wp, const model_dims& d, int L, weight_layout lay) {
  layer_weights w;
  w.layer = L;
  bool zc = d.zero_centred_norms;
  RAZOR_ASSIGN_OR_RETURN(w.in_norm, get_vec(wp, layer_tensor(L, "input_layernorm.weight"), d.hidden, zc));
  RAZOR_ASSIGN_OR_RETURN(w.post_norm, get_vec(wp, layer_tensor(L, "post_attention_layernorm.weight"), d.hidden, zc));
  w.linear_attention = d.linear_layer[size_t(L)];
  if (d.a == arch::deepseek) {
    RAZOR_ASSIGN_OR_RETURN(w.mla, load_mla(wp, d, L, lay));
    if (!w.mla.moe) return w;  // a leading dense layer
  } else if (w.linear_attention) {
    auto& n = w.dn;
    int64_t kd = d.lin_k_heads * d.lin_k_dim, vd = d.lin_v_heads * d.lin_v_dim, ch = 2 * kd + vd;
    if (d.a == arch::qwen3_next) {
      RAZOR_TRY(load_qwen3_next_projections(wp, d, L, lay, n));
    } else {
      RAZOR_ASSIGN_OR_RETURN(n.qkv, get_linear(wp, layer_tensor(L, "linear_attn.in_proj_qkv.weight"), ch, d.hidden, lay));
      RAZOR_ASSIGN_OR_RETURN(n.z, get_linear(wp, layer_tensor(L, "linear_attn.in_proj_z.weight"), vd, d.hidden, lay));
      RAZOR_ASSIGN_OR_RETURN(n.b, get_linear(wp, layer_tensor(L, "linear_attn.in_proj_b.weight"), d.lin_v_heads, d.hidden, lay));
      RAZOR_ASSIGN_OR_RETURN(n.a, get_linear(wp, layer_tensor(L, "linear_attn.in_proj_a.weight"), d.lin_v_heads, d.hidden, lay));
    }
    RAZOR_ASSIGN_OR_RETURN(n.out, get_linear(wp, layer_tensor(L, "linear_attn.out_proj.weight"), d.hidden, vd, lay));
    RAZOR_ASSIGN_OR_RETURN(n.conv, get_vec(wp, layer_tensor(L, "linear_attn.conv1d.weight"), ch * d.conv_kernel, false));
    RAZOR_ASSIGN_OR_RETURN(n.a_log, get_vec(wp, layer_tensor(L, "linear_attn.A_log"), d.lin_v_heads, false));
    RAZOR_ASSIGN_OR_RETURN(n.dt_bias, get_vec(wp, layer_tensor(L, "linear_attn.dt_bias"), d.lin_v_heads, false));
    // The gated norm's weight is a plain multiplier (initialised to ones), not zero-centred.
    RAZOR_ASSIGN_OR_RETURN(n.norm, get_vec(wp, layer_tensor(L, "linear_attn.norm.weight"), d.lin_v_dim, false));
  } else {
    auto& a = w.attn;
    a.gated = d.a == arch::qwen3_5_moe || d.a == arch::qwen3_next;
    int64_t qd = d.n_heads * d.head_dim, kvd = d.n_kv_heads * d.head_dim;
    RAZOR_ASSIGN_OR_RETURN(a.q, get_linear(wp, layer_tensor(L, "self_attn.q_proj.weight"), a.gated ? 2 * qd : qd, d.hidden, lay));
    RAZOR_ASSIGN_OR_RETURN(a.k, get_linear(wp, layer_tensor(L, "self_attn.k_proj.weight"), kvd, d.hidden, lay));
    RAZOR_ASSIGN_OR_RETURN(a.v, get_linear(wp, layer_tensor(L, "self_attn.v_proj.weight"), kvd, d.hidden, lay));
    RAZOR_ASSIGN_OR_RETURN(a.o, get_linear(wp, layer_tensor(L, "self_attn.o_proj.weight"), d.hidden, qd, lay));
    if (d.qk_norm != qk_norm_kind::none) {
      const bool whole = d.qk_norm == qk_norm_kind::whole;
      RAZOR_ASSIGN_OR_RETURN(a.q_norm, get_vec(wp, layer_tensor(L, "self_attn.q_norm.weight"), whole ? qd : d.head_dim, zc));
      RAZOR_ASSIGN_OR_RETURN(a.k_norm, get_vec(wp, layer_tensor(L, "self_attn.k_norm.weight"), whole ? kvd : d.head_dim, zc));
    }
    if (d.qkv_bias) {
      RAZOR_ASSIGN_OR_RETURN(a.q_bias, get_vec(wp, layer_tensor(L, "self_attn.q_proj.bias"), qd, false));
      RAZOR_ASSIGN_OR_RETURN(a.k_bias, get_vec(wp, layer_tensor(L, "self_attn.k_proj.bias"), kvd, false));
      RAZOR_ASSIGN_OR_RETURN(a.v_bias, get_vec(wp, layer_tensor(L, "self_attn.v_proj.bias"), kvd, false));
    }
  }
  auto& m = w.moe;
  RAZOR_ASSIGN_OR_RETURN(m.router, get_linear(wp, router_name(d, L), d.n_experts, d.hidden, lay));
  if (d.a == arch::deepseek && d.ds.score_bias) {
    RAZOR_ASSIGN_OR_RETURN(m.score_bias, get_vec(wp, layer_tensor(L, "mlp.gate.e_score_correction_bias"), d.n_experts, false));
  }
  m.gate_up.resize(size_t(d.n_experts));
  m.down.resize(size_t(d.n_experts));
  auto load_expert = [&](int e) -> status {
    if (lay == weight_layout::rows) {  // gate and up adjacent (a fused gate_up_proj): one borrowed matrix
      auto g = wp.stored_bf16_expert(L, e, expert_proj::gate), u = wp.stored_bf16_expert(L, e, expert_proj::up),
           dn = wp.stored_bf16_expert(L, e, expert_proj::down);
      if (g && u && dn && g->rows == d.moe_ff && g->cols == d.hidden && u->rows == d.moe_ff && u->cols == d.hidden &&
          u->data == g->data + size_t(d.moe_ff * d.hidden) && dn->rows == d.hidden && dn->cols == d.moe_ff) {
        m.gate_up[size_t(e)] = borrowed({g->data, 2 * d.moe_ff, d.hidden});
        m.down[size_t(e)] = borrowed(*dn);
        return {};
      }
    }
    RAZOR_ASSIGN_OR_RETURN(tensor_f32 g, wp.expert(L, e, expert_proj::gate));
    RAZOR_ASSIGN_OR_RETURN(tensor_f32 u, wp.expert(L, e, expert_proj::up));
    RAZOR_ASSIGN_OR_RETURN(tensor_f32 dn, wp.expert(L, e, expert_proj::down));
    RAZOR_TRY(check_shape(expert_tensor_name(L, e, expert_proj::gate), g, d.moe_ff, d.hidden));
    RAZOR_TRY(check_shape(expert_tensor_name(L, e, expert_proj::up), u, d.moe_ff, d.hidden));
    RAZOR_TRY(check_shape(expert_tensor_name(L, e, expert_proj::down), dn, d.hidden, d.moe_ff));
    std::vector<tensor_f32> gu;
    gu.push_back(std::move(g));
    gu.push_back(std::move(u));
    m.gate_up[size_t(e)] = make_linear_cat(std::move(gu), lay);
    m.down[size_t(e)] = make_linear(std::move(dn), lay);
    return {};
  };
  std::vector<status> st(size_t(d.n_experts));
  parallel_for(size_t(d.n_experts), [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i) st[i] = load_expert(int(i));
  }, 1, wp.concurrent_reads() ? 0 : 1);
  for (auto& x : st) RAZOR_TRY(std::move(x));
  if (d.a == arch::gpt_oss) RAZOR_TRY(load_gpt_oss_extras(wp, d, L, w));
  const std::string sh = d.a == arch::deepseek ? "mlp.shared_experts." : "mlp.shared_expert.";  // DeepSeek: ungated
  if (d.shared_ff > 0 && wp.has(layer_tensor(L, (sh + "gate_proj.weight").c_str()))) {
    RAZOR_ASSIGN_OR_RETURN(tensor_f32 g, wp.tensor(layer_tensor(L, (sh + "gate_proj.weight").c_str())));
    RAZOR_ASSIGN_OR_RETURN(tensor_f32 u, wp.tensor(layer_tensor(L, (sh + "up_proj.weight").c_str())));
    RAZOR_TRY(check_shape(layer_tensor(L, (sh + "gate_proj.weight").c_str()), g, d.shared_ff, d.hidden));
    RAZOR_TRY(check_shape(layer_tensor(L, (sh + "up_proj.weight").c_str()), u, d.shared_ff, d.hidden));
    std::vector<tensor_f32> gu;
    gu.push_back(std::move(g));
    gu.push_back(std::move(u));
    m.shared_gate_up = make_linear_cat(std::move(gu), lay);
    RAZOR_ASSIGN_OR_RETURN(m.shared_down,
                           get_linear(wp, layer_tensor(L, (sh + "down_proj.weight").c_str()), d.hidden, d.shared_ff, lay));
    if (d.a != arch::deepseek) {
      RAZOR_ASSIGN_OR_RETURN(m.shared_gate, get_linear(wp, layer_tensor(L, "mlp.shared_expert_gate.weight"), 1, d.hidden, lay));
    }
  }
  return w;
}

result<head_weights> load_head(weight_provider& wp, const model_dims& d, weight_layout layout, bool lm_head) {
  head_weights h;
  RAZOR_ASSIGN_OR_RETURN(h.norm, get_vec(wp, "norm.weight", d.hidden, d.zero_centred_norms));
  if (lm_head) {
    RAZOR_ASSIGN_OR_RETURN(h.lm_head, get_linear(wp, "lm_head.weight", d.vocab, d.hidden, layout));
  }
  return h;
}

// ------------------------------------------------------------------------------------------------
// blocks

// Mixtral keeps its MoE under block_sparse_moe; gpt-oss calls its router "router".
const char* router_suffix(const model_dims& d) {
  return d.a == arch::mixtral ? "block_sparse_moe.gate.weight" : d.a == arch::gpt_oss ? "mlp.router.weight" : "mlp.gate.weight";
}

std::vector<std::string> input_names(cu::eng_point p, int layer, bool linear_attention, bool shared_expert,
                                     const char* router) {
  using cu::eng_point;
  auto names = [layer](std::initializer_list<const char*> rest) {
    std::vector<std::string> v;
    for (const char* r : rest) v.push_back(layer_tensor(layer, r));
    return v;
  };
  switch (p) {
    case eng_point::mixer_in:
      if (linear_attention)
        return names({"linear_attn.in_proj_qkv.weight", "linear_attn.in_proj_z.weight", "linear_attn.in_proj_b.weight",
                      "linear_attn.in_proj_a.weight"});
      return names({"self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight"});
    case eng_point::mixer_out:
      return names({linear_attention ? "linear_attn.out_proj.weight" : "self_attn.o_proj.weight"});
    case eng_point::moe_in:
      if (shared_expert)
        return names({router, "mlp.shared_expert.gate_proj.weight", "mlp.shared_expert.up_proj.weight",
                      "mlp.shared_expert_gate.weight"});
      return names({router});
    case eng_point::expert_in: return names({"mlp.experts.gate_up"});
    case eng_point::expert_act: return names({"mlp.experts.down"});
    case eng_point::shared_act: return names({"mlp.shared_expert.down_proj.weight"});
    case eng_point::head_in: return {"lm_head.weight"};
    case eng_point::mla_q_b_in: return names({"self_attn.q_b_proj.weight"});
    case eng_point::mla_kv_b_in: return names({"self_attn.kv_b_proj.weight"});
    case eng_point::dense_in: return names({"mlp.gate_proj.weight", "mlp.up_proj.weight"});
    case eng_point::dense_act: return names({"mlp.down_proj.weight"});
  }
  return {};
}

namespace {

// The input statistics over n rows of x [n, cols] of the maps behind point `p`, once, to the observer under
// each of their names (input_names).
void observe(forward_observer* obs, cu::eng_point p, int layer, int expert, size_t n, const float* x, int64_t cols,
             bool linear_attention = false, bool shared_expert = false, const char* router = "mlp.gate.weight") {
  if (!obs || !obs->wants_input_sums() || !n) return;
  std::vector<double> sq(static_cast<size_t>(cols)), su(static_cast<size_t>(cols));
  for (size_t r = 0; r < n; ++r) {
    const float* row = x + r * size_t(cols);
    for (int64_t c = 0; c < cols; ++c) {
      sq[size_t(c)] += double(row[c]) * row[c];
      su[size_t(c)] += row[c];
    }
  }
  for (const std::string& name : input_names(p, layer, linear_attention, shared_expert, router))
    obs->on_input_sums(layer, name, expert, n, cols, sq.data(), su.data());
}

std::vector<size_t> seq_of_token(const std::vector<size_t>& seq_start) {
  std::vector<size_t> s(seq_start.back());
  for (size_t i = 0; i + 1 < seq_start.size(); ++i)
    for (size_t t = seq_start[i]; t < seq_start[i + 1]; ++t) s[t] = i;
  return s;
}

}  // namespace

void attention_block(const model_dims& d, const attention_weights& w, const float* x,
                     const std::vector<size_t>& seq_start, float* y, int layer, forward_observer* obs) {
  const size_t n = seq_start.back();
  const int64_t hd = d.head_dim, nh = d.n_heads, nkv = d.n_kv_heads;
  const size_t qw = size_t(w.q.out), kvd = size_t(nkv * hd), qd = size_t(nh * hd);
  std::vector<float> qraw(n * qw), k(n * kvd), v(n * kvd);
  observe(obs, cu::eng_point::mixer_in, layer, -1, n, x, d.hidden);
  matmul(x, n, w.q, qraw.data());
  matmul(x, n, w.k, k.data());
  matmul(x, n, w.v, v.data());
  const auto inv_freq = attention_inv_freq(d);
  const auto tok_seq = seq_of_token(seq_start);
  std::vector<float> q(n * qd), gate(w.gated ? n * qd : 0);
  const float eps = float(d.eps);
  auto add_bias = [](float* row, const std::vector<float>& bias) {
    for (size_t i = 0; i < bias.size(); ++i) row[i] += bias[i];
  };
  // QK-norm (d.qk_norm): per head (head_dim weights), over the whole q / k projection (olmoe), or none.
  const bool per_head = d.qk_norm == qk_norm_kind::per_head, whole = d.qk_norm == qk_norm_kind::whole;
  parallel_for(n, [&](size_t b, size_t e) {
    for (size_t t = b; t < e; ++t) {
      double pos = double(t - seq_start[tok_seq[t]]);
      add_bias(qraw.data() + t * qw, w.q_bias);
      add_bias(k.data() + t * kvd, w.k_bias);
      add_bias(v.data() + t * kvd, w.v_bias);
      if (whole) {
        rms_norm(qraw.data() + t * qw, 1, qd, w.q_norm.data(), eps, q.data() + t * qd);
        rms_norm(k.data() + t * kvd, 1, kvd, w.k_norm.data(), eps, k.data() + t * kvd);
      }
      for (int64_t h = 0; h < nh; ++h) {
        const float* src = qraw.data() + t * qw + size_t(h * hd * (w.gated ? 2 : 1));
        float* dst = q.data() + t * qd + size_t(h * hd);
        if (per_head) rms_norm(src, 1, size_t(hd), w.q_norm.data(), eps, dst);
        else if (!whole) std::copy_n(src, hd, dst);
        rope_neox(dst, d.rot_dims, inv_freq.data(), pos);
        if (w.gated) std::copy_n(src + hd, hd, gate.data() + t * qd + size_t(h * hd));
      }
      for (int64_t h = 0; h < nkv; ++h) {
        float* kh = k.data() + t * kvd + size_t(h * hd);
        if (per_head) rms_norm(kh, 1, size_t(hd), w.k_norm.data(), eps, kh);
        rope_neox(kh, d.rot_dims, inv_freq.data(), pos);
      }
    }
  }, 16);
  // Causal softmax attention per (sequence, head); GQA: query head h reads kv head h / (nh / nkv).
  std::vector<float> att(n * qd);
  const size_t n_seq = seq_start.size() - 1;
  const float scale = attention_score_mscale2(d) / std::sqrt(float(hd));
  parallel_for(n_seq * size_t(nh), [&](size_t b, size_t e) {
    std::vector<float> p;
    for (size_t job = b; job < e; ++job) {
      size_t s = job / size_t(nh);
      int64_t h = int64_t(job % size_t(nh)), hk = h / (nh / nkv);
      size_t t0 = seq_start[s], t1 = seq_start[s + 1];
      p.resize(t1 - t0);
      // gpt_oss: a sink logit in the denominator, a sliding window
      const float sink = w.sinks.empty() ? -INFINITY : w.sinks[size_t(h)];
      for (size_t i = t0; i < t1; ++i) {
        const float* qi = q.data() + i * qd + size_t(h * hd);
        const size_t first = w.window > 0 && i - t0 >= size_t(w.window) ? i + 1 - size_t(w.window) : t0;
        float mx = sink;
        for (size_t j = first; j <= i; ++j) {
          const float* kj = k.data() + j * kvd + size_t(hk * hd);
          float s_ij = 0.0f;
          for (int64_t c = 0; c < hd; ++c) s_ij += qi[c] * kj[c];
          s_ij *= scale;
          p[j - t0] = s_ij;
          mx = std::max(mx, s_ij);
        }
        float sum = w.sinks.empty() ? 0.0f : std::exp(sink - mx);
        for (size_t j = first; j <= i; ++j) sum += (p[j - t0] = std::exp(p[j - t0] - mx));
        float inv = 1.0f / sum;
        float* o = att.data() + i * qd + size_t(h * hd);
        std::fill_n(o, hd, 0.0f);
        for (size_t j = first; j <= i; ++j) {
          const float* vj = v.data() + j * kvd + size_t(hk * hd);
          float pj = p[j - t0] * inv;
          for (int64_t c = 0; c < hd; ++c) o[c] += pj * vj[c];
        }
      }
    }
  });
  if (w.gated)
    parallel_for(n * qd, [&](size_t b, size_t e) {
      for (size_t i = b; i < e; ++i) att[i] *= sigmoid(gate[i]);
    }, 4096);
  observe(obs, cu::eng_point::mixer_out, layer, -1, n, att.data(), int64_t(qd));
  matmul(att.data(), n, w.o, y);
  if (!w.o_bias.empty())
    parallel_for(n, [&](size_t b, size_t e) {
      for (size_t t = b; t < e; ++t)
        for (size_t j = 0; j < w.o_bias.size(); ++j) y[t * w.o_bias.size() + j] += w.o_bias[j];
    }, 64);
}

void deltanet_block(const model_dims& d, const deltanet_weights& w, const float* x,
                    const std::vector<size_t>& seq_start, float* y, int layer, forward_observer* obs) {
  const size_t n = seq_start.back();
  const int64_t nk = d.lin_k_heads, nv = d.lin_v_heads, dk = d.lin_k_dim, dv = d.lin_v_dim, K = d.conv_kernel;
  const size_t kd = size_t(nk * dk), vd = size_t(nv * dv), ch = 2 * kd + vd;
  std::vector<float> qkv(n * ch), z(n * vd), bb(n * size_t(nv)), aa(n * size_t(nv));
  observe(obs, cu::eng_point::mixer_in, layer, -1, n, x, d.hidden, true);
  matmul(x, n, w.qkv, qkv.data());
  matmul(x, n, w.z, z.data());
  matmul(x, n, w.b, bb.data());
  matmul(x, n, w.a, aa.data());
  // Causal depthwise conv1d (kernel K, zero history at each sequence start), then SiLU.
  const auto tok_seq = seq_of_token(seq_start);
  std::vector<float> conv(n * ch);
  parallel_for(n, [&](size_t b, size_t e) {
    for (size_t t = b; t < e; ++t) {
      size_t t0 = seq_start[tok_seq[t]];
      float* o = conv.data() + t * ch;
      for (size_t c = 0; c < ch; ++c) {
        float s = 0.0f;
        for (int64_t j = 0; j < K; ++j) {
          int64_t src = int64_t(t) - (K - 1) + j;
          if (src < int64_t(t0)) continue;
          s += w.conv[c * size_t(K) + size_t(j)] * qkv[size_t(src) * ch + c];
        }
        o[c] = silu(s);
      }
      // L2-normalise q and k per key head (x / sqrt(sum x^2 + 1e-6), as the FLA kernels); q /= sqrt(dk).
      const float qscale = 1.0f / std::sqrt(float(dk));
      for (int64_t h = 0; h < 2 * nk; ++h) {
        float* v = o + size_t(h * dk);
        float ss = 0.0f;
        for (int64_t i = 0; i < dk; ++i) ss += v[i] * v[i];
        float inv = 1.0f / std::sqrt(ss + 1e-6f);
        if (h < nk) inv *= qscale;
        for (int64_t i = 0; i < dk; ++i) v[i] *= inv;
      }
    }
  }, 16);
  // Gated delta rule per (sequence, value head); value head h reads key head h / (nv / nk) (HF's grouped
  // order: each key head serves consecutive value heads).
  std::vector<float> core(n * vd);
  const size_t n_seq = seq_start.size() - 1;
  parallel_for(n_seq * size_t(nv), [&](size_t b, size_t e) {
    std::vector<float> S(static_cast<size_t>(dk * dv)), kv(static_cast<size_t>(dv));
    for (size_t job = b; job < e; ++job) {
      size_t s = job / size_t(nv);
      int64_t h = int64_t(job % size_t(nv)), hk = h / (nv / nk);
      std::fill(S.begin(), S.end(), 0.0f);
      const float A = -std::exp(w.a_log[size_t(h)]);
      for (size_t t = seq_start[s]; t < seq_start[s + 1]; ++t) {
        const float* qt = conv.data() + t * ch + size_t(hk * dk);
        const float* kt = conv.data() + t * ch + kd + size_t(hk * dk);
        const float* vt = conv.data() + t * ch + 2 * kd + size_t(h * dv);
        float beta = sigmoid(bb[t * size_t(nv) + size_t(h)]);
        float g = A * softplus(aa[t * size_t(nv) + size_t(h)] + w.dt_bias[size_t(h)]);
        float decay = std::exp(g);
        std::fill(kv.begin(), kv.end(), 0.0f);
        for (int64_t i = 0; i < dk; ++i) {
          float* Si = S.data() + size_t(i * dv);
          for (int64_t j = 0; j < dv; ++j) {
            Si[j] *= decay;
            kv[size_t(j)] += Si[j] * kt[i];
          }
        }
        for (int64_t j = 0; j < dv; ++j) kv[size_t(j)] = (vt[j] - kv[size_t(j)]) * beta;  // delta
        float* o = core.data() + t * vd + size_t(h * dv);
        std::fill_n(o, dv, 0.0f);
        for (int64_t i = 0; i < dk; ++i) {
          float* Si = S.data() + size_t(i * dv);
          for (int64_t j = 0; j < dv; ++j) {
            Si[j] += kt[i] * kv[size_t(j)];
            o[j] += Si[j] * qt[i];
          }
        }
      }
    }
  });
  // Gated RMSNorm per value head: norm(o) * w * silu(z).
  const float eps = float(d.eps);
  parallel_for(n * size_t(nv), [&](size_t b, size_t e) {
    for (size_t r = b; r < e; ++r) {
      float* o = core.data() + r * size_t(dv);
      const float* zz = z.data() + r * size_t(dv);
      rms_norm(o, 1, size_t(dv), w.norm.data(), eps, o);
      for (int64_t j = 0; j < dv; ++j) o[j] *= silu(zz[j]);
    }
  }, 64);
  observe(obs, cu::eng_point::mixer_out, layer, -1, n, core.data(), int64_t(vd), true);
  matmul(core.data(), n, w.out, y);
}

void moe_block(const model_dims& d, const moe_weights& w, const float* x, size_t n, float* y, int layer,
               forward_observer* obs) {
  const size_t E = size_t(d.n_experts), K = size_t(d.top_k), H = size_t(d.hidden);
  std::vector<float> logits(n * E);
  // the router's input, also the shared expert's gate / up / gate
  observe(obs, cu::eng_point::moe_in, layer, -1, n, x, d.hidden, false, !w.shared_gate.empty(), router_suffix(d));
  if (d.a == arch::deepseek && !w.shared_gate_up.empty())
    observe_inputs(obs, layer, n, x, d.hidden, {"mlp.shared_experts.gate_proj.weight", "mlp.shared_experts.up_proj.weight"});
  matmul(x, n, w.router, logits.data());
  std::vector<int32_t> ids(n * K);
  std::vector<float> wts(n * K);
  if (!w.router_bias.empty())  // gpt-oss: the router's own bias (a linear bias, not a choice bias)
    for (size_t t = 0; t < n; ++t)
      for (size_t i = 0; i < E; ++i) logits[t * E + i] += w.router_bias[i];
  // the router of each token: kernels/moe_routing.h, the GPU engine's too
  const cu::moe_route route = moe_route_of(d);
  const float* bias = w.score_bias.empty() ? nullptr : w.score_bias.data();
  parallel_for(n, [&](size_t b, size_t e) {
    std::vector<float> scratch(size_t(cu::route_scratch_floats(route)));
    for (size_t t = b; t < e; ++t)
      cu::route_token(route, logits.data() + t * E, bias, scratch.data(), ids.data() + t * K, wts.data() + t * K);
  }, 64);
  if (obs) {
    std::vector<float> norms(n);
    for (size_t t = 0; t < n; ++t) {
      double ss = 0;
      for (size_t j = 0; j < H; ++j) ss += double(x[t * H + j]) * x[t * H + j];
      norms[t] = float(std::sqrt(ss));
    }
    obs->on_router(layer, n, norms.data(), ids.data(), wts.data(), int(K));
  }
  std::fill_n(y, n * H, 0.0f);
  // Group token-slots by expert, run each expert as one matmul over its tokens.
  std::vector<std::vector<std::pair<uint32_t, float>>> slots(E);
  for (size_t t = 0; t < n; ++t)
    for (size_t k = 0; k < K; ++k) slots[size_t(ids[t * K + k])].emplace_back(uint32_t(t), wts[t * K + k]);
  const size_t ff = size_t(d.moe_ff);
  std::vector<float> xe, hu, act, out;
  for (size_t e = 0; e < E; ++e) {
    const auto& sl = slots[e];
    if (sl.empty()) continue;
    size_t c = sl.size();
    xe.resize(c * H);
    for (size_t i = 0; i < c; ++i) std::copy_n(x + size_t(sl[i].first) * H, H, xe.data() + i * H);
    hu.resize(c * 2 * ff);
    act.resize(c * ff);
    out.resize(c * H);
    observe(obs, cu::eng_point::expert_in, layer, int(e), c, xe.data(), d.hidden);
    matmul(xe.data(), c, w.gate_up[e], hu.data());
    if (!w.gate_up_bias.empty()) {  // gpt_oss: biases and the clamped SwiGLU
      const float* gb = w.gate_up_bias[e].data();
      for (size_t i = 0; i < c; ++i)
        for (size_t j = 0; j < ff; ++j)
          act[i * ff + j] = gpt_oss_swiglu(hu[i * 2 * ff + j] + gb[j], hu[i * 2 * ff + ff + j] + gb[ff + j], d.swiglu_limit);
    } else {
      for (size_t i = 0; i < c; ++i)
        for (size_t j = 0; j < ff; ++j) act[i * ff + j] = silu(hu[i * 2 * ff + j]) * hu[i * 2 * ff + ff + j];
    }
    observe(obs, cu::eng_point::expert_act, layer, int(e), c, act.data(), int64_t(ff));
    if (obs && obs->wants_expert_tokens()) obs->on_expert_tokens(layer, int(e), c, xe.data(), d.hidden, act.data(), int64_t(ff));
    matmul(act.data(), c, w.down[e], out.data());
    if (!w.down_bias.empty())
      for (size_t i = 0; i < c; ++i)
        for (size_t j = 0; j < H; ++j) out[i * H + j] += w.down_bias[e][j];
    for (size_t i = 0; i < c; ++i) {
      float* yt = y + size_t(sl[i].first) * H;
      const float* o = out.data() + i * H;
      float wt = sl[i].second;
      for (size_t j = 0; j < H; ++j) yt[j] += wt * o[j];
    }
  }
  if (!w.shared_gate_up.empty()) {
    const size_t sf = size_t(w.shared_down.in);
    hu.resize(n * 2 * sf);
    act.resize(n * sf);
    out.resize(n * H);
    std::vector<float> sg(n);
    matmul(x, n, w.shared_gate_up, hu.data());
    if (!w.shared_gate.empty()) matmul(x, n, w.shared_gate, sg.data());
    parallel_for(n, [&](size_t b, size_t e) {
      for (size_t i = b; i < e; ++i)
        for (size_t j = 0; j < sf; ++j) act[i * sf + j] = silu(hu[i * 2 * sf + j]) * hu[i * 2 * sf + sf + j];
    }, 64);
    if (d.a == arch::deepseek) observe_inputs(obs, layer, n, act.data(), int64_t(sf), {"mlp.shared_experts.down_proj.weight"});
    else observe(obs, cu::eng_point::shared_act, layer, -1, n, act.data(), int64_t(sf));
    matmul(act.data(), n, w.shared_down, out.data());
    parallel_for(n, [&](size_t b, size_t e) {
      for (size_t i = b; i < e; ++i) {
        const float gsig = w.shared_gate.empty() ? 1.0f : sigmoid(sg[i]);
        for (size_t j = 0; j < H; ++j) y[i * H + j] += gsig * out[i * H + j];
      }
    }, 64);
  }
}

// ------------------------------------------------------------------------------------------------
// memory plan

uint64_t memory_plan::peak_bytes() const {
  return hidden_bytes + std::max(layer_weight_bytes + work_bytes, head_bytes + logits_bytes);
}

std::string memory_plan::to_string() const {
  auto mib = [](uint64_t b) { return double(b) / 1048576.0; };
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "memory plan: hidden states %.1f MiB, weights %.1f MiB (%s), head %.1f MiB, "
                "layer scratch %.1f MiB, logits chunk %.1f MiB; per sequence: KV %.2f MiB, DeltaNet state %.2f "
                "MiB; peak about %.1f MiB",
                mib(hidden_bytes), mib(layer_weight_bytes),
                weight_slots > 1 ? "two slots, each the largest layer or the head" : "the largest layer", mib(head_bytes), mib(work_bytes), mib(logits_bytes),
                mib(kv_bytes_per_seq), mib(state_bytes_per_seq), mib(peak_bytes()));
  return buf;
}

memory_plan plan_memory(const model_dims& d, size_t n_tokens, size_t n_seqs, size_t seq_len, size_t logits_chunk) {
  memory_plan p;
  const uint64_t f = 4, H = uint64_t(d.hidden), n = n_tokens;
  p.hidden_bytes = n * H * f;
  uint64_t moe = uint64_t(d.n_experts) * H + uint64_t(d.n_experts) * 3 * uint64_t(d.moe_ff) * H +
                 (d.shared_ff ? 3 * uint64_t(d.shared_ff) * H + H : 0);
  uint64_t qd = uint64_t(d.n_heads * d.head_dim), kvd = uint64_t(d.n_kv_heads * d.head_dim);
  bool gated = d.a == arch::qwen3_5_moe || d.a == arch::qwen3_next;
  uint64_t attn = ((gated ? 2 : 1) * qd + 2 * kvd) * H + qd * H + 2 * uint64_t(d.head_dim);
  uint64_t kd = uint64_t(d.lin_k_heads * d.lin_k_dim), vd = uint64_t(d.lin_v_heads * d.lin_v_dim), ch = 2 * kd + vd;
  uint64_t lin = (ch + vd + 2 * uint64_t(d.lin_v_heads)) * H + vd * H + ch * uint64_t(d.conv_kernel);
  uint64_t n_lin = uint64_t(std::count(d.linear_layer.begin(), d.linear_layer.end(), true));
  uint64_t n_att = uint64_t(d.n_layers) - n_lin;
  const mla_footprint mla = d.a == arch::deepseek ? mla_plan(d) : mla_footprint{};
  if (d.a == arch::deepseek) attn = mla.weights;
  uint64_t mix = std::max(n_att ? attn : 0, n_lin ? lin : 0);
  p.layer_weight_bytes = (mix + moe + 2 * H) * f;
  p.head_bytes = (uint64_t(d.vocab) * H + H) * f;
  p.kv_bytes_per_seq = n_att * (d.a == arch::deepseek ? mla.kv_per_token : 2 * kvd) * seq_len * f;
  p.state_bytes_per_seq = n_lin * (uint64_t(d.lin_v_heads * d.lin_k_dim * d.lin_v_dim) +
                                   ch * uint64_t(std::max<int64_t>(d.conv_kernel - 1, 0))) * f;
  uint64_t attn_work = n * (d.a == arch::deepseek ? mla.work_per_token + mla.kv_per_token + H
                                                   : (gated ? 3 : 2) * qd + 2 * kvd + qd + H) * f;
  uint64_t lin_work = n * (2 * ch + 2 * vd + 2 * uint64_t(d.lin_v_heads) + H) * f;
  uint64_t moe_work = n * (uint64_t(d.n_experts) + 2 * uint64_t(d.top_k) + H + 2 * H) * f +
                      n * 3 * uint64_t(std::max(d.moe_ff, d.shared_ff)) * f;
  p.work_bytes = H * n * f + std::max({n_att ? attn_work : 0, n_lin ? lin_work : 0, moe_work});
  p.logits_bytes = std::min<uint64_t>(logits_chunk, n) * uint64_t(d.vocab) * f;
  (void)n_seqs;
  return p;
}

// ------------------------------------------------------------------------------------------------
// forward

backend resolve_backend(const run_options& opt) {
  backend b = opt.device;
  if (const char* e = std::getenv("RAZOR_ENGINE")) {
    std::string v(e);
    if (v == "cpu") b = backend::cpu;
    else if (v == "gpu" || v == "cuda") b = backend::cuda;
    else if (v == "auto") b = backend::automatic;
  }
  if (b == backend::automatic) b = gpu_engine_available() ? backend::cuda : backend::cpu;
  return b;
}

bool gpu_engine_available(std::string* why_not) {
  if (!cu::built_with_cuda()) {
    if (why_not) *why_not = "built without CUDA";
    return false;
  }
  return !cu::devices(why_not).empty();
}

bool gpu_engine_runs(const model_dims& d, std::string* why_not) {
  switch (d.a) {
    case arch::qwen3_moe:
    case arch::qwen3_5_moe:
    case arch::qwen3_next:
    case arch::olmoe:
    case arch::qwen2_moe:
    case arch::mixtral:
    case arch::deepseek:
    case arch::gpt_oss:
      return true;
  }
  if (why_not)
    *why_not = std::string("model_type ") + arch_name(d.a) +
               ": the GPU engine runs qwen3_moe, qwen3_5_moe, qwen3_next, olmoe, qwen2_moe, mixtral, deepseek_v2 / "
               "deepseek_v3 / kimi_k2 and gpt_oss only; run this family on the CPU engine (--device cpu, RAZOR_ENGINE=cpu)";
  return false;
}

status forward(weight_provider& wp, const model_dims& d, const std::vector<std::vector<int32_t>>& seqs,
               const logits_fn& on_logits, const run_options& opt) {
  std::vector<size_t> seq_start{0};
  std::vector<int32_t> all;
  for (const auto& s : seqs) {
    all.insert(all.end(), s.begin(), s.end());
    seq_start.push_back(all.size());
  }
  const size_t n = all.size();
  if (n == 0) return {};
  for (auto t : all)
    if (t < 0 || t >= d.vocab)
      return make_error(errc::invalid_argument, "token id " + std::to_string(t) + " outside the vocabulary");
  RAZOR_ASSIGN_OR_RETURN(tensor_f32 h, wp.rows("embed_tokens.weight", all));
  if (h.cols() != d.hidden) return make_error(errc::shape_mismatch, "embed_tokens.weight: width differs from hidden_size");
  const bool cpu_only = opt.on_layer_input || (opt.observer && opt.observer->wants_expert_tokens());
  if (!cpu_only && resolve_backend(opt) == backend::cuda) {
    std::string why;
    if (gpu_engine_runs(d, &why)) return forward_gpu(wp, d, seq_start, h, on_logits, opt);
    // Asked for by name (device cuda, RAZOR_ENGINE=gpu): refused; chosen automatically: the CPU runs it.
    const char* env = std::getenv("RAZOR_ENGINE");
    const bool automatic = env ? std::string(env) == "auto" : opt.device == backend::automatic;
    if (!automatic) return make_error(errc::unsupported, why);
  }
  return forward_from(wp, d, seq_start, std::move(h), 0, on_logits, opt);
}

status forward_from(weight_provider& wp, const model_dims& d, const std::vector<size_t>& seq_start, tensor_f32 h,
                    int first_layer, const logits_fn& on_logits, const run_options& opt) {
  const size_t n = seq_start.empty() ? 0 : seq_start.back(), H = size_t(d.hidden);
  if (h.data.size() != n * H)
    return make_error(errc::shape_mismatch, "forward_from: hidden states are not [tokens, hidden]");
  if (first_layer < 0 || first_layer > int(d.n_layers))
    return make_error(errc::invalid_argument, "forward_from: layer " + std::to_string(first_layer) + " out of range");
  std::vector<float> xn(n * H), yb(n * H);
  const float eps = float(d.eps);
  auto norm_rows = [&](const std::vector<float>& wv) {
    parallel_for(n, [&](size_t b, size_t e) { rms_norm(h.data.data() + b * H, e - b, H, wv.data(), eps, xn.data() + b * H); }, 64);
  };
  auto add_rows = [&] {
    parallel_for(n * H, [&](size_t b, size_t e) {
      for (size_t i = b; i < e; ++i) h.data[i] += yb[i];
    }, 4096);
  };
  const double total = double(d.n_layers + (runs_head(opt) ? 1 : 0));
  for (int L = first_layer; L < int(d.n_layers); ++L) {
    if (opt.progress && !opt.progress(double(L), total, "layer"))
      return make_error(errc::cancelled, "forward pass cancelled at layer " + std::to_string(L));
    if (opt.on_layer_input && !opt.on_layer_input(L, h)) return make_error(errc::cancelled, "forward pass cancelled");
    RAZOR_ASSIGN_OR_RETURN(layer_weights w, load_layer(wp, d, L));
    if (opt.observer) opt.observer->on_layer_loaded(w);
    norm_rows(w.in_norm);
    if (d.a == arch::deepseek)
      mla_attention_block(d, w.mla, xn.data(), seq_start, yb.data(), L, opt.observer);
    else if (w.linear_attention)
      deltanet_block(d, w.dn, xn.data(), seq_start, yb.data(), L, opt.observer);
    else
      attention_block(d, w.attn, xn.data(), seq_start, yb.data(), L, opt.observer);
    add_rows();
    norm_rows(w.post_norm);
    if (d.a == arch::deepseek && !w.mla.moe)
      dense_mlp_block(d, w.mla, xn.data(), n, yb.data(), L, opt.observer);
    else
      moe_block(d, w.moe, xn.data(), n, yb.data(), L, opt.observer);
    add_rows();
    w = layer_weights{};
    wp.release_layer(L);
  }
  if (opt.on_layer_input && !opt.on_layer_input(int(d.n_layers), h))
    return make_error(errc::cancelled, "forward pass cancelled");
  if (!runs_head(opt)) return {};
  if (opt.progress && !opt.progress(double(d.n_layers), total, "head"))
    return make_error(errc::cancelled, "forward pass cancelled before the output head");
  RAZOR_ASSIGN_OR_RETURN(head_weights hw, load_head(wp, d, weight_layout::transposed, opt.compute_logits));
  const linear& head = hw.lm_head;
  norm_rows(hw.norm);
  observe(opt.observer, cu::eng_point::head_in, -1, -1, n, xn.data(), d.hidden);
  if (!opt.compute_logits) {
    if (opt.progress) opt.progress(total, total, "done");
    return {};
  }
  const size_t chunk = std::max<size_t>(1, opt.logits_chunk);
  std::vector<float> logits(std::min(chunk, n) * size_t(d.vocab));
  for (size_t t0 = 0; t0 < n; t0 += chunk) {
    size_t c = std::min(chunk, n - t0);
    matmul(xn.data() + t0 * H, c, head, logits.data());
    if (!on_logits(t0, c, logits.data())) return make_error(errc::cancelled, "forward pass cancelled");
  }
  if (opt.progress) opt.progress(total, total, "done");
  return {};
}

}  // namespace razor::engine
