// The GGUF tensors a checkpoint becomes (names, shapes, the producers of their floats) and the exact plan of
// the file (plan_gguf).
#include "gguf/convert_internal.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "ggml/quants.h"
#include "gguf/ftype.h"
#include "gguf/gguf_file.h"
#include "gguf/layout.h"
#include "gguf/output_check.h"
#include "model/checkpoint.h"
#include "model/config_check.h"
#include "model/deepseek_config.h"
#include "model/mxfp4.h"
#include "model/qwen3_next_rows.h"
#include "model/recipe.h"
#include "util/atomic_file.h"
#include "util/fnv.h"
#include "util/json_limits.h"
#include "util/mapped_file.h"
#include "util/printable.h"
#include "util/regex.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace razor::gguf {

using namespace convert_detail;

static bool contains(const std::string& s, const char* sub) { return s.find(sub) != std::string::npos; }

std::string gguf_role(const std::string& n) {
  if (n.rfind("v.", 0) == 0 || n.rfind("mm.", 0) == 0) return "vision";  // an mmproj file's (gguf/mmproj.h)
  if (n.rfind("token_embd", 0) == 0) return "embedding";
  if (n.rfind("output.", 0) == 0) return "output_head";
  if (contains(n, "_exps")) return "routed_expert";
  if (contains(n, "_shexp")) return "shared_expert";
  if (contains(n, "ffn_gate_inp")) return "router";
  if (contains(n, "norm")) return "norm";
  if (contains(n, "ssm_a") || contains(n, "ssm_dt") || contains(n, "ssm_conv1d")) return "ssm_param";
  if (contains(n, "ssm_") || contains(n, "attn_qkv") || contains(n, "attn_gate")) return "linear_attention";
  if (contains(n, "attn_")) return "attention";
  if (contains(n, "ffn_")) return "dense_ffn";
  return "other";
}

int64_t tensor_plan_row::nelements() const {
  int64_t n = 1;
  for (auto d : ne) n *= d;
  return n;
}

// New head p = v * n_k + g takes old head g * r + v.
std::vector<int64_t> v_head_order(int64_t n_k, int64_t n_v) {
  const int64_t r = n_v / n_k;
  std::vector<int64_t> order(static_cast<size_t>(n_v));
  for (int64_t p = 0; p < n_v; ++p) order[size_t(p)] = (p % n_k) * r + p / n_k;
  return order;
}

namespace {

// The rows of an MXFP4 view (its _blocks tensor, rows of n_cols values) as GGML block_mxfp4: each Hub block (16
// bytes of codes, values 2j / 2j + 1 in byte j, and its E8M0 scale) repacked by mxfp4_hub_to_ggml, bytes as they are.
status mxfp4_rows_as_ggml(const checkpoint& ck, const matrix_view& v, uint8_t* out) {
  const tensor_entry& t = *v.t;
  if (!t.mxfp4 || t.scale < 0 || v.transposed || v.n_cols % kMxfp4Block)
    return make_error(errc::internal, t.name + ": not an MXFP4 view of whole blocks");
  const tensor_entry& sc = ck.tensors()[size_t(t.scale)];
  const uint8_t* codes = ck.data(t);
  const uint8_t* scales = ck.data(sc);
  const int64_t per_row = v.n_cols / kMxfp4Block;
  for (int64_t i = 0; i < v.n_rows; ++i) {
    const int64_t b0 = (v.row0 + i * v.row_step) * per_row;
    for (int64_t j = 0; j < per_row; ++j)
      mxfp4_hub_to_ggml(codes + (b0 + j) * kMxfp4BlockBytes, scales[b0 + j],
                        out + (i * per_row + j) * kMxfp4GgmlBlockBytes);
  }
  return {};
}


// Per adapter (model/adapter.h's table, which names each family's llama.cpp arch): converted (missing null), or
// what its conversion lacks, named in pack's refusal.
struct conversion_row {
  const char* adapter;
  const char* missing;
};
constexpr conversion_row k_conversions[] = {
    {"qwen3_moe", nullptr},
    {"qwen3_5_moe", nullptr},
    {"olmoe", nullptr},
    {"qwen2_moe", nullptr},
    {"mixtral", nullptr},
    {"qwen3_next", nullptr},
    {"deepseek_v3", nullptr},
    {"gpt_oss", nullptr},
    {"llama", "dense (non-MoE) models are not converted: razor packs mixture-of-experts checkpoints"},
    {"qwen3", "dense (non-MoE) models are not converted: razor packs mixture-of-experts checkpoints"},
};

const conversion_row* conversion_of(const std::string& adapter) {
  for (const auto& r : k_conversions)
    if (adapter == r.adapter) return &r;
  return nullptr;
}

std::string missing_conversion(const std::string& adapter) {
  const conversion_row* r = conversion_of(adapter);
  return r && r->missing ? r->missing : "razor has no adapter for this model_type";
}

std::string converted_model_types() {
  std::string out;
  for (const auto& a : adapter_table())
    if (const conversion_row* r = conversion_of(a.name); r && !r->missing)
      for (const auto& mt : a.model_types) out += (out.empty() ? "" : ", ") + mt;
  return out;
}

}  // namespace

std::string gguf_arch_for(const std::string& mt) {
  for (const auto& a : adapter_table())
    for (const auto& m : a.model_types)
      if (m == mt) {
        const conversion_row* r = conversion_of(a.name);
        return r && !r->missing ? a.gguf_arch : "";
      }
  return "";
}

