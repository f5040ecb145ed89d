// Internal to kernels/engine/, included by engine.cu alone (after its dlayer): DeepSeek-V2 / V3 / Kimi-K2's
// blocks of the GPU forward pass, templates over engine.cu's gpu_engine::impl (P). The CPU reference is
// core/engine/mla.cpp (mla_attention_block, dense_mlp_block), math in core/engine/mla.h:
//   q = q_b(rms(q_a x) * q_a_norm) (or q_proj x), per head [q_nope | q_pe];
//   kv_a x = [c | k_pe]; kv_b(rms(c) * kv_a_norm) per head = [k_nope | v];
//   adjacent-pair RoPE on q_pe and the shared k_pe (the host's YaRN-blended frequencies, eng_dims::mla_inv_freq);
//   causal softmax of (q_nope.k_nope + q_pe.k_pe) * mla_scale, o_proj over the heads' v.
// The attention itself is layer_ops.cuh's k_attention on per-head keys [k_nope | k_pe] and values [v | 0] padded to
// qk_nope + qk_rope (v_head_dim <= qk_nope + qk_rope, checked at create), nh key heads.
#pragma once
#include "layer_ops.cuh"

namespace razor::cu {

namespace eng {

// Per (token, head): RoPE (adjacent pairs) on the head's q_pe in q [n, nh * qh] in place; keys kk [n, nh * qh] =
// [k_nope of the head | rope(k_pe)], values vv [n, nh * qh] = [v of the head | 0]. kv [n, nh * (nope + vd)], ka
// [n, kvl + rope] (k_pe at kvl).
__global__ void k_mla_prep(float* q, const float* ka, const float* kv, const float* inv_freq, const int* tok_pos,
                           float* kk, float* vv, int nh, int nope, int rope, int vd, int kvl) {
  const size_t t = blockIdx.x;
  const int h = blockIdx.y, qh = nope + rope;
  const size_t qrow = (t * nh + size_t(h)) * qh;
  const float* kvh = kv + (t * nh + size_t(h)) * (nope + vd);
  const float* kpe = ka + t * size_t(kvl + rope) + kvl;
  const float pos = float(tok_pos[t]);
  for (int c = threadIdx.x; c < nope; c += blockDim.x) kk[qrow + c] = kvh[c];
  for (int i = threadIdx.x; i < rope / 2; i += blockDim.x) {
    const float ang = pos * inv_freq[i], cs = cosf(ang), sn = sinf(ang);
    float* qp = q + qrow + nope;
    const float a = qp[2 * i], b = qp[2 * i + 1];
    qp[2 * i] = a * cs - b * sn;
    qp[2 * i + 1] = b * cs + a * sn;
    const float ka0 = kpe[2 * i], kb0 = kpe[2 * i + 1];
    kk[qrow + nope + 2 * i] = ka0 * cs - kb0 * sn;
    kk[qrow + nope + 2 * i + 1] = kb0 * cs + ka0 * sn;
  }
  for (int c = threadIdx.x; c < qh; c += blockDim.x) vv[qrow + c] = c < vd ? kvh[nope + c] : 0.0f;
}

// att [n, nh * vd] = the first vd of each head's output in o [n, nh * qh].
__global__ void k_mla_out(const float* o, float* att, size_t n, int nh, int qh, int vd) {
  const size_t total = n * size_t(nh) * vd;
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < total; i += size_t(gridDim.x) * blockDim.x) {
    const size_t row = i / size_t(vd);  // token * nh + head
    att[i] = o[row * qh + i % size_t(vd)];
  }
}

}  // namespace eng

