// GPU forward pass of the reference engine, one layer at a time (kernels/include/kernels/engine_cuda.h); the
// device kernels are in layer_ops.cuh.
// The math follows core/engine/model_runner.cpp line by line; only summation orders differ (cuBLAS and block
// reductions), so logits agree with the CPU reference to float32 rounding (~1e-5..1e-4 relative).
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <string>

#include "common/cuda_check.cuh"
#include "layer_ops.cuh"
#include "kernels/engine_cuda.h"

namespace razor::cu {

using namespace eng;

namespace {

#define EB(call)                                                                                     \
  do {                                                                                               \
    cublasStatus_t _s = (call);                                                                      \
    if (_s != CUBLAS_STATUS_SUCCESS)                                                                 \
      return make_error(errc::device, std::string("cuBLAS ") + #call + ": status " + std::to_string(int(_s))); \
  } while (0)

// ---- device memory: grow-only buffers with a tracker -----------------------------------------------
struct tracker {
  size_t cur = 0, peak = 0;
};
struct dbuf {
  void* p = nullptr;
  size_t cap = 0;
  float* f() const { return static_cast<float*>(p); }
  int* i() const { return static_cast<int*>(p); }
};

status ensure(dbuf& b, size_t bytes, tracker& tr) {
  if (b.cap >= bytes) return {};
  if (b.p) {
    cudaFree(b.p);
    tr.cur -= b.cap;
    b.p = nullptr;
    b.cap = 0;
  }
  RZ_CU_CALL(cudaMalloc(&b.p, std::max<size_t>(bytes, 256)));
  b.cap = std::max<size_t>(bytes, 256);
  tr.cur += b.cap;
  tr.peak = std::max(tr.peak, tr.cur);
  return {};
}
void release(dbuf& b, tracker& tr) {
  if (b.p) {
    cudaFree(b.p);
    tr.cur -= b.cap;
  }
  b.p = nullptr;
  b.cap = 0;
}

struct dlin {
  float* wt = nullptr;
  int64_t in = 0, out = 0;
};

// A segment of the weight arena: copied from host `src` (upload) or filled randomly (bench).
struct seg {
  float* dst;
  const float* src;
  size_t n;
  float scale, offset;
};

}  // namespace

struct gpu_engine::impl {
  eng_dims d;
  eng_options opt;
  cublasHandle_t blas = nullptr;
  tracker tr;
  eng_stats st;
  // batch
  size_t n = 0, n_seq = 0;
  std::vector<size_t> seq_start;
  dbuf h, xn, y, tok_pos, seq_start_d, inv_freq;
  // resident layer
  dbuf warena;
  bool have_layer = false, linear = false, gated = false, shared = false;
  float *in_norm = nullptr, *post_norm = nullptr, *q_norm = nullptr, *k_norm = nullptr;
  dlin q, k, v, o, qkv, z, b, a, out, router, sgu, sdown, sgate;
  float *conv = nullptr, *a_log = nullptr, *dt_bias = nullptr, *dn_norm = nullptr;
  float *gu_all = nullptr, *dn_all = nullptr;  // experts, contiguous: E x [H][2ff], E x [ff][H] (padded strides)
  size_t gu_stride = 0, dn_stride = 0;
  // scratch
  dbuf s1, s2, s3, s4, s5, s6, logits, ids, wts, pos, slot_tok, sg, hu_s, act_s, sout;
  std::vector<int> h_ids, h_slot_tok, h_pos;
  std::vector<size_t> h_off;
  std::vector<float> h_logits;

  ~impl() {
    for (dbuf* b : {&h, &xn, &y, &tok_pos, &seq_start_d, &inv_freq, &warena, &s1, &s2, &s3, &s4, &s5, &s6, &logits,
                    &ids, &wts, &pos, &slot_tok, &sg, &hu_s, &act_s, &sout})
      release(*b, tr);
    if (blas) cublasDestroy(blas);
  }

  void sample_mem() {
    size_t fr = 0, tot = 0;
    if (cudaMemGetInfo(&fr, &tot) == cudaSuccess) st.device_used_peak = std::max(st.device_used_peak, tot - fr);
  }

