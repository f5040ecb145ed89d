#include "model/synth.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <filesystem>

#include "model/adapter.h"
#include "model/deepseek_config.h"
#include "model/mxfp4.h"
#include "model/safetensors.h"
#include "model/vision_tower.h"
#include "util/atomic_file.h"
#include "util/numeric.h"

namespace fs = std::filesystem;

namespace razor {

// What synth may be asked to write. parse_model_config bounds every key; these bound their products: the
// number of tensors (per-expert layouts multiply layers by experts) and the parameters of the whole checkpoint
// (2^42, 4.4 trillion: twice the largest published model; a BF16 copy is 8.8 TB even when sparse).
constexpr uint64_t kMaxSynthTensors = uint64_t(1) << 20;
constexpr uint64_t kMaxSynthParams = uint64_t(1) << 42;

// Families whose Hub checkpoints store every expert's matrices apart (experts.E.gate_proj / w1): synth writes them
// so whatever fused_experts says.
static bool hub_per_expert(const adapter_def& a) {
  return a.name == "mixtral" || a.name == "olmoe" || a.name == "qwen2_moe" || a.name == "deepseek_v3" ||
         a.name == "qwen3_next";
}

result<std::vector<synth_tensor>> synth_plan(const model_config& c, const synth_options& opt) {
  const adapter_def& a = adapter_for(c);
  RAZOR_TRY(check_adapter_config(a, c, "config"));
  using I = synth_tensor::init;
  std::vector<synth_tensor> out;
  const int64_t H = c.hidden_size, V = c.vocab_size;
  if (V <= 0) return make_error(errc::bad_config, "config: vocab_size is needed to synthesise a checkpoint");
  {
    const bool per_expert = !opt.fused_experts || hub_per_expert(a);
    const uint64_t per_layer = 20 + (c.num_experts > 0 ? (per_expert ? 3 * uint64_t(c.num_experts) : 2) : 3);
    const uint64_t n = uint64_t(std::max<int64_t>(c.num_layers, 0)) * per_layer;
    if (n > kMaxSynthTensors)
      return make_error(errc::bad_config, "config: num_hidden_layers " + std::to_string(c.num_layers) +
                                              (per_expert ? " x num_experts " + std::to_string(c.num_experts) : "") +
                                              " make about " + std::to_string(n) + " tensors, above synth's limit of " +
                                              std::to_string(kMaxSynthTensors));
  }
  const std::string pre = c.nested ? "model.language_model." : "model.";
  const bool qwen35 = a.name == "qwen3_5_moe" || a.name == "qwen3_next";
  const bool zero_centred_norms = qwen35;
  auto add = [&](std::string n, std::vector<int64_t> s, I how = I::normal) { out.push_back({std::move(n), std::move(s), how}); };
  add(pre + "embed_tokens.weight", {V, H});
  const int64_t nh = c.num_heads, nkv = c.num_kv_heads, hd = c.head_dim;
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const std::string p = pre + "layers." + std::to_string(l) + ".";
    const I norm_init = zero_centred_norms ? I::small : I::ones;
    add(p + "input_layernorm.weight", {H}, norm_init);
    if (a.name == "deepseek_v3") {  // MLA (model/deepseek_config.h)
      RAZOR_ASSIGN_OR_RETURN(deepseek_dims ds, deepseek_dims_from_config(c));
      const std::string sa = p + "self_attn.";
      if (ds.q_lora_rank > 0) {
        add(sa + "q_a_proj.weight", {ds.q_lora_rank, H});
        add(sa + "q_a_layernorm.weight", {ds.q_lora_rank}, norm_init);
        add(sa + "q_b_proj.weight", {nh * ds.qk_head_dim(), ds.q_lora_rank});
      } else {
        add(sa + "q_proj.weight", {nh * ds.qk_head_dim(), H});
      }
      add(sa + "kv_a_proj_with_mqa.weight", {ds.kv_lora_rank + ds.qk_rope, H});
      add(sa + "kv_a_layernorm.weight", {ds.kv_lora_rank}, norm_init);
      add(sa + "kv_b_proj.weight", {nh * (ds.qk_nope + ds.v_head_dim), ds.kv_lora_rank});
      add(sa + "o_proj.weight", {H, nh * ds.v_head_dim});
      if (c.layer_is_moe(l) && ds.score_bias) add(p + "mlp.gate.e_score_correction_bias", {c.num_experts}, I::small);
      if (c.layer_is_moe(l) && ds.n_shared > 0) {
        const int64_t S = c.moe_intermediate_size * ds.n_shared;
        add(p + "mlp.shared_experts.down_proj.weight", {H, S});
        add(p + "mlp.shared_experts.gate_proj.weight", {S, H});
        add(p + "mlp.shared_experts.up_proj.weight", {S, H});
      }
    } else if (qwen35 && c.layer_is_linear_attention(l)) {
      const int64_t nk = c.linear_num_key_heads, nv = c.linear_num_value_heads;
      const int64_t dk = c.linear_key_head_dim, dv = c.linear_value_head_dim;
      const int64_t conv_dim = 2 * nk * dk + nv * dv;
      add(p + "linear_attn.A_log", {nv}, I::a_log);
      add(p + "linear_attn.conv1d.weight", {conv_dim, 1, c.linear_conv_kernel_dim > 0 ? c.linear_conv_kernel_dim : 4});
      add(p + "linear_attn.dt_bias", {nv}, I::ones);
      if (a.name == "qwen3_next") {  // fused, per key head: [q, k, v, z] rows and [b, a] rows
        add(p + "linear_attn.in_proj_ba.weight", {2 * nv, H});
        add(p + "linear_attn.in_proj_qkvz.weight", {conv_dim + nv * dv, H});
      } else {
        add(p + "linear_attn.in_proj_a.weight", {nv, H});
        add(p + "linear_attn.in_proj_b.weight", {nv, H});
        add(p + "linear_attn.in_proj_qkv.weight", {conv_dim, H});
        add(p + "linear_attn.in_proj_z.weight", {nv * dv, H});
      }
      add(p + "linear_attn.norm.weight", {dv}, I::ones);
      add(p + "linear_attn.out_proj.weight", {H, nv * dv});
    } else {
      const bool gated_q = qwen35;
      const bool qkv_bias = a.name == "qwen2_moe" || a.name == "gpt_oss" || (a.name == "qwen3" && c.model_type == "qwen2");
      add(p + "self_attn.q_proj.weight", {(gated_q ? 2 : 1) * nh * hd, H});
      if (qkv_bias) add(p + "self_attn.q_proj.bias", {nh * hd});
      add(p + "self_attn.k_proj.weight", {nkv * hd, H});
      if (qkv_bias) add(p + "self_attn.k_proj.bias", {nkv * hd});
      add(p + "self_attn.v_proj.weight", {nkv * hd, H});
      if (qkv_bias) add(p + "self_attn.v_proj.bias", {nkv * hd});
      add(p + "self_attn.o_proj.weight", {H, nh * hd});
      if (a.name == "gpt_oss") {  // o_proj's bias, one attention-sink logit per head
        add(p + "self_attn.o_proj.bias", {H});
        add(p + "self_attn.sinks", {nh});
      }
      if (a.name == "olmoe") {  // OLMoE's QK-norm covers the whole projection
        add(p + "self_attn.q_norm.weight", {nh * hd}, norm_init);
        add(p + "self_attn.k_norm.weight", {nkv * hd}, norm_init);
      } else if (a.name != "mixtral" && a.name != "llama" && a.name != "qwen2_moe" && a.name != "gpt_oss" && !qkv_bias) {
        add(p + "self_attn.q_norm.weight", {hd}, norm_init);
        add(p + "self_attn.k_norm.weight", {hd}, norm_init);
      }
    }
    add(p + "post_attention_layernorm.weight", {H}, norm_init);
    if (c.layer_is_moe(l)) {
      const int64_t E = c.num_experts, I_ = c.moe_intermediate_size;
      const std::string moe = a.name == "mixtral" ? "block_sparse_moe." : "mlp.";
      if (a.name != "gpt_oss") add(p + moe + "gate.weight", {E, H});
      if (a.name == "gpt_oss") {  // router with bias; fused experts stored [E, in, out], gate / up interleaved
        add(p + "mlp.router.bias", {E});
        add(p + "mlp.router.weight", {E, H});
        // MXFP4 (the Hub's release): [E, out, in]; BF16: [E, in, out]
        add(p + "mlp.experts.down_proj", opt.mxfp4_experts ? std::vector<int64_t>{E, H, I_} : std::vector<int64_t>{E, I_, H});
        add(p + "mlp.experts.down_proj_bias", {E, H});
        add(p + "mlp.experts.gate_up_proj", opt.mxfp4_experts ? std::vector<int64_t>{E, 2 * I_, H}
                                                              : std::vector<int64_t>{E, H, 2 * I_});
        add(p + "mlp.experts.gate_up_proj_bias", {E, 2 * I_});
      } else if (opt.fused_experts && !hub_per_expert(a)) {
        add(p + moe + "experts.gate_up_proj", {E, 2 * I_, H});
        add(p + moe + "experts.down_proj", {E, H, I_});
      } else {
        for (int64_t e = 0; e < E; ++e) {
          const std::string ep = p + moe + "experts." + std::to_string(e) + ".";
          if (a.name == "mixtral") {
            add(ep + "w1.weight", {I_, H});
            add(ep + "w2.weight", {H, I_});
            add(ep + "w3.weight", {I_, H});
          } else {
            add(ep + "down_proj.weight", {H, I_});
            add(ep + "gate_proj.weight", {I_, H});
            add(ep + "up_proj.weight", {I_, H});
          }
        }
      }
      if (c.shared_expert_intermediate_size > 0) {
        const int64_t S = c.shared_expert_intermediate_size;
        add(p + "mlp.shared_expert.down_proj.weight", {H, S});
        add(p + "mlp.shared_expert.gate_proj.weight", {S, H});
        add(p + "mlp.shared_expert.up_proj.weight", {S, H});
        add(p + "mlp.shared_expert_gate.weight", {1, H});
      }
    } else {
      const int64_t F = c.intermediate_size;
      if (F <= 0) return make_error(errc::bad_config, "config: intermediate_size is needed for dense layers");
      add(p + "mlp.down_proj.weight", {H, F});
      add(p + "mlp.gate_proj.weight", {F, H});
      add(p + "mlp.up_proj.weight", {F, H});
    }
  }
  add(pre + "norm.weight", {H}, zero_centred_norms ? I::small : I::ones);
  if (!c.tie_word_embeddings) add("lm_head.weight", {V, H});
  if (opt.vision) {
    RAZOR_ASSIGN_OR_RETURN(vision_tower_config vc, parse_vision_config(c.raw, c.source.empty() ? "config" : c.source));
    for (auto& t : vision_tower_tensors(vc)) add(kVisionPrefix + t.name, t.shape, t.norm ? I::ones : I::normal);
  }
  // Every dimension is a config value or a product of a few (each within hf_config's limits, so no product of
  // one shape overflows): the total is checked tensor by tensor.
  uint64_t params = 0;
  for (auto& t : out) {
    uint64_t n = 1;
    for (auto d : t.shape) {
      if (d < 0) return make_error(errc::bad_config, "config: tensor '" + t.name + "' would have a negative dimension");
      n *= uint64_t(d);
    }
    params += n;
    if (n > kMaxSynthParams || params > kMaxSynthParams) {
      std::string shape;
      for (auto d : t.shape) shape += (shape.empty() ? "" : ", ") + std::to_string(d);
      return make_error(errc::bad_config, "config: the checkpoint would hold more than " +
                                              std::to_string(kMaxSynthParams) + " parameters (synth's limit), at '" +
                                              t.name + "' [" + shape + "]: check vocab_size " + std::to_string(V) +
                                              ", hidden_size " + std::to_string(H) + ", num_hidden_layers " +
                                              std::to_string(c.num_layers) + ", num_experts " +
                                              std::to_string(c.num_experts) + " and the intermediate sizes");
    }
  }
  return out;
}