namespace {

// What llama.cpp's graph of the architecture takes for granted, checked before anything is written (a file
// that breaks one would load and run a different model, or not load).
status check_llamacpp_arch(const checkpoint& ck, const std::string& arch) {
  const model_config& c = ck.config();
  auto refuse = [&](const std::string& what) {
    return make_error(errc::unsupported, ck.dir() + ": model_type " + c.model_type + " -> GGUF arch " + arch + ": " + what);
  };
  if (arch == "olmoe") {
    if (c.num_kv_heads != c.num_heads)
      return refuse("llama.cpp's olmoe sizes k_proj and k_norm as the hidden size: num_key_value_heads (" +
                    std::to_string(c.num_kv_heads) + ") must equal num_attention_heads (" + std::to_string(c.num_heads) + ")");
    if (c.num_heads * c.head_dim != c.hidden_size)
      return refuse("llama.cpp's olmoe needs num_attention_heads x head_dim = hidden_size");
    if (c.text.contains("norm_topk_prob") && c.norm_topk_prob)
      return refuse("norm_topk_prob is true, but llama.cpp's olmoe never renormalises the top-k weights");
  }
  if (arch == "llama" && c.rotary_dims() != c.head_dim)
    return refuse("llama.cpp's llama rotates whole heads; partial_rotary_factor must be 1");
  if (arch == "qwen2moe") {
    if (c.text.contains("norm_topk_prob") && c.norm_topk_prob)
      return refuse("norm_topk_prob is true, but llama.cpp's qwen2moe never renormalises the top-k weights");
    if (c.shared_expert_intermediate_size <= 0)
      return refuse("llama.cpp's qwen2moe needs the shared expert (shared_expert_intermediate_size > 0)");
  }
  if (arch == "qwen3next") {
    if (c.linear_key_head_dim != c.linear_value_head_dim)
      return refuse("llama.cpp's qwen3next sizes key and value heads alike (ssm.state_size): linear_key_head_dim (" +
                    std::to_string(c.linear_key_head_dim) + ") must equal linear_value_head_dim (" +
                    std::to_string(c.linear_value_head_dim) + ")");
    if (!c.norm_topk_prob)
      return refuse("norm_topk_prob is false, but llama.cpp's qwen3next always renormalises the top-k weights");
    if (c.shared_expert_intermediate_size <= 0)
      return refuse("llama.cpp's qwen3next needs the shared expert (shared_expert_intermediate_size > 0)");
  }
  if (arch == "deepseek2") {
    RAZOR_ASSIGN_OR_RETURN(deepseek_dims ds, deepseek_dims_from_config(c));
    // llama.cpp's deepseek2 requires attention.q_lora_rank unless it takes the model for a "lite" one by its layer
    // count (26 or 27 layers); the converter writes the key only when q_lora_rank is set.
    if (ds.q_lora_rank <= 0 && c.num_layers != 26 && c.num_layers != 27)
      return refuse("q_lora_rank is null (a direct q_proj, as in V2-Lite): llama.cpp's deepseek2 loads that only with 26 "
                    "or 27 layers, this model has " + std::to_string(c.num_layers));
    // The converter writes n_group / topk_group as config.json has them, and llama.cpp groups whenever n_group > 1.
    const int64_t ng = c.text.value("n_group", nlohmann::json(1)).is_number_integer() ? c.text["n_group"].get<int64_t>() : 1;
    const int64_t tg = c.text.value("topk_group", nlohmann::json(1)).is_number_integer() ? c.text["topk_group"].get<int64_t>() : 1;
    if (ng > 1 && tg >= ng)
      return refuse("topk_group (" + std::to_string(tg) + ") must be below n_group (" + std::to_string(ng) +
                    "): llama.cpp's deepseek2 aborts on such a file (set both to 1 to route without groups)");
    if (ng > 1 && (ds.group_max || ds.n_group == 1))
      return refuse(std::string("topk_method ") + (ds.group_max ? "group_limited_greedy ranks a group by its best expert"
                                                                 : "greedy ignores the groups") +
                    ", llama.cpp's deepseek2 ranks a group by the sum of its two best: the routing would differ");
    if (c.moe_intermediate_size <= 0) return refuse("moe_intermediate_size must be set");
  }
  if (arch == "gpt-oss") {
    // llama.cpp's gpt-oss graph fixes what config.json could vary: the SwiGLU's limit (7, alpha 1.702), sliding
    // attention on the even layers (its swa pattern 2), YaRN's beta_fast / beta_slow (32 / 1: the keys are not read)
    const nlohmann::json& t = c.text;
    if (t.contains("swiglu_limit") && (!t["swiglu_limit"].is_number() || t["swiglu_limit"].get<double>() != 7.0))
      return refuse("swiglu_limit " + t["swiglu_limit"].dump() + ": llama.cpp's gpt-oss clamps at 7 always");
    if (!t.contains("sliding_window") || !t["sliding_window"].is_number_integer() || t["sliding_window"].get<int64_t>() < 1)
      return refuse("llama.cpp's gpt-oss needs sliding_window (a positive integer)");
    for (int64_t l = 0; l < int64_t(c.layer_types.size()); ++l)
      if ((c.layer_types[size_t(l)] == "sliding_attention") != (l % 2 == 0))
        return refuse("layer_types[" + std::to_string(l) + "] is " + c.layer_types[size_t(l)] +
                      ": llama.cpp's gpt-oss slides the window on the even layers only");
    for (const char* k : {"rope_scaling", "rope_parameters"})
      if (t.contains(k) && t[k].is_object())
        for (const auto& [key, want] : {std::pair<const char*, double>{"beta_fast", 32.0}, {"beta_slow", 1.0}})
          if (t[k].contains(key) && (!t[k][key].is_number() || t[k][key].get<double>() != want))
            return refuse(std::string(k) + "." + key + " " + t[k][key].dump() + ": llama.cpp's gpt-oss takes " +
                          std::to_string(int(want)) + " whatever the file says");
  }
  if ((arch == "olmoe" || arch == "qwen2moe" || arch == "gpt-oss") && !ck.find("lm_head.weight"))
    return refuse("llama.cpp's " + arch + " needs a stored output head (lm_head.weight); tied embeddings are not "
                  "supported by it");
  return {};
}

}  // namespace