  // y[n, out] = x[n, in] W^T with wt [in][out] row-major: column-major C(out x n) = A(out x in) * B(in x n).
  status gemm(const float* x, size_t rows, const dlin& w, float* yy, size_t ldx = 0, size_t ldy = 0) {
    if (rows == 0) return {};
    const float one = 1.0f, zero = 0.0f;
    EB(cublasSgemm(blas, CUBLAS_OP_N, CUBLAS_OP_N, int(w.out), int(rows), int(w.in), &one, w.wt, int(w.out), x,
                   int(ldx ? ldx : size_t(w.in)), &zero, yy, int(ldy ? ldy : size_t(w.out))));
    return {};
  }

  status rmsnorm(const float* x, const float* w, float* outp, size_t rows, int dim) {
    if (!rows) return {};
    k_rmsnorm<<<unsigned(rows), 256>>>(x, w, outp, dim, float(d.eps));
    RZ_CU_LAUNCH("rmsnorm");
    return {};
  }

  // Plans the arena; with base == nullptr only counts floats.
  size_t plan(float* base, const eng_layer* hw, std::vector<seg>* segs) {
    size_t off = 0;
    auto take = [&](size_t cnt, const float* src, float scale, float offset) -> float* {
      float* p = base ? base + off : nullptr;
      if (segs && base) segs->push_back({p, src, cnt, scale, offset});
      off += (cnt + 63) / 64 * 64;
      return p;
    };
    auto lin = [&](dlin& l, int64_t in, int64_t outd, const eng_linear* src) {
      l.in = in;
      l.out = outd;
      l.wt = take(size_t(in * outd), src ? src->wt : nullptr, 1.0f / std::sqrt(float(in)), 0.0f);
    };
    const int64_t H = d.hidden;
    in_norm = take(size_t(H), hw ? hw->in_norm : nullptr, 0.1f, 1.0f);
    post_norm = take(size_t(H), hw ? hw->post_norm : nullptr, 0.1f, 1.0f);
    if (linear) {
      const int64_t kd = d.lin_k_heads * d.lin_k_dim, vd = d.lin_v_heads * d.lin_v_dim, ch = 2 * kd + vd;
      lin(qkv, H, ch, hw ? &hw->qkv : nullptr);
      lin(z, H, vd, hw ? &hw->z : nullptr);
      lin(b, H, d.lin_v_heads, hw ? &hw->b : nullptr);
      lin(a, H, d.lin_v_heads, hw ? &hw->a : nullptr);
      lin(out, vd, H, hw ? &hw->out : nullptr);
      conv = take(size_t(ch * d.conv_kernel), hw ? hw->conv : nullptr, 0.5f, 0.0f);
      a_log = take(size_t(d.lin_v_heads), hw ? hw->a_log : nullptr, 0.5f, 0.0f);
      dt_bias = take(size_t(d.lin_v_heads), hw ? hw->dt_bias : nullptr, 0.5f, 0.0f);
      dn_norm = take(size_t(d.lin_v_dim), hw ? hw->dn_norm : nullptr, 0.1f, 1.0f);
    } else {
      const int64_t qd = d.n_heads * d.head_dim, kvd = d.n_kv_heads * d.head_dim;
      lin(q, H, gated ? 2 * qd : qd, hw ? &hw->q : nullptr);
      lin(k, H, kvd, hw ? &hw->k : nullptr);
      lin(v, H, kvd, hw ? &hw->v : nullptr);
      lin(o, qd, H, hw ? &hw->o : nullptr);
      q_norm = take(size_t(d.head_dim), hw ? hw->q_norm : nullptr, 0.1f, 1.0f);
      k_norm = take(size_t(d.head_dim), hw ? hw->k_norm : nullptr, 0.1f, 1.0f);
    }
    const int64_t E = d.n_experts, ff = d.moe_ff;
    lin(router, H, E, hw ? &hw->router : nullptr);
    const size_t gu_n = size_t(H * 2 * ff), dn_n = size_t(ff * H);
    gu_stride = (gu_n + 63) / 64 * 64;  // take() pads every tensor to 64 floats
    dn_stride = (dn_n + 63) / 64 * 64;
    if (hw) {
      gu_all = base ? base + off : nullptr;
      for (int64_t e = 0; e < E; ++e) take(gu_n, hw->gate_up[size_t(e)].wt, 0, 0);
      dn_all = base ? base + off : nullptr;
      for (int64_t e = 0; e < E; ++e) take(dn_n, hw->down[size_t(e)].wt, 0, 0);
    } else {
      gu_all = take(gu_stride * size_t(E), nullptr, 1.0f / std::sqrt(float(H)), 0.0f);
      dn_all = take(dn_stride * size_t(E), nullptr, 1.0f / std::sqrt(float(ff)), 0.0f);
    }
    if (shared) {
      const int64_t sf = d.shared_ff;
      lin(sgu, H, 2 * sf, hw ? &hw->shared_gate_up : nullptr);
      lin(sdown, sf, H, hw ? &hw->shared_down : nullptr);
      lin(sgate, H, 1, hw ? &hw->shared_gate : nullptr);
    }
    return off;
  }