namespace {

struct rng {
  uint64_t s;
  uint64_t next() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  }
  float normal() {  // Irwin-Hall approximation: sum of 4 uniforms, centred and scaled to unit variance
    float acc = 0;
    for (int i = 0; i < 4; ++i) acc += float(next() >> 40) / float(1ull << 24);
    return (acc - 2.0f) * 1.7320508f;
  }
};

}  // namespace

namespace {

// synth --dtype fp8: FP8 E4M3 weights with kFp8Block x kFp8Block block scales, the Hub's fine-grained layout
// (model/checkpoint.h): the linear maps inside the layers; embeddings, the head, routers, norms, convolutions
// and 1-D tensors stay BF16, as in the Hub's FP8 releases.
constexpr int64_t kFp8Block = 128;

bool fp8_weight(const synth_tensor& t) {
  if (t.how != synth_tensor::init::normal || t.shape.size() < 2 || t.name.find("conv1d") != std::string::npos)
    return false;
  switch (classify_tensor(t.name, t.shape).role) {
    case tensor_role::routed_expert:
    case tensor_role::shared_expert:
    case tensor_role::attention:
    case tensor_role::linear_attention:
    case tensor_role::dense_ffn:
      return true;
    default:
      return false;
  }
}

// One tensor of the file: a planned tensor in its dtype, or the block scale of the FP8 weight before it.
struct synth_entry {
  std::string name;
  std::vector<int64_t> shape;
  dtype dt;
  size_t plan = 0;
  bool scale = false;
  uint64_t numel() const {
    uint64_t n = 1;
    for (auto d : shape) n *= uint64_t(d);
    return n;
  }
};

void put_value(dtype dt, float v, uint8_t* dst) {
  if (dt == dtype::bf16) {
    const uint16_t h = f32_to_bf16(v);
    std::memcpy(dst, &h, 2);
  } else if (dt == dtype::f16) {
    const uint16_t h = f32_to_f16(v);
    std::memcpy(dst, &h, 2);
  } else {
    std::memcpy(dst, &v, 4);
  }
}

// synth_options::heavy_tails for entry `entry` of n values with `cols` input columns: blocks of kHeavyBlock
// values, each drawn from a seed of (seed, entry, block) on all cores, written in chunks of 64 blocks.
constexpr uint64_t kHeavyBlock = 1 << 16;
status write_heavy(safetensors_writer& w, dtype dt, uint64_t n, int64_t cols, const synth_options& opt,
                   size_t entry, std::vector<uint8_t>& buf) {
  const size_t es = dtype_size(dt);
  const float wide = 5.0f, outlier_col = 6.0f, p = 0.005f;
  // E[s^2] of the value's scale: (1 - p) + p * wide^2 over the columns' mix (1 - p) + p * outlier_col^2.
  const float norm = opt.stddev / std::sqrt(((1 - p) + p * wide * wide) * ((1 - p) + p * outlier_col * outlier_col));
  const uint64_t seed = opt.seed * 0x9E3779B97F4A7C15ull + 0xD1B54A32D192ED03ull * (entry + 1);
  auto col_scale = [&](uint64_t c) {
    rng h{(seed ^ (c * 0xBF58476D1CE4E5B9ull)) | 1};
    h.next();
    return float(h.next() >> 40) / float(1ull << 24) < p ? outlier_col : 1.0f;
  };
  std::vector<float> cscale(size_t(std::max<int64_t>(cols, 1)));
  for (size_t c = 0; c < cscale.size(); ++c) cscale[c] = col_scale(c);
  const uint64_t chunk = 64 * kHeavyBlock;
  for (uint64_t off = 0; off < n; off += chunk) {
    const uint64_t k = std::min(chunk, n - off);
    buf.resize(k * es);
    parallel_for(size_t((k + kHeavyBlock - 1) / kHeavyBlock), [&](size_t b0, size_t b1) {
      for (size_t b = b0; b < b1; ++b) {
        const uint64_t first = off + b * kHeavyBlock, m = std::min<uint64_t>(kHeavyBlock, off + k - first);
        rng r{(seed ^ ((first / kHeavyBlock + 1) * 0x94D049BB133111EBull)) | 1};
        for (uint64_t j = 0; j < m; ++j) {
          const bool tail = float(r.next() >> 40) / float(1ull << 24) < p;
          const float v = norm * r.normal() * (tail ? wide : 1.0f) * cscale[size_t((first + j) % cscale.size())];
          put_value(dt, v, &buf[(first - off + j) * es]);
        }
      }
    });
    RAZOR_TRY(w.write(buf.data(), buf.size()));
  }
  return {};
}

}  // namespace