// ---------------------------------------------------------------------------------------------------
// the tensor plan
// ---------------------------------------------------------------------------------------------------
namespace {
struct builder {
  const checkpoint& ck;
  const model_config& cfg;
  std::vector<planned> out;

  std::string layer_name(int l, const std::string& s) const { return "layers." + std::to_string(l) + "." + s; }

  status need(const tensor_entry* t, const std::string& what) const {
    if (!t) return make_error(errc::not_found, ck.dir() + ": tensor '" + what + "' not found in the checkpoint");
    return {};
  }

  // A tensor copied as is (with an optional element-wise map). HF shape [out, in] -> ne {in, out}.
  status copy(const std::string& gname, const tensor_entry* t, const std::string& what,
              std::function<void(float*, int64_t)> fix = nullptr, std::vector<int64_t> ne = {}) {
    RAZOR_TRY(need(t, what));
    if (ne.empty()) ne.assign(t->shape.rbegin(), t->shape.rend());
    int64_t n = 1;
    for (auto d : ne) n *= d;
    if (n != t->numel())
      return make_error(errc::shape_mismatch, ck.dir() + ": '" + t->name + "' has " + std::to_string(t->numel()) +
                                                  " elements, " + gname + " needs " + std::to_string(n));
    const checkpoint* c = &ck;
    out.push_back({gname, ne, 1, [c, t, fix](int64_t, float* dst) -> status {
                     RAZOR_TRY(c->read_f32(*t, 0, t->numel(), dst));
                     if (fix) fix(dst, t->numel());
                     return {};
                   }});
    return {};
  }
  // attn_norm, attn_q/k/v with their biases and attn_output of layer l (qwen2_moe, gpt-oss), under GGUF prefix p.
  status biased_attention(int l, const std::string& p) {
    RAZOR_TRY(copy_text(p + "attn_norm.weight", layer_name(l, "input_layernorm.weight")));
    for (const std::string qkv : {"q", "k", "v"}) {
      RAZOR_TRY(copy_text(p + "attn_" + qkv + ".weight", layer_name(l, "self_attn." + qkv + "_proj.weight")));
      RAZOR_TRY(copy_text(p + "attn_" + qkv + ".bias", layer_name(l, "self_attn." + qkv + "_proj.bias")));
    }
    return copy_text(p + "attn_output.weight", layer_name(l, "self_attn.o_proj.weight"));
  }
  status copy_text(const std::string& gname, const std::string& suffix, std::function<void(float*, int64_t)> fix = nullptr,
                   std::vector<int64_t> ne = {}) {
    return copy(gname, ck.find_text(suffix), suffix, std::move(fix), std::move(ne));
  }

  // Rows order[first, first + n) of a 2-D tensor [rows, cols] (a split of a fused projection): ne {cols, n}.
  status take_rows(const std::string& gname, const tensor_entry* t, const std::string& what,
                   std::shared_ptr<const std::vector<int64_t>> order, size_t first, size_t n) {
    RAZOR_TRY(need(t, what));
    const int64_t cols = t->cols(), rows = t->rows();
    for (size_t i = first; i < first + n; ++i)
      if (i >= order->size() || (*order)[i] < 0 || (*order)[i] >= rows)
        return make_error(errc::shape_mismatch, ck.dir() + ": '" + t->name + "' has " + std::to_string(rows) +
                                                    " rows, too few for " + gname);
    const checkpoint* c = &ck;
    out.push_back({gname, {cols, int64_t(n)}, 1, [c, t, order, first, n, cols](int64_t, float* dst) -> status {
                     RAZOR_ASSIGN_OR_RETURN(std::vector<float> all, c->read_f32(*t));
                     for (size_t i = 0; i < n; ++i)
                       std::memcpy(dst + i * size_t(cols), all.data() + size_t((*order)[first + i]) * size_t(cols),
                                   size_t(cols) * sizeof(float));
                     return {};
                   }});
    return {};
  }

  // The router (`router`: its HF name inside layer l) and the stacked routed experts of layer l.
  status moe(int l, const std::string& p, const std::string& router) {
    RAZOR_TRY(copy_text(p + "ffn_gate_inp.weight", layer_name(l, router)));
    RAZOR_TRY(experts(l, p + "ffn_gate_exps.weight", expert_proj::gate));
    RAZOR_TRY(experts(l, p + "ffn_up_exps.weight", expert_proj::up));
    return experts(l, p + "ffn_down_exps.weight", expert_proj::down);
  }

