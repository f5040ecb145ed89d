// Internal to kernels/engine/: the device side of the GPU forward pass (kernels/include/kernels/engine_cuda.h),
// included by engine.cu alone: RMSNorm, q/k norm + RoPE, attention (with gpt-oss's sinks and window), the DeltaNet
// kernels, the router (kernels/moe_routing.h), the expert gather / combine and gpt-oss's clamped SwiGLU. Each
// follows its CPU reference in core/engine/model_runner.cpp.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "common/reduce.cuh"
#include "kernels/gpt_oss_swiglu.h"
#include "kernels/moe_routing.h"

namespace razor::cu::eng {

__device__ __forceinline__ float d_silu(float x) { return x / (1.0f + expf(-x)); }
__device__ __forceinline__ float d_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }
__device__ __forceinline__ float d_softplus(float x) { return x > 20.0f ? x : log1pf(expf(x)); }

// ---- kernels -----------------------------------------------------------------------------------

// out = x / sqrt(mean(x^2) + eps) * w per row of dim (block per row; rows ldx / ldo floats apart). out may equal x.
__global__ void k_rmsnorm(const float* x, size_t ldx, const float* w, float* out, size_t ldo, int dim, float eps) {
  const float* a = x + size_t(blockIdx.x) * ldx;
  float* o = out + size_t(blockIdx.x) * ldo;
  float ss = 0.0f;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) ss += a[i] * a[i];
  ss = block_sum(ss);
  const float inv = 1.0f / sqrtf(ss / float(dim) + eps);
  for (int i = threadIdx.x; i < dim; i += blockDim.x) o[i] = a[i] * inv * w[i];
}

__global__ void k_add(float* h, const float* y, size_t n) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) h[i] += y[i];
}

// Per (token, head): q heads (blockIdx.y < nh) read qraw (row stride qw, head stride hd or 2 hd when gated),
// get q_norm (per_head_norm set) and RoPE and go to q; the gate half goes to gate. k heads are normed and
// rotated in place.
__global__ void k_qk_prep(const float* qraw, float* q, float* gate, float* k, const float* q_norm,
                          const float* k_norm, const float* inv_freq, const int* tok_pos, int nh, int nkv, int hd,
                          int rot, int gated, int per_head_norm, float eps) {
  extern __shared__ float sv[];
  const size_t t = blockIdx.x;
  const int hh = blockIdx.y;
  const int qw = nh * hd * (gated ? 2 : 1), qd = nh * hd, kvd = nkv * hd;
  const float* src;
  float* dst;
  const float* w;
  if (hh < nh) {
    src = qraw + t * qw + size_t(hh) * hd * (gated ? 2 : 1);
    dst = q + t * qd + size_t(hh) * hd;
    w = q_norm;
    if (gated)
      for (int c = threadIdx.x; c < hd; c += blockDim.x) gate[t * qd + size_t(hh) * hd + c] = src[hd + c];
  } else {
    src = dst = k + t * kvd + size_t(hh - nh) * hd;
    w = k_norm;
  }
  float ss = 0.0f;
  for (int c = threadIdx.x; c < hd; c += blockDim.x) {
    float v = src[c];
    sv[c] = v;
    ss += v * v;
  }
  ss = block_sum(ss);  // (has barriers: sv is complete after it)
  const float inv = 1.0f / sqrtf(ss / float(hd) + eps);
  if (per_head_norm)
    for (int c = threadIdx.x; c < hd; c += blockDim.x) sv[c] = sv[c] * inv * w[c];
  __syncthreads();
  const float pos = float(tok_pos[t]);
  const int half = rot / 2;
  for (int c = threadIdx.x; c < hd; c += blockDim.x) {
    float r = sv[c];
    if (c < half) {
      float ang = pos * inv_freq[c];
      r = sv[c] * cosf(ang) - sv[c + half] * sinf(ang);
    } else if (c < rot) {
      float ang = pos * inv_freq[c - half];
      r = sv[c] * cosf(ang) + sv[c - half] * sinf(ang);
    }
    dst[c] = r;
  }
}

