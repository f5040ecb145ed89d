#include "gguf/layout.h"

#include <cmath>
#include <cstring>

#include "gguf/convert.h"
#include "model/deepseek_config.h"
#include "model/qwen3_next_rows.h"

namespace razor::gguf {

namespace {

struct map_row {
  const char* hf;  // after "layers.L."
  const char* gg;  // after "blk.L."
  gguf_relayout how;
};

// Both architectures; the norms' relayout and post_attention_layernorm's name depend on it (locate()).
constexpr map_row kLayerMap[] = {
    {"self_attn.q_proj.weight", "attn_q.weight", gguf_relayout::none},
    {"self_attn.k_proj.weight", "attn_k.weight", gguf_relayout::none},
    {"self_attn.v_proj.weight", "attn_v.weight", gguf_relayout::none},
    {"self_attn.o_proj.weight", "attn_output.weight", gguf_relayout::none},
    {"self_attn.q_proj.bias", "attn_q.bias", gguf_relayout::none},  // qwen2moe
    {"self_attn.k_proj.bias", "attn_k.bias", gguf_relayout::none},
    {"self_attn.v_proj.bias", "attn_v.bias", gguf_relayout::none},
    {"mlp.gate.weight", "ffn_gate_inp.weight", gguf_relayout::none},
    {"mlp.shared_expert.gate_proj.weight", "ffn_gate_shexp.weight", gguf_relayout::none},
    {"mlp.shared_expert.up_proj.weight", "ffn_up_shexp.weight", gguf_relayout::none},
    {"mlp.shared_expert.down_proj.weight", "ffn_down_shexp.weight", gguf_relayout::none},
    {"mlp.shared_expert_gate.weight", "ffn_gate_inp_shexp.weight", gguf_relayout::none},
    // deepseek2 (kv_b_proj: locate())
    {"self_attn.q_a_proj.weight", "attn_q_a.weight", gguf_relayout::none},
    {"self_attn.q_a_layernorm.weight", "attn_q_a_norm.weight", gguf_relayout::none},
    {"self_attn.q_b_proj.weight", "attn_q_b.weight", gguf_relayout::none},
    {"self_attn.kv_a_proj_with_mqa.weight", "attn_kv_a_mqa.weight", gguf_relayout::none},
    {"self_attn.kv_a_layernorm.weight", "attn_kv_a_norm.weight", gguf_relayout::none},
    {"mlp.gate.e_score_correction_bias", "exp_probs_b.bias", gguf_relayout::none},
    {"mlp.shared_experts.gate_proj.weight", "ffn_gate_shexp.weight", gguf_relayout::none},
    {"mlp.shared_experts.up_proj.weight", "ffn_up_shexp.weight", gguf_relayout::none},
    {"mlp.shared_experts.down_proj.weight", "ffn_down_shexp.weight", gguf_relayout::none},
    {"mlp.gate_proj.weight", "ffn_gate.weight", gguf_relayout::none},
    {"mlp.up_proj.weight", "ffn_up.weight", gguf_relayout::none},
    {"mlp.down_proj.weight", "ffn_down.weight", gguf_relayout::none},
    // gpt-oss
    {"self_attn.o_proj.bias", "attn_output.bias", gguf_relayout::none},
    {"self_attn.sinks", "attn_sinks.weight", gguf_relayout::none},
    {"mlp.router.weight", "ffn_gate_inp.weight", gguf_relayout::none},
    {"mlp.router.bias", "ffn_gate_inp.bias", gguf_relayout::none},
    {"mlp.experts.gate_proj.bias", "ffn_gate_exps.bias", gguf_relayout::none},
    {"mlp.experts.up_proj.bias", "ffn_up_exps.bias", gguf_relayout::none},
    {"mlp.experts.down_proj.bias", "ffn_down_exps.bias", gguf_relayout::none},
    {"linear_attn.in_proj_qkv.weight", "attn_qkv.weight", gguf_relayout::qkv_v_rows},
    {"linear_attn.in_proj_z.weight", "attn_gate.weight", gguf_relayout::head_rows},
    {"linear_attn.in_proj_b.weight", "ssm_beta.weight", gguf_relayout::head_rows_1},
    {"linear_attn.in_proj_a.weight", "ssm_alpha.weight", gguf_relayout::head_rows_1},
    {"linear_attn.A_log", "ssm_a", gguf_relayout::a_log},
    {"linear_attn.dt_bias", "ssm_dt.bias", gguf_relayout::head_rows_1},
    {"linear_attn.conv1d.weight", "ssm_conv1d.weight", gguf_relayout::conv_v_rows},
    {"linear_attn.norm.weight", "ssm_norm.weight", gguf_relayout::none},
    {"linear_attn.out_proj.weight", "ssm_out.weight", gguf_relayout::head_cols},
};

bool is_mixtral(const model_config& cfg) { return cfg.model_type == "mixtral" || cfg.top_model_type == "mixtral"; }

// Rows of each head of x [rows, cols] (head_dim rows a head) between HF's halves order and llama.cpp's interleaved
// one: GGUF row 2i + h holds HF row h * head_dim/2 + i.
status rope_rows(const std::string& name, float* x, int64_t rows, int64_t cols, int64_t head_dim, bool to_hf) {
  if (head_dim <= 0 || head_dim % 2 || rows % head_dim)
    return make_error(errc::shape_mismatch, name + ": " + std::to_string(rows) + " rows are not whole heads of " +
                                                std::to_string(head_dim) + " (even) rows");
  const int64_t half = head_dim / 2;
  std::vector<float> tmp(size_t(head_dim * cols));
  for (int64_t h0 = 0; h0 < rows; h0 += head_dim) {
    float* head = x + h0 * cols;
    std::memcpy(tmp.data(), head, tmp.size() * sizeof(float));
    for (int64_t i = 0; i < half; ++i)
      for (int64_t hh = 0; hh < 2; ++hh) {
        const int64_t g = 2 * i + hh, f = hh * half + i;  // GGUF row, HF row
        std::memcpy(head + (to_hf ? f : g) * cols, tmp.data() + (to_hf ? g : f) * cols, size_t(cols) * sizeof(float));
      }
  }
  return {};
}

bool is_qwen3_next(const model_config& cfg) { return cfg.model_type == "qwen3_next" || cfg.top_model_type == "qwen3_next"; }

bool is_qwen35(const model_config& cfg) {
  auto q = [](const std::string& t) { return t == "qwen3_5_moe" || t == "qwen3_5_moe_text"; };
  return q(cfg.model_type) || q(cfg.top_model_type) || is_qwen3_next(cfg);
}

}  // namespace

void split_kv_b(const float* hf, int64_t nh, int64_t nope, int64_t vd, int64_t kvl, float* k_b, float* v_b) {
  for (int64_t h = 0; h < nh; ++h) {
    const float* head = hf + h * (nope + vd) * kvl;
    if (k_b)
      for (int64_t c = 0; c < nope; ++c)
        for (int64_t r = 0; r < kvl; ++r) k_b[(h * kvl + r) * nope + c] = head[c * kvl + r];
    if (v_b) std::memcpy(v_b + h * vd * kvl, head + nope * kvl, size_t(vd * kvl) * sizeof(float));
  }
}

void join_kv_b(const float* k_b, const float* v_b, int64_t nh, int64_t nope, int64_t vd, int64_t kvl, float* hf) {
  for (int64_t h = 0; h < nh; ++h) {
    float* head = hf + h * (nope + vd) * kvl;
    for (int64_t c = 0; c < nope; ++c)
      for (int64_t r = 0; r < kvl; ++r) head[c * kvl + r] = k_b[(h * kvl + r) * nope + c];
    std::memcpy(head + nope * kvl, v_b + h * vd * kvl, size_t(vd * kvl) * sizeof(float));
  }
}

gguf_layout::gguf_layout(const model_config& cfg, bool qwen35, bool has_output)
    : q35_(qwen35), has_output_(has_output) {
  n_k_ = cfg.linear_num_key_heads;
  n_v_ = cfg.linear_num_value_heads;
  dk_ = cfg.linear_key_head_dim;
  dv_ = cfg.linear_value_head_dim;
  next_ = qwen35 && is_qwen3_next(cfg);
  reorder_ = q35_ && !next_ && n_k_ > 0 && n_v_ > 0 && n_k_ != n_v_ && n_v_ % n_k_ == 0;
  llama_ = !qwen35 && is_mixtral(cfg);
  oss_ = cfg.model_type == "gpt_oss" || cfg.top_model_type == "gpt_oss";
  head_dim_ = cfg.head_dim;
  if (is_deepseek(cfg.model_type) || is_deepseek(cfg.top_model_type))
    if (auto ds = deepseek_dims_from_config(cfg); ds.ok()) {
      kv_heads_ = cfg.num_heads;
      kv_nope_ = ds->qk_nope;
      kv_v_ = ds->v_head_dim;
      kv_lora_ = ds->kv_lora_rank;
    }
  if (reorder_) order_ = v_head_order(n_k_, n_v_);
}

gguf_layout::gguf_layout(const model_config& cfg) : gguf_layout(cfg, is_qwen35(cfg), !cfg.tie_word_embeddings) {}

std::string gguf_layout::expert_tensor(int layer, expert_proj p) {
  return "blk." + std::to_string(layer) + ".ffn_" +
         (p == expert_proj::gate ? "gate" : p == expert_proj::up ? "up" : "down") + "_exps.weight";
}

std::optional<gguf_location> gguf_layout::locate(const std::string& name) const {
  const gguf_relayout norm = q35_ ? gguf_relayout::minus_one : gguf_relayout::none;
  if (name == "embed_tokens.weight") return gguf_location{"token_embd.weight", gguf_relayout::none};
  if (name == "norm.weight") return gguf_location{"output_norm.weight", norm};
  if (name == "lm_head.weight")
    return gguf_location{has_output_ ? "output.weight" : "token_embd.weight", gguf_relayout::none};
  if (name.rfind("layers.", 0) != 0) return std::nullopt;
  const size_t dot = name.find('.', 7);
  if (dot == std::string::npos) return std::nullopt;
  const std::string p = "blk." + name.substr(7, dot - 7) + ".", s = name.substr(dot + 1);
  if (llama_ && (s == "self_attn.q_proj.weight" || s == "self_attn.k_proj.weight"))
    return gguf_location{p + (s == "self_attn.q_proj.weight" ? "attn_q.weight" : "attn_k.weight"),
                         gguf_relayout::rope_rows};
  if (kv_heads_ > 0 && s == "self_attn.kv_b_proj.weight")
    return gguf_location{p + "attn_k_b.weight", gguf_relayout::kv_b_split, p + "attn_v_b.weight"};
  if (llama_ && s == "block_sparse_moe.gate.weight") return gguf_location{p + "ffn_gate_inp.weight", gguf_relayout::none};
  if (next_ && s == "linear_attn.in_proj_ba.weight") return gguf_location{p + "ssm_ba.weight", gguf_relayout::none};
  if (next_ && (s == "linear_attn.in_proj_b.weight" || s == "linear_attn.in_proj_a.weight")) return std::nullopt;
  for (auto& e : kLayerMap)
    if (s == e.hf) return gguf_location{p + e.gg, e.how};
  if (s == "input_layernorm.weight") return gguf_location{p + "attn_norm.weight", norm};
  if (s == "post_attention_layernorm.weight")
    return gguf_location{p + (q35_ || oss_ ? "post_attention_norm.weight" : "ffn_norm.weight"), norm};
  if (s == "self_attn.q_norm.weight") return gguf_location{p + "attn_q_norm.weight", norm};
  if (s == "self_attn.k_norm.weight") return gguf_location{p + "attn_k_norm.weight", norm};
  return std::nullopt;
}

std::vector<gguf_layout::part> gguf_layout::split_parts(const std::string& name) const {
  static const std::string kQkvz = ".linear_attn.in_proj_qkvz.weight";
  if (!next_ || name.rfind("layers.", 0) != 0 || name.size() <= kQkvz.size() ||
      name.compare(name.size() - kQkvz.size(), kQkvz.size(), kQkvz) != 0)
    return {};
  const std::string p = "blk." + name.substr(7, name.size() - kQkvz.size() - 7) + ".";
  const std::vector<int64_t> order = qkvz_split_rows(n_k_, n_v_, dk_, dv_);
  const size_t ch = size_t(2 * n_k_ * dk_ + n_v_ * dv_);
  if (order.size() < ch) return {};
  return {part{p + "attn_qkv.weight", {order.begin(), order.begin() + std::ptrdiff_t(ch)}},
          part{p + "attn_gate.weight", {order.begin() + std::ptrdiff_t(ch), order.end()}}};
}

std::vector<std::string> gguf_layout::imatrix_targets(const std::string& probe_name) const {
  if (probe_name.rfind("layers.", 0) == 0) {
    const size_t dot = probe_name.find('.', 7);
    if (dot != std::string::npos) {
      const std::string L = probe_name.substr(7, dot - 7), s = probe_name.substr(dot + 1);
      if (s == "mlp.experts.gate_up") return {"blk." + L + ".ffn_gate_exps.weight", "blk." + L + ".ffn_up_exps.weight"};
      if (s == "mlp.experts.down") return {"blk." + L + ".ffn_down_exps.weight"};
      // qwen3next: b and a (the engine's names for the probe's inputs) are one tensor, ssm_ba, of one input
      if (next_ && s == "linear_attn.in_proj_b.weight") return {"blk." + L + ".ssm_ba.weight"};
    }
  }
  auto loc = locate(probe_name);
  if (!loc || probe_name.size() < 7 || probe_name.compare(probe_name.size() - 7, 7, ".weight") != 0) return {};
  // Only matrices have importance weights: a linear map's input statistics.
  // kv_b_split: attn_k_b and attn_v_b multiply other inputs than kv_b_proj's (the absorbed attention's).
  if (loc->how == gguf_relayout::minus_one || loc->how == gguf_relayout::a_log || loc->how == gguf_relayout::kv_b_split ||
      loc->how == gguf_relayout::conv_v_rows || loc->tensor.find("_norm.") != std::string::npos)
    return {};
  return {loc->tensor};
}

std::vector<size_t> gguf_layout::column_order(const gguf_location& loc, size_t cols) const {
  std::vector<size_t> perm(cols);
  for (size_t c = 0; c < cols; ++c) perm[c] = c;
  if (reorder_ && loc.how == gguf_relayout::head_cols && cols == size_t(n_v_ * dv_))
    for (size_t p = 0; p < size_t(n_v_); ++p)
      for (size_t j = 0; j < size_t(dv_); ++j) perm[p * size_t(dv_) + j] = size_t(order_[p]) * size_t(dv_) + j;
  return perm;
}

// GGUF block p (of `blk` floats, starting at float `start`) holds HF block order[p]; inverse = GGUF -> HF.
status gguf_layout::permute(const gguf_location& loc, const std::string& name, float* x, int64_t rows, int64_t cols,
                            bool to_hf) const {
  if (!reorder_) return {};
  const int64_t n = rows * cols;
  const int64_t qk = 2 * n_k_ * dk_;
  auto blocks = [&](int64_t start, int64_t blk) -> status {
    const int64_t nb = int64_t(order_.size());
    if (start + nb * blk > n)
      return make_error(errc::shape_mismatch, name + ": " + std::to_string(n) + " values, too few for the V-head reorder (" +
                                                  std::to_string(nb) + " heads of " + std::to_string(blk) + ")");
    std::vector<float> tmp(x + start, x + start + nb * blk);
    for (int64_t p = 0; p < nb; ++p) {
      float* gg = x + start + p * blk;
      const float* src = tmp.data() + (to_hf ? p : order_[size_t(p)]) * blk;
      float* dst = to_hf ? x + start + order_[size_t(p)] * blk : gg;
      std::memcpy(dst, src, size_t(blk) * sizeof(float));
    }
    return {};
  };
  switch (loc.how) {
    case gguf_relayout::qkv_v_rows:
    case gguf_relayout::conv_v_rows: return blocks(qk * cols, dv_ * cols);
    case gguf_relayout::head_rows: return blocks(0, dv_ * cols);
    case gguf_relayout::head_rows_1:
    case gguf_relayout::a_log: return blocks(0, rows == 1 ? 1 : cols);
    case gguf_relayout::head_cols: {
      if (cols != n_v_ * dv_)
        return make_error(errc::shape_mismatch, name + ": " + std::to_string(cols) +
                                                    " columns, expected num_v_heads x head_v_dim = " +
                                                    std::to_string(n_v_ * dv_));
      std::vector<float> tmp(static_cast<size_t>(cols));
      for (int64_t r = 0; r < rows; ++r) {
        float* row = x + r * cols;
        std::memcpy(tmp.data(), row, size_t(cols) * sizeof(float));
        for (int64_t p = 0; p < n_v_; ++p) {
          const int64_t g = p * dv_, h = order_[size_t(p)] * dv_;
          std::memcpy(row + (to_hf ? h : g), tmp.data() + (to_hf ? g : h), size_t(dv_) * sizeof(float));
        }
      }
      return {};
    }
    default: return {};
  }
}

status gguf_layout::to_hf(const gguf_location& loc, const std::string& name, float* x, int64_t rows,
                          int64_t cols) const {
  const int64_t n = rows * cols;
  if (loc.how == gguf_relayout::rope_rows) return rope_rows(name, x, rows, cols, head_dim_, true);
  if (loc.how == gguf_relayout::kv_b_split) return kv_b(name, x, n, true);
  if (loc.how == gguf_relayout::minus_one)
    for (int64_t i = 0; i < n; ++i) x[i] -= 1.0f;
  RAZOR_TRY(permute(loc, name, x, rows, cols, true));
  if (loc.how == gguf_relayout::a_log)
    for (int64_t i = 0; i < n; ++i) x[i] = std::log(-x[i]);
  return {};
}

status gguf_layout::to_gguf(const gguf_location& loc, const std::string& name, float* x, int64_t rows,
                            int64_t cols) const {
  const int64_t n = rows * cols;
  if (loc.how == gguf_relayout::rope_rows) return rope_rows(name, x, rows, cols, head_dim_, false);
  if (loc.how == gguf_relayout::kv_b_split) return kv_b(name, x, n, false);
  if (loc.how == gguf_relayout::minus_one)
    for (int64_t i = 0; i < n; ++i) x[i] += 1.0f;
  if (loc.how == gguf_relayout::a_log)
    for (int64_t i = 0; i < n; ++i) x[i] = -std::exp(x[i]);
  return permute(loc, name, x, rows, cols, false);
}

}  // namespace razor::gguf

namespace razor::gguf {

status gguf_layout::kv_b(const std::string& name, float* x, int64_t n, bool to_hf) const {
  const int64_t nh = kv_heads_, nope = kv_nope_, vd = kv_v_, kvl = kv_lora_;
  if (nh <= 0 || n != nh * (nope + vd) * kvl)
    return make_error(errc::shape_mismatch, name + ": " + std::to_string(n) + " values, not num_attention_heads x "
                                                "(qk_nope_head_dim + v_head_dim) x kv_lora_rank");
  std::vector<float> tmp(x, x + n);
  if (to_hf) join_kv_b(tmp.data(), tmp.data() + nh * kvl * nope, nh, nope, vd, kvl, x);
  else split_kv_b(tmp.data(), nh, nope, vd, kvl, x, x + nh * kvl * nope);
  return {};
}

}  // namespace razor::gguf