  // The final norm (with its element-wise map) and the output head unless the embeddings are tied.
  status output(std::function<void(float*, int64_t)> norm_fix = nullptr) {
    RAZOR_TRY(copy_text("output_norm.weight", "norm.weight", std::move(norm_fix)));
    if (const tensor_entry* lm = ck.find("lm_head.weight"); lm && !cfg.tie_word_embeddings)
      RAZOR_TRY(copy("output.weight", lm, "lm_head.weight"));
    return {};
  }

  // Stacked routed experts: ne {in, out, n_expert}.
  status experts(int l, const std::string& gname, expert_proj p) {
    const int64_t E = cfg.num_experts;
    auto v0 = ck.expert_matrix(l, 0, p);
    if (!v0)
      return make_error(errc::not_found, ck.dir() + ": layer " + std::to_string(l) + " has no routed expert " +
                                             std::string(proj_name(p)) + " matrices");
    for (int64_t e = 1; e < E; ++e) {
      auto v = ck.expert_matrix(l, int(e), p);
      if (!v || v->n_rows != v0->n_rows || v->n_cols != v0->n_cols)
        return make_error(errc::shape_mismatch, ck.dir() + ": layer " + std::to_string(l) + " expert " +
                                                    std::to_string(e) + " " + std::string(proj_name(p)) +
                                                    " is missing or differs in shape from expert 0");
    }
    const checkpoint* c = &ck;
    out.push_back({gname, {v0->n_cols, v0->n_rows, E}, E, [c, l, p](int64_t e, float* dst) -> status {
                     auto v = c->expert_matrix(l, int(e), p);
                     return c->read_rows_f32(*v, dst);
                   }});
    if (v0->t->mxfp4 && !v0->transposed && v0->n_cols % kMxfp4Block == 0) {  // gpt-oss as the Hub releases it
      out.back().raw_type = ggml::type::mxfp4;
      out.back().produce_raw = [c, l, p](int64_t e, uint8_t* dst) -> status {
        return mxfp4_rows_as_ggml(*c, *c->expert_matrix(l, int(e), p), dst);
      };
    }
    return {};
  }
};

void plus_one(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] += 1.0f;
}


// Reorders row blocks [row0, row0 + n_v*head_rows) of a row-major [rows, cols] matrix.
void reorder_rows(float* x, int64_t cols, int64_t row0, int64_t head_rows, const std::vector<int64_t>& order) {
  const int64_t blk = head_rows * cols;
  std::vector<float> tmp(size_t(blk * int64_t(order.size())));
  float* base = x + row0 * cols;
  std::memcpy(tmp.data(), base, tmp.size() * sizeof(float));
  for (size_t p = 0; p < order.size(); ++p)
    std::memcpy(base + int64_t(p) * blk, tmp.data() + order[p] * blk, size_t(blk) * sizeof(float));
}

// Reorders column blocks of width head_cols of a row-major [rows, cols] matrix.
void reorder_cols(float* x, int64_t rows, int64_t cols, int64_t head_cols, const std::vector<int64_t>& order) {
  std::vector<float> tmp(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    float* row = x + r * cols;
    std::memcpy(tmp.data(), row, size_t(cols) * sizeof(float));
    for (size_t p = 0; p < order.size(); ++p)
      std::memcpy(row + int64_t(p) * head_cols, tmp.data() + order[p] * head_cols, size_t(head_cols) * sizeof(float));
  }
}

status plan_qwen3moe(builder& b) {
  const auto& cfg = b.cfg;
  RAZOR_TRY(b.copy_text("token_embd.weight", "embed_tokens.weight"));
  for (int l = 0; l < int(cfg.num_layers); ++l) {
    std::string p = "blk." + std::to_string(l) + ".";
    RAZOR_TRY(b.copy_text(p + "attn_norm.weight", b.layer_name(l, "input_layernorm.weight")));
    RAZOR_TRY(b.copy_text(p + "attn_q.weight", b.layer_name(l, "self_attn.q_proj.weight")));
    RAZOR_TRY(b.copy_text(p + "attn_k.weight", b.layer_name(l, "self_attn.k_proj.weight")));
    RAZOR_TRY(b.copy_text(p + "attn_v.weight", b.layer_name(l, "self_attn.v_proj.weight")));
    RAZOR_TRY(b.copy_text(p + "attn_output.weight", b.layer_name(l, "self_attn.o_proj.weight")));
    RAZOR_TRY(b.copy_text(p + "attn_q_norm.weight", b.layer_name(l, "self_attn.q_norm.weight")));
    RAZOR_TRY(b.copy_text(p + "attn_k_norm.weight", b.layer_name(l, "self_attn.k_norm.weight")));
    RAZOR_TRY(b.copy_text(p + "ffn_norm.weight", b.layer_name(l, "post_attention_layernorm.weight")));
    if (!cfg.layer_is_moe(l))
      return make_error(errc::unsupported, b.ck.dir() + ": layer " + std::to_string(l) +
                                               " is dense; dense layers in qwen3moe are not supported yet");
    RAZOR_TRY(b.moe(l, p, "mlp.gate.weight"));
  }
  return b.output();
}