// Causal softmax attention, one block per (query token, head), keys in chunks of kChunk with an online
// softmax; GQA: head h reads kv head h / (nh / nkv). Output times sigmoid(gate) when gate is not null.
// gpt_oss: sinks [nh] (not null) puts a logit per head into the denominator (and the max): the running max
// starts at it and the running sum at exp(0) = 1; window > 0 restricts query i to the keys j with i - j < window.
constexpr int kAttnThreads = 128;
constexpr int kAttnChunk = 1024;
constexpr int kAttnMaxDimPerThread = 4;  // head_dim <= 512
__global__ void __launch_bounds__(kAttnThreads) k_attention(const float* q, const float* k, const float* v,
                                                            const float* gate, float* out, const int* tok_pos,
                                                            int nh, int nkv, int hd, float scale,
                                                            const float* sinks = nullptr, int window = 0) {
  extern __shared__ float sm[];
  float* sq = sm;        // [hd]
  float* sc = sm + hd;   // [kAttnChunk]
  const size_t i = blockIdx.x;
  const int h = blockIdx.y, hk = h / (nh / nkv);
  const int qd = nh * hd, kvd = nkv * hd;
  const size_t t0 = window > 0 && tok_pos[i] >= window ? i + 1 - size_t(window) : i - size_t(tok_pos[i]);
  for (int c = threadIdx.x; c < hd; c += blockDim.x) sq[c] = q[i * qd + size_t(h) * hd + c];
  __syncthreads();
  const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
  float m = sinks ? sinks[h] : -INFINITY, l = sinks ? 1.0f : 0.0f;
  float acc[kAttnMaxDimPerThread];
#pragma unroll
  for (int r = 0; r < kAttnMaxDimPerThread; ++r) acc[r] = 0.0f;
  for (size_t j0 = t0; j0 <= i; j0 += kAttnChunk) {
    const int cnt = int(min(size_t(kAttnChunk), i - j0 + 1));
    for (int jj = wid; jj < cnt; jj += nw) {
      const float* kj = k + (j0 + jj) * kvd + size_t(hk) * hd;
      float s = 0.0f;
      for (int c = lane; c < hd; c += 32) s += sq[c] * kj[c];
      s = warp_sum(s);
      if (lane == 0) sc[jj] = s * scale;
    }
    __syncthreads();
    float cm = -INFINITY;
    for (int jj = threadIdx.x; jj < cnt; jj += blockDim.x) cm = fmaxf(cm, sc[jj]);
    cm = block_max(cm);
    const float nm = fmaxf(m, cm);
    const float corr = expf(m - nm);  // 0 on the first chunk
    float ls = 0.0f;
    for (int jj = threadIdx.x; jj < cnt; jj += blockDim.x) {
      float p = expf(sc[jj] - nm);
      sc[jj] = p;
      ls += p;
    }
    ls = block_sum(ls);  // barriers: sc holds p for every thread after this
    l = l * corr + ls;
#pragma unroll
    for (int r = 0; r < kAttnMaxDimPerThread; ++r) {
      const int c = threadIdx.x + r * blockDim.x;
      if (c >= hd) break;
      float a = acc[r] * corr;
      const float* vj = v + j0 * kvd + size_t(hk) * hd + c;
      for (int jj = 0; jj < cnt; ++jj) a += sc[jj] * vj[size_t(jj) * kvd];
      acc[r] = a;
    }
    m = nm;
    __syncthreads();
  }
  const float inv = 1.0f / l;
#pragma unroll
  for (int r = 0; r < kAttnMaxDimPerThread; ++r) {
    const int c = threadIdx.x + r * blockDim.x;
    if (c >= hd) break;
    float o = acc[r] * inv;
    const size_t idx = i * qd + size_t(h) * hd + c;
    if (gate) o *= d_sigmoid(gate[idx]);
    out[idx] = o;
  }
}

