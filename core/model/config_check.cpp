#include "model/config_check.h"

#include <cmath>
#include <cstdio>

#include "model/checkpoint.h"
#include "model/deepseek_config.h"
#include "model/json_value.h"

namespace razor {

namespace {

enum class family { other, qwen3_moe, qwen3_5_moe, olmoe, qwen2_moe, mixtral, deepseek, qwen3_next, gpt_oss };

family family_of(const model_config& c) {
  for (const std::string* mt : {&c.model_type, &c.top_model_type}) {
    if (*mt == "qwen3_moe") return family::qwen3_moe;
    if (*mt == "qwen3_5_moe" || *mt == "qwen3_5_moe_text") return family::qwen3_5_moe;
    if (*mt == "olmoe") return family::olmoe;
    if (*mt == "qwen2_moe") return family::qwen2_moe;
    if (*mt == "mixtral") return family::mixtral;
    if (is_deepseek(*mt)) return family::deepseek;
    if (*mt == "qwen3_next") return family::qwen3_next;
    if (*mt == "gpt_oss") return family::gpt_oss;
  }
  return family::other;
}

// A config key that must be absent or null (what the engine and pack do not implement), as config.json spells it.
bool set_non_null(const model_config& c, const char* key) {
  auto it = c.text.find(key);
  return it != c.text.end() && !it->is_null() && !(it->is_boolean() && !it->get<bool>());
}

std::string num(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::string o = "[";
  for (size_t i = 0; i < s.size(); ++i) o += (i ? ", " : "") + std::to_string(s[i]);
  return o + "]";
}

struct checker {
  const model_config& c;
  const model_shapes* s = nullptr;

  // "num_experts = 16" with the key as config.json spells it.
  std::string kv(const std::string& field, double v) const { return c.key(field) + " = " + num(v); }

  status bad(const std::string& msg) const { return make_error(errc::bad_config, c.source + ": " + msg); }

  // `what` (keys and values) gives `name` the shape `want`; a mismatch or a missing tensor is an error.
  // A 1-D `want` compares the element count; a 2-D one the [rows, last axis] view.
  status expect(const std::string& what, const std::string& name, std::vector<int64_t> want) const {
    auto t = s->tensor(name);
    if (!t) return bad(what + ": the tensor " + name + " " + shape_str(want) + " is missing");
    return compare(what, *t, want);
  }
  status compare(const std::string& what, const stored_tensor& t, const std::vector<int64_t>& want) const {
    int64_t numel = 1;
    for (auto d : t.shape) numel *= d;
    const int64_t cols = t.shape.empty() ? 1 : t.shape.back();
    const int64_t rows = cols ? numel / cols : 0;
    const bool ok = want.size() == 1 ? numel == want[0] : (rows == want[0] && cols == want[1]);
    if (ok) return {};
    return bad(what + ": " + t.name + " should be " + shape_str(want) + ", but it is " + shape_str(t.shape));
  }