// Qwen1.5 / Qwen2-MoE: qwen3moe's tensors without the QK-norm, with q/k/v biases and the shared expert (its
// sigmoid gate [1, hidden] becomes ffn_gate_inp_shexp {n_embd, 1}).
status plan_qwen2moe(builder& b) {
  const auto& cfg = b.cfg;
  RAZOR_TRY(b.copy_text("token_embd.weight", "embed_tokens.weight"));
  for (int l = 0; l < int(cfg.num_layers); ++l) {
    std::string p = "blk." + std::to_string(l) + ".";
    RAZOR_TRY(b.biased_attention(l, p));
    RAZOR_TRY(b.copy_text(p + "ffn_norm.weight", b.layer_name(l, "post_attention_layernorm.weight")));
    RAZOR_TRY(b.moe(l, p, "mlp.gate.weight"));
    RAZOR_TRY(b.copy_text(p + "ffn_gate_inp_shexp.weight", b.layer_name(l, "mlp.shared_expert_gate.weight")));
    RAZOR_TRY(b.copy_text(p + "ffn_gate_shexp.weight", b.layer_name(l, "mlp.shared_expert.gate_proj.weight")));
    RAZOR_TRY(b.copy_text(p + "ffn_up_shexp.weight", b.layer_name(l, "mlp.shared_expert.up_proj.weight")));
    RAZOR_TRY(b.copy_text(p + "ffn_down_shexp.weight", b.layer_name(l, "mlp.shared_expert.down_proj.weight")));
  }
  return b.output();
}

// Mixtral as llama.cpp's llama with experts: q/k rows interleaved per head for its adjacent-pair RoPE (the one
// relayout, gguf_layout's rope_rows), the router and the experts (w1 gate, w3 up, w2 down) from block_sparse_moe.
status plan_llama_moe(builder& b) {
  const auto& cfg = b.cfg;
  const gguf_layout layout(cfg);
  const int64_t H = cfg.hidden_size;
  RAZOR_TRY(b.copy_text("token_embd.weight", "embed_tokens.weight"));
  for (int l = 0; l < int(cfg.num_layers); ++l) {
    std::string p = "blk." + std::to_string(l) + ".";
    RAZOR_TRY(b.copy_text(p + "attn_norm.weight", b.layer_name(l, "input_layernorm.weight")));
    for (const char* qk : {"q_proj", "k_proj"}) {
      const std::string hf = b.layer_name(l, std::string("self_attn.") + qk + ".weight");
      const auto loc = layout.locate(hf);
      if (!loc) return make_error(errc::internal, hf + ": no GGUF location");
      // The producer runs after this function: it holds its own copy of the layout. to_gguf cannot fail here:
      // check_checkpoint_config made the rows whole heads of head_dim (even: the full-rotary heads' RoPE pairs).
      RAZOR_TRY(b.copy_text(loc->tensor, hf, [layout, loc = *loc, hf, H](float* x, int64_t n) {
        (void)layout.to_gguf(loc, hf, x, n / H, H);
      }));
    }
    RAZOR_TRY(b.copy_text(p + "attn_v.weight", b.layer_name(l, "self_attn.v_proj.weight")));
    RAZOR_TRY(b.copy_text(p + "attn_output.weight", b.layer_name(l, "self_attn.o_proj.weight")));
    RAZOR_TRY(b.copy_text(p + "ffn_norm.weight", b.layer_name(l, "post_attention_layernorm.weight")));
    RAZOR_TRY(b.moe(l, p, "block_sparse_moe.gate.weight"));
  }
  return b.output();
}