// Causal depthwise conv1d (kernel K, zero history at each sequence start) + SiLU, thread per (token, channel).
__global__ void k_conv_silu(const float* x, const float* w, float* out, const int* tok_pos, size_t n, int ch, int K) {
  for (size_t idx = blockIdx.x * size_t(blockDim.x) + threadIdx.x; idx < n * size_t(ch);
       idx += size_t(gridDim.x) * blockDim.x) {
    const size_t t = idx / size_t(ch);
    const int c = int(idx % size_t(ch));
    const long long first = (long long)t - tok_pos[t];
    float s = 0.0f;
    for (int j = 0; j < K; ++j) {
      long long src = (long long)t - (K - 1) + j;
      if (src < first) continue;
      s += w[size_t(c) * K + j] * x[size_t(src) * ch + c];
    }
    out[idx] = d_silu(s);
  }
}

// L2 norm per key head of q and k (x / sqrt(sum x^2 + 1e-6)), q also scaled by 1/sqrt(dk). Block per (token, head).
__global__ void k_l2norm_qk(float* conv, int ch, int nk, int dk, float qscale) {
  float* v = conv + size_t(blockIdx.x) * ch + size_t(blockIdx.y) * dk;
  float ss = 0.0f;
  for (int i = threadIdx.x; i < dk; i += blockDim.x) ss += v[i] * v[i];
  ss = block_sum(ss);
  float inv = 1.0f / sqrtf(ss + 1e-6f);
  if (int(blockIdx.y) < nk) inv *= qscale;
  for (int i = threadIdx.x; i < dk; i += blockDim.x) v[i] *= inv;
}

// Gated delta rule, one block per (sequence, value head); state S [dk][dv] in shared memory, each thread owns
// columns j of S (no races on S), q and k of the current token staged in shared memory.
__global__ void k_delta_rule(const float* conv, const float* bb, const float* aa, const float* a_log,
                             const float* dt_bias, const long long* seq_start, float* core, int ch, int nk, int nv,
                             int dk, int dv) {
  extern __shared__ float sm[];
  float* S = sm;               // [dk][dv]
  float* sq = sm + size_t(dk) * dv;  // [dk]
  float* sk = sq + dk;         // [dk]
  const int s = blockIdx.x, h = blockIdx.y, hk = h / (nv / nk);
  const size_t kd = size_t(nk) * dk, vd = size_t(nv) * dv;
  for (int i = threadIdx.x; i < dk * dv; i += blockDim.x) S[i] = 0.0f;
  const float A = -expf(a_log[h]);
  const float dtb = dt_bias[h];
  for (long long t = seq_start[s]; t < seq_start[s + 1]; ++t) {
    const float* row = conv + size_t(t) * ch;
    __syncthreads();  // previous token's readers of sq/sk are done
    for (int i = threadIdx.x; i < dk; i += blockDim.x) {
      sq[i] = row[size_t(hk) * dk + i];
      sk[i] = row[kd + size_t(hk) * dk + i];
    }
    __syncthreads();
    const float beta = d_sigmoid(bb[size_t(t) * nv + h]);
    const float g = A * d_softplus(aa[size_t(t) * nv + h] + dtb);
    const float decay = expf(g);
    const float* vt = row + 2 * kd + size_t(h) * dv;
    float* o = core + size_t(t) * vd + size_t(h) * dv;
    for (int j = threadIdx.x; j < dv; j += blockDim.x) {
      float kv = 0.0f;
      for (int i = 0; i < dk; ++i) {
        float sij = S[i * dv + j] * decay;
        S[i * dv + j] = sij;
        kv += sij * sk[i];
      }
      const float delta = (vt[j] - kv) * beta;
      float acc = 0.0f;
      for (int i = 0; i < dk; ++i) {
        float sij = S[i * dv + j] + sk[i] * delta;
        S[i * dv + j] = sij;
        acc += sij * sq[i];
      }
      o[j] = acc;
    }
  }
}