  // Every routed expert of layer l: gate / up [ff, H], down [H, ff] (`what`: the keys those come from).
  status routed_experts(int l, int64_t E, int64_t ff, int64_t H, const std::string& what) const {
    for (int e = 0; e < int(E); ++e)
      for (auto p : {expert_proj::gate, expert_proj::up, expert_proj::down}) {
        auto t = s->expert(l, e, p);
        if (!t)
          return bad(kv("num_experts", double(E)) + ", but layer " + std::to_string(l) + " has no " +
                     std::string(proj_name(p)) + " matrix for expert " + std::to_string(e));
        RAZOR_TRY(compare(what, *t, p == expert_proj::down ? std::vector<int64_t>{H, ff} : std::vector<int64_t>{ff, H}));
      }
    return {};
  }
  status values() const {
    const family f = family_of(c);
    if (f == family::other) return {};
    auto need_pos = [&](const char* field, int64_t v) -> status {
      if (v <= 0) return bad(kv(field, double(v)) + ": must be a positive integer" +
                             (c.keys.count(field) ? "" : " (the key is missing)"));
      return {};
    };
    auto need_multiple = [&](const char* fa, int64_t a, const char* fb, int64_t b) -> status {
      if (a % b) return bad(kv(fa, double(a)) + " is not a multiple of " + kv(fb, double(b)));
      return {};
    };
    RAZOR_TRY(need_pos("hidden_size", c.hidden_size));
    RAZOR_TRY(need_pos("vocab_size", c.vocab_size));
    RAZOR_TRY(need_pos("num_attention_heads", c.num_heads));
    RAZOR_TRY(need_pos("num_key_value_heads", c.num_kv_heads));
    RAZOR_TRY(need_pos("head_dim", c.head_dim));
    RAZOR_TRY(need_multiple("num_attention_heads", c.num_heads, "num_key_value_heads", c.num_kv_heads));
    if (!(c.rms_norm_eps > 0 && c.rms_norm_eps < 1))
      return bad(kv("rms_norm_eps", c.rms_norm_eps) + ": the norms' epsilon must be in (0, 1)");
    if (!(c.rope_theta > 0 && std::isfinite(c.rope_theta)))
      return bad(kv("rope_theta", c.rope_theta) + ": the RoPE base must be a positive number");
    if (!(c.partial_rotary_factor > 0 && c.partial_rotary_factor <= 1))
      return bad(kv("partial_rotary_factor", c.partial_rotary_factor) +
                 ": must be in (0, 1] (the fraction of each head's dimensions RoPE rotates)");
    const int64_t rot = c.rotary_dims();
    if (rot < 2 || rot % 2)
      return bad(kv("partial_rotary_factor", c.partial_rotary_factor) + " x " + kv("head_dim", double(c.head_dim)) +
                 " gives " + std::to_string(rot) + " rotary dimensions; RoPE needs an even number, at least 2");
    RAZOR_TRY(need_pos("num_experts", c.num_experts));
    if (c.num_experts_per_tok < 1 || c.num_experts_per_tok > c.num_experts)
      return bad(kv("num_experts_per_tok", double(c.num_experts_per_tok)) + ": must be between 1 and " +
                 kv("num_experts", double(c.num_experts)));
    RAZOR_TRY(need_pos("moe_intermediate_size", c.moe_intermediate_size));
    // Options of these families the engine and llama.cpp's graphs do not implement (the released models leave
    // them off): a checkpoint with one set would run a different model.
    const char* off[] = {f == family::olmoe ? "clip_qkv" : nullptr,
                         f == family::qwen2_moe ? "use_sliding_window" : nullptr,
                         f == family::mixtral ? "sliding_window" : nullptr};
    for (const char* k : off)
      if (k && set_non_null(c, k))
        return bad(std::string(c.nested ? "text_config." : "") + k + " = " + json_excerpt(c.text[k]) +
                   ": not supported for " + c.model_type + " (only null / false, as in the released models)");
    if (f == family::olmoe || f == family::mixtral)
      for (const char* k : {"attention_bias"})
        if (set_non_null(c, k))
          return bad(std::string(k) + " = true: " + c.model_type + " has no attention biases in the engine or llama.cpp");
    if (f == family::deepseek) {  // MLA's keys, the dense layers, the router's groups
      RAZOR_ASSIGN_OR_RETURN(deepseek_dims ds, deepseek_dims_from_config(c));
      (void)ds;
      return {};
    }
    for (int64_t l = 0; l < c.num_layers; ++l)
      if (!c.layer_is_moe(l))
        return bad("layer " + std::to_string(l) + " is dense (mlp_only_layers / first_k_dense_replace / " +
                   "decoder_sparse_step); dense layers are not supported in " + c.model_type);
    if (f == family::qwen3_5_moe || f == family::qwen3_next) {
      if (!c.layer_types.empty() && int64_t(c.layer_types.size()) != c.num_layers)
        return bad(c.key("layer_types") + " has " + std::to_string(c.layer_types.size()) + " entries, but " +
                   kv("num_hidden_layers", double(c.num_layers)));
      bool any_linear = false;
      for (size_t l = 0; l < c.layer_types.size(); ++l) {
        const std::string& t = c.layer_types[l];
        if (t != "linear_attention" && t != "full_attention")
          return bad(c.key("layer_types") + "[" + std::to_string(l) + "] = " + t +
                     ": expected \"linear_attention\" or \"full_attention\"");
        any_linear |= t == "linear_attention";
      }
      if (any_linear) {
        RAZOR_TRY(need_pos("linear_num_key_heads", c.linear_num_key_heads));
        RAZOR_TRY(need_pos("linear_num_value_heads", c.linear_num_value_heads));
        RAZOR_TRY(need_pos("linear_key_head_dim", c.linear_key_head_dim));
        RAZOR_TRY(need_pos("linear_value_head_dim", c.linear_value_head_dim));
        RAZOR_TRY(need_multiple("linear_num_value_heads", c.linear_num_value_heads, "linear_num_key_heads",
                                c.linear_num_key_heads));
      }
      // M-RoPE sections (pack writes them as int32): at most 4 integers, none above the rotary pairs.
      for (const nlohmann::json* j : {&c.text, &c.raw})
        for (const char* k : {"rope_parameters", "rope_scaling"}) {
          auto rp = j->find(k);
          if (rp == j->end() || !rp->is_object() || !rp->contains("mrope_section")) continue;
          const auto& ms = (*rp)["mrope_section"];
          const std::string at = std::string(j == &c.text && c.nested ? "text_config." : "") + k + ".mrope_section";
          if (!ms.is_array() || ms.size() > 4)
            return bad(at + " must be a list of at most 4 integers");
          for (const auto& v : ms)
            if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > rot / 2)
              return bad(at + " = " + json_excerpt(ms) + ": each section must be an integer in [0, " + std::to_string(rot / 2) +
                         "] (half the rotary dimensions)");
        }
    }
    return {};
  }

