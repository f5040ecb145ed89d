// The GPU path of the reference engine's forward pass (model_runner.h: forward_gpu, gpu_memory_plan): the
// layers go through kernels/engine_cuda.h's gpu_engine two at a time. A loader thread reads layer L + 1 (linear
// maps as stored, weight_layout::rows: no host transposition), shows it to the observer, converts it into
// the engine's staging buffer for slot (L + 1) % 2 and starts its copy, while layer L computes in the other
// slot. The engine's observations (router choices, input sums reduced on the device) reach the observer
// under the names the CPU path uses.
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <future>
#include <string>

#include "engine/families.h"
#include "engine/model_runner.h"

namespace razor::engine {

namespace {

cu::eng_linear eng_lin(const linear& l) {
  return {l.wt.empty() ? nullptr : l.wt.data(), l.in, l.out, l.rows, l.bf16};
}

cu::eng_dims eng_dims_of(const model_dims& d) {
  cu::eng_dims e;
  e.hidden = d.hidden;
  e.n_heads = d.n_heads;
  e.n_kv_heads = d.n_kv_heads;
  e.head_dim = d.head_dim;
  e.rot_dims = d.rot_dims;
  e.eps = d.eps;
  e.rope_theta = d.rope_theta;
  e.n_experts = d.n_experts;
  e.top_k = d.top_k;
  e.moe_ff = d.moe_ff;
  e.shared_ff = d.shared_ff;
  e.norm_topk = d.norm_topk;
  e.lin_k_heads = d.lin_k_heads;
  e.lin_v_heads = d.lin_v_heads;
  e.lin_k_dim = d.lin_k_dim;
  e.lin_v_dim = d.lin_v_dim;
  e.conv_kernel = d.conv_kernel;
  e.qk = d.qk_norm == qk_norm_kind::none    ? cu::eng_dims::qk_norm::none
         : d.qk_norm == qk_norm_kind::whole ? cu::eng_dims::qk_norm::whole
                                            : cu::eng_dims::qk_norm::per_head;
  e.qkv_bias = d.qkv_bias;
  e.route = moe_route_of(d);
  // the CPU's RoPE frequencies and score factor (attention_block's; YaRN for gpt_oss)
  if (d.a != arch::deepseek) {
    e.attn_inv_freq = attention_inv_freq(d);
    e.score_mscale2 = attention_score_mscale2(d);
  }
  if (d.a == arch::gpt_oss) {
    e.gpt_oss = true;
    e.swiglu_limit = d.swiglu_limit;
  }
  if (d.a == arch::deepseek) {
    const deepseek_dims& s = d.ds;
    e.mla = true;
    e.q_lora = s.q_lora_rank;
    e.kv_lora = s.kv_lora_rank;
    e.qk_nope = s.qk_nope;
    e.qk_rope = s.qk_rope;
    e.v_head_dim = s.v_head_dim;
    e.first_dense = s.first_dense;
    e.dense_ff = s.dense_ff;
    // as mla_attention_block
    e.mla_scale = float(s.mscale * s.mscale / std::sqrt(double(s.qk_head_dim())));
    e.mla_inv_freq = mla_inv_freq(s, d.rope_theta);
  }
  return e;
}

cu::eng_layer eng_layer_of(const layer_weights& w) {
  cu::eng_layer e;
  e.linear_attention = w.linear_attention;
  e.in_norm = w.in_norm.data();
  e.post_norm = w.post_norm.data();
  e.gated = w.attn.gated;
  e.q = eng_lin(w.attn.q);
  e.k = eng_lin(w.attn.k);
  e.v = eng_lin(w.attn.v);
  e.o = eng_lin(w.attn.o);
  e.q_norm = w.attn.q_norm.empty() ? nullptr : w.attn.q_norm.data();
  e.k_norm = w.attn.k_norm.empty() ? nullptr : w.attn.k_norm.data();
  e.q_bias = w.attn.q_bias.empty() ? nullptr : w.attn.q_bias.data();
  e.k_bias = w.attn.k_bias.empty() ? nullptr : w.attn.k_bias.data();
  e.v_bias = w.attn.v_bias.empty() ? nullptr : w.attn.v_bias.data();
  if (!w.mla.o.empty()) {  // DeepSeek: MLA in q / o and the MLA fields, a leading layer's dense MLP
    e.q = eng_lin(w.mla.q);
    e.o = eng_lin(w.mla.o);
    e.q_a = eng_lin(w.mla.q_a);
    e.q_b = eng_lin(w.mla.q_b);
    e.kv_a = eng_lin(w.mla.kv_a);
    e.kv_b = eng_lin(w.mla.kv_b);
    e.q_a_norm = w.mla.q_a_norm.empty() ? nullptr : w.mla.q_a_norm.data();
    e.kv_a_norm = w.mla.kv_a_norm.data();
    e.dense = !w.mla.moe;
    e.dense_gate_up = eng_lin(w.mla.dense_gate_up);
    e.dense_down = eng_lin(w.mla.dense_down);
  }
  e.score_bias = w.moe.score_bias.empty() ? nullptr : w.moe.score_bias.data();
  e.qkv = eng_lin(w.dn.qkv);
  e.z = eng_lin(w.dn.z);
  e.b = eng_lin(w.dn.b);
  e.a = eng_lin(w.dn.a);
  e.out = eng_lin(w.dn.out);
  e.conv = w.dn.conv.data();
  e.a_log = w.dn.a_log.data();
  e.dt_bias = w.dn.dt_bias.data();
  e.dn_norm = w.dn.norm.data();
  e.router = eng_lin(w.moe.router);
  for (const auto& l : w.moe.gate_up) e.gate_up.push_back(eng_lin(l));
  for (const auto& l : w.moe.down) e.down.push_back(eng_lin(l));
  e.shared_gate_up = eng_lin(w.moe.shared_gate_up);
  e.shared_down = eng_lin(w.moe.shared_down);
  e.shared_gate = eng_lin(w.moe.shared_gate);
  auto ptr = [](const std::vector<float>& v) { return v.empty() ? nullptr : v.data(); };
  e.o_bias = ptr(w.attn.o_bias);  // gpt_oss
  e.sinks = ptr(w.attn.sinks);
  e.window = w.attn.window;
  e.router_bias = ptr(w.moe.router_bias);
  for (const auto& b : w.moe.gate_up_bias) e.gate_up_bias.push_back(b.data());
  for (const auto& b : w.moe.down_bias) e.down_bias.push_back(b.data());
  return e;
}

gpu_precision resolve_precision(gpu_precision p) {
  if (const char* e = std::getenv("RAZOR_GPU_WEIGHTS")) {
    const std::string v(e);
    if (v == "f32") return gpu_precision::f32;
    if (v == "bf16") return gpu_precision::bf16;
  }
  return p;
}

// The tensors behind an observation point: input_names', but for DeepSeek's own names (mla.cpp's blocks report
// these: MLA's first projections, the router beside the ungated shared_experts).
std::vector<std::string> point_names(const model_dims& d, cu::eng_point p, int L, bool linear_attention, bool shared) {
  if (d.a != arch::deepseek || L < 0) return input_names(p, L, linear_attention, shared, router_suffix(d));
  std::vector<const char*> v;
  switch (p) {
    case cu::eng_point::mixer_in:
      v = {d.ds.q_lora_rank > 0 ? "self_attn.q_a_proj.weight" : "self_attn.q_proj.weight",
           "self_attn.kv_a_proj_with_mqa.weight"};
      break;
    case cu::eng_point::moe_in:
      v = {"mlp.gate.weight"};
      if (shared) v.insert(v.end(), {"mlp.shared_experts.gate_proj.weight", "mlp.shared_experts.up_proj.weight"});
      break;
    case cu::eng_point::shared_act: v = {"mlp.shared_experts.down_proj.weight"}; break;
    default: return input_names(p, L, linear_attention, false);
  }
  std::vector<std::string> names;
  for (const char* n : v) names.push_back(layer_tensor(L, n));
  return names;
}

void deliver(forward_observer& obs, const model_dims& d, int L, bool linear_attention, bool shared,
             const cu::eng_observations& o) {
  if (!o.ids.empty())
    obs.on_router(L, o.x_norm.size(), o.x_norm.data(), o.ids.data(), o.wts.data(), int(d.top_k));
  if (!obs.wants_input_sums()) return;
  for (const auto& s : o.inputs) {
    const bool per_expert = s.point == cu::eng_point::expert_in || s.point == cu::eng_point::expert_act;
    for (const std::string& name : point_names(d, s.point, L, linear_attention, shared))
      for (size_t m = 0; m < s.rows.size(); ++m)
        if (s.rows[m])
          obs.on_input_sums(L, name, per_expert ? int(m) : -1, s.rows[m], s.cols, s.sum_sq.data() + m * size_t(s.cols),
                            s.sum.data() + m * size_t(s.cols));
  }
}

}  // namespace

cu::moe_route moe_route_of(const model_dims& d) {
  cu::moe_route r;
  r.n_experts = int32_t(d.n_experts);
  r.top_k = int32_t(d.top_k);
  r.norm_topk = d.norm_topk;
  r.topk_softmax = d.a == arch::gpt_oss;
  if (d.a == arch::deepseek) {
    r.sigmoid = d.ds.sigmoid;
    r.grouped = true;
    r.group_max = d.ds.group_max;
    r.n_group = int32_t(d.ds.n_group);
    r.topk_group = int32_t(d.ds.topk_group);
    r.norm_eps = 1e-20f;
    r.routed_scale = d.ds.routed_scale;
  }
  return r;
}

cu::eng_dims gpu_dims(const model_dims& d) { return eng_dims_of(d); }
cu::eng_layer gpu_layer(const layer_weights& w) { return eng_layer_of(w); }

status forward_gpu(weight_provider& wp, const model_dims& d, const std::vector<size_t>& seq_start,
                   const tensor_f32& h, const logits_fn& on_logits, const run_options& opt) {
  cu::eng_options eo;
  eo.weights = resolve_precision(opt.gpu_weights) == gpu_precision::f32 ? cu::eng_weights::f32 : cu::eng_weights::bf16;
  eo.observe = opt.observer != nullptr;
  RAZOR_ASSIGN_OR_RETURN(auto eng, cu::gpu_engine::create(eng_dims_of(d), eo));
  RAZOR_TRY(eng->set_hidden(h.data.data(), seq_start));
  const double total = double(d.n_layers + (runs_head(opt) ? 1 : 0));
  const int n_layers = int(d.n_layers);
  gpu_time_split times;
  using clock = std::chrono::steady_clock;
  const auto started = clock::now();
  auto since = [](clock::time_point t0) { return std::chrono::duration<double>(clock::now() - t0).count(); };
  // Loads layer L into slot L % 2 (the loader thread); returns whether it has a shared expert. The observer's
  // look at the weights runs beside the staging copy (both only read them).
  auto stage = [&](int L) -> result<bool> {
    auto t0 = clock::now();
    RAZOR_ASSIGN_OR_RETURN(layer_weights w, load_layer(wp, d, L, weight_layout::rows));
    times.load += since(t0);
    std::future<double> seen;
    if (opt.observer)
      seen = std::async(std::launch::async, [&] {
        auto t1 = clock::now();
        opt.observer->on_layer_loaded(w);
        return since(t1);
      });
    t0 = clock::now();
    status up = eng->upload_layer(eng_layer_of(w), L % cu::gpu_engine::kSlots);
    times.stage += since(t0);
    if (seen.valid()) times.observe += seen.get();
    RAZOR_TRY(std::move(up));
    wp.release_layer(L);
    return !w.moe.shared_gate_up.empty();
  };
  std::future<result<bool>> next;
  if (n_layers > 0) next = std::async(std::launch::async, stage, 0);
  cu::eng_observations ob;
  for (int L = 0; L < n_layers; ++L) {
    auto t0 = clock::now();
    RAZOR_ASSIGN_OR_RETURN(bool shared, next.get());
    times.wait += since(t0);
    if (opt.progress && !opt.progress(double(L), total, "layer"))
      return make_error(errc::cancelled, "forward pass cancelled at layer " + std::to_string(L));
    if (L + 1 < n_layers) next = std::async(std::launch::async, stage, L + 1);
    t0 = clock::now();
    RAZOR_TRY(eng->run_layer(L % cu::gpu_engine::kSlots, opt.observer ? &ob : nullptr));
    times.compute += since(t0);
    if (opt.observer) deliver(*opt.observer, d, L, d.linear_layer[size_t(L)], shared, ob);
    times.layer_done.push_back(since(started));
  }
  if (opt.gpu_times) *opt.gpu_times = times;
  if (!runs_head(opt)) return eng->synchronize();
  if (opt.progress && !opt.progress(double(d.n_layers), total, "head"))
    return make_error(errc::cancelled, "forward pass cancelled before the output head");
  RAZOR_ASSIGN_OR_RETURN(head_weights hw, load_head(wp, d, weight_layout::rows, opt.compute_logits));
  RAZOR_TRY(eng->head(hw.norm.data(), eng_lin(hw.lm_head), std::max<size_t>(1, opt.logits_chunk), on_logits,
                      n_layers % cu::gpu_engine::kSlots, opt.observer ? &ob : nullptr));
  if (opt.observer) deliver(*opt.observer, d, -1, false, false, ob);
  if (opt.progress) opt.progress(total, total, "done");
  return {};
}

memory_plan gpu_memory_plan(const model_dims& d, size_t n_tokens, size_t logits_chunk, gpu_precision p) {
  memory_plan cpu = plan_memory(d, n_tokens, 1, 1, logits_chunk);
  memory_plan g = cpu;
  const uint64_t wsz = resolve_precision(p) == gpu_precision::f32 ? 4 : 2, n = n_tokens, H = uint64_t(d.hidden);
  // two weight slots, each the largest layer or the head
  g.weight_slots = cu::gpu_engine::kSlots;
  g.layer_weight_bytes = uint64_t(g.weight_slots) * std::max(cpu.layer_weight_bytes, cpu.head_bytes) / 4 * wsz;
  g.head_bytes = 0;
  g.hidden_bytes = 3 * n * H * 4;  // h, its normed copy, the block output
  // the routed experts' scratch: gathered inputs, gate|up, activations, outputs (fp32) and a BF16 copy of
  // the largest GEMM input, the router logits and slot tables
  const uint64_t ns = n * uint64_t(d.top_k), ff = uint64_t(d.moe_ff);
  const uint64_t bf16_copy = wsz == 2 ? ns * H * 2 : 0;
  const uint64_t moe = ns * (H + 2 * ff + ff + H) * 4 + bf16_copy + n * uint64_t(d.n_experts) * 4 + ns * 16;
  g.work_bytes = std::max(cpu.work_bytes, moe);
  if (d.a == arch::deepseek) {  // MLA: q_a, q, kv_a, c, kv, the output, and keys / values / outputs padded to qk_head_dim
    const deepseek_dims& s = d.ds;
    const uint64_t qw = uint64_t(d.n_heads * s.qk_head_dim());
    const uint64_t mla = n * (uint64_t(s.q_lora_rank + 2 * s.kv_lora_rank + s.qk_rope) + 4 * qw +
                              uint64_t(d.n_heads * (s.qk_nope + 2 * s.v_head_dim))) * 4;
    g.work_bytes = std::max(g.work_bytes, mla + (wsz == 2 ? n * H * 2 : 0));
  }
  return g;
}

}  // namespace razor::engine
