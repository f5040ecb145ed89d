// q8_0 on the GPU: core/ggml/quants_32.cpp quantize_row_q8_0, one thread per block of 32 (weights ignored,
// as in ggml). Arguments and loading helpers: pack.cuh.
#include "pack.cuh"

namespace razor::cu::gq {
namespace {

// q8_0: quants_32.cpp quantize_row_q8_0, one thread per block of 32 (weights ignored, as in ggml)
template <class In>
__global__ void __launch_bounds__(kThreads) k_q8_0(const kargs a) {
  const long long b = (long long)blockIdx.x * kThreads + threadIdx.x;
  if (b >= a.nsb_total) return;
  float x[32];
  const long long e0 = b * 32;
  load_floats<In>(a, e0, x);
  float amax = 0.0f;
#pragma unroll
  for (int j = 0; j < 32; ++j) amax = max_of(amax, fabsf(x[j]));
  const float d = amax / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  uint8_t* out = a.dst + b * block_bytes<type::q8_0>;
  put_half(out, f32_to_fp16(d));
#pragma unroll
  for (int j = 0; j < 32; ++j) out[2 + j] = uint8_t(int8_t(int(roundf(x[j] * id))));
}

}  // namespace

cudaError_t launch_q8_0(type t, gq_src src, const kargs& a, cudaStream_t st) {
  if (t != type::q8_0) return cudaErrorInvalidValue;
  const unsigned grid = unsigned((a.nsb_total + kThreads - 1) / kThreads);
  if (src == gq_src::bf16)
    k_q8_0<uint16_t><<<grid, kThreads, 0, st>>>(a);
  else
    k_q8_0<float><<<grid, kThreads, 0, st>>>(a);
  return cudaGetLastError();
}

}  // namespace razor::cu::gq
