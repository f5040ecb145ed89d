// GPU forward pass of the reference engine, one layer at a time (kernels/include/kernels/engine_cuda.h); the
// device kernels are in layer_ops.cuh, the blocks in attention.cuh, mla.cuh and moe.cuh.
// The math follows core/engine/model_runner.cpp line by line; only summation orders differ (cuBLAS and block
// reductions), so logits agree with the CPU reference to float32 rounding (~1e-5..1e-4 relative).
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <initializer_list>
#include <mutex>
#include <string>
#include <utility>

#include "common/cuda_check.cuh"
#include "common/staging.cuh"
#include "layer_ops.cuh"
#include "kernels/engine_cuda.h"
#include "util/numeric.h"
#include "util/parallel.h"

namespace razor::cu {

using namespace eng;

namespace {

#define EB(call)                                                                                     \
  do {                                                                                               \
    cublasStatus_t _s = (call);                                                                      \
    if (_s != CUBLAS_STATUS_SUCCESS)                                                                 \
      return make_error(errc::device, std::string("cuBLAS ") + #call + ": status " + std::to_string(int(_s))); \
  } while (0)

// ---- device memory: grow-only buffers with a tracker (shared by the upload and the compute thread) ----
struct tracker {
  std::mutex mu;
  size_t cur = 0, peak = 0;
  void add(ptrdiff_t b) {
    std::lock_guard lk(mu);
    cur = size_t(ptrdiff_t(cur) + b);
    peak = std::max(peak, cur);
  }
};
struct dbuf {
  void* p = nullptr;
  size_t cap = 0;
  float* f() const { return static_cast<float*>(p); }
  int* i() const { return static_cast<int*>(p); }
  __nv_bfloat16* b() const { return static_cast<__nv_bfloat16*>(p); }
  double* d() const { return static_cast<double*>(p); }
};

status ensure(dbuf& b, size_t bytes, tracker& tr) {
  if (b.cap >= bytes) return {};
  if (b.p) {
    cudaFree(b.p);
    tr.add(-ptrdiff_t(b.cap));
    b.p = nullptr;
    b.cap = 0;
  }
  const size_t want = std::max<size_t>(bytes, 256);
  RZ_CU_CALL(cudaMalloc(&b.p, want));
  b.cap = want;
  tr.add(ptrdiff_t(want));
  return {};
}
void release(dbuf& b, tracker& tr) {
  if (b.p) {
    cudaFree(b.p);
    tr.add(-ptrdiff_t(b.cap));
  }
  b.p = nullptr;
  b.cap = 0;
}

// A linear map on the device: fp32 or BF16, transposed ([in][out]) or as stored ([out][in], rows).
struct dlin {
  const void* wt = nullptr;
  int64_t in = 0, out = 0;
  bool rows = false;
};

// One weight slot's layout: pointers into its arena.
struct dlayer {
  bool linear = false, gated = false, shared = false;
  bool mla = false, dense = false, sgated = false;  // DeepSeek: MLA, a dense layer; a shared expert gate
  float *in_norm = nullptr, *post_norm = nullptr, *q_norm = nullptr, *k_norm = nullptr;
  float *q_bias = nullptr, *k_bias = nullptr, *v_bias = nullptr, *score_bias = nullptr;
  float *q_a_norm = nullptr, *kv_a_norm = nullptr;
  dlin q, k, v, o, qkv, z, b, a, out, router, sgu, sdown, sgate, q_a, q_b, kv_a, kv_b, dgu, ddown;
  float *conv = nullptr, *a_log = nullptr, *dt_bias = nullptr, *dn_norm = nullptr;
  // experts, contiguous: E x gate_up [2ff x H], E x down [H x ff], `stride` bytes apart
  char *gu_all = nullptr, *dn_all = nullptr;
  size_t gu_stride = 0, dn_stride = 0;
  bool experts_rows = false;
  // gpt_oss: o_proj bias, sinks, window; router bias; expert biases, contiguous, `stride` floats apart
  float *o_bias = nullptr, *sinks = nullptr, *router_bias = nullptr, *gu_bias = nullptr, *dn_bias = nullptr;
  size_t gu_bias_stride = 0, dn_bias_stride = 0;
  int64_t window = 0;
};

// A piece of a slot's arena: converted from host `src` (upload) or filled randomly (bench).
struct seg {
  size_t off;        // bytes into the arena
  const float* src;  // host floats, or
  const uint16_t* src16;  // host BF16 (both null: random)
  size_t n;          // elements
  bool wide;         // fp32 in the arena (norms, vectors; or every tensor with fp32 weights), else BF16
  float scale, offset;
};

struct slot {
  dbuf arena;
  void* pinned = nullptr;
  size_t pinned_cap = 0;
  cudaEvent_t copied = nullptr;  // the copy into the arena (and out of `pinned`) is done
  cudaEvent_t freed = nullptr;   // the last computation reading the arena is done
  dlayer L;
  bool ready = false;
};

}  // namespace

}  // namespace razor::cu

#include "attention.cuh"
#include "mla.cuh"
#include "moe.cuh"

namespace razor::cu {

struct gpu_engine::impl {
  eng_dims d;
  eng_options opt;
  bool bf16 = true;
  cublasHandle_t blas = nullptr;
  cudaStream_t copy_stream = nullptr;
  tracker tr;
  eng_stats st;
  // batch
  size_t n = 0, n_seq = 0;
  std::vector<size_t> seq_start;
  dbuf h, xn, y, tok_pos, seq_start_d, inv_freq;
  slot slots[kSlots];
  // scratch
  dbuf s1, s2, s3, s4, s5, s6, m1, m2, m3, logits, ids, wts, pos, slot_tok, sg, hu_s, act_s, sout, xb, xnorm;
  dbuf osum, ooff;  // observation sums (doubles) and their segment offsets
  std::vector<int> h_ids, h_slot_tok, h_pos;
  std::vector<size_t> h_off;
  std::vector<float> h_logits;
  eng_observations* obs = nullptr;  // of the layer being run
  struct pending_sums {
    eng_point point;
    int64_t cols;
    std::vector<uint64_t> rows;
    size_t off;  // doubles into osum (sum_sq, then sum)
  };
  std::vector<pending_sums> pend;
  size_t osum_used = 0;