// Gated RMSNorm per (token, value head) row of dv: rms(o) * w * silu(z), in place. Block per row.
__global__ void k_gated_norm(float* core, const float* z, const float* w, int dv, float eps) {
  float* o = core + size_t(blockIdx.x) * dv;
  const float* zz = z + size_t(blockIdx.x) * dv;
  float ss = 0.0f;
  for (int i = threadIdx.x; i < dv; i += blockDim.x) ss += o[i] * o[i];
  ss = block_sum(ss);
  const float inv = 1.0f / sqrtf(ss / float(dv) + eps);
  for (int i = threadIdx.x; i < dv; i += blockDim.x) o[i] = o[i] * inv * w[i] * d_silu(zz[i]);
}

// The router of each token (kernels/moe_routing.h, the CPU's function): block per token, its first thread
// routes with route_scratch_floats(r) floats of shared memory.
__global__ void k_route(const float* logits, const float* bias, moe_route r, int* ids, float* wts) {
  extern __shared__ float scratch[];
  if (threadIdx.x != 0) return;
  const size_t t = blockIdx.x;
  route_token(r, logits + t * size_t(r.n_experts), bias, scratch, ids + t * size_t(r.top_k), wts + t * size_t(r.top_k));
}

// x[r, c] += bias[c] over rows x cols.
__global__ void k_add_bias(float* x, const float* bias, size_t rows, int cols) {
  const size_t total = rows * size_t(cols);
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < total; i += size_t(gridDim.x) * blockDim.x)
    x[i] += bias[i % size_t(cols)];
}

// xe[s] = x[slot_tok[s]] (rows of H).
__global__ void k_gather(const float* x, const int* slot_tok, float* xe, size_t n_slots, int H) {
  const size_t total = n_slots * size_t(H);
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < total; i += size_t(gridDim.x) * blockDim.x) {
    size_t s = i / size_t(H);
    int c = int(i % size_t(H));
    xe[i] = x[size_t(slot_tok[s]) * H + c];
  }
}

// act[r, j] = silu(hu[r, j]) * hu[r, ff + j].
__global__ void k_silu_mul(const float* hu, float* act, size_t rows, int ff) {
  const size_t total = rows * size_t(ff);
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < total; i += size_t(gridDim.x) * blockDim.x) {
    size_t r = i / size_t(ff);
    int j = int(i % size_t(ff));
    act[i] = d_silu(hu[r * 2 * ff + j]) * hu[r * 2 * ff + ff + j];
  }
}

// gpt-oss: act[r, j] = gpt_oss_swiglu(hu[r, j] + b[j], hu[r, ff + j] + b[ff + j], limit) over rows of one
// expert (b its [gate | up] bias; kernels/gpt_oss_swiglu.h, the CPU's function).
__global__ void k_swiglu_oss(const float* hu, const float* b, float* act, size_t rows, int ff, float limit) {
  const size_t total = rows * size_t(ff);
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < total; i += size_t(gridDim.x) * blockDim.x) {
    size_t r = i / size_t(ff);
    int j = int(i % size_t(ff));
    act[i] = gpt_oss_swiglu(hu[r * 2 * ff + j] + b[j], hu[r * 2 * ff + ff + j] + b[ff + j], limit);
  }
}