status synth_checkpoint(const nlohmann::json& config_in, const std::string& out_dir, const synth_options& opt,
                        const progress_fn& progress) {
  RAZOR_ASSIGN_OR_RETURN(model_config cfg, parse_model_config(config_in, "config"));
  RAZOR_ASSIGN_OR_RETURN(std::vector<synth_tensor> plan, synth_plan(cfg, opt));
  const bool fp8 = opt.dt == dtype::f8_e4m3;
  if (!fp8 && opt.dt != dtype::bf16 && opt.dt != dtype::f16 && opt.dt != dtype::f32)
    return make_error(errc::invalid_argument, "synth: dtype " + std::string(dtype_name(opt.dt)) +
                                                  " is not one of BF16, F16, F32, F8_E4M3");
  nlohmann::json config = config_in;
  if (opt.mxfp4_experts) {
    if (adapter_for(cfg).name != "gpt_oss")
      return make_error(errc::invalid_argument, "synth: MXFP4 experts are gpt_oss's release format; model_type " +
                                                    cfg.model_type + " is not gpt_oss");
    if (fp8) return make_error(errc::invalid_argument, "synth: MXFP4 experts and FP8 weights do not combine");
    config["quantization_config"] = {{"quant_method", "mxfp4"},
                                     {"modules_to_not_convert", {"model.layers.*.self_attn", "model.layers.*.mlp.router",
                                                                 "model.embed_tokens", "lm_head"}}};
  }
  auto mxfp4_weight = [&](const synth_tensor& t) {
    return opt.mxfp4_experts && t.shape.size() == 3 &&
           (t.name.find("mlp.experts.gate_up_proj") != std::string::npos || t.name.find("mlp.experts.down_proj") != std::string::npos) &&
           t.name.find("_bias") == std::string::npos;
  };
  if (fp8)
    config["quantization_config"] = {{"activation_scheme", "dynamic"}, {"fmt", "e4m3"}, {"quant_method", "fp8"},
                                     {"weight_block_size", {kFp8Block, kFp8Block}}};
  std::vector<synth_entry> entries;
  for (size_t i = 0; i < plan.size(); ++i) {
    if (mxfp4_weight(plan[i])) {
      const std::vector<int64_t>& sh = plan[i].shape;
      if (sh.back() % kMxfp4Block)
        return make_error(errc::bad_config, "synth: " + plan[i].name + "'s input width " + std::to_string(sh.back()) +
                                                " is not a multiple of MXFP4's 32-value blocks");
      std::vector<int64_t> bs(sh.begin(), sh.end() - 1), ss;
      bs.push_back(sh.back() / kMxfp4Block);
      ss = bs;
      bs.push_back(kMxfp4BlockBytes);
      entries.push_back({plan[i].name + "_blocks", bs, dtype::u8, i, false});
      entries.push_back({plan[i].name + "_scales", ss, dtype::u8, i, true});
    } else if (fp8 && fp8_weight(plan[i])) {
      entries.push_back({plan[i].name, plan[i].shape, dtype::f8_e4m3, i, false});
      std::vector<int64_t> ss(plan[i].shape.begin(), plan[i].shape.end() - 2);
      ss.push_back((plan[i].shape[plan[i].shape.size() - 2] + kFp8Block - 1) / kFp8Block);
      ss.push_back((plan[i].shape.back() + kFp8Block - 1) / kFp8Block);
      entries.push_back({plan[i].name + "_scale_inv", ss, dtype::f32, i, true});
    } else {
      entries.push_back({plan[i].name, plan[i].shape, fp8 ? dtype::bf16 : opt.dt, i, false});
    }
  }
  // Shard assignment: consecutive tensors until the shard is full (a weight and its scale stay together).
  std::vector<std::vector<size_t>> shards(1);
  uint64_t cur = 0, total = 0;
  for (size_t i = 0; i < entries.size(); ++i) {
    const uint64_t b = entries[i].numel() * dtype_size(entries[i].dt);
    if (cur > 0 && cur + b > opt.shard_bytes && !entries[i].scale) {
      shards.emplace_back();
      cur = 0;
    }
    shards.back().push_back(i);
    cur += b;
    total += b;
  }
  atomic_dir dir;
  RAZOR_TRY(dir.open(out_dir, "synth"));
  RAZOR_TRY(write_file_atomic(dir.path() + "/config.json", config.dump(2) + "\n"));
  if (opt.vision) {  // synth_plan parsed vision_config already
    RAZOR_ASSIGN_OR_RETURN(vision_tower_config vc, parse_vision_config(config, "config"));
    RAZOR_TRY(write_file_atomic(dir.path() + "/preprocessor_config.json",
                                qwen_vl_preprocessor_config(vc).dump(2) + "\n"));
  }
  nlohmann::ordered_json index;
  index["metadata"] = {{"total_size", total}};
  nlohmann::ordered_json wmap = nlohmann::ordered_json::object();
  uint64_t done = 0;
  rng r{opt.seed * 0x9E3779B97F4A7C15ull + 1};
  std::vector<uint8_t> buf;
  std::vector<float> block, scales;  // an FP8 weight's rows of one block, and its scales until they are written
  std::vector<uint8_t> mx_scales;     // an MXFP4 weight's E8M0 scales until they are written
  auto value = [&](synth_tensor::init how) {
    switch (how) {
      case synth_tensor::init::ones: return opt.norm_jitter != 0.0f ? 1.0f + opt.norm_jitter * r.normal() : 1.0f;
      case synth_tensor::init::zeros: return 0.0f;
      case synth_tensor::init::small: return 0.05f * r.normal();
      case synth_tensor::init::a_log: return std::log(1.0f + 15.0f * float(r.next() >> 40) / float(1ull << 24));
      default: return opt.stddev * r.normal();
    }
  };
  for (size_t s = 0; s < shards.size(); ++s) {
    char fname[64];
    std::snprintf(fname, sizeof fname, "model-%05zu-of-%05zu.safetensors", s + 1, shards.size());
    safetensors_writer w;
    w.set_metadata({{"format", "pt"}});
    for (size_t i : shards[s]) {
      RAZOR_TRY(w.add(entries[i].name, entries[i].dt, entries[i].shape));
      wmap[entries[i].name] = fname;
    }
    RAZOR_TRY(w.begin(dir.path() + "/" + fname));
    for (size_t i : shards[s]) {
      const synth_entry& e = entries[i];
      const synth_tensor& t = plan[e.plan];
      const uint64_t n = e.numel();
      const size_t es = dtype_size(e.dt);
      if (opt.sparse) {
        RAZOR_TRY(w.skip(n * es));
      } else if (e.scale && e.dt == dtype::u8) {
        RAZOR_TRY(w.write(mx_scales.data(), mx_scales.size()));
      } else if (e.scale) {
        RAZOR_TRY(w.write(scales.data(), scales.size() * sizeof(float)));
      } else if (e.dt == dtype::u8) {  // MXFP4 codes, 32 values a block; the scales follow as the next entry
        const uint64_t nb = n / uint64_t(kMxfp4BlockBytes);
        mx_scales.resize(nb);
        buf.resize(n);
        float v[kMxfp4Block];
        for (uint64_t b = 0; b < nb; ++b) {
          for (auto& x : v) x = value(t.how);
          mxfp4_encode_block(v, buf.data() + b * kMxfp4BlockBytes, &mx_scales[b]);
        }
        RAZOR_TRY(w.write(buf.data(), buf.size()));
      } else if (e.dt == dtype::f8_e4m3) {
        // Block rows of each [R, C] slice: amax / 448 per block is its scale, the codes are value / scale.
        const int64_t C = t.shape.back(), R = t.shape[t.shape.size() - 2];
        const int64_t nbc = (C + kFp8Block - 1) / kFp8Block;
        const uint64_t slices = n / uint64_t(R * C);
        scales.clear();
        for (uint64_t b = 0; b < slices; ++b) {
          for (int64_t r0 = 0; r0 < R; r0 += kFp8Block) {
            const int64_t rows = std::min(kFp8Block, R - r0);
            block.resize(size_t(rows * C));
            for (auto& v : block) v = value(t.how);
            buf.resize(block.size());
            for (int64_t bc = 0; bc < nbc; ++bc) {
              const int64_t c0 = bc * kFp8Block, c1 = std::min(C, c0 + kFp8Block);
              float amax = 0.0f;
              for (int64_t rr = 0; rr < rows; ++rr)
                for (int64_t c = c0; c < c1; ++c) amax = std::max(amax, std::fabs(block[size_t(rr * C + c)]));
              const float scale = amax > 0.0f ? amax / 448.0f : 1.0f;
              for (int64_t rr = 0; rr < rows; ++rr)
                for (int64_t c = c0; c < c1; ++c)
                  buf[size_t(rr * C + c)] = f32_to_fp8_e4m3(block[size_t(rr * C + c)] / scale);
              scales.push_back(scale);
            }
            RAZOR_TRY(w.write(buf.data(), buf.size()));
          }
        }
      } else if (opt.heavy_tails && t.how == synth_tensor::init::normal) {
        RAZOR_TRY(write_heavy(w, e.dt, n, t.shape.back(), opt, i, buf));
      } else {
        const uint64_t chunk = 1 << 20;
        for (uint64_t off = 0; off < n; off += chunk) {
          uint64_t k = std::min(chunk, n - off);
          buf.resize(k * es);
          for (uint64_t j = 0; j < k; ++j) put_value(e.dt, value(t.how), &buf[j * es]);
          RAZOR_TRY(w.write(buf.data(), buf.size()));
        }
      }
      done += n * es;
      if (progress && !progress(double(done), double(total), e.name.c_str()))
        return make_error(errc::cancelled, out_dir + ": cancelled");
    }
    RAZOR_TRY(w.finish());
  }
  index["weight_map"] = wmap;
  RAZOR_TRY(write_file_atomic(dir.path() + "/model.safetensors.index.json", index.dump(2) + "\n"));
  return dir.commit();
}

}  // namespace razor