// DeepSeek-V2 / V3 / Kimi-K2 -> deepseek2, as the converter writes it: MLA's tensors under llama.cpp's names,
// kv_b_proj split per head into attn_k_b (k_nope rows, transposed: ne {qk_nope, kv_lora, n_head}) and attn_v_b
// (v rows as they are: ne {kv_lora, v_head_dim, n_head}) for the absorbed attention; dense leading layers as
// ffn_{gate,up,down}; the router, its score-correction bias (exp_probs_b.bias), stacked experts and the shared
// experts (ffn_*_shexp).
status plan_deepseek2(builder& b) {
  const auto& cfg = b.cfg;
  RAZOR_ASSIGN_OR_RETURN(deepseek_dims ds, deepseek_dims_from_config(cfg));
  const int64_t nh = cfg.num_heads, nope = ds.qk_nope, vd = ds.v_head_dim, kvl = ds.kv_lora_rank;
  RAZOR_TRY(b.copy_text("token_embd.weight", "embed_tokens.weight"));
  for (int l = 0; l < int(cfg.num_layers); ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    auto sa = [&](const std::string& s) { return b.layer_name(l, "self_attn." + s); };
    auto mlp = [&](const std::string& s) { return b.layer_name(l, "mlp." + s); };
    RAZOR_TRY(b.copy_text(p + "attn_norm.weight", b.layer_name(l, "input_layernorm.weight")));
    if (ds.q_lora_rank > 0) {
      RAZOR_TRY(b.copy_text(p + "attn_q_a.weight", sa("q_a_proj.weight")));
      RAZOR_TRY(b.copy_text(p + "attn_q_a_norm.weight", sa("q_a_layernorm.weight")));
      RAZOR_TRY(b.copy_text(p + "attn_q_b.weight", sa("q_b_proj.weight")));
    } else {
      RAZOR_TRY(b.copy_text(p + "attn_q.weight", sa("q_proj.weight")));
    }
    RAZOR_TRY(b.copy_text(p + "attn_kv_a_mqa.weight", sa("kv_a_proj_with_mqa.weight")));
    RAZOR_TRY(b.copy_text(p + "attn_kv_a_norm.weight", sa("kv_a_layernorm.weight")));
    // kv_b_proj [nh * (nope + vd), kvl]: each head's rows (contiguous) make matrix h of both tensors.
    const tensor_entry* kvb = b.ck.find_text(sa("kv_b_proj.weight"));
    RAZOR_TRY(b.need(kvb, sa("kv_b_proj.weight")));
    if (kvb->numel() != nh * (nope + vd) * kvl)
      return make_error(errc::shape_mismatch, b.ck.dir() + ": " + kvb->name + " is not [num_attention_heads x "
                                                  "(qk_nope_head_dim + v_head_dim), kv_lora_rank]");
    const checkpoint* c = &b.ck;
    for (const bool k_part : {true, false})
      b.out.push_back({p + (k_part ? "attn_k_b.weight" : "attn_v_b.weight"),
                       k_part ? std::vector<int64_t>{nope, kvl, nh} : std::vector<int64_t>{kvl, vd, nh}, nh,
                       [=](int64_t h, float* dst) -> status {
                         std::vector<float> head(size_t((nope + vd) * kvl));
                         RAZOR_TRY(c->read_f32(*kvb, h * (nope + vd) * kvl, (nope + vd) * kvl, head.data()));
                         split_kv_b(head.data(), 1, nope, vd, kvl, k_part ? dst : nullptr, k_part ? nullptr : dst);
                         return {};
                       }});
    RAZOR_TRY(b.copy_text(p + "attn_output.weight", sa("o_proj.weight")));
    RAZOR_TRY(b.copy_text(p + "ffn_norm.weight", b.layer_name(l, "post_attention_layernorm.weight")));
    if (l < ds.first_dense) {
      RAZOR_TRY(b.copy_text(p + "ffn_gate.weight", mlp("gate_proj.weight")));
      RAZOR_TRY(b.copy_text(p + "ffn_up.weight", mlp("up_proj.weight")));
      RAZOR_TRY(b.copy_text(p + "ffn_down.weight", mlp("down_proj.weight")));
      continue;
    }
    RAZOR_TRY(b.copy_text(p + "ffn_gate_inp.weight", mlp("gate.weight")));
    if (b.ck.find_text(mlp("gate.e_score_correction_bias")))
      RAZOR_TRY(b.copy_text(p + "exp_probs_b.bias", mlp("gate.e_score_correction_bias")));
    RAZOR_TRY(b.experts(l, p + "ffn_gate_exps.weight", expert_proj::gate));
    RAZOR_TRY(b.experts(l, p + "ffn_up_exps.weight", expert_proj::up));
    RAZOR_TRY(b.experts(l, p + "ffn_down_exps.weight", expert_proj::down));
    if (b.ck.find_text(mlp("shared_experts.gate_proj.weight"))) {
      RAZOR_TRY(b.copy_text(p + "ffn_gate_shexp.weight", mlp("shared_experts.gate_proj.weight")));
      RAZOR_TRY(b.copy_text(p + "ffn_up_shexp.weight", mlp("shared_experts.up_proj.weight")));
      RAZOR_TRY(b.copy_text(p + "ffn_down_shexp.weight", mlp("shared_experts.down_proj.weight")));
    }
  }
  return b.output();
}