  status shapes() const {
    const family f = family_of(c);
    if (f == family::other) return {};
    const int64_t H = c.hidden_size, V = c.vocab_size;
    const std::string hv = kv("vocab_size", double(V)) + ", " + kv("hidden_size", double(H));
    RAZOR_TRY(expect(hv, "embed_tokens.weight", {V, H}));
    RAZOR_TRY(expect(kv("hidden_size", double(H)), "norm.weight", {H}));
    if (auto head = s->tensor("lm_head.weight"))
      RAZOR_TRY(compare(hv, *head, {V, H}));
    else if (!c.tie_word_embeddings)
      return bad(c.key("tie_word_embeddings") + " is false, but there is no lm_head.weight");
    // The layer count: the last layer exists and the one after it does not.
    const std::string nl = kv("num_hidden_layers", double(c.num_layers));
    auto layer_norm = [](int64_t l) { return "layers." + std::to_string(l) + ".input_layernorm.weight"; };
    if (!s->tensor(layer_norm(c.num_layers - 1)))
      return bad(nl + ", but there is no " + layer_norm(c.num_layers - 1) + " (the model has fewer layers)");
    // DeepSeek-V3 stores its multi-token-prediction layers after the last one (num_nextn_predict_layers); unused.
    const bool mtp = f == family::deepseek && c.text.value("num_nextn_predict_layers", nlohmann::json(0)).is_number_integer() &&
                     c.text.value("num_nextn_predict_layers", nlohmann::json(0)).get<int64_t>() > 0;
    if (auto extra = s->tensor(layer_norm(c.num_layers)); extra && !mtp)
      return bad(nl + ", but " + extra->name + " exists (the model has more layers)");

    const bool next = f == family::qwen3_next;  // Qwen3-Next: Qwen3.5's layers, linear projections fused per key head
    const bool q35 = f == family::qwen3_5_moe || next;
    const int64_t hd = c.head_dim, nh = c.num_heads, nkv = c.num_kv_heads;
    const std::string heads = kv("num_attention_heads", double(nh)) + ", " + kv("head_dim", double(hd));
    const std::string kvheads = kv("num_key_value_heads", double(nkv)) + ", " + kv("head_dim", double(hd));
    const int64_t nk = c.linear_num_key_heads, nv = c.linear_num_value_heads, dk = c.linear_key_head_dim,
                  dv = c.linear_value_head_dim;
    const int64_t kd = nk * dk, vd = nv * dv, ch = 2 * kd + vd;
    const std::string lin = kv("linear_num_key_heads", double(nk)) + ", " + kv("linear_key_head_dim", double(dk)) +
                            ", " + kv("linear_num_value_heads", double(nv)) + ", " +
                            kv("linear_value_head_dim", double(dv));
    const std::string vheads = kv("linear_num_value_heads", double(nv));
    const int64_t E = c.num_experts, ff = c.moe_intermediate_size, sff = c.shared_expert_intermediate_size;
    const std::string moe = kv("moe_intermediate_size", double(ff)) + ", " + kv("hidden_size", double(H));
    if (f == family::deepseek) return deepseek_shapes();
    for (int l = 0; l < int(c.num_layers); ++l) {
      const std::string L = "layers." + std::to_string(l) + ".";
      RAZOR_TRY(expect(kv("hidden_size", double(H)), L + "input_layernorm.weight", {H}));
      RAZOR_TRY(expect(kv("hidden_size", double(H)), L + "post_attention_layernorm.weight", {H}));
      const bool linear = q35 && c.layer_is_linear_attention(l);
      const std::string type_key = c.layer_types.empty()
                                       ? std::string("the layer type")
                                       : c.key("layer_types") + "[" + std::to_string(l) + "] = " +
                                             (linear ? "linear_attention" : "full_attention");
      // Qwen3-Next's checkpoints fuse [q, k, v, z] and [b, a] per key head (in_proj_qkvz, in_proj_ba); its GGUF,
      // read back, holds q/k/v and z apart (in_proj_qkv, in_proj_z) and [b, a] as stored.
      const bool fused_qkvz = next && s->tensor(L + "linear_attn.in_proj_qkvz.weight");
      const std::string first_linear = L + (fused_qkvz ? "linear_attn.in_proj_qkvz.weight" : "linear_attn.in_proj_qkv.weight");
      if (linear) {
        if (!s->tensor(first_linear) && s->tensor(L + "self_attn.q_proj.weight"))
          return bad(type_key + ", but layer " + std::to_string(l) + " has self_attn.* (full attention) tensors");
        if (fused_qkvz) {
          RAZOR_TRY(expect(lin, L + "linear_attn.in_proj_qkvz.weight", {ch + vd, H}));
        } else {
          RAZOR_TRY(expect(lin, L + "linear_attn.in_proj_qkv.weight", {ch, H}));
          RAZOR_TRY(expect(lin, L + "linear_attn.in_proj_z.weight", {vd, H}));
        }
        if (next) {
          RAZOR_TRY(expect(vheads, L + "linear_attn.in_proj_ba.weight", {2 * nv, H}));
        } else {
          RAZOR_TRY(expect(vheads, L + "linear_attn.in_proj_b.weight", {nv, H}));
          RAZOR_TRY(expect(vheads, L + "linear_attn.in_proj_a.weight", {nv, H}));
        }
        RAZOR_TRY(expect(lin, L + "linear_attn.out_proj.weight", {H, vd}));
        RAZOR_TRY(expect(vheads, L + "linear_attn.A_log", {nv}));
        RAZOR_TRY(expect(vheads, L + "linear_attn.dt_bias", {nv}));
        RAZOR_TRY(expect(kv("linear_value_head_dim", double(dv)), L + "linear_attn.norm.weight", {dv}));
        // The engine takes kernel 4 when the key is absent (Qwen3-Next / Qwen3.5 all use 4); pack writes the same.
        const int64_t K = c.linear_conv_kernel_dim > 0 ? c.linear_conv_kernel_dim : 4;
        RAZOR_TRY(expect(lin + ", " + kv("linear_conv_kernel_dim", double(K)), L + "linear_attn.conv1d.weight", {ch, K}));
      } else {
        if (!s->tensor(L + "self_attn.q_proj.weight") && s->tensor(first_linear))
          return bad(type_key + ", but layer " + std::to_string(l) + " has linear_attn.* (linear attention) tensors");
        // Qwen3.5's full attention has an output gate: q_proj holds [q | gate] per head.
        RAZOR_TRY(expect(heads + (q35 ? " (query and gate rows)" : "") + ", " + kv("hidden_size", double(H)),
                         L + "self_attn.q_proj.weight", {(q35 ? 2 : 1) * nh * hd, H}));
        RAZOR_TRY(expect(kvheads, L + "self_attn.k_proj.weight", {nkv * hd, H}));
        RAZOR_TRY(expect(kvheads, L + "self_attn.v_proj.weight", {nkv * hd, H}));
        RAZOR_TRY(expect(heads, L + "self_attn.o_proj.weight", {H, nh * hd}));
        if (f == family::olmoe) {  // the QK-norm over the whole projection
          RAZOR_TRY(expect(heads, L + "self_attn.q_norm.weight", {nh * hd}));
          RAZOR_TRY(expect(kvheads, L + "self_attn.k_norm.weight", {nkv * hd}));
        } else if (f == family::qwen3_moe || q35) {
          RAZOR_TRY(expect(kv("head_dim", double(hd)), L + "self_attn.q_norm.weight", {hd}));
          RAZOR_TRY(expect(kv("head_dim", double(hd)), L + "self_attn.k_norm.weight", {hd}));
        }
        if (f == family::qwen2_moe || f == family::gpt_oss) {
          RAZOR_TRY(expect(heads, L + "self_attn.q_proj.bias", {nh * hd}));
          RAZOR_TRY(expect(kvheads, L + "self_attn.k_proj.bias", {nkv * hd}));
          RAZOR_TRY(expect(kvheads, L + "self_attn.v_proj.bias", {nkv * hd}));
        }
        if (f == family::gpt_oss) {
          RAZOR_TRY(expect(kv("hidden_size", double(H)), L + "self_attn.o_proj.bias", {H}));
          RAZOR_TRY(expect(kv("num_attention_heads", double(nh)), L + "self_attn.sinks", {nh}));
        }
      }
      const std::string router = f == family::mixtral   ? "block_sparse_moe.gate.weight"
                                 : f == family::gpt_oss ? "mlp.router.weight"
                                                        : "mlp.gate.weight";
      RAZOR_TRY(expect(kv("num_experts", double(E)) + ", " + kv("hidden_size", double(H)), L + router, {E, H}));
      RAZOR_TRY(routed_experts(l, E, ff, H, moe));
      if (f == family::gpt_oss) {  // the router's and the experts' biases (the Hub's, or a gpt-oss GGUF's read back)
        const std::string ek = kv("num_experts", double(E));
        RAZOR_TRY(expect(ek, L + "mlp.router.bias", {E}));
        if (s->tensor(L + "mlp.experts.gate_up_proj_bias")) {
          RAZOR_TRY(expect(ek + ", " + moe, L + "mlp.experts.gate_up_proj_bias", {E, 2 * ff}));
          RAZOR_TRY(expect(ek + ", " + kv("hidden_size", double(H)), L + "mlp.experts.down_proj_bias", {E, H}));
        } else {
          RAZOR_TRY(expect(ek + ", " + moe, L + "mlp.experts.gate_proj.bias", {E, ff}));
          RAZOR_TRY(expect(ek + ", " + moe, L + "mlp.experts.up_proj.bias", {E, ff}));
          RAZOR_TRY(expect(ek + ", " + kv("hidden_size", double(H)), L + "mlp.experts.down_proj.bias", {E, H}));
        }
      }
      const auto sg = s->tensor(L + "mlp.shared_expert.gate_proj.weight");
      if (!sg && sff > 0 && f == family::qwen2_moe)  // transformers builds it whenever the size is given
        return bad(kv("shared_expert_intermediate_size", double(sff)) + ", but layer " + std::to_string(l) +
                   " has no mlp.shared_expert.gate_proj.weight");
      if (sg && sff <= 0)
        return bad(kv("shared_expert_intermediate_size", double(sff)) + ", but " + sg->name +
                   " exists (the shared expert would be ignored)");
      if (sg) {
        const std::string sh = kv("shared_expert_intermediate_size", double(sff)) + ", " + kv("hidden_size", double(H));
        RAZOR_TRY(compare(sh, *sg, {sff, H}));
        RAZOR_TRY(expect(sh, L + "mlp.shared_expert.up_proj.weight", {sff, H}));
        RAZOR_TRY(expect(sh, L + "mlp.shared_expert.down_proj.weight", {H, sff}));
        RAZOR_TRY(expect(kv("hidden_size", double(H)), L + "mlp.shared_expert_gate.weight", {1, H}));
      }
    }
    return {};
  }

