// Block and warp reductions shared by the kernels: float sums and maxima over a warp or a whole block.
#pragma once
#include <cuda_runtime.h>

#include <cmath>

namespace razor::cu {

struct op_sum {
  __device__ float operator()(float a, float b) const { return a + b; }
  static constexpr float identity = 0.0f;
};
struct op_max {
  __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
  static constexpr float identity = -INFINITY;
};

// Butterfly over the 32 lanes: every lane gets op over the warp.
template <class Op>
__device__ __forceinline__ float warp_reduce(float v, Op op) {
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
// Every thread of the block must call; every thread gets the result.
template <class Op>
__device__ __forceinline__ float block_reduce(float v, Op op) {
  __shared__ float sh[32];
  v = warp_reduce(v, op);
  const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
  __syncthreads();
  if (lane == 0) sh[wid] = v;
  __syncthreads();
  v = lane < nw ? sh[lane] : Op::identity;
  return warp_reduce(v, op);
}

__device__ __forceinline__ float warp_sum(float v) { return warp_reduce(v, op_sum{}); }
__device__ __forceinline__ float warp_max(float v) { return warp_reduce(v, op_max{}); }
__device__ __forceinline__ float block_sum(float v) { return block_reduce(v, op_sum{}); }
__device__ __forceinline__ float block_max(float v) { return block_reduce(v, op_max{}); }

}  // namespace razor::cu