  ~impl() {
    for (auto& sl : slots) {
      if (sl.copied) cudaEventSynchronize(sl.copied);
      release(sl.arena, tr);
      if (sl.pinned) cudaFreeHost(sl.pinned);
      if (sl.copied) cudaEventDestroy(sl.copied);
      if (sl.freed) cudaEventDestroy(sl.freed);
    }
    for (dbuf* b : {&h, &xn, &y, &tok_pos, &seq_start_d, &inv_freq, &s1, &s2, &s3, &s4, &s5, &s6, &m1, &m2, &m3, &logits, &ids, &wts,
                    &pos, &slot_tok, &sg, &hu_s, &act_s, &sout, &xb, &xnorm, &osum, &ooff})
      release(*b, tr);
    if (blas) cublasDestroy(blas);
    if (copy_stream) cudaStreamDestroy(copy_stream);
  }

  void sample_mem() {
    size_t fr = 0, tot = 0;
    if (cudaMemGetInfo(&fr, &tot) == cudaSuccess) st.device_used_peak = std::max(st.device_used_peak, tot - fr);
  }

  // y[n, out] = x[n, in] W^T: column-major C(out x n) = op(A)(out x in) * B(in x n), A = wt as [in][out]
  // row-major (column-major out x in, no transpose) or [out][in] (column-major in x out, transposed).
  // BF16 weights: x is rounded to BF16 first (into xb), unless `xpre` holds it already ([rows][in]).
  status gemm(const float* x, size_t rows, const dlin& w, float* yy, size_t ldx = 0, size_t ldy = 0,
              const __nv_bfloat16* xpre = nullptr) {
    if (rows == 0) return {};
    const float one = 1.0f, zero = 0.0f;
    const cublasOperation_t op = w.rows ? CUBLAS_OP_T : CUBLAS_OP_N;
    const int lda = int(w.rows ? w.in : w.out);
    const int ldc = int(ldy ? ldy : size_t(w.out));
    if (!bf16) {
      EB(cublasSgemm(blas, op, CUBLAS_OP_N, int(w.out), int(rows), int(w.in), &one, static_cast<const float*>(w.wt),
                     lda, x, int(ldx ? ldx : size_t(w.in)), &zero, yy, ldc));
      return {};
    }
    if (!xpre) {
      RAZOR_TRY(ensure(xb, rows * size_t(w.in) * 2, tr));
      k_to_bf16<<<grid_for(rows * size_t(w.in)), 256>>>(x, ldx ? ldx : size_t(w.in), xb.b(), rows, int(w.in));
      RZ_CU_LAUNCH("to_bf16");
      xpre = xb.b();
    }
    EB(cublasGemmEx(blas, op, CUBLAS_OP_N, int(w.out), int(rows), int(w.in), &one, w.wt, CUDA_R_16BF, lda, xpre,
                    CUDA_R_16BF, int(w.in), &zero, yy, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    return {};
  }
  // y_i = x W_i^T for several maps sharing the input x [n, hidden] (rounded to BF16 once).
  status project(const float* x, std::initializer_list<std::pair<const dlin*, float*>> maps) {
    RAZOR_ASSIGN_OR_RETURN(const __nv_bfloat16* xq, to_bf16(x, n, d.hidden));
    for (const auto& [w, out] : maps) RAZOR_TRY(gemm(x, n, *w, out, 0, 0, xq));
    return {};
  }
  // x [rows][cols] (fp32) rounded to BF16 into xb once, for several GEMMs over row ranges of it.
  result<const __nv_bfloat16*> to_bf16(const float* x, size_t rows, int64_t cols) {
    if (!bf16) return static_cast<const __nv_bfloat16*>(nullptr);
    RAZOR_TRY(ensure(xb, std::max<size_t>(rows, 1) * size_t(cols) * 2, tr));
    k_to_bf16<<<grid_for(rows * size_t(cols)), 256>>>(x, size_t(cols), xb.b(), rows, int(cols));
    RZ_CU_LAUNCH("to_bf16");
    return static_cast<const __nv_bfloat16*>(xb.b());
  }

  status rmsnorm(const float* x, const float* w, float* outp, size_t rows, int dim, size_t ldx = 0, size_t ldo = 0) {
    if (!rows) return {};
    k_rmsnorm<<<unsigned(rows), 256>>>(x, ldx ? ldx : size_t(dim), w, outp, ldo ? ldo : size_t(dim), dim, float(d.eps));
    RZ_CU_LAUNCH("rmsnorm");
    return {};
  }

  // ---- observations ----
  // Column sums of x (rows `ld` apart) over segments off[0..n_mat] (host offsets), added to the layer's sums.
  status observe(eng_point point, const float* x, size_t ld, int64_t cols, const std::vector<size_t>& off) {
    if (!obs) return {};
    const size_t n_mat = off.size() - 1;
    pending_sums ps{point, cols, std::vector<uint64_t>(n_mat), osum_used};
    size_t max_rows = 0;
    for (size_t m = 0; m < n_mat; ++m) {
      ps.rows[m] = off[m + 1] - off[m];
      max_rows = std::max<size_t>(max_rows, ps.rows[m]);
    }
    const size_t need = 2 * n_mat * size_t(cols);
    if (osum_used + need > osum.cap / 8)
      return make_error(errc::internal, "GPU engine: observation buffer too small");
    osum_used += need;
    pend.push_back(std::move(ps));
    if (max_rows == 0) return {};
    std::vector<long long> o(off.begin(), off.end());
    RAZOR_TRY(ensure(ooff, o.size() * 8, tr));
    RZ_CU_CALL(cudaMemcpy(ooff.p, o.data(), o.size() * 8, cudaMemcpyHostToDevice));
    // Row chunks of 256, fewer and longer when n_mat x chunks would pass the grid's 65535 (a hot expert).
    const size_t chunks = std::max<size_t>(1, std::min((max_rows + 255) / 256, 65535 / n_mat));
    const int chunk_rows = int((max_rows + chunks - 1) / chunks);
    double* sq = osum.d() + pend.back().off;
    dim3 g{unsigned((cols + 255) / 256), unsigned(n_mat * chunks)};
    k_colsums<<<g, 256>>>(x, ld, static_cast<const long long*>(ooff.p), int(cols), int(chunks), chunk_rows, sq,
                          sq + n_mat * size_t(cols));
    RZ_CU_LAUNCH("colsums");
    return {};
  }
  status observe_dense(eng_point point, const float* x, int64_t cols) { return observe(point, x, size_t(cols), cols, {0, n}); }
  // Sizes the sums buffer for one layer (or the head) and zeroes it.
  status begin_observing(eng_observations* o) {
    obs = opt.observe ? o : nullptr;
    pend.clear();
    osum_used = 0;
    if (!obs) return {};
    *obs = {};
    const size_t E = size_t(d.n_experts), H = size_t(d.hidden);
    const size_t widest = std::max<size_t>({H, size_t(d.n_heads * d.head_dim), size_t(d.lin_v_heads * d.lin_v_dim)});
    const size_t mla = size_t(d.q_lora + d.kv_lora + d.n_heads * d.v_head_dim + d.dense_ff + H);  // and dense_in
    const size_t doubles =
        2 * (H + widest + H + E * H + E * size_t(d.moe_ff) + size_t(std::max<int64_t>(d.shared_ff, 0)) + mla);
    RAZOR_TRY(ensure(osum, doubles * 8, tr));
    RZ_CU_CALL(cudaMemsetAsync(osum.p, 0, doubles * 8, 0));
    return {};
  }
  // Waits for the layer, copies the sums out.
  status end_observing() {
    if (!obs) return {};
    std::vector<double> host(osum_used);
    if (osum_used) RZ_CU_CALL(cudaMemcpy(host.data(), osum.p, osum_used * 8, cudaMemcpyDeviceToHost));
    for (auto& ps : pend) {
      eng_input_sums s;
      s.point = ps.point;
      s.cols = ps.cols;
      s.rows = std::move(ps.rows);
      const size_t m = s.rows.size() * size_t(ps.cols);
      s.sum_sq.assign(host.begin() + ptrdiff_t(ps.off), host.begin() + ptrdiff_t(ps.off + m));
      s.sum.assign(host.begin() + ptrdiff_t(ps.off + m), host.begin() + ptrdiff_t(ps.off + 2 * m));
      obs->inputs.push_back(std::move(s));
    }
    pend.clear();
    obs = nullptr;
    return {};
  }

  // ---- weight slots ----
  // Plans a slot's arena; with base == nullptr only counts bytes. Each tensor starts on a 256-byte boundary.
  size_t plan(dlayer& L, char* base, const eng_layer* hw, std::vector<seg>* segs) {
    size_t off = 0;
    const size_t wsz = bf16 ? 2 : 4;
    auto take = [&](size_t cnt, const float* src, bool wide, float scale, float offset,
                    const uint16_t* src16 = nullptr) -> char* {
      char* p = base ? base + off : nullptr;
      if (segs) segs->push_back({off, src, src16, cnt, wide || !bf16, scale, offset});
      off += (cnt * (wide ? 4 : wsz) + 255) / 256 * 256;
      return p;
    };
    auto vec = [&](size_t cnt, const float* src, float scale, float offset) {
      return reinterpret_cast<float*>(take(cnt, src, true, scale, offset));
    };
    auto lin = [&](dlin& l, int64_t in, int64_t outd, const eng_linear* src) {
      l.in = in;
      l.out = outd;
      l.rows = src && (src->rows || src->bf16);
      l.wt = take(size_t(in * outd), src ? src->wt : nullptr, false, 1.0f / std::sqrt(float(in)), 0.0f,
                  src ? src->bf16 : nullptr);
    };
    const int64_t H = d.hidden;
    L.in_norm = vec(size_t(H), hw ? hw->in_norm : nullptr, 0.1f, 1.0f);
    L.post_norm = vec(size_t(H), hw ? hw->post_norm : nullptr, 0.1f, 1.0f);
    if (L.linear) {
      const int64_t kd = d.lin_k_heads * d.lin_k_dim, vd = d.lin_v_heads * d.lin_v_dim, ch = 2 * kd + vd;
      lin(L.qkv, H, ch, hw ? &hw->qkv : nullptr);
      lin(L.z, H, vd, hw ? &hw->z : nullptr);
      lin(L.b, H, d.lin_v_heads, hw ? &hw->b : nullptr);
      lin(L.a, H, d.lin_v_heads, hw ? &hw->a : nullptr);
      lin(L.out, vd, H, hw ? &hw->out : nullptr);
      L.conv = vec(size_t(ch * d.conv_kernel), hw ? hw->conv : nullptr, 0.5f, 0.0f);
      L.a_log = vec(size_t(d.lin_v_heads), hw ? hw->a_log : nullptr, 0.5f, 0.0f);
      L.dt_bias = vec(size_t(d.lin_v_heads), hw ? hw->dt_bias : nullptr, 0.5f, 0.0f);
      L.dn_norm = vec(size_t(d.lin_v_dim), hw ? hw->dn_norm : nullptr, 0.1f, 1.0f);
    } else if (L.mla) {
      const int64_t nh = d.n_heads, qh = d.qk_nope + d.qk_rope;
      if (d.q_lora > 0) {
        lin(L.q_a, H, d.q_lora, hw ? &hw->q_a : nullptr);
        L.q_a_norm = vec(size_t(d.q_lora), hw ? hw->q_a_norm : nullptr, 0.1f, 1.0f);
        lin(L.q_b, d.q_lora, nh * qh, hw ? &hw->q_b : nullptr);
      } else {
        lin(L.q, H, nh * qh, hw ? &hw->q : nullptr);
      }
      lin(L.kv_a, H, d.kv_lora + d.qk_rope, hw ? &hw->kv_a : nullptr);
      L.kv_a_norm = vec(size_t(d.kv_lora), hw ? hw->kv_a_norm : nullptr, 0.1f, 1.0f);
      lin(L.kv_b, d.kv_lora, nh * (d.qk_nope + d.v_head_dim), hw ? &hw->kv_b : nullptr);
      lin(L.o, nh * d.v_head_dim, H, hw ? &hw->o : nullptr);
    } else {
      const int64_t qd = d.n_heads * d.head_dim, kvd = d.n_kv_heads * d.head_dim;
      lin(L.q, H, L.gated ? 2 * qd : qd, hw ? &hw->q : nullptr);
      lin(L.k, H, kvd, hw ? &hw->k : nullptr);
      lin(L.v, H, kvd, hw ? &hw->v : nullptr);
      lin(L.o, qd, H, hw ? &hw->o : nullptr);
      if (d.qk != eng_dims::qk_norm::none) {
        const bool whole = d.qk == eng_dims::qk_norm::whole;
        L.q_norm = vec(size_t(whole ? qd : d.head_dim), hw ? hw->q_norm : nullptr, 0.1f, 1.0f);
        L.k_norm = vec(size_t(whole ? kvd : d.head_dim), hw ? hw->k_norm : nullptr, 0.1f, 1.0f);
      }
      if (d.qkv_bias) {
        L.q_bias = vec(size_t(qd), hw ? hw->q_bias : nullptr, 0.1f, 0.0f);
        L.k_bias = vec(size_t(kvd), hw ? hw->k_bias : nullptr, 0.1f, 0.0f);
        L.v_bias = vec(size_t(kvd), hw ? hw->v_bias : nullptr, 0.1f, 0.0f);
      }
      if (d.gpt_oss) {
        L.o_bias = vec(size_t(H), hw ? hw->o_bias : nullptr, 0.1f, 0.0f);
        L.sinks = vec(size_t(d.n_heads), hw ? hw->sinks : nullptr, 1.0f, 0.0f);
      }
    }
    if (L.dense) {  // DeepSeek's leading layers: a dense MLP, no router or experts
      lin(L.dgu, H, 2 * d.dense_ff, hw ? &hw->dense_gate_up : nullptr);
      lin(L.ddown, d.dense_ff, H, hw ? &hw->dense_down : nullptr);
      return off;
    }
    const int64_t E = d.n_experts, ff = d.moe_ff;
    lin(L.router, H, E, hw ? &hw->router : nullptr);
    if (hw && hw->score_bias) L.score_bias = vec(size_t(E), hw->score_bias, 0.0f, 0.0f);
    const size_t gu_n = size_t(H * 2 * ff), dn_n = size_t(ff * H);
    L.gu_stride = (gu_n * wsz + 255) / 256 * 256;
    L.dn_stride = (dn_n * wsz + 255) / 256 * 256;
    L.experts_rows = hw && !hw->gate_up.empty() && (hw->gate_up[0].rows || hw->gate_up[0].bf16);
    L.gu_all = base ? base + off : nullptr;
    for (int64_t e = 0; e < E; ++e)
      take(gu_n, hw ? hw->gate_up[size_t(e)].wt : nullptr, false, 1.0f / std::sqrt(float(H)), 0.0f,
           hw ? hw->gate_up[size_t(e)].bf16 : nullptr);
    L.dn_all = base ? base + off : nullptr;
    for (int64_t e = 0; e < E; ++e)
      take(dn_n, hw ? hw->down[size_t(e)].wt : nullptr, false, 1.0f / std::sqrt(float(ff)), 0.0f,
           hw ? hw->down[size_t(e)].bf16 : nullptr);
    if (d.gpt_oss) {
      L.router_bias = vec(size_t(E), hw ? hw->router_bias : nullptr, 0.1f, 0.0f);
      auto biases = [&](float*& all, size_t& stride, size_t cnt, const std::vector<const float*>* src) {
        all = reinterpret_cast<float*>(base ? base + off : nullptr);
        stride = (cnt * 4 + 255) / 256 * 64;  // floats: each vector starts on a 256-byte boundary
        for (int64_t e = 0; e < E; ++e) vec(cnt, src ? (*src)[size_t(e)] : nullptr, 0.1f, 0.0f);
      };
      biases(L.gu_bias, L.gu_bias_stride, size_t(2 * ff), hw ? &hw->gate_up_bias : nullptr);
      biases(L.dn_bias, L.dn_bias_stride, size_t(H), hw ? &hw->down_bias : nullptr);
    }
    if (L.shared) {
      const int64_t sf = d.shared_ff;
      lin(L.sgu, H, 2 * sf, hw ? &hw->shared_gate_up : nullptr);
      lin(L.sdown, sf, H, hw ? &hw->shared_down : nullptr);
      if (L.sgated) lin(L.sgate, H, 1, hw ? &hw->shared_gate : nullptr);
    }
    return off;
  }

  // Sizes slot `si`'s arena (and staging when `staged`) for `bytes`, after its previous use is over.
  status size_slot(slot& sl, size_t bytes, bool staged) {
    if (!sl.copied) {
      RZ_CU_CALL(cudaEventCreateWithFlags(&sl.copied, cudaEventDisableTiming));
      RZ_CU_CALL(cudaEventCreateWithFlags(&sl.freed, cudaEventDisableTiming));
    }
    RZ_CU_CALL(cudaEventSynchronize(sl.copied));  // the staging buffer is no longer being read
    if (sl.arena.cap < bytes) {
      RZ_CU_CALL(cudaEventSynchronize(sl.freed));
      release(sl.arena, tr);  // one layer per slot: free the old one before the new allocation
      RAZOR_TRY(ensure(sl.arena, bytes, tr));
    }
    if (staged && sl.pinned_cap < bytes) {
      if (sl.pinned) cudaFreeHost(sl.pinned);
      sl.pinned = nullptr;
      sl.pinned_cap = 0;
      RZ_CU_CALL(cudaMallocHost(&sl.pinned, bytes));
      sl.pinned_cap = bytes;
    }
    st.weight_bytes = std::max(st.weight_bytes, bytes);
    st.staging_bytes = slots[0].pinned_cap + slots[1].pinned_cap;
    return {};
  }

  // Converts the segments into the slot's staging buffer (all cores), then copies it to the arena on the copy
  // stream after the arena's last reader is done.
  status stage(slot& sl, const std::vector<seg>& segs, size_t bytes) {
    struct piece {
      const seg* s;
      size_t first, count;
    };
    std::vector<piece> pieces;
    const size_t kPiece = size_t(1) << 22;
    for (const seg& s : segs) {
      if (!s.src && !s.src16) return make_error(errc::invalid_argument, "GPU engine: a layer tensor is missing (null pointer)");
      for (size_t f = 0; f < s.n; f += kPiece) pieces.push_back({&s, f, std::min(kPiece, s.n - f)});
    }
    char* pin = static_cast<char*>(sl.pinned);
    parallel_for(pieces.size(), [&](size_t b, size_t e) {
      for (size_t i = b; i < e; ++i) {
        const piece& pc = pieces[i];
        char* dst = pin + pc.s->off;
        if (pc.s->src16) {  // stored BF16: copied, or widened for fp32 weights
          const uint16_t* src = pc.s->src16 + pc.first;
          if (pc.s->wide)
            for (size_t j = 0; j < pc.count; ++j) reinterpret_cast<float*>(dst)[pc.first + j] = bf16_to_f32(src[j]);
          else
            std::memcpy(dst + pc.first * 2, src, pc.count * 2);
        } else if (pc.s->wide) {
          std::memcpy(dst + pc.first * 4, pc.s->src + pc.first, pc.count * 4);
        } else {
          const float* src = pc.s->src + pc.first;
          for (size_t j = 0; j < pc.count; ++j) reinterpret_cast<uint16_t*>(dst)[pc.first + j] = f32_to_bf16(src[j]);
        }
      }
    });
    RZ_CU_CALL(cudaStreamWaitEvent(copy_stream, sl.freed, 0));
    RZ_CU_CALL(cudaMemcpyAsync(sl.arena.p, sl.pinned, bytes, cudaMemcpyHostToDevice, copy_stream));
    RZ_CU_CALL(cudaEventRecord(sl.copied, copy_stream));
    return {};
  }

  status place(int si, const eng_layer* hw, bool lin_attn, bool gtd, bool shr, uint64_t seed) {
    if (si < 0 || si >= kSlots) return make_error(errc::invalid_argument, "GPU engine: weight slot out of range");
    slot& sl = slots[si];
    sl.ready = false;
    dlayer L;
    L.linear = lin_attn;
    L.gated = gtd;
    L.shared = shr;
    L.mla = d.mla;
    L.dense = hw && hw->dense;
    L.sgated = shr && (hw ? hw->shared_gate.wt || hw->shared_gate.bf16 : !d.mla);
    L.window = hw ? hw->window : 0;
    const size_t bytes = plan(L, nullptr, hw, nullptr);
    RAZOR_TRY(size_slot(sl, bytes, hw != nullptr));
    std::vector<seg> segs;
    plan(L, static_cast<char*>(sl.arena.p), hw, &segs);
    if (hw) {
      RAZOR_TRY(stage(sl, segs, bytes));
    } else {
      RZ_CU_CALL(cudaEventSynchronize(sl.freed));
      for (size_t i = 0; i < segs.size(); ++i) {
        const seg& s = segs[i];
        char* p = static_cast<char*>(sl.arena.p) + s.off;
        const uint64_t sd = seed * 1000003ULL + i;
        if (s.wide)
          k_fill<<<grid_for(s.n), 256>>>(reinterpret_cast<float*>(p), s.n, sd, s.scale, s.offset);
        else
          k_fill_bf16<<<grid_for(s.n), 256>>>(reinterpret_cast<__nv_bfloat16*>(p), s.n, sd, s.scale, s.offset);
        RZ_CU_LAUNCH("fill");
      }
      RZ_CU_CALL(cudaEventRecord(sl.copied, 0));
    }
    sl.L = L;
    sl.ready = true;
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
  if ((d.mla ? d.qk_nope + d.qk_rope : d.head_dim) > kAttnThreads * kAttnMaxDimPerThread)
    return make_error(errc::unsupported, "GPU engine: head_dim above 512");
  if (d.mla && (d.v_head_dim > d.qk_nope + d.qk_rope || int64_t(d.mla_inv_freq.size()) != d.qk_rope / 2))
    return make_error(errc::unsupported, "GPU engine: MLA needs v_head_dim <= qk_nope + qk_rope and its RoPE frequencies");
  if (!d.mla && !d.attn_inv_freq.empty() && int64_t(d.attn_inv_freq.size()) != d.rot_dims / 2)
    return make_error(errc::invalid_argument, "GPU engine: attn_inv_freq needs rot_dims / 2 frequencies");
  std::unique_ptr<gpu_engine> g(new gpu_engine());
  auto& p = *g->p_;
  p.d = d;
  p.opt = opt;
  p.bf16 = opt.weights == eng_weights::bf16;
  RZ_CU_CALL(cudaSetDevice(opt.device));
  RZ_CU_CALL(cudaFree(nullptr));
  EB(cublasCreate(&p.blas));
  EB(cublasSetMathMode(p.blas, opt.tf32 && !p.bf16 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
  RZ_CU_CALL(cudaStreamCreateWithFlags(&p.copy_stream, cudaStreamNonBlocking));
  cudaDeviceProp prop{};
  RZ_CU_CALL(cudaGetDeviceProperties(&prop, opt.device));
  p.st.device_name = prop.name;
  size_t fr = 0, tot = 0;
  RZ_CU_CALL(cudaMemGetInfo(&fr, &tot));
  p.st.device_total = tot;
  p.st.device_used_base = tot - fr;
  p.st.device_used_peak = tot - fr;
  // RoPE inverse frequencies, as engine::rope_inv_freq (double pow, stored as float); MLA's from the host.
  if (d.mla || d.rot_dims > 0) {
    std::vector<float> f(size_t(d.rot_dims / 2));
    for (int64_t i = 0; i < d.rot_dims / 2; ++i)
      f[size_t(i)] = float(1.0 / std::pow(d.rope_theta, double(2 * i) / double(d.rot_dims)));
    if (d.mla) f = d.mla_inv_freq;
    else if (!d.attn_inv_freq.empty()) f = d.attn_inv_freq;  // the CPU's (YaRN for gpt_oss)
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

status gpu_engine::upload_layer(const eng_layer& w, int slot) {
  auto& p = *p_;
  const auto& d = p.d;
  auto chk = [](const eng_linear& l, int64_t in, int64_t out, const char* what) -> status {
    if ((!l.wt && !l.bf16) || l.in != in || l.out != out)
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
  } else if (d.mla) {
    const int64_t nh = d.n_heads, qh = d.qk_nope + d.qk_rope;
    if (d.q_lora > 0) {
      RAZOR_TRY(chk(w.q_a, H, d.q_lora, "q_a_proj"));
      RAZOR_TRY(chk(w.q_b, d.q_lora, nh * qh, "q_b_proj"));
    } else {
      RAZOR_TRY(chk(w.q, H, nh * qh, "q_proj"));
    }
    RAZOR_TRY(chk(w.kv_a, H, d.kv_lora + d.qk_rope, "kv_a_proj_with_mqa"));
    RAZOR_TRY(chk(w.kv_b, d.kv_lora, nh * (d.qk_nope + d.v_head_dim), "kv_b_proj"));
    RAZOR_TRY(chk(w.o, nh * d.v_head_dim, H, "o_proj"));
  } else {
    const int64_t qd = d.n_heads * d.head_dim, kvd = d.n_kv_heads * d.head_dim;
    RAZOR_TRY(chk(w.q, H, w.gated ? 2 * qd : qd, "q_proj"));
    RAZOR_TRY(chk(w.k, H, kvd, "k_proj"));
    RAZOR_TRY(chk(w.v, H, kvd, "v_proj"));
    RAZOR_TRY(chk(w.o, qd, H, "o_proj"));
    if ((d.qk == eng_dims::qk_norm::whole || d.qkv_bias) && w.gated)
      return make_error(errc::unsupported, "GPU engine: a gated q with biases or a whole-projection QK-norm");
    if (d.gpt_oss && (!w.o_bias || !w.sinks || w.window < 0 || w.window > INT32_MAX))
      return make_error(errc::invalid_argument, "GPU engine: gpt_oss needs o_proj's bias, the sinks and a window >= 0");
  }
  if (w.dense) {
    if (!d.mla) return make_error(errc::invalid_argument, "GPU engine: a dense layer outside DeepSeek's dims");
    RAZOR_TRY(chk(w.dense_gate_up, H, 2 * d.dense_ff, "mlp gate_up"));
    RAZOR_TRY(chk(w.dense_down, d.dense_ff, H, "mlp down_proj"));
    return p.place(slot, &w, false, false, false, 0);
  }
  RAZOR_TRY(chk(w.router, H, d.n_experts, "router"));
  if (int64_t(w.gate_up.size()) != d.n_experts || int64_t(w.down.size()) != d.n_experts)
    return make_error(errc::shape_mismatch, "GPU engine: expert count differs from the dims");
  for (int64_t e = 0; e < d.n_experts; ++e) {
    RAZOR_TRY(chk(w.gate_up[size_t(e)], H, 2 * d.moe_ff, "expert gate_up"));
    RAZOR_TRY(chk(w.down[size_t(e)], d.moe_ff, H, "expert down"));
    auto as_rows = [](const eng_linear& l) { return l.rows || l.bf16; };
    if (as_rows(w.gate_up[size_t(e)]) != as_rows(w.gate_up[0]) || as_rows(w.down[size_t(e)]) != as_rows(w.gate_up[0]))
      return make_error(errc::invalid_argument, "GPU engine: the experts of a layer mix weight layouts");
  }
  if (d.gpt_oss && (!w.router_bias || int64_t(w.gate_up_bias.size()) != d.n_experts ||
                    int64_t(w.down_bias.size()) != d.n_experts))
    return make_error(errc::invalid_argument, "GPU engine: gpt_oss needs the router's bias and every expert's biases");
  const bool shr = w.shared_gate_up.wt || w.shared_gate_up.bf16;
  if (shr) {
    RAZOR_TRY(chk(w.shared_gate_up, H, 2 * d.shared_ff, "shared expert gate_up"));
    RAZOR_TRY(chk(w.shared_down, d.shared_ff, H, "shared expert down"));
    if (!d.mla) RAZOR_TRY(chk(w.shared_gate, H, 1, "shared_expert_gate"));  // DeepSeek's shared experts: ungated
  }
  return p.place(slot, &w, w.linear_attention, w.gated, shr, 0);
}

status gpu_engine::random_layer(bool linear_attention, bool gated, bool shared_expert, uint64_t seed, int slot) {
  return p_->place(slot, nullptr, linear_attention, gated, shared_expert && p_->d.shared_ff > 0, seed);
}

status gpu_engine::run_layer(int slot, eng_observations* obs) {
  auto& p = *p_;
  if (slot < 0 || slot >= kSlots || !p.slots[slot].ready)
    return make_error(errc::invalid_argument, "GPU engine: no layer in weight slot " + std::to_string(slot));
  if (p.n == 0) return {};
  auto& sl = p.slots[slot];
  const dlayer& L = sl.L;
  RZ_CU_CALL(cudaStreamWaitEvent(0, sl.copied, 0));
  RAZOR_TRY(p.begin_observing(obs));
  const size_t H = size_t(p.d.hidden), nh = p.n * H;
  RAZOR_TRY(p.rmsnorm(p.h.f(), L.in_norm, p.xn.f(), p.n, int(H)));
  RAZOR_TRY(p.observe_dense(eng_point::mixer_in, p.xn.f(), int64_t(H)));
  if (L.linear)
    RAZOR_TRY(deltanet(p, L, p.xn.f(), p.y.f()));
  else if (L.mla)
    RAZOR_TRY(mla_attention(p, L, p.xn.f(), p.y.f()));
  else
    RAZOR_TRY(attention(p, L, p.xn.f(), p.y.f()));
  k_add<<<grid_for(nh), 256>>>(p.h.f(), p.y.f(), nh);
  RZ_CU_LAUNCH("add");
  RAZOR_TRY(p.rmsnorm(p.h.f(), L.post_norm, p.xn.f(), p.n, int(H)));
  if (L.dense)
    RAZOR_TRY(dense_mlp(p, L, p.xn.f(), p.y.f()));
  else
    RAZOR_TRY(moe_block(p, L, p.xn.f(), p.y.f()));
  k_add<<<grid_for(nh), 256>>>(p.h.f(), p.y.f(), nh);
  RZ_CU_LAUNCH("add");
  RZ_CU_CALL(cudaEventRecord(sl.freed, 0));
  return p.end_observing();
}

status gpu_engine::head(const float* final_norm, const eng_linear& lm_head, size_t chunk,
                        const std::function<bool(size_t, size_t, const float*)>& fn, int slot,
                        eng_observations* obs) {
  auto& p = *p_;
  const size_t H = size_t(p.d.hidden);
  const bool has_head = lm_head.wt || lm_head.bf16;
  if (has_head && lm_head.in != int64_t(H)) return make_error(errc::shape_mismatch, "GPU engine: lm_head shape");
  if (slot < 0 || slot >= kSlots) return make_error(errc::invalid_argument, "GPU engine: weight slot out of range");
  // The head takes a weight slot like a layer: the final norm (fp32) and lm_head.
  auto& sl = p.slots[slot];
  sl.ready = false;
  const size_t V = has_head ? size_t(lm_head.out) : 0;
  const size_t norm_bytes = (H * 4 + 255) / 256 * 256;
  const size_t bytes = norm_bytes + V * H * (p.bf16 ? 2 : 4);
  RAZOR_TRY(p.size_slot(sl, bytes, true));
  std::vector<seg> segs{{0, final_norm, nullptr, H, true, 0, 0}};
  if (V) segs.push_back({norm_bytes, lm_head.wt, lm_head.bf16, V * H, !p.bf16, 0, 0});
  RAZOR_TRY(p.stage(sl, segs, bytes));
  RZ_CU_CALL(cudaStreamWaitEvent(0, sl.copied, 0));
  const float* dnorm = sl.arena.f();
  dlin hl{static_cast<char*>(sl.arena.p) + norm_bytes, int64_t(H), int64_t(V), lm_head.rows || lm_head.bf16};
  RAZOR_TRY(p.begin_observing(obs));
  RAZOR_TRY(p.rmsnorm(p.h.f(), dnorm, p.xn.f(), p.n, int(H)));
  RAZOR_TRY(p.observe_dense(eng_point::head_in, p.xn.f(), int64_t(H)));
  RAZOR_TRY(p.end_observing());
  if (!V) {  // the norm only (its input statistics)
    RZ_CU_CALL(cudaEventRecord(sl.freed, 0));
    return {};
  }
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
  RZ_CU_CALL(cudaEventRecord(sl.freed, 0));
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

}  // namespace razor::cu
