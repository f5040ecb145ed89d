// Internal to kernels/engine/, included by engine.cu alone (after its dlayer): the mixers of the GPU forward pass
// other than MLA, templates over engine.cu's gpu_engine::impl (P): full attention (biases, QK-norm, NeoX RoPE,
// Qwen3.5's output gate, gpt-oss's sinks / sliding window / o_proj bias / YaRN mscale^2) and the Gated DeltaNet.
// The CPU reference is core/engine/model_runner.cpp attention_block / deltanet_block.
#pragma once
#include <cmath>

#include "layer_ops.cuh"

namespace razor::cu {

// y = attention(x) for the batch, x normed [n, hidden].
template <class P>
status attention(P& p, const dlayer& L, const float* x, float* yout) {
  const auto& d = p.d;
  const size_t n = p.n;
  const int64_t hd = d.head_dim, nh = d.n_heads, nkv = d.n_kv_heads;
  const size_t qw = size_t(L.q.out), qd = size_t(nh * hd), kvd = size_t(nkv * hd);
  RAZOR_TRY(ensure(p.s1, n * qw * 4, p.tr));   // qraw
  RAZOR_TRY(ensure(p.s2, n * kvd * 4, p.tr));  // k
  RAZOR_TRY(ensure(p.s3, n * kvd * 4, p.tr));  // v
  RAZOR_TRY(ensure(p.s4, n * qd * 4, p.tr));   // q
  RAZOR_TRY(ensure(p.s5, n * qd * 4, p.tr));   // gate
  RAZOR_TRY(ensure(p.s6, n * qd * 4, p.tr));   // att
  RAZOR_TRY(p.project(x, {{&L.q, p.s1.f()}, {&L.k, p.s2.f()}, {&L.v, p.s3.f()}}));
  if (L.q_bias) {  // qwen2_moe, gpt_oss (ungated q)
    k_add_bias<<<grid_for(n * qd), 256>>>(p.s1.f(), L.q_bias, n, int(qd));
    k_add_bias<<<grid_for(n * kvd), 256>>>(p.s2.f(), L.k_bias, n, int(kvd));
    k_add_bias<<<grid_for(n * kvd), 256>>>(p.s3.f(), L.v_bias, n, int(kvd));
    RZ_CU_LAUNCH("add_bias");
  }
  if (d.qk == eng_dims::qk_norm::whole) {  // olmoe: one RMSNorm over the whole (ungated) q and k, in place
    RAZOR_TRY(p.rmsnorm(p.s1.f(), L.q_norm, p.s1.f(), n, int(qd)));
    RAZOR_TRY(p.rmsnorm(p.s2.f(), L.k_norm, p.s2.f(), n, int(kvd)));
  }
  dim3 g1{unsigned(n), unsigned(nh + nkv)};
  k_qk_prep<<<g1, 128, size_t(hd) * 4>>>(p.s1.f(), p.s4.f(), p.s5.f(), p.s2.f(), L.q_norm, L.k_norm, p.inv_freq.f(),
                                          p.tok_pos.i(), int(nh), int(nkv), int(hd), int(d.rot_dims),
                                          L.gated ? 1 : 0, d.qk == eng_dims::qk_norm::per_head ? 1 : 0,
                                          float(d.eps));
  RZ_CU_LAUNCH("qk_prep");
  dim3 g2{unsigned(n), unsigned(nh)};
  size_t smem = size_t(hd + kAttnChunk) * 4;
  // the CPU's scale: mscale^2 / sqrt(head_dim) (mscale^2 = 1 but for gpt_oss's YaRN)
  k_attention<<<g2, kAttnThreads, smem>>>(p.s4.f(), p.s2.f(), p.s3.f(), L.gated ? p.s5.f() : nullptr, p.s6.f(),
                                          p.tok_pos.i(), int(nh), int(nkv), int(hd),
                                          d.score_mscale2 / std::sqrt(float(hd)), L.sinks, int(L.window));
  RZ_CU_LAUNCH("attention");
  p.sample_mem();
  RAZOR_TRY(p.observe_dense(eng_point::mixer_out, p.s6.f(), int64_t(qd)));
  RAZOR_TRY(p.gemm(p.s6.f(), n, L.o, yout));
  if (L.o_bias) {  // gpt_oss
    k_add_bias<<<grid_for(n * size_t(d.hidden)), 256>>>(yout, L.o_bias, n, int(d.hidden));
    RZ_CU_LAUNCH("o_bias");
  }
  return {};
}

// y = GatedDeltaNet(x) for the batch, x normed [n, hidden].
template <class P>
status deltanet(P& p, const dlayer& L, const float* x, float* yout) {
  const auto& d = p.d;
  const size_t n = p.n;
  const int64_t nk = d.lin_k_heads, nv = d.lin_v_heads, dk = d.lin_k_dim, dv = d.lin_v_dim, K = d.conv_kernel;
  const size_t kd = size_t(nk * dk), vd = size_t(nv * dv), ch = 2 * kd + vd;
  RAZOR_TRY(ensure(p.s1, n * ch * 4, p.tr));          // qkv
  RAZOR_TRY(ensure(p.s2, n * vd * 4, p.tr));          // z
  RAZOR_TRY(ensure(p.s3, n * size_t(nv) * 4, p.tr));  // b
  RAZOR_TRY(ensure(p.s4, n * size_t(nv) * 4, p.tr));  // a
  RAZOR_TRY(ensure(p.s5, n * ch * 4, p.tr));          // conv
  RAZOR_TRY(ensure(p.s6, n * vd * 4, p.tr));          // core
  RAZOR_TRY(p.project(x, {{&L.qkv, p.s1.f()}, {&L.z, p.s2.f()}, {&L.b, p.s3.f()}, {&L.a, p.s4.f()}}));
  k_conv_silu<<<grid_for(n * ch), 256>>>(p.s1.f(), L.conv, p.s5.f(), p.tok_pos.i(), n, int(ch), int(K));
  RZ_CU_LAUNCH("conv_silu");
  k_l2norm_qk<<<dim3(unsigned(n), unsigned(2 * nk)), 128>>>(p.s5.f(), int(ch), int(nk), int(dk),
                                                            1.0f / std::sqrt(float(dk)));
  RZ_CU_LAUNCH("l2norm");
  size_t smem = (size_t(dk) * size_t(dv) + 2 * size_t(dk)) * 4;
  RZ_CU_CALL(cudaFuncSetAttribute(k_delta_rule, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  int threads = int(std::min<int64_t>(((dv + 31) / 32) * 32, 256));
  k_delta_rule<<<dim3(unsigned(p.n_seq), unsigned(nv)), threads, smem>>>(
      p.s5.f(), p.s3.f(), p.s4.f(), L.a_log, L.dt_bias, static_cast<const long long*>(p.seq_start_d.p), p.s6.f(),
      int(ch), int(nk), int(nv), int(dk), int(dv));
  RZ_CU_LAUNCH("delta_rule");
  k_gated_norm<<<unsigned(n * size_t(nv)), 128>>>(p.s6.f(), p.s2.f(), L.dn_norm, int(dv), float(d.eps));
  RZ_CU_LAUNCH("gated_norm");
  p.sample_mem();
  RAZOR_TRY(p.observe_dense(eng_point::mixer_out, p.s6.f(), int64_t(vd)));
  return p.gemm(p.s6.f(), n, L.out, yout);
}

}  // namespace razor::cu