// Qwen3.5 -> qwen35moe, and Qwen3-Next -> qwen3next (`next`): the same layers, but Qwen3-Next's DeltaNet projections
// are fused per key head (in_proj_qkvz split into attn_qkv and attn_gate, model/qwen3_next_rows.h; in_proj_ba kept
// whole as ssm_ba) and its V heads stay in HF's grouped order (llama.cpp's qwen3next repeats K heads to match).
status plan_qwen35moe(builder& b, bool next) {
  const auto& cfg = b.cfg;
  const int64_t n_k = cfg.linear_num_key_heads, n_v = cfg.linear_num_value_heads;
  const int64_t dk = cfg.linear_key_head_dim, dv = cfg.linear_value_head_dim;
  if (n_k <= 0 || n_v <= 0 || n_v % n_k != 0 || dk <= 0 || dv <= 0)
    return make_error(errc::bad_config, b.ck.dir() + ": linear attention head counts/dims are missing or inconsistent");
  const bool reorder = n_k != n_v && !next;
  const auto qkvz_order = std::make_shared<const std::vector<int64_t>>(qkvz_split_rows(n_k, n_v, dk, dv));
  const auto order = v_head_order(n_k, n_v);
  const int64_t qk_rows = 2 * n_k * dk;  // q and k rows of in_proj_qkv / conv channels before v

  RAZOR_TRY(b.copy_text("token_embd.weight", "embed_tokens.weight"));
  for (int l = 0; l < int(cfg.num_layers); ++l) {
    std::string p = "blk." + std::to_string(l) + ".";
    RAZOR_TRY(b.copy_text(p + "attn_norm.weight", b.layer_name(l, "input_layernorm.weight"), plus_one));
    RAZOR_TRY(b.copy_text(p + "post_attention_norm.weight", b.layer_name(l, "post_attention_layernorm.weight"), plus_one));
    if (cfg.layer_is_linear_attention(l)) {
      auto la = [&](const std::string& s) { return b.layer_name(l, "linear_attn." + s); };
      const int64_t H = cfg.hidden_size;
      if (next) {
        const tensor_entry* qkvz = b.ck.find_text(la("in_proj_qkvz.weight"));
        const size_t ch = size_t(2 * n_k * dk + n_v * dv);
        RAZOR_TRY(b.take_rows(p + "attn_qkv.weight", qkvz, la("in_proj_qkvz.weight"), qkvz_order, 0, ch));
        RAZOR_TRY(b.take_rows(p + "attn_gate.weight", qkvz, la("in_proj_qkvz.weight"), qkvz_order, ch, size_t(n_v * dv)));
        RAZOR_TRY(b.copy_text(p + "ssm_ba.weight", la("in_proj_ba.weight")));
      } else {
        RAZOR_TRY(b.copy_text(p + "attn_qkv.weight", la("in_proj_qkv.weight"), [=](float* x, int64_t) {
          if (reorder) reorder_rows(x, H, qk_rows, dv, order);
        }));
        RAZOR_TRY(b.copy_text(p + "attn_gate.weight", la("in_proj_z.weight"), [=](float* x, int64_t) {
          if (reorder) reorder_rows(x, H, 0, dv, order);
        }));
        RAZOR_TRY(b.copy_text(p + "ssm_beta.weight", la("in_proj_b.weight"), [=](float* x, int64_t) {
          if (reorder) reorder_rows(x, H, 0, 1, order);
        }));
        RAZOR_TRY(b.copy_text(p + "ssm_alpha.weight", la("in_proj_a.weight"), [=](float* x, int64_t) {
          if (reorder) reorder_rows(x, H, 0, 1, order);
        }));
      }
      RAZOR_TRY(b.copy_text(p + "ssm_a", la("A_log"), [=](float* x, int64_t n) {
        if (reorder) reorder_rows(x, 1, 0, 1, order);
        for (int64_t i = 0; i < n; ++i) x[i] = -std::exp(x[i]);
      }));
      RAZOR_TRY(b.copy_text(p + "ssm_dt.bias", la("dt_bias"), [=](float* x, int64_t) {
        if (reorder) reorder_rows(x, 1, 0, 1, order);
      }));
      const tensor_entry* conv = b.ck.find_text(la("conv1d.weight"));
      RAZOR_TRY(b.need(conv, la("conv1d.weight")));
      const int64_t channels = conv->shape.empty() ? 0 : conv->shape[0];
      const int64_t kernel = conv->shape.empty() ? 0 : conv->shape.back();
      RAZOR_TRY(b.copy(p + "ssm_conv1d.weight", conv, la("conv1d.weight"), [=](float* x, int64_t) {
        if (reorder) reorder_rows(x, kernel, qk_rows, dv, order);
      }, {kernel, channels}));
      RAZOR_TRY(b.copy_text(p + "ssm_norm.weight", la("norm.weight")));
      RAZOR_TRY(b.copy_text(p + "ssm_out.weight", la("out_proj.weight"), [=](float* x, int64_t n) {
        if (reorder) reorder_cols(x, n / (n_v * dv), n_v * dv, dv, order);
      }));
    } else {
      auto sa = [&](const std::string& s) { return b.layer_name(l, "self_attn." + s); };
      RAZOR_TRY(b.copy_text(p + "attn_q.weight", sa("q_proj.weight")));  // [q_h | gate_h] per head, kept whole
      RAZOR_TRY(b.copy_text(p + "attn_k.weight", sa("k_proj.weight")));
      RAZOR_TRY(b.copy_text(p + "attn_v.weight", sa("v_proj.weight")));
      RAZOR_TRY(b.copy_text(p + "attn_output.weight", sa("o_proj.weight")));
      RAZOR_TRY(b.copy_text(p + "attn_q_norm.weight", sa("q_norm.weight"), plus_one));
      RAZOR_TRY(b.copy_text(p + "attn_k_norm.weight", sa("k_norm.weight"), plus_one));
    }
    RAZOR_TRY(b.moe(l, p, "mlp.gate.weight"));
    if (const tensor_entry* sg = b.ck.find_text(b.layer_name(l, "mlp.shared_expert.gate_proj.weight"))) {
      RAZOR_TRY(b.copy(p + "ffn_gate_shexp.weight", sg, "shared_expert.gate_proj"));
      RAZOR_TRY(b.copy_text(p + "ffn_up_shexp.weight", b.layer_name(l, "mlp.shared_expert.up_proj.weight")));
      RAZOR_TRY(b.copy_text(p + "ffn_down_shexp.weight", b.layer_name(l, "mlp.shared_expert.down_proj.weight")));
      RAZOR_TRY(b.copy_text(p + "ffn_gate_inp_shexp.weight", b.layer_name(l, "mlp.shared_expert_gate.weight")));
    }
  }
  return b.output(plus_one);
}

