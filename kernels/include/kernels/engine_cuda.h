// Host-only view of the GPU forward pass of the reference engine (no cuda_runtime.h here).
//
// One decoder layer at a time, the same math as core/engine/model_runner.cpp (the CPU reference, the ground
// truth): cuBLAS float32 GEMMs (cublasSgemm, fp32 accumulate; TF32 tensor cores only when asked) for every
// projection -- attention q/k/v/o, DeltaNet in_proj_{qkv,z,b,a}/out_proj, router, shared expert, and the routed
// experts grouped by expert (gather the token-slots routed to each expert, GEMM, weighted combine per token) --
// and own kernels for the rest: RMSNorm, per-head q/k norm + NeoX RoPE (partial rotary), causal softmax
// attention with GQA and Qwen3.5's sigmoid output gate, the causal depthwise conv1d + SiLU, per-head L2 norm,
// the gated delta rule recurrence (one block per (sequence, value head), state dk x dv in shared memory, tokens
// in order), the gated RMSNorm, top-k softmax routing.
//
// Layer streaming: the engine keeps the hidden states [n, hidden] on the device for the whole batch and one
// layer's weights resident (upload_layer replaces the previous layer in one grow-only arena). Weights come in
// the CPU engine's converted form: linear maps transposed ([in][out] row-major, eng_linear), norms with the
// Qwen3.5 "+1" already folded in (load_layer does that), so the caller passes layer_weights' buffers as they are.
//
// In a build without CUDA every entry returns errc::device "built without CUDA" (kernels/no_cuda.cpp).
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "util/status.h"

namespace razor::cu {

// The dimensions the layer kernels need (a copy of engine::model_dims' fields; kernels/ does not link the engine).
struct eng_dims {
  int64_t hidden = 0;
  int64_t n_heads = 0, n_kv_heads = 0, head_dim = 0, rot_dims = 0;
  double eps = 1e-6, rope_theta = 10000.0;
  int64_t n_experts = 0, top_k = 0, moe_ff = 0, shared_ff = 0;
  bool norm_topk = true;
  int64_t lin_k_heads = 0, lin_v_heads = 0, lin_k_dim = 0, lin_v_dim = 0, conv_kernel = 4;
};

// y = W x with wt = W^T stored [in][out] row-major (engine::linear's layout). wt null: absent.
struct eng_linear {
  const float* wt = nullptr;
  int64_t in = 0, out = 0;
};

// One layer's host weights (pointers stay owned by the caller; read during upload_layer only).
struct eng_layer {
  bool linear_attention = false;
  const float* in_norm = nullptr;    // [hidden], as applied
  const float* post_norm = nullptr;  // [hidden], as applied
  // full attention (q rows per head are [q | gate] when gated)
  bool gated = false;
  eng_linear q, k, v, o;
  const float* q_norm = nullptr;  // [head_dim]
  const float* k_norm = nullptr;
  // Gated DeltaNet
  eng_linear qkv, z, b, a, out;
  const float* conv = nullptr;     // [channels][kernel]
  const float* a_log = nullptr;    // [v_heads]
  const float* dt_bias = nullptr;  // [v_heads]
  const float* dn_norm = nullptr;  // [v_dim], plain multiplier
  // MoE: router [hidden -> experts]; per expert gate_up [hidden -> 2 ff] (= [gate | up]) and down [ff -> hidden]
  eng_linear router;
  std::vector<eng_linear> gate_up, down;
  eng_linear shared_gate_up, shared_down, shared_gate;  // wt null when the model has no shared expert
};

struct eng_options {
  int device = 0;
  bool tf32 = false;  // cuBLAS TF32 tensor-core math for the GEMMs (not the reference: ~1e-3 relative)
};

struct eng_stats {
  size_t weight_bytes = 0;        // the resident layer's weights (arena size)
  size_t tracked_peak_bytes = 0;  // peak of everything this engine cudaMalloc'ed (weights + activations + scratch)
  size_t device_used_peak = 0;    // peak of (total - free) from cudaMemGetInfo, sampled at each layer's high point
  size_t device_used_base = 0;    // (total - free) right after the context and cuBLAS handle were created
  size_t device_total = 0;
  std::string device_name;
};

class gpu_engine {
 public:
  static result<std::unique_ptr<gpu_engine>> create(const eng_dims& d, const eng_options& opt = {});
  ~gpu_engine();
  gpu_engine(const gpu_engine&) = delete;
  gpu_engine& operator=(const gpu_engine&) = delete;

  // The batch: hidden states [n, hidden] (host floats); sequences are rows [seq_start[i], seq_start[i+1]),
  // positions restart at 0 in each (seq_start.back() == n).
  status set_hidden(const float* h, const std::vector<size_t>& seq_start);
  status get_hidden(float* h);  // [n, hidden] back to the host

  // Replaces the resident layer with `w` (host -> device copies; checks the shapes against the dims).
  status upload_layer(const eng_layer& w);
  // Benchmark: a layer of the dims' shapes filled on the device with random values (no host data).
  status random_layer(bool linear_attention, bool gated, bool shared_expert, uint64_t seed);

  // h += mixer(rms(h) * in_norm); h += moe(rms(h) * post_norm), on the resident layer.
  status run_layer();

  // Final norm (as applied, [hidden]) and head; logits [c, vocab] for tokens [t0, t0 + c) go to `fn` in
  // chunks of `chunk` tokens (host memory, valid during the call). fn returns false to cancel.
  status head(const float* final_norm, const eng_linear& lm_head, size_t chunk,
              const std::function<bool(size_t t0, size_t c, const float* logits)>& fn);

  status synchronize();
  eng_stats stats() const;
  // The routed experts [n, top_k] of the last run_layer() (highest probability first), for diagnostics.
  std::vector<int32_t> last_routing() const;

  // Benchmark helper: host -> device copy rate from page-locked memory over `bytes`, in GB/s.
  result<double> h2d_gbps(size_t bytes);

 private:
  gpu_engine();
  struct impl;
  std::unique_ptr<impl> p_;
};

}  // namespace razor::cu