  status place(const eng_layer* hw, bool lin_attn, bool gtd, bool shr, uint64_t seed) {
    linear = lin_attn;
    gated = gtd;
    shared = shr;
    size_t nf = plan(nullptr, hw, nullptr);
    have_layer = false;
    if (warena.cap < nf * 4) {
      release(warena, tr);  // one layer resident: free the old one before the new allocation
      RAZOR_TRY(ensure(warena, nf * 4, tr));
    }
    st.weight_bytes = nf * 4;
    std::vector<seg> segs;
    plan(warena.f(), hw, &segs);
    for (size_t i = 0; i < segs.size(); ++i) {
      const seg& s = segs[i];
      if (hw) {
        if (!s.src) return make_error(errc::invalid_argument, "GPU engine: a layer tensor is missing (null pointer)");
        RZ_CU_CALL(cudaMemcpy(s.dst, s.src, s.n * 4, cudaMemcpyHostToDevice));
      } else {
        k_fill<<<grid_for(s.n), 256>>>(s.dst, s.n, seed * 1000003ULL + i, s.scale, s.offset);
        RZ_CU_LAUNCH("fill");
      }
    }
    have_layer = true;
    return {};
  }

  status attention(const float* x, float* yout) {
    const int64_t hd = d.head_dim, nh = d.n_heads, nkv = d.n_kv_heads;
    const size_t qw = size_t(q.out), qd = size_t(nh * hd), kvd = size_t(nkv * hd);
    RAZOR_TRY(ensure(s1, n * qw * 4, tr));   // qraw
    RAZOR_TRY(ensure(s2, n * kvd * 4, tr));  // k
    RAZOR_TRY(ensure(s3, n * kvd * 4, tr));  // v
    RAZOR_TRY(ensure(s4, n * qd * 4, tr));   // q
    RAZOR_TRY(ensure(s5, n * qd * 4, tr));   // gate
    RAZOR_TRY(ensure(s6, n * qd * 4, tr));   // att
    RAZOR_TRY(gemm(x, n, q, s1.f()));
    RAZOR_TRY(gemm(x, n, k, s2.f()));
    RAZOR_TRY(gemm(x, n, v, s3.f()));
    dim3 g1{unsigned(n), unsigned(nh + nkv)};
    k_qk_prep<<<g1, 128, size_t(hd) * 4>>>(s1.f(), s4.f(), s5.f(), s2.f(), q_norm, k_norm, inv_freq.f(), tok_pos.i(),
                                            int(nh), int(nkv), int(hd), int(d.rot_dims), gated ? 1 : 0, float(d.eps));
    RZ_CU_LAUNCH("qk_prep");
    dim3 g2{unsigned(n), unsigned(nh)};
    size_t smem = size_t(hd + kAttnChunk) * 4;
    k_attention<<<g2, kAttnThreads, smem>>>(s4.f(), s2.f(), s3.f(), gated ? s5.f() : nullptr, s6.f(), tok_pos.i(),
                                            int(nh), int(nkv), int(hd), 1.0f / std::sqrt(float(hd)));
    RZ_CU_LAUNCH("attention");
    sample_mem();
    return gemm(s6.f(), n, o, yout);
  }

