// The GPU path of the reference engine's forward pass (model_runner.h: forward_gpu, gpu_memory_plan): the
// layers go through kernels/engine_cuda.h's gpu_engine two at a time. A loader thread reads layer L + 1 (linear
// maps as stored, weight_layout::rows: no host transposition), shows it to the observer, converts it into
// the engine's staging buffer for slot (L + 1) % 2 and starts its copy, while layer L computes in the other
// slot. The engine's observations (router choices, input sums reduced on the device) reach the observer
// under the names the CPU path uses.
#include <chrono>
#include <cstdlib>
#include <future>
#include <string>

#include "engine/model_runner.h"

namespace razor::engine {

namespace {

cu::eng_linear eng_lin(const linear& l) {
  return {l.wt.empty() ? nullptr : l.wt.data(), l.in, l.out, l.rows, l.bf16};
}

cu::eng_dims eng_dims_of(const model_dims& d) {
  return {d.hidden,    d.n_heads,     d.n_kv_heads,  d.head_dim,  d.rot_dims,  d.eps,
          d.rope_theta, d.n_experts,  d.top_k,       d.moe_ff,    d.shared_ff, d.norm_topk,
          d.lin_k_heads, d.lin_v_heads, d.lin_k_dim, d.lin_v_dim, d.conv_kernel};
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
  e.q_norm = w.attn.q_norm.data();
  e.k_norm = w.attn.k_norm.data();
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

void deliver(forward_observer& obs, const model_dims& d, int L, bool linear_attention, bool shared,
             const cu::eng_observations& o) {
  if (!o.ids.empty())
    obs.on_router(L, o.x_norm.size(), o.x_norm.data(), o.ids.data(), o.wts.data(), int(d.top_k));
  if (!obs.wants_input_sums()) return;
  for (const auto& s : o.inputs) {
    const bool per_expert = s.point == cu::eng_point::expert_in || s.point == cu::eng_point::expert_act;
    for (const std::string& name : input_names(s.point, L, linear_attention, shared))
      for (size_t m = 0; m < s.rows.size(); ++m)
        if (s.rows[m])
          obs.on_input_sums(L, name, per_expert ? int(m) : -1, s.rows[m], s.cols, s.sum_sq.data() + m * size_t(s.cols),
                            s.sum.data() + m * size_t(s.cols));
  }
}

}  // namespace

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
  return g;
}

}  // namespace razor::engine