  // DeepSeek-V2 / V3 / Kimi-K2 layers: MLA attention, the leading dense MLPs, the router with its score-correction
  // bias (noaux_tc), the routed experts and the ungated shared experts.
  status deepseek_shapes() const {
    RAZOR_ASSIGN_OR_RETURN(deepseek_dims ds, deepseek_dims_from_config(c));
    const int64_t H = c.hidden_size, nh = c.num_heads, E = c.num_experts, ff = c.moe_intermediate_size;
    const std::string hk = kv("hidden_size", double(H));
    auto key = [&](const char* k, int64_t v) { return (c.nested ? "text_config." : "") + std::string(k) + " = " + std::to_string(v); };
    const std::string qk = kv("num_attention_heads", double(nh)) + ", " + key("qk_nope_head_dim", ds.qk_nope) + ", " +
                           key("qk_rope_head_dim", ds.qk_rope);
    const std::string kvl = key("kv_lora_rank", ds.kv_lora_rank);
    for (int l = 0; l < int(c.num_layers); ++l) {
      const std::string L = "layers." + std::to_string(l) + ".", A = L + "self_attn.";
      RAZOR_TRY(expect(hk, L + "input_layernorm.weight", {H}));
      RAZOR_TRY(expect(hk, L + "post_attention_layernorm.weight", {H}));
      if (ds.q_lora_rank > 0) {
        const std::string ql = key("q_lora_rank", ds.q_lora_rank);
        RAZOR_TRY(expect(ql + ", " + hk, A + "q_a_proj.weight", {ds.q_lora_rank, H}));
        RAZOR_TRY(expect(ql, A + "q_a_layernorm.weight", {ds.q_lora_rank}));
        RAZOR_TRY(expect(qk + ", " + ql, A + "q_b_proj.weight", {nh * ds.qk_head_dim(), ds.q_lora_rank}));
      } else {
        RAZOR_TRY(expect(qk + ", " + hk, A + "q_proj.weight", {nh * ds.qk_head_dim(), H}));
      }
      RAZOR_TRY(expect(kvl + ", " + key("qk_rope_head_dim", ds.qk_rope) + ", " + hk, A + "kv_a_proj_with_mqa.weight",
                       {ds.kv_lora_rank + ds.qk_rope, H}));
      RAZOR_TRY(expect(kvl, A + "kv_a_layernorm.weight", {ds.kv_lora_rank}));
      RAZOR_TRY(expect(kv("num_attention_heads", double(nh)) + ", " + key("qk_nope_head_dim", ds.qk_nope) + ", " +
                           key("v_head_dim", ds.v_head_dim) + ", " + kvl,
                       A + "kv_b_proj.weight", {nh * (ds.qk_nope + ds.v_head_dim), ds.kv_lora_rank}));
      RAZOR_TRY(expect(kv("num_attention_heads", double(nh)) + ", " + key("v_head_dim", ds.v_head_dim) + ", " + hk,
                       A + "o_proj.weight", {H, nh * ds.v_head_dim}));
      if (l < ds.first_dense) {
        const std::string dn = kv("intermediate_size", double(ds.dense_ff)) + ", " + hk + " (first_k_dense_replace = " +
                               std::to_string(ds.first_dense) + ")";
        RAZOR_TRY(expect(dn, L + "mlp.gate_proj.weight", {ds.dense_ff, H}));
        RAZOR_TRY(expect(dn, L + "mlp.up_proj.weight", {ds.dense_ff, H}));
        RAZOR_TRY(expect(dn, L + "mlp.down_proj.weight", {H, ds.dense_ff}));
        continue;
      }
      RAZOR_TRY(expect(kv("num_experts", double(E)) + ", " + hk, L + "mlp.gate.weight", {E, H}));
      const auto bias = s->tensor(L + "mlp.gate.e_score_correction_bias");
      if (ds.score_bias && !bias)
        return bad("topk_method noaux_tc, but layer " + std::to_string(l) + " has no mlp.gate.e_score_correction_bias");
      if (bias) RAZOR_TRY(compare(kv("num_experts", double(E)), *bias, {E}));
      const std::string moe = kv("moe_intermediate_size", double(ff)) + ", " + hk;
      RAZOR_TRY(routed_experts(l, E, ff, H, moe));
      const int64_t sff = ff * ds.n_shared;
      const auto sg = s->tensor(L + "mlp.shared_experts.gate_proj.weight");
      if (sff > 0 || sg) {
        const std::string sh = kv("moe_intermediate_size", double(ff)) + " x " + kv("n_shared_experts", double(ds.n_shared)) + ", " + hk;
        RAZOR_TRY(expect(sh, L + "mlp.shared_experts.gate_proj.weight", {sff, H}));
        RAZOR_TRY(expect(sh, L + "mlp.shared_experts.up_proj.weight", {sff, H}));
        RAZOR_TRY(expect(sh, L + "mlp.shared_experts.down_proj.weight", {H, sff}));
      }
    }
    return {};
  }
};

}  // namespace

status check_config_values(const model_config& cfg) { return checker{cfg}.values(); }

status check_config_shapes(const model_config& cfg, const model_shapes& s) {
  checker ch{cfg, &s};
  RAZOR_TRY(ch.values());
  return ch.shapes();
}

model_shapes checkpoint_shapes(const checkpoint& ck) {
  model_shapes s;
  const checkpoint* c = &ck;
  s.tensor = [c](const std::string& name) -> std::optional<stored_tensor> {
    const tensor_entry* t = name == "lm_head.weight" ? c->find(name) : c->find_text(name);
    if (!t) return std::nullopt;
    return stored_tensor{t->name, t->shape};
  };
  s.expert = [c](int layer, int e, expert_proj p) -> std::optional<stored_tensor> {
    auto v = c->expert_matrix(layer, e, p);
    if (!v || !v->t) return std::nullopt;
    std::string name = v->t->name;
    if (v->t->cls.fused) name += " (expert " + std::to_string(e) + ")";
    return stored_tensor{name, {v->n_rows, v->n_cols}};
  };
  return s;
}

status check_checkpoint_config(const checkpoint& ck) {
  return check_config_shapes(ck.config(), checkpoint_shapes(ck));
}

}  // namespace razor