// y[t] = sum over the token's experts in ascending expert id (the CPU's order) of w * eo[slot]
//        (+ sigmoid(sg[t]) * sout[t] for the shared expert; sg null: ungated, DeepSeek). Block per token.
__global__ void k_combine(const int* ids, const float* wts, const int* pos, const float* eo, const float* sg,
                          const float* sout, float* y, int K, int H) {
  __shared__ int order_slot[64];
  __shared__ float order_w[64];
  const size_t t = blockIdx.x;
  if (threadIdx.x == 0) {
    bool used[64] = {};
    for (int r = 0; r < K; ++r) {
      int best = -1;
      for (int k = 0; k < K; ++k)
        if (!used[k] && (best < 0 || ids[t * K + k] < ids[t * K + best])) best = k;
      used[best] = true;
      order_slot[r] = pos[t * K + best];
      order_w[r] = wts[t * K + best];
    }
  }
  __syncthreads();
  const float gs = sg ? d_sigmoid(sg[t]) : 1.0f;
  for (int c = threadIdx.x; c < H; c += blockDim.x) {
    float acc = 0.0f;
    for (int r = 0; r < K; ++r) acc += order_w[r] * eo[size_t(order_slot[r]) * H + c];
    if (sout) acc += gs * sout[t * H + c];
    y[t * H + c] = acc;
  }
}

// Random fill for the benchmark: offset + scale * u, u uniform in [-1, 1) from a counter hash.
__device__ __forceinline__ uint32_t hash32(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return uint32_t(x);
}
__global__ void k_fill(float* p, size_t n, uint64_t seed, float scale, float offset) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
    float u = float(hash32(seed * 0x9e3779b97f4a7c15ULL + i) >> 8) * (1.0f / 8388608.0f) - 1.0f;
    p[i] = offset + scale * u;
  }
}

__global__ void k_fill_bf16(__nv_bfloat16* p, size_t n, uint64_t seed, float scale, float offset) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
    float u = float(hash32(seed * 0x9e3779b97f4a7c15ULL + i) >> 8) * (1.0f / 8388608.0f) - 1.0f;
    p[i] = __float2bfloat16_rn(offset + scale * u);
  }
}

// xb[r, c] = bf16(x[r * ldx + c]) for r < rows, c < cols (the input of a BF16 GEMM; round to nearest even).
__global__ void k_to_bf16(const float* x, size_t ldx, __nv_bfloat16* xb, size_t rows, int cols) {
  const size_t total = rows * size_t(cols);
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < total; i += size_t(gridDim.x) * blockDim.x)
    xb[i] = __float2bfloat16_rn(x[(i / size_t(cols)) * ldx + i % size_t(cols)]);
}

// norm[t] = ||x[t]||_2 over `dim` (block per row).
__global__ void k_rownorm(const float* x, float* norm, int dim) {
  const float* a = x + size_t(blockIdx.x) * dim;
  float ss = 0.0f;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) ss += a[i] * a[i];
  ss = block_sum(ss);
  if (threadIdx.x == 0) norm[blockIdx.x] = sqrtf(ss);
}

// Per-column sums of squares and of values over row segments: segment m is rows [off[m], off[m + 1]) of x
// (rows `ld` floats apart), its sums go to sq[m * cols + c] / su[m * cols + c] (added, in double). Block
// (column tile, segment m = blockIdx.y / chunks, row chunk = blockIdx.y % chunks of `chunk_rows` rows).
__global__ void k_colsums(const float* x, size_t ld, const long long* off, int cols, int chunks, int chunk_rows,
                          double* sq, double* su) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  const int m = blockIdx.y / chunks, ch = blockIdx.y % chunks;
  const long long r0 = off[m] + (long long)ch * chunk_rows, r1 = min(off[m + 1], r0 + chunk_rows);
  if (c >= cols || r0 >= r1) return;
  double a = 0.0, b = 0.0;
  for (long long r = r0; r < r1; ++r) {
    const double v = x[size_t(r) * ld + c];
    a += v * v;
    b += v;
  }
  atomicAdd(sq + size_t(m) * cols + c, a);
  atomicAdd(su + size_t(m) * cols + c, b);
}

inline unsigned grid_for(size_t n, unsigned threads = 256) {
  size_t g = (n + threads - 1) / threads;
  return unsigned(std::min<size_t>(std::max<size_t>(g, 1), 65535u * 16));
}

}  // namespace razor::cu::eng