// y = MLA(x) for the batch, x normed [n, hidden]. Scratch: s1 q_a, s2 q, s3 kv_a, s4 c, s5 kv, s6 att,
// m1 / m2 / m3 the padded keys, values and outputs.
template <class P>
status mla_attention(P& p, const dlayer& L, const float* x, float* yout) {
  const auto& d = p.d;
  const size_t n = p.n;
  const int64_t nh = d.n_heads, nope = d.qk_nope, rope = d.qk_rope, vd = d.v_head_dim, qh = nope + rope;
  const int64_t kvl = d.kv_lora, ql = d.q_lora, kaw = kvl + rope;
  const size_t qw = size_t(nh * qh), kvw = size_t(nh * (nope + vd)), od = size_t(nh * vd);
  RAZOR_TRY(ensure(p.s2, n * qw * 4, p.tr));
  RAZOR_TRY(ensure(p.s3, n * size_t(kaw) * 4, p.tr));
  RAZOR_TRY(ensure(p.s4, n * size_t(kvl) * 4, p.tr));
  RAZOR_TRY(ensure(p.s5, n * kvw * 4, p.tr));
  RAZOR_TRY(ensure(p.s6, n * od * 4, p.tr));
  for (dbuf* b : {&p.m1, &p.m2, &p.m3}) RAZOR_TRY(ensure(*b, n * qw * 4, p.tr));
  if (ql > 0) {
    RAZOR_TRY(ensure(p.s1, n * size_t(ql) * 4, p.tr));
    RAZOR_TRY(p.project(x, {{&L.q_a, p.s1.f()}, {&L.kv_a, p.s3.f()}}));
    RAZOR_TRY(p.rmsnorm(p.s1.f(), L.q_a_norm, p.s1.f(), n, int(ql)));
    RAZOR_TRY(p.observe_dense(eng_point::mla_q_b_in, p.s1.f(), ql));
    RAZOR_TRY(p.gemm(p.s1.f(), n, L.q_b, p.s2.f()));
  } else {
    RAZOR_TRY(p.project(x, {{&L.q, p.s2.f()}, {&L.kv_a, p.s3.f()}}));
  }
  // c = rms(the first kv_lora of kv_a x) * kv_a_norm
  RAZOR_TRY(p.rmsnorm(p.s3.f(), L.kv_a_norm, p.s4.f(), n, int(kvl), size_t(kaw), size_t(kvl)));
  RAZOR_TRY(p.observe_dense(eng_point::mla_kv_b_in, p.s4.f(), kvl));
  RAZOR_TRY(p.gemm(p.s4.f(), n, L.kv_b, p.s5.f()));
  eng::k_mla_prep<<<dim3(unsigned(n), unsigned(nh)), 64>>>(p.s2.f(), p.s3.f(), p.s5.f(), p.inv_freq.f(), p.tok_pos.i(),
                                                           p.m1.f(), p.m2.f(), int(nh), int(nope), int(rope), int(vd),
                                                           int(kvl));
  RZ_CU_LAUNCH("mla_prep");
  const size_t smem = size_t(qh + eng::kAttnChunk) * 4;
  eng::k_attention<<<dim3(unsigned(n), unsigned(nh)), eng::kAttnThreads, smem>>>(
      p.s2.f(), p.m1.f(), p.m2.f(), nullptr, p.m3.f(), p.tok_pos.i(), int(nh), int(nh), int(qh), d.mla_scale);
  RZ_CU_LAUNCH("mla attention");
  eng::k_mla_out<<<eng::grid_for(n * od), 256>>>(p.m3.f(), p.s6.f(), n, int(nh), int(qh), int(vd));
  RZ_CU_LAUNCH("mla_out");
  p.sample_mem();
  RAZOR_TRY(p.observe_dense(eng_point::mixer_out, p.s6.f(), int64_t(od)));
  return p.gemm(p.s6.f(), n, L.o, yout);
}

// y = down(silu(gate x) * up x) of a leading dense layer (dense_ff), x normed [n, hidden].
template <class P>
status dense_mlp(P& p, const dlayer& L, const float* x, float* yout) {
  const size_t n = p.n, ff = size_t(p.d.dense_ff);
  RAZOR_TRY(ensure(p.hu_s, n * 2 * ff * 4, p.tr));
  RAZOR_TRY(ensure(p.act_s, n * ff * 4, p.tr));
  RAZOR_TRY(p.observe_dense(eng_point::dense_in, x, p.d.hidden));
  RAZOR_TRY(p.project(x, {{&L.dgu, p.hu_s.f()}}));
  eng::k_silu_mul<<<eng::grid_for(n * ff), 256>>>(p.hu_s.f(), p.act_s.f(), n, int(ff));
  RZ_CU_LAUNCH("dense silu_mul");
  RAZOR_TRY(p.observe_dense(eng_point::dense_act, p.act_s.f(), int64_t(ff)));
  return p.gemm(p.act_s.f(), n, L.ddown, yout);
}

}  // namespace razor::cu
