// Internal to kernels/engine/, included by engine.cu alone (after its dlayer): the MoE block of the GPU forward
// pass, a template over engine.cu's gpu_engine::impl (P): the router (kernels/moe_routing.h, the CPU's function,
// with DeepSeek's score-correction bias, gpt-oss's router bias), the routed experts grouped by expert (gpt-oss:
// their biases and the clamped SwiGLU), the shared expert (gated by sigmoid(shared_expert_gate x), or ungated:
// DeepSeek) and the weighted combine. The CPU reference is core/engine/model_runner.cpp moe_block.
#pragma once
#include <vector>

#include "layer_ops.cuh"

namespace razor::cu {

// y = moe(x) for the batch's n tokens, x normed [n, hidden].
template <class P>
status moe_block(P& p, const dlayer& L, const float* x, float* yout) {
  const size_t E = size_t(p.d.n_experts), K = size_t(p.d.top_k), H = size_t(p.d.hidden), ff = size_t(p.d.moe_ff);
  const size_t ns = p.n * K;
  RAZOR_TRY(ensure(p.logits, p.n * E * 4, p.tr));
  RAZOR_TRY(ensure(p.ids, ns * 4, p.tr));
  RAZOR_TRY(ensure(p.wts, ns * 4, p.tr));
  RAZOR_TRY(ensure(p.pos, ns * 4, p.tr));
  RAZOR_TRY(ensure(p.slot_tok, ns * 4, p.tr));
  RAZOR_TRY(p.observe_dense(eng_point::moe_in, x, int64_t(H)));
  RAZOR_TRY(p.project(x, {{&L.router, p.logits.f()}}));
  if (L.router_bias) {  // gpt-oss: the router's own bias (a linear bias, not a choice bias)
    k_add_bias<<<grid_for(p.n * E), 256>>>(p.logits.f(), L.router_bias, p.n, int(E));
    RZ_CU_LAUNCH("router_bias");
  }
  k_route<<<unsigned(p.n), 32, size_t(route_scratch_floats(p.d.route)) * 4>>>(p.logits.f(), L.score_bias, p.d.route,
                                                                             p.ids.i(), p.wts.f());
  RZ_CU_LAUNCH("route");
  // Group token-slots by expert on the host (deterministic: token order within an expert, as the CPU).
  p.h_ids.resize(ns);
  RZ_CU_CALL(cudaMemcpy(p.h_ids.data(), p.ids.p, ns * 4, cudaMemcpyDeviceToHost));
  if (p.obs) {
    RAZOR_TRY(ensure(p.xnorm, p.n * 4, p.tr));
    k_rownorm<<<unsigned(p.n), 256>>>(x, p.xnorm.f(), int(H));
    RZ_CU_LAUNCH("rownorm");
    p.obs->ids.assign(p.h_ids.begin(), p.h_ids.end());
    p.obs->wts.resize(ns);
    p.obs->x_norm.resize(p.n);
    RZ_CU_CALL(cudaMemcpy(p.obs->wts.data(), p.wts.p, ns * 4, cudaMemcpyDeviceToHost));
    RZ_CU_CALL(cudaMemcpy(p.obs->x_norm.data(), p.xnorm.p, p.n * 4, cudaMemcpyDeviceToHost));
  }
  p.h_off.assign(E + 1, 0);
  for (size_t i = 0; i < ns; ++i) {
    if (p.h_ids[i] < 0 || size_t(p.h_ids[i]) >= E) return make_error(errc::internal, "GPU router: expert id out of range");
    ++p.h_off[size_t(p.h_ids[i]) + 1];
  }
  for (size_t e = 0; e < E; ++e) p.h_off[e + 1] += p.h_off[e];
  std::vector<size_t> cur(p.h_off.begin(), p.h_off.end() - 1);
  p.h_slot_tok.resize(ns);
  p.h_pos.resize(ns);
  for (size_t t = 0; t < p.n; ++t)
    for (size_t kk = 0; kk < K; ++kk) {
      size_t s = cur[size_t(p.h_ids[t * K + kk])]++;
      p.h_slot_tok[s] = int(t);
      p.h_pos[t * K + kk] = int(s);
    }
  RZ_CU_CALL(cudaMemcpy(p.slot_tok.p, p.h_slot_tok.data(), ns * 4, cudaMemcpyHostToDevice));
  RZ_CU_CALL(cudaMemcpy(p.pos.p, p.h_pos.data(), ns * 4, cudaMemcpyHostToDevice));
  RAZOR_TRY(ensure(p.s1, ns * H * 4, p.tr));       // xe
  RAZOR_TRY(ensure(p.s2, ns * 2 * ff * 4, p.tr));  // hu
  RAZOR_TRY(ensure(p.s3, ns * ff * 4, p.tr));      // act
  RAZOR_TRY(ensure(p.s4, ns * H * 4, p.tr));       // expert outputs
  k_gather<<<grid_for(ns * H), 256>>>(x, p.slot_tok.i(), p.s1.f(), ns, int(H));
  RZ_CU_LAUNCH("gather");
  RAZOR_TRY(p.observe(eng_point::expert_in, p.s1.f(), H, int64_t(H), p.h_off));
  // Each expert's GEMM over its rows [h_off[e], h_off[e+1]) of x (width in) into y (width out).
  auto per_expert = [&](const char* w_all, size_t w_stride, size_t in, size_t out, const float* x, float* y) -> status {
    RAZOR_ASSIGN_OR_RETURN(const __nv_bfloat16* xq, p.to_bf16(x, ns, int64_t(in)));
    for (size_t e = 0; e < E; ++e) {
      const size_t c = p.h_off[e + 1] - p.h_off[e];
      if (!c) continue;
      dlin w{w_all + e * w_stride, int64_t(in), int64_t(out), L.experts_rows};
      RAZOR_TRY(p.gemm(x + p.h_off[e] * in, c, w, y + p.h_off[e] * out, 0, 0, xq ? xq + p.h_off[e] * in : nullptr));
    }
    return {};
  };
  RAZOR_TRY(per_expert(L.gu_all, L.gu_stride, H, 2 * ff, p.s1.f(), p.s2.f()));
  if (L.gu_bias) {  // gpt-oss: each expert's gate / up bias and the clamped SwiGLU
    for (size_t e = 0; e < E; ++e)
      if (const size_t c = p.h_off[e + 1] - p.h_off[e])
        k_swiglu_oss<<<grid_for(c * ff), 256>>>(p.s2.f() + p.h_off[e] * 2 * ff, L.gu_bias + e * L.gu_bias_stride,
                                                p.s3.f() + p.h_off[e] * ff, c, int(ff), p.d.swiglu_limit);
    RZ_CU_LAUNCH("swiglu_oss");
  } else {
    k_silu_mul<<<grid_for(ns * ff), 256>>>(p.s2.f(), p.s3.f(), ns, int(ff));
    RZ_CU_LAUNCH("silu_mul");
  }
  RAZOR_TRY(p.observe(eng_point::expert_act, p.s3.f(), ff, int64_t(ff), p.h_off));
  RAZOR_TRY(per_expert(L.dn_all, L.dn_stride, ff, H, p.s3.f(), p.s4.f()));
  if (L.dn_bias) {  // gpt-oss: each expert's down bias, before the routing weight
    for (size_t e = 0; e < E; ++e)
      if (const size_t c = p.h_off[e + 1] - p.h_off[e])
        k_add_bias<<<grid_for(c * H), 256>>>(p.s4.f() + p.h_off[e] * H, L.dn_bias + e * L.dn_bias_stride, c, int(H));
    RZ_CU_LAUNCH("down_bias");
  }
  const float* sgp = nullptr;
  const float* soutp = nullptr;
  if (L.shared) {
    const size_t sf = size_t(p.d.shared_ff);
    RAZOR_TRY(ensure(p.hu_s, p.n * 2 * sf * 4, p.tr));
    RAZOR_TRY(ensure(p.act_s, p.n * sf * 4, p.tr));
    RAZOR_TRY(ensure(p.sout, p.n * H * 4, p.tr));
    RAZOR_TRY(ensure(p.sg, p.n * 4, p.tr));
    if (L.sgated)
      RAZOR_TRY(p.project(x, {{&L.sgu, p.hu_s.f()}, {&L.sgate, p.sg.f()}}));
    else  // DeepSeek's shared experts: no gate
      RAZOR_TRY(p.project(x, {{&L.sgu, p.hu_s.f()}}));
    k_silu_mul<<<grid_for(p.n * sf), 256>>>(p.hu_s.f(), p.act_s.f(), p.n, int(sf));
    RZ_CU_LAUNCH("shared silu_mul");
    RAZOR_TRY(p.observe_dense(eng_point::shared_act, p.act_s.f(), int64_t(sf)));
    RAZOR_TRY(p.gemm(p.act_s.f(), p.n, L.sdown, p.sout.f()));
    sgp = L.sgated ? p.sg.f() : nullptr;
    soutp = p.sout.f();
  }
  if (K > 64) return make_error(errc::unsupported, "GPU engine: more than 64 experts per token");
  k_combine<<<unsigned(p.n), 256>>>(p.ids.i(), p.wts.f(), p.pos.i(), p.s4.f(), sgp, soutp, yout, int(K), int(H));
  RZ_CU_LAUNCH("combine");
  p.sample_mem();
  return {};
}

}  // namespace razor::cu