  status deltanet(const float* x, float* yout) {
    const int64_t nk = d.lin_k_heads, nv = d.lin_v_heads, dk = d.lin_k_dim, dv = d.lin_v_dim, K = d.conv_kernel;
    const size_t kd = size_t(nk * dk), vd = size_t(nv * dv), ch = 2 * kd + vd;
    RAZOR_TRY(ensure(s1, n * ch * 4, tr));        // qkv
    RAZOR_TRY(ensure(s2, n * vd * 4, tr));        // z
    RAZOR_TRY(ensure(s3, n * size_t(nv) * 4, tr));  // b
    RAZOR_TRY(ensure(s4, n * size_t(nv) * 4, tr));  // a
    RAZOR_TRY(ensure(s5, n * ch * 4, tr));        // conv
    RAZOR_TRY(ensure(s6, n * vd * 4, tr));        // core
    RAZOR_TRY(gemm(x, n, qkv, s1.f()));
    RAZOR_TRY(gemm(x, n, z, s2.f()));
    RAZOR_TRY(gemm(x, n, b, s3.f()));
    RAZOR_TRY(gemm(x, n, a, s4.f()));
    k_conv_silu<<<grid_for(n * ch), 256>>>(s1.f(), conv, s5.f(), tok_pos.i(), n, int(ch), int(K));
    RZ_CU_LAUNCH("conv_silu");
    k_l2norm_qk<<<dim3(unsigned(n), unsigned(2 * nk)), 128>>>(s5.f(), int(ch), int(nk), int(dk),
                                                              1.0f / std::sqrt(float(dk)));
    RZ_CU_LAUNCH("l2norm");
    size_t smem = (size_t(dk) * size_t(dv) + 2 * size_t(dk)) * 4;
    RZ_CU_CALL(cudaFuncSetAttribute(k_delta_rule, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
    int threads = int(std::min<int64_t>(((dv + 31) / 32) * 32, 256));
    k_delta_rule<<<dim3(unsigned(n_seq), unsigned(nv)), threads, smem>>>(
        s5.f(), s3.f(), s4.f(), a_log, dt_bias, static_cast<const long long*>(seq_start_d.p), s6.f(), int(ch),
        int(nk), int(nv), int(dk), int(dv));
    RZ_CU_LAUNCH("delta_rule");
    k_gated_norm<<<unsigned(n * size_t(nv)), 128>>>(s6.f(), s2.f(), dn_norm, int(dv), float(d.eps));
    RZ_CU_LAUNCH("gated_norm");
    sample_mem();
    return gemm(s6.f(), n, out, yout);
  }

  status moe(const float* x, float* yout) {
    const size_t E = size_t(d.n_experts), K = size_t(d.top_k), H = size_t(d.hidden), ff = size_t(d.moe_ff);
    const size_t ns = n * K;
    RAZOR_TRY(ensure(logits, n * E * 4, tr));
    RAZOR_TRY(ensure(ids, ns * 4, tr));
    RAZOR_TRY(ensure(wts, ns * 4, tr));
    RAZOR_TRY(ensure(pos, ns * 4, tr));
    RAZOR_TRY(ensure(slot_tok, ns * 4, tr));
    RAZOR_TRY(gemm(x, n, router, logits.f()));
    k_topk<<<unsigned(n), 256, E * 4>>>(logits.f(), int(E), int(K), d.norm_topk ? 1 : 0, ids.i(), wts.f());
    RZ_CU_LAUNCH("topk");
    // Group token-slots by expert on the host (deterministic: token order within an expert, as the CPU).
    h_ids.resize(ns);
    RZ_CU_CALL(cudaMemcpy(h_ids.data(), ids.p, ns * 4, cudaMemcpyDeviceToHost));
    h_off.assign(E + 1, 0);
    for (size_t i = 0; i < ns; ++i) {
      if (h_ids[i] < 0 || size_t(h_ids[i]) >= E) return make_error(errc::internal, "GPU router: expert id out of range");
      ++h_off[size_t(h_ids[i]) + 1];
    }
    for (size_t e = 0; e < E; ++e) h_off[e + 1] += h_off[e];
    std::vector<size_t> cur(h_off.begin(), h_off.end() - 1);
    h_slot_tok.resize(ns);
    h_pos.resize(ns);
    for (size_t t = 0; t < n; ++t)
      for (size_t kk = 0; kk < K; ++kk) {
        size_t s = cur[size_t(h_ids[t * K + kk])]++;
        h_slot_tok[s] = int(t);
        h_pos[t * K + kk] = int(s);
      }
    RZ_CU_CALL(cudaMemcpy(slot_tok.p, h_slot_tok.data(), ns * 4, cudaMemcpyHostToDevice));
    RZ_CU_CALL(cudaMemcpy(pos.p, h_pos.data(), ns * 4, cudaMemcpyHostToDevice));
    RAZOR_TRY(ensure(s1, ns * H * 4, tr));       // xe, later the expert outputs
    RAZOR_TRY(ensure(s2, ns * 2 * ff * 4, tr));  // hu
    RAZOR_TRY(ensure(s3, ns * ff * 4, tr));      // act
    RAZOR_TRY(ensure(s4, ns * H * 4, tr));       // expert outputs
    k_gather<<<grid_for(ns * H), 256>>>(x, slot_tok.i(), s1.f(), ns, int(H));
    RZ_CU_LAUNCH("gather");
    for (size_t e = 0; e < E; ++e) {
      size_t c = h_off[e + 1] - h_off[e];
      if (!c) continue;
      dlin gu{gu_all + e * gu_stride, int64_t(H), int64_t(2 * ff)};
      RAZOR_TRY(gemm(s1.f() + h_off[e] * H, c, gu, s2.f() + h_off[e] * 2 * ff));
    }
    k_silu_mul<<<grid_for(ns * ff), 256>>>(s2.f(), s3.f(), ns, int(ff));
    RZ_CU_LAUNCH("silu_mul");
    for (size_t e = 0; e < E; ++e) {
      size_t c = h_off[e + 1] - h_off[e];
      if (!c) continue;
      dlin dn{dn_all + e * dn_stride, int64_t(ff), int64_t(H)};
      RAZOR_TRY(gemm(s3.f() + h_off[e] * ff, c, dn, s4.f() + h_off[e] * H));
    }
    const float* sgp = nullptr;
    const float* soutp = nullptr;
    if (shared) {
      const size_t sf = size_t(d.shared_ff);
      RAZOR_TRY(ensure(hu_s, n * 2 * sf * 4, tr));
      RAZOR_TRY(ensure(act_s, n * sf * 4, tr));
      RAZOR_TRY(ensure(sout, n * H * 4, tr));
      RAZOR_TRY(ensure(sg, n * 4, tr));
      RAZOR_TRY(gemm(x, n, sgu, hu_s.f()));
      RAZOR_TRY(gemm(x, n, sgate, sg.f()));
      k_silu_mul<<<grid_for(n * sf), 256>>>(hu_s.f(), act_s.f(), n, int(sf));
      RZ_CU_LAUNCH("shared silu_mul");
      RAZOR_TRY(gemm(act_s.f(), n, sdown, sout.f()));
      sgp = sg.f();
      soutp = sout.f();
    }
    if (K > 64) return make_error(errc::unsupported, "GPU engine: more than 64 experts per token");
    k_combine<<<unsigned(n), 256>>>(ids.i(), wts.f(), pos.i(), s4.f(), sgp, soutp, yout, int(K), int(H));
    RZ_CU_LAUNCH("combine");
    sample_mem();
    return {};
  }
};

gpu_engine::gpu_engine() : p_(std::make_unique<impl>()) {}
gpu_engine::~gpu_engine() {
  if (p_) cudaSetDevice(p_->opt.device);
}

result<std::unique_ptr<gpu_engine>> gpu_engine::create(const eng_dims& d, const eng_options& opt) {
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count <= opt.device) {
    cudaGetLastError();
    return make_error(errc::device, "no CUDA device" + std::string(e != cudaSuccess ? std::string(": ") + cudaGetErrorString(e) : ""));
  }
  if (d.hidden <= 0 || d.n_experts <= 0 || d.top_k <= 0 || d.top_k > 64 || d.moe_ff <= 0)
    return make_error(errc::invalid_argument, "GPU engine: dims incomplete");
  if (d.head_dim > kAttnThreads * kAttnMaxDimPerThread)
    return make_error(errc::unsupported, "GPU engine: head_dim above 512");
  std::unique_ptr<gpu_engine> g(new gpu_engine());
  auto& p = *g->p_;
  p.d = d;
  p.opt = opt;
  RZ_CU_CALL(cudaSetDevice(opt.device));
  RZ_CU_CALL(cudaFree(nullptr));
  EB(cublasCreate(&p.blas));
  EB(cublasSetMathMode(p.blas, opt.tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
  cudaDeviceProp prop{};
  RZ_CU_CALL(cudaGetDeviceProperties(&prop, opt.device));
  p.st.device_name = prop.name;
  size_t fr = 0, tot = 0;
  RZ_CU_CALL(cudaMemGetInfo(&fr, &tot));
  p.st.device_total = tot;
  p.st.device_used_base = tot - fr;
  p.st.device_used_peak = tot - fr;
  // RoPE inverse frequencies, as engine::rope_inv_freq (double pow, stored as float).
  if (d.rot_dims > 0) {
    std::vector<float> f(size_t(d.rot_dims / 2));
    for (int64_t i = 0; i < d.rot_dims / 2; ++i)
      f[size_t(i)] = float(1.0 / std::pow(d.rope_theta, double(2 * i) / double(d.rot_dims)));
    RAZOR_TRY(ensure(p.inv_freq, f.size() * 4, p.tr));
    RZ_CU_CALL(cudaMemcpy(p.inv_freq.p, f.data(), f.size() * 4, cudaMemcpyHostToDevice));
  }
  return std::move(g);
}

status gpu_engine::set_hidden(const float* hs, const std::vector<size_t>& seq_start) {
  auto& p = *p_;
  if (seq_start.size() < 2 || seq_start.front() != 0) return make_error(errc::invalid_argument, "GPU engine: bad seq_start");
  p.seq_start = seq_start;
  p.n = seq_start.back();
  p.n_seq = seq_start.size() - 1;
  const size_t H = size_t(p.d.hidden);
  RAZOR_TRY(ensure(p.h, p.n * H * 4, p.tr));
  RAZOR_TRY(ensure(p.xn, p.n * H * 4, p.tr));
  RAZOR_TRY(ensure(p.y, p.n * H * 4, p.tr));
  std::vector<int> tp(p.n);
  std::vector<long long> ss(seq_start.begin(), seq_start.end());
  for (size_t s = 0; s + 1 < seq_start.size(); ++s) {
    if (seq_start[s + 1] < seq_start[s]) return make_error(errc::invalid_argument, "GPU engine: seq_start not sorted");
    for (size_t t = seq_start[s]; t < seq_start[s + 1]; ++t) tp[t] = int(t - seq_start[s]);
  }
  RAZOR_TRY(ensure(p.tok_pos, std::max<size_t>(p.n, 1) * 4, p.tr));
  RAZOR_TRY(ensure(p.seq_start_d, ss.size() * 8, p.tr));
  RZ_CU_CALL(cudaMemcpy(p.tok_pos.p, tp.data(), p.n * 4, cudaMemcpyHostToDevice));
  RZ_CU_CALL(cudaMemcpy(p.seq_start_d.p, ss.data(), ss.size() * 8, cudaMemcpyHostToDevice));
  RZ_CU_CALL(cudaMemcpy(p.h.p, hs, p.n * H * 4, cudaMemcpyHostToDevice));
  return {};
}

status gpu_engine::get_hidden(float* hs) {
  auto& p = *p_;
  RZ_CU_CALL(cudaMemcpy(hs, p.h.p, p.n * size_t(p.d.hidden) * 4, cudaMemcpyDeviceToHost));
  return {};
}

status gpu_engine::upload_layer(const eng_layer& w) {
  auto& p = *p_;
  const auto& d = p.d;
  auto chk = [](const eng_linear& l, int64_t in, int64_t out, const char* what) -> status {
    if (!l.wt || l.in != in || l.out != out)
      return make_error(errc::shape_mismatch, std::string("GPU engine: ") + what + ": expected [" + std::to_string(in) +
                                                  " -> " + std::to_string(out) + "], got [" + std::to_string(l.in) +
                                                  " -> " + std::to_string(l.out) + "]");
    return {};
  };
  const int64_t H = d.hidden;
  if (w.linear_attention) {
    const int64_t kd = d.lin_k_heads * d.lin_k_dim, vd = d.lin_v_heads * d.lin_v_dim;
    RAZOR_TRY(chk(w.qkv, H, 2 * kd + vd, "in_proj_qkv"));
    RAZOR_TRY(chk(w.z, H, vd, "in_proj_z"));
    RAZOR_TRY(chk(w.b, H, d.lin_v_heads, "in_proj_b"));
    RAZOR_TRY(chk(w.a, H, d.lin_v_heads, "in_proj_a"));
    RAZOR_TRY(chk(w.out, vd, H, "out_proj"));
  } else {
    const int64_t qd = d.n_heads * d.head_dim, kvd = d.n_kv_heads * d.head_dim;
    RAZOR_TRY(chk(w.q, H, w.gated ? 2 * qd : qd, "q_proj"));
    RAZOR_TRY(chk(w.k, H, kvd, "k_proj"));
    RAZOR_TRY(chk(w.v, H, kvd, "v_proj"));
    RAZOR_TRY(chk(w.o, qd, H, "o_proj"));
  }
  RAZOR_TRY(chk(w.router, H, d.n_experts, "router"));
  if (int64_t(w.gate_up.size()) != d.n_experts || int64_t(w.down.size()) != d.n_experts)
    return make_error(errc::shape_mismatch, "GPU engine: expert count differs from the dims");
  for (int64_t e = 0; e < d.n_experts; ++e) {
    RAZOR_TRY(chk(w.gate_up[size_t(e)], H, 2 * d.moe_ff, "expert gate_up"));
    RAZOR_TRY(chk(w.down[size_t(e)], d.moe_ff, H, "expert down"));
  }
  const bool shr = w.shared_gate_up.wt != nullptr;
  if (shr) {
    RAZOR_TRY(chk(w.shared_gate_up, H, 2 * d.shared_ff, "shared expert gate_up"));
    RAZOR_TRY(chk(w.shared_down, d.shared_ff, H, "shared expert down"));
    RAZOR_TRY(chk(w.shared_gate, H, 1, "shared_expert_gate"));
  }
  return p.place(&w, w.linear_attention, w.gated, shr, 0);
}

status gpu_engine::random_layer(bool linear_attention, bool gated, bool shared_expert, uint64_t seed) {
  return p_->place(nullptr, linear_attention, gated, shared_expert && p_->d.shared_ff > 0, seed);
}

status gpu_engine::run_layer() {
  auto& p = *p_;
  if (!p.have_layer) return make_error(errc::invalid_argument, "GPU engine: no layer resident");
  if (p.n == 0) return {};
  const size_t H = size_t(p.d.hidden), nh = p.n * H;
  RAZOR_TRY(p.rmsnorm(p.h.f(), p.in_norm, p.xn.f(), p.n, int(H)));
  if (p.linear)
    RAZOR_TRY(p.deltanet(p.xn.f(), p.y.f()));
  else
    RAZOR_TRY(p.attention(p.xn.f(), p.y.f()));
  k_add<<<grid_for(nh), 256>>>(p.h.f(), p.y.f(), nh);
  RZ_CU_LAUNCH("add");
  RAZOR_TRY(p.rmsnorm(p.h.f(), p.post_norm, p.xn.f(), p.n, int(H)));
  RAZOR_TRY(p.moe(p.xn.f(), p.y.f()));
  k_add<<<grid_for(nh), 256>>>(p.h.f(), p.y.f(), nh);
  RZ_CU_LAUNCH("add");
  return {};
}

status gpu_engine::head(const float* final_norm, const eng_linear& lm_head, size_t chunk,
                        const std::function<bool(size_t, size_t, const float*)>& fn) {
  auto& p = *p_;
  const size_t H = size_t(p.d.hidden);
  if (!lm_head.wt || lm_head.in != int64_t(H)) return make_error(errc::shape_mismatch, "GPU engine: lm_head shape");
  // The head replaces the layer arena (one resident at a time): norm + lm_head.
  const size_t V = size_t(lm_head.out);
  const size_t nf = (H + 63) / 64 * 64 + V * H;
  p.have_layer = false;
  if (p.warena.cap < nf * 4) {
    release(p.warena, p.tr);
    RAZOR_TRY(ensure(p.warena, nf * 4, p.tr));
  }
  float* dnorm = p.warena.f();
  dlin hl{dnorm + (H + 63) / 64 * 64, int64_t(H), int64_t(V)};
  RZ_CU_CALL(cudaMemcpy(dnorm, final_norm, H * 4, cudaMemcpyHostToDevice));
  RZ_CU_CALL(cudaMemcpy(hl.wt, lm_head.wt, V * H * 4, cudaMemcpyHostToDevice));
  RAZOR_TRY(p.rmsnorm(p.h.f(), dnorm, p.xn.f(), p.n, int(H)));
  chunk = std::max<size_t>(1, chunk);
  const size_t c0 = std::min(chunk, p.n);
  RAZOR_TRY(ensure(p.logits, c0 * V * 4, p.tr));
  p.h_logits.resize(c0 * V);
  for (size_t t0 = 0; t0 < p.n; t0 += chunk) {
    size_t c = std::min(chunk, p.n - t0);
    RAZOR_TRY(p.gemm(p.xn.f() + t0 * H, c, hl, p.logits.f()));
    p.sample_mem();
    RZ_CU_CALL(cudaMemcpy(p.h_logits.data(), p.logits.p, c * V * 4, cudaMemcpyDeviceToHost));
    if (!fn(t0, c, p.h_logits.data())) return make_error(errc::cancelled, "forward pass cancelled");
  }
  return {};
}

status gpu_engine::synchronize() {
  RZ_CU_CALL(cudaDeviceSynchronize());
  RZ_CU_LAUNCH("kernel");
  return {};
}

std::vector<int32_t> gpu_engine::last_routing() const { return {p_->h_ids.begin(), p_->h_ids.end()}; }

eng_stats gpu_engine::stats() const {
  eng_stats s = p_->st;
  s.tracked_peak_bytes = p_->tr.peak;
  return s;
}

result<double> gpu_engine::h2d_gbps(size_t bytes) {
  void* hbuf = nullptr;
  void* dbufp = nullptr;
  RZ_CU_CALL(cudaMallocHost(&hbuf, bytes));
  std::memset(hbuf, 1, bytes);
  cudaError_t e = cudaMalloc(&dbufp, bytes);
  if (e != cudaSuccess) {
    cudaFreeHost(hbuf);
    return cuda_error(e, "cudaMalloc (h2d)");
  }
  cudaMemcpy(dbufp, hbuf, bytes, cudaMemcpyHostToDevice);  // warm-up
  double best = 0;
  for (int r = 0; r < 3; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    cudaMemcpy(dbufp, hbuf, bytes, cudaMemcpyHostToDevice);
    cudaDeviceSynchronize();
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, double(bytes) / s / 1e9);
  }
  e = cudaGetLastError();
  cudaFree(dbufp);
  cudaFreeHost(hbuf);
  if (e != cudaSuccess) return cuda_error(e, "h2d copy");
  return best;
}

}  // namespace razor::cu