// gpt-oss -> gpt-oss, as the converter writes it: q / k / v / o with biases (no RoPE permutation: NeoX),
// self_attn.sinks -> attn_sinks.weight, post_attention_layernorm -> post_attention_norm, mlp.router -> ffn_gate_inp
// (weight and bias), the experts' gate_up_proj de-interleaved (even rows gate, odd rows up; the checkpoint's expert
// views, model/checkpoint.h, also transpose the BF16 form's [E, in, out]) into ffn_gate_exps / ffn_up_exps, down_proj
// -> ffn_down_exps, and their biases (gate_up_proj_bias split the same way) -> ffn_{gate,up,down}_exps.bias.
status plan_gpt_oss(builder& b) {
  const auto& cfg = b.cfg;
  const int64_t E = cfg.num_experts, F = cfg.moe_intermediate_size, H = cfg.hidden_size;
  RAZOR_TRY(b.copy_text("token_embd.weight", "embed_tokens.weight"));
  for (int l = 0; l < int(cfg.num_layers); ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    auto sa = [&](const std::string& s) { return b.layer_name(l, "self_attn." + s); };
    auto mlp = [&](const std::string& s) { return b.layer_name(l, "mlp." + s); };
    RAZOR_TRY(b.biased_attention(l, p));
    RAZOR_TRY(b.copy_text(p + "attn_output.bias", sa("o_proj.bias")));
    RAZOR_TRY(b.copy_text(p + "attn_sinks.weight", sa("sinks")));
    RAZOR_TRY(b.copy_text(p + "post_attention_norm.weight", b.layer_name(l, "post_attention_layernorm.weight")));
    RAZOR_TRY(b.copy_text(p + "ffn_gate_inp.weight", mlp("router.weight")));
    RAZOR_TRY(b.copy_text(p + "ffn_gate_inp.bias", mlp("router.bias")));
    RAZOR_TRY(b.experts(l, p + "ffn_gate_exps.weight", expert_proj::gate));
    RAZOR_TRY(b.experts(l, p + "ffn_up_exps.weight", expert_proj::up));
    RAZOR_TRY(b.experts(l, p + "ffn_down_exps.weight", expert_proj::down));
    const tensor_entry* gub = b.ck.find_text(mlp("experts.gate_up_proj_bias"));
    RAZOR_TRY(b.need(gub, mlp("experts.gate_up_proj_bias")));
    if (gub->numel() != E * 2 * F)
      return make_error(errc::shape_mismatch, b.ck.dir() + ": '" + gub->name + "' is not [num_local_experts, 2 x intermediate_size]");
    const checkpoint* c = &b.ck;
    for (const int64_t half : {0, 1})
      b.out.push_back({p + (half ? "ffn_up_exps.bias" : "ffn_gate_exps.bias"), {F, E}, 1, [=](int64_t, float* dst) -> status {
                         RAZOR_ASSIGN_OR_RETURN(std::vector<float> all, c->read_f32(*gub));
                         for (int64_t i = 0; i < E * F; ++i) dst[i] = all[size_t(2 * i + half)];
                         return {};
                       }});
    RAZOR_TRY(b.copy_text(p + "ffn_down_exps.bias", mlp("experts.down_proj_bias"), nullptr, {H, E}));
  }
  return b.output();
}

}  // namespace

result<std::string> gguf_arch_of(const checkpoint& ck) {
  const model_config& cfg = ck.config();
  std::string arch = gguf_arch_for(cfg.model_type);
  if (arch.empty()) arch = gguf_arch_for(cfg.top_model_type);
  if (arch.empty())
    return make_error(errc::unsupported,
                      ck.dir() + ": GGUF export of model_type '" + cfg.model_type + "' (adapter " + ck.adapter().name +
                          ", llama.cpp arch " + (ck.adapter().gguf_arch.empty() ? "-" : ck.adapter().gguf_arch) +
                          ") is not supported: " + missing_conversion(ck.adapter().name) + " (supported: " +
                          converted_model_types() + ")");
  return arch;
}

namespace convert_detail {

result<full_plan> make_plan(const checkpoint& ck, const convert_options& o) {
  const model_config& cfg = ck.config();
  full_plan fp;
  RAZOR_ASSIGN_OR_RETURN(fp.report.arch, gguf_arch_of(ck));
  // config.json against the tensors, before anything is written (block_count, expert_used_count, the
  // embedding's orientation, ... would otherwise reach the GGUF unchecked).
  RAZOR_TRY(check_checkpoint_config(ck));
  RAZOR_TRY(check_llamacpp_arch(ck, fp.report.arch));
  builder b{ck, cfg, {}};
  if (fp.report.arch == "qwen3moe" || fp.report.arch == "olmoe") RAZOR_TRY(plan_qwen3moe(b));  // same tensors
  else if (fp.report.arch == "qwen2moe") RAZOR_TRY(plan_qwen2moe(b));
  else if (fp.report.arch == "llama") RAZOR_TRY(plan_llama_moe(b));
  else if (fp.report.arch == "deepseek2") RAZOR_TRY(plan_deepseek2(b));
  else if (fp.report.arch == "gpt-oss") RAZOR_TRY(plan_gpt_oss(b));
  else RAZOR_TRY(plan_qwen35moe(b, fp.report.arch == "qwen3next"));
  fp.tensors = std::move(b.out);

  if (o.imat) {
    std::vector<imatrix_target> targets;
    for (auto& p : fp.tensors)
      if (p.ne.size() >= 2) targets.push_back({p.name, p.ne[0], p.n_mat});

    RAZOR_TRY(o.imat->match_model(targets, ck.dir()));
  }
  RAZOR_TRY(choose_types(o, fp));
  return fp;
}

}  // namespace convert_detail

result<convert_report> plan_gguf(const checkpoint& ck, const convert_options& o) {
  RAZOR_ASSIGN_OR_RETURN(full_plan fp, make_plan(ck, o));
  // The exact size of the file: the header the conversion writes (its metadata does not depend on the types
  // beyond general.file_type, a fixed-size value) and every tensor padded to the alignment.
  writer_options wo;
  wo.alignment = o.alignment;
  writer w(wo);
  RAZOR_TRY(declare_output(w, ck, fp.report, ck.dir(), o));
  fp.report.file_bytes = w.planned_bytes();
  uint64_t data = 0;
  for (auto& r : fp.report.tensors) data += padded_bytes(r.bytes, o.alignment);
  fp.report.header_bytes = fp.report.file_bytes - data;
  return fp.report;
}

}  // namespace razor::gguf
