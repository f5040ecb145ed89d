// GPTQ on the GPU, batched over experts of one shape (kernels/include/kernels/gptq_cuda.h). The per-element math
// is kernels/gptq.h's (the CPU reference's copy); the CPU reference is core/quant/methods.cpp (gptq_prepare,
// gptq_quantize). Matrices of the preparation are column-major (cuBLAS's order); H and A are symmetric, so only
// L, M = L^-1 and their reading into U care. U, W, the errors and the output are row-major as on the CPU.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "common/cuda_check.cuh"
#include "kernels/gptq.h"
#include "kernels/gptq_cuda.h"
#include "util/strformat.h"

#define RZ_BLAS(call)                                                                                    \
  do {                                                                                                   \
    const cublasStatus_t rz_s_ = (call);                                                                 \
    if (rz_s_ != CUBLAS_STATUS_SUCCESS)                                                                  \
      return make_error(errc::device, std::string("cuBLAS ") + #call + ": status " + std::to_string(int(rz_s_))); \
  } while (0)

namespace razor::cu {
namespace {

constexpr int64_t kPanel = 64;  // the Cholesky's diagonal block
constexpr int kRowTile = 64;    // rows per CUDA block of the column loop (fewer when a long block would not fit)
constexpr int64_t kSmemBudget = 96 * 1024;

int grid_for(int64_t n, int threads) { return int(std::min<int64_t>((n + threads - 1) / threads, 65535 * 8)); }

// Dead columns (H_ii == 0 -> 1) and the damping, summed over A = J H J's diagonal in the CPU's order (one thread
// per expert: n additions).
__global__ void k_dead_damp(double* H, int64_t n, double damp, uint8_t* dead, int* ndead, double* add) {
  const int64_t e = blockIdx.x;
  if (threadIdx.x != 0) return;
  double* h = H + e * n * n;
  double diag = 0;
  int nd = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t c = n - 1 - i;
    double& d = h[c + c * n];
    dead[e * n + c] = d == 0 ? 1 : 0;
    if (d == 0) {
      d = 1;
      ++nd;
    }
    diag += d;
  }
  add[e] = damp * diag / double(n);
  ndead[e] = nd;
}

// A = J H J + add I (E matrices of n x n).
__global__ void k_reverse_damp(const double* H, double* A, int64_t n, int64_t E, const double* add) {
  const int64_t nn = n * n, total = E * nn;
  for (int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; k < total; k += int64_t(gridDim.x) * blockDim.x) {
    const int64_t e = k / nn, r = k % nn, i = r % n, j = r / n;
    double v = H[e * nn + (n - 1 - i) + (n - 1 - j) * n];
    if (i == j) v += add[e];
    A[k] = v;
  }
}

// Unblocked Cholesky of the diagonal block A[k0:k0+kb, k0:k0+kb] of every expert (one CUDA block each), lower,
// in place. A pivot <= 0 or not finite sets failed[e] (the factor goes on with NaNs, never read).
__global__ void k_chol_diag(double* A, int64_t n, int64_t k0, int64_t kb, int* failed) {
  double* a = A + int64_t(blockIdx.x) * n * n + k0 + k0 * n;
  __shared__ double piv;
  for (int64_t j = 0; j < kb; ++j) {
    if (threadIdx.x == 0) {
      const double s = a[j + j * n];
      if (!(s > 0) || !isfinite(s)) failed[blockIdx.x] = 1;
      piv = sqrt(s);
      a[j + j * n] = piv;
    }
    __syncthreads();
    for (int64_t i = j + 1 + threadIdx.x; i < kb; i += blockDim.x) a[i + j * n] /= piv;
    __syncthreads();
    const int64_t m = kb - j - 1;  // trailing lower triangle: (i, c) with j < c <= i
    for (int64_t t = threadIdx.x; t < m * m; t += blockDim.x) {
      const int64_t i = j + 1 + t % m, c = j + 1 + t / m;
      if (c <= i) a[i + c * n] -= a[i + j * n] * a[c + j * n];
    }
    __syncthreads();
  }
}

__global__ void k_identity(double* M, int64_t n, int64_t E) {
  const int64_t nn = n * n, total = E * nn;
  for (int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; k < total; k += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = k % nn;
    M[k] = (r % n) == (r / n) ? 1.0 : 0.0;
  }
}

// U = J M J in float, row-major, upper triangle: U[r][c] = M[n-1-r][n-1-c] (r <= c); a diagonal that is not finite
// and positive marks the expert failed (the CPU's check).
__global__ void k_make_u(const double* M, float* U, int64_t n, int64_t E, int* failed) {
  const int64_t nn = n * n, total = E * nn;
  for (int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; k < total; k += int64_t(gridDim.x) * blockDim.x) {
    const int64_t e = k / nn, rc = k % nn, r = rc / n, c = rc % n;
    float v = 0.0f;
    if (r <= c) v = float(M[e * nn + (n - 1 - r) + (n - 1 - c) * n]);
    U[k] = v;
    if (r == c && (!isfinite(v) || !(v > 0.0f))) failed[e] = 1;
  }
}

// The working copy of W with dead columns zeroed.
__global__ void k_zero_dead(float* W, const uint8_t* dead, int64_t rows, int64_t cols, int64_t E) {
  const int64_t rc = rows * cols, total = E * rc;
  for (int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; k < total; k += int64_t(gridDim.x) * blockDim.x)
    if (dead[(k / rc) * cols + k % cols]) W[k] = 0.0f;
}

// One lazy block [i1, i2) of every (expert, row tile): kernels/gptq.h's column step per row (one thread per row),
// exactly the CPU loop. The tile's block columns live in shared memory (row stride B + 1: the threads of a warp hit
// distinct banks); the block's columns of W are not read again after the block, so they are never written back.
// A group that starts in the block reads its values from shared memory and, past i2 (a group longer than the
// block), from W, which holds every earlier block's update.
__global__ void k_columns(const float* W, float* Q, const float* U, float* err, asym_params* par, int64_t rows,
                          int64_t cols, int64_t G, int64_t B, int bits, int64_t i1, int64_t i2) {
  extern __shared__ float sw[];
  const int64_t e = blockIdx.y, r0 = int64_t(blockIdx.x) * blockDim.x, nb = i2 - i1, ld = B + 1;
  const int64_t nr = rows - r0 < int64_t(blockDim.x) ? rows - r0 : int64_t(blockDim.x);
  for (int64_t k = threadIdx.x; k < nr * nb; k += blockDim.x) {
    const int64_t r = k / nb, j = k % nb;
    sw[r * ld + j] = W[(e * rows + r0 + r) * cols + i1 + j];
  }
  __syncthreads();
  if (int64_t(threadIdx.x) >= nr) return;
  const int64_t row = r0 + threadIdx.x;
  float* ws = sw + threadIdx.x * ld;  // column i of the row is ws[i - i1]
  const float* wr = W + (e * rows + row) * cols;
  float* qr = Q + (e * rows + row) * cols;
  float* er = err + (e * rows + row) * B;
  const float* Ue = U + e * cols * cols;
  asym_params p = par[e * rows + row];
  for (int64_t i = i1; i < i2; ++i) {
    if (i % G == 0) {
      if (i + G <= i2) {
        p = asym_params_of(ws + (i - i1), G, 1, bits);
      } else {  // the group runs past the block: its head here, its tail in W
        float lo = ws[i - i1], hi = lo;
        for (int64_t j = i; j < i + G; ++j) {
          const float v = j < i2 ? ws[j - i1] : wr[j];
          lo = v < lo ? v : lo;
          hi = v > hi ? v : hi;
        }
        p = asym_params_from_range(lo, hi, bits);
      }
    }
    er[i - i1] = gptq_column_step(ws, Ue + i * cols + i1, i - i1, nb, p, qr + i);
  }
  par[e * rows + row] = p;
}

template <class T>
status alloc(device_ptr<T>& d, size_t n) {
  RZ_CU(cudaMalloc(&d.p, std::max<size_t>(n, 1) * sizeof(T)), "cudaMalloc (gptq)");
  return {};
}

struct blas_handle {
  cublasHandle_t h = nullptr;
  ~blas_handle() {
    if (h) cublasDestroy(h);
  }
};

}  // namespace

status gptq_batch_host(const gptq_batch_shape& s, int64_t E, const float* const* w, const float* const* x,
                       const int64_t* ntok, float* const* out, gptq_expert_result* res) {
  const int64_t rows = s.rows, n = s.cols, G = s.group, B = s.block;
  if (E <= 0) return {};
  if (rows <= 0 || n <= 0 || G <= 0 || n % G != 0 || B <= 0 || B > n || s.bits < 1 || s.bits > 8 || !(s.damp >= 0) ||
      rows * n > (int64_t(1) << 32) || n > 65536)
    return make_error(errc::invalid_argument,
                      strformat("gptq (cuda): invalid shape %lld x %lld, group %lld, block %lld, bits %d",
                                (long long)rows, (long long)n, (long long)G, (long long)B, s.bits));
  int64_t T = 0;
  for (int64_t e = 0; e < E; ++e) {
    if (ntok[e] <= 0 || !w[e] || !x[e] || !out[e])
      return make_error(errc::invalid_argument, strformat("gptq (cuda): expert %lld has no tokens or no data",
                                                          (long long)e));
    T = std::max(T, ntok[e]);
  }
  int ndev = 0;
  if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
    cudaGetLastError();
    return make_error(errc::device, "gptq (cuda): no CUDA device");
  }
  // chunk of experts that fits 70 % of the free memory
  const size_t nn = size_t(n * n), rc = size_t(rows * n);
  const size_t per = size_t(T) * size_t(n) * 8 + 2 * nn * 8 + nn * 4 + 2 * rc * 4 + size_t(rows * B) * 4 +
                     size_t(rows) * sizeof(asym_params) + size_t(n) + 64;
  size_t fr = 0, tot = 0;
  RZ_CU_CALL(cudaMemGetInfo(&fr, &tot));
  const int64_t C = std::max<int64_t>(1, std::min<int64_t>({E, int64_t(65535), int64_t(double(fr) * 0.7 / double(per))}));

  // the column loop's row tile and shared memory
  const int64_t tile = std::max<int64_t>(1, std::min<int64_t>(kRowTile, kSmemBudget / ((B + 1) * 4)));
  const int64_t smem = tile * (B + 1) * 4;
  if (smem > kSmemBudget)
    return make_error(errc::invalid_argument, strformat("gptq (cuda): lazy block %lld is too long", (long long)B));
  if (smem > 48 * 1024)
    RZ_CU_CALL(cudaFuncSetAttribute(k_columns, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));

  blas_handle bh;
  RZ_BLAS(cublasCreate(&bh.h));
  RZ_BLAS(cublasSetMathMode(bh.h, CUBLAS_DEFAULT_MATH));
  device_ptr<double> dX, dH, dA, dAdd;
  device_ptr<float> dU, dW, dQ, dErr;
  device_ptr<asym_params> dPar;
  device_ptr<uint8_t> dDead;
  device_ptr<int> dNdead, dFail;
  device_ptr<double*> dPtrL, dPtrB;
  RAZOR_TRY(alloc(dX, size_t(C * T * n)));
  RAZOR_TRY(alloc(dH, size_t(C) * nn));
  RAZOR_TRY(alloc(dA, size_t(C) * nn));
  RAZOR_TRY(alloc(dAdd, size_t(C)));
  RAZOR_TRY(alloc(dU, size_t(C) * nn));
  RAZOR_TRY(alloc(dW, size_t(C) * rc));
  RAZOR_TRY(alloc(dQ, size_t(C) * rc));
  RAZOR_TRY(alloc(dErr, size_t(C * rows * B)));
  RAZOR_TRY(alloc(dPar, size_t(C * rows)));
  RAZOR_TRY(alloc(dDead, size_t(C * n)));
  RAZOR_TRY(alloc(dNdead, size_t(C)));
  RAZOR_TRY(alloc(dFail, size_t(C)));
  const int64_t npan = (n + kPanel - 1) / kPanel;
  RAZOR_TRY(alloc(dPtrL, size_t(npan * C)));
  RAZOR_TRY(alloc(dPtrB, size_t(npan * C)));

  std::vector<double> xd(size_t(T * n));  // one expert's tokens as double, zero-padded to T
  std::vector<int> fail(static_cast<size_t>(C)), ndead(static_cast<size_t>(C));
  std::vector<double*> pl(size_t(npan * C)), pb(size_t(npan * C));
  const double one = 1.0, zero = 0.0, mone = -1.0;
  const float onef = 1.0f, monef = -1.0f;
  constexpr int kThreads = 256;

  for (int64_t e0 = 0; e0 < E; e0 += C) {
    const int64_t c = std::min(C, E - e0);
    // tokens as double, zero-padded to T (X row-major [T x n] is X^T column-major, leading dimension n)
    for (int64_t e = 0; e < c; ++e) {
      const float* xe = x[e0 + e];
      const int64_t m = ntok[e0 + e] * n;
      for (int64_t k = 0; k < T * n; ++k) xd[size_t(k)] = k < m ? double(xe[k]) : 0.0;
      RZ_CU_CALL(cudaMemcpy(dX.p + e * T * n, xd.data(), size_t(T * n) * 8, cudaMemcpyHostToDevice));
    }
    for (int64_t e = 0; e < c; ++e)
      RZ_CU_CALL(cudaMemcpy(dW.p + e * rc, w[e0 + e], rc * 4, cudaMemcpyHostToDevice));
    RZ_CU_CALL(cudaMemset(dFail.p, 0, size_t(c) * sizeof(int)));
    // H = X^T X (column-major: Xc Xc^T with Xc = X^T [n x T])
    RZ_BLAS(cublasDgemmStridedBatched(bh.h, CUBLAS_OP_N, CUBLAS_OP_T, int(n), int(n), int(T), &one, dX.p, int(n),
                                      T * n, dX.p, int(n), T * n, &zero, dH.p, int(n), int64_t(nn), int(c)));
    k_dead_damp<<<int(c), 32>>>(dH.p, n, s.damp, dDead.p, dNdead.p, dAdd.p);
    RZ_CU_LAUNCH("k_dead_damp");
    k_reverse_damp<<<grid_for(c * int64_t(nn), kThreads), kThreads>>>(dH.p, dA.p, n, c, dAdd.p);
    RZ_CU_LAUNCH("k_reverse_damp");
    // blocked Cholesky A = L L^T (lower, column-major), all experts at once
    for (int64_t p = 0; p < npan; ++p)
      for (int64_t e = 0; e < c; ++e) {
        const int64_t k0 = p * kPanel, kb = std::min(kPanel, n - k0);
        pl[size_t(p * C + e)] = dA.p + e * int64_t(nn) + k0 + k0 * n;
        pb[size_t(p * C + e)] = dA.p + e * int64_t(nn) + (k0 + kb) + k0 * n;
      }
    RZ_CU_CALL(cudaMemcpy(dPtrL.p, pl.data(), pl.size() * sizeof(double*), cudaMemcpyHostToDevice));
    RZ_CU_CALL(cudaMemcpy(dPtrB.p, pb.data(), pb.size() * sizeof(double*), cudaMemcpyHostToDevice));
    for (int64_t p = 0; p < npan; ++p) {
      const int64_t k0 = p * kPanel, kb = std::min(kPanel, n - k0), m = n - k0 - kb;
      k_chol_diag<<<int(c), 256>>>(dA.p, n, k0, kb, dFail.p);
      RZ_CU_LAUNCH("k_chol_diag");
      if (m == 0) break;
      // the panel below: A21 = A21 L11^-T
      RZ_BLAS(cublasDtrsmBatched(bh.h, CUBLAS_SIDE_RIGHT, CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_T, CUBLAS_DIAG_NON_UNIT,
                                 int(m), int(kb), &one, dPtrL.p + p * C, int(n), dPtrB.p + p * C, int(n), int(c)));
      // the trailing matrix: A22 -= A21 A21^T (both triangles; the upper one is never read)
      double* a21 = dA.p + (k0 + kb) + k0 * n;
      double* a22 = dA.p + (k0 + kb) + (k0 + kb) * n;
      RZ_BLAS(cublasDgemmStridedBatched(bh.h, CUBLAS_OP_N, CUBLAS_OP_T, int(m), int(m), int(kb), &mone, a21, int(n),
                                        int64_t(nn), a21, int(n), int64_t(nn), &one, a22, int(n), int64_t(nn),
                                        int(c)));
    }
    // M = L^-1 (solve L M = I in H's buffer), then U = J M J
    k_identity<<<grid_for(c * int64_t(nn), kThreads), kThreads>>>(dH.p, n, c);
    RZ_CU_LAUNCH("k_identity");
    // (one call per expert: cuBLAS's batched TRSM is meant for small matrices, this one is n x n with n right sides)
    for (int64_t e = 0; e < c; ++e)
      RZ_BLAS(cublasDtrsm(bh.h, CUBLAS_SIDE_LEFT, CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_N, CUBLAS_DIAG_NON_UNIT, int(n),
                          int(n), &one, dA.p + e * int64_t(nn), int(n), dH.p + e * int64_t(nn), int(n)));
    k_make_u<<<grid_for(c * int64_t(nn), kThreads), kThreads>>>(dH.p, dU.p, n, c, dFail.p);
    RZ_CU_LAUNCH("k_make_u");
    // the column loop
    k_zero_dead<<<grid_for(c * int64_t(rc), kThreads), kThreads>>>(dW.p, dDead.p, rows, n, c);
    RZ_CU_LAUNCH("k_zero_dead");
    const dim3 grid(unsigned((rows + tile - 1) / tile), unsigned(c));
    for (int64_t i1 = 0, i2 = 0; i1 < n; i1 = i2) {
      i2 = gptq_block_end(i1, B, G, n);
      k_columns<<<grid, unsigned(tile), size_t(smem)>>>(dW.p, dQ.p, dU.p, dErr.p, dPar.p, rows, n, G, B, s.bits, i1,
                                                        i2);
      RZ_CU_LAUNCH("k_columns");
      if (i2 == n) continue;
      // W[:, i2:] -= Err U[i1:i2, i2:] (row-major; column-major: W'^T += -U'^T Err'^T)
      RZ_BLAS(cublasSgemmStridedBatched(bh.h, CUBLAS_OP_N, CUBLAS_OP_N, int(n - i2), int(rows), int(i2 - i1), &monef,
                                        dU.p + i1 * n + i2, int(n), int64_t(nn), dErr.p, int(B), rows * B, &onef,
                                        dW.p + i2, int(n), int64_t(rc), int(c)));
    }
    RZ_CU_CALL(cudaMemcpy(fail.data(), dFail.p, size_t(c) * sizeof(int), cudaMemcpyDeviceToHost));
    RZ_CU_CALL(cudaMemcpy(ndead.data(), dNdead.p, size_t(c) * sizeof(int), cudaMemcpyDeviceToHost));
    for (int64_t e = 0; e < c; ++e) {
      if (res) res[e0 + e] = gptq_expert_result{fail[size_t(e)] != 0, ndead[size_t(e)]};
      if (!fail[size_t(e)]) RZ_CU_CALL(cudaMemcpy(out[e0 + e], dQ.p + e * rc, rc * 4, cudaMemcpyDeviceToHost));
    }
  }
  return {};
}

}  // namespace razor::cu
