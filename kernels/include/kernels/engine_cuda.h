// Host-only view of the GPU forward pass of the reference engine (no cuda_runtime.h here).
//
// One decoder layer at a time, the same math as core/engine/model_runner.cpp (the CPU reference, the ground
// truth): cuBLAS float32 GEMMs (cublasSgemm, fp32 accumulate; TF32 tensor cores only when asked) for every
// projection -- attention q/k/v/o, DeltaNet in_proj_{qkv,z,b,a}/out_proj, router, shared expert, and the routed
// experts grouped by expert (gather the token-slots routed to each expert, GEMM, weighted combine per token) --
// and own kernels for the rest: RMSNorm, per-head q/k norm + NeoX RoPE (partial rotary), causal softmax
// attention with GQA and Qwen3.5's sigmoid output gate, the causal depthwise conv1d + SiLU, per-head L2 norm,
// the gated delta rule recurrence (one block per (sequence, value head), state dk x dv in shared memory, tokens
// in order), the gated RMSNorm, the router (kernels/moe_routing.h, the CPU's function). The families: qwen3_moe,
// qwen3_5_moe / qwen3_next, olmoe (eng_dims::qk whole), qwen2_moe (qkv_bias, gated shared expert), mixtral (qk
// none), DeepSeek (eng_dims::mla: MLA, dense leading layers, grouped routing, ungated shared experts;
// kernels/engine/mla.cuh) and gpt_oss (eng_dims::gpt_oss: q/k/v/o biases, attention sinks, sliding windows, YaRN,
// router bias with top-k-then-softmax routing, expert biases, clamped SwiGLU).
//
// Weights: BF16 on the device (eng_options::weights; cuBLAS GemmEx, BF16 inputs, fp32 accumulate and output; the
// activations entering a GEMM are rounded to BF16, everything else stays fp32), or fp32 (the reference math).
// Linear maps come either in the CPU engine's transposed form ([in][out] row-major) or as stored ([out][in],
// eng_linear::rows: no host transposition); norms arrive with the Qwen3.5 "+1" already folded in.
//
// Layer streaming with overlap: the engine keeps the hidden states [n, hidden] on the device for the whole batch
// and has two weight slots (kSlots). upload_layer(w, slot) converts the host weights into that slot's page-locked
// staging buffer and starts its copy to the slot's device arena on a copy stream, returning before the copy
// ends; run_layer(slot) makes the compute stream wait for that copy. So while layer L computes in one slot, the
// next layer is converted and copied into the other: upload_layer may be called from another thread than
// run_layer, as long as one slot is not uploaded while it computes (the caller alternates: layer L in slot L % 2).
//
// Observations (eng_options::observe): per layer, the router's choices and the norm of its input per token, and
// per input point of the linear maps the per-column sums of squares and of values (llama-imatrix's statistics),
// per expert for routed experts: the probe's and the imatrix's data, reduced on the device.
//
// In a build without CUDA every entry returns errc::device "built without CUDA" (kernels/no_cuda.cpp).
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kernels/moe_routing.h"
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
  // Full attention's extras: the QK-norm (none; per head of head_dim, qwen3; over the whole q / k projection,
  // olmoe) and q / k / v biases (qwen2_moe).
  enum class qk_norm : uint8_t { none, per_head, whole } qk = qk_norm::per_head;
  bool qkv_bias = false;
  // The router (kernels/moe_routing.h); its n_experts / top_k / norm_topk are the fields above.
  moe_route route;
  // DeepSeek (mla set): Multi-head Latent Attention instead of attention (kernels/engine/mla.cuh), the layers
  // below first_dense a dense MLP of dense_ff instead of the MoE, the shared expert ungated.
  bool mla = false;
  int64_t q_lora = 0, kv_lora = 0, qk_nope = 0, qk_rope = 0, v_head_dim = 0, first_dense = 0, dense_ff = 0;
  float mla_scale = 0.0f;             // mscale^2 / sqrt(qk_nope + qk_rope)
  std::vector<float> mla_inv_freq;    // [qk_rope / 2] RoPE frequencies (YaRN-blended), engine::mla_inv_freq
  // Full attention's RoPE frequencies [rot_dims / 2] from the host (engine::attention_inv_freq, the CPU's: YaRN-
  // blended for gpt_oss); empty: rope_theta^(-2i / rot_dims) computed here. The scores are q.k * score_mscale2 /
  // sqrt(head_dim) (gpt_oss's YaRN mscale squared, engine::attention_score_mscale2; else 1).
  std::vector<float> attn_inv_freq;
  float score_mscale2 = 1.0f;
  // gpt_oss: o_proj's bias, a sink logit per head in the softmax's denominator, a sliding window per layer
  // (eng_layer::window), the router's bias added to its logits, biases on the experts' gate / up / down and the
  // clamped SwiGLU (kernels/gpt_oss_swiglu.h) with this limit instead of SiLU(gate) up.
  bool gpt_oss = false;
  float swiglu_limit = 7.0f;
};

// y = W x with wt = W^T stored [in][out] row-major (engine::linear's layout), or W [out][in] when `rows`;
// or, instead of wt, W [out][in] as BF16 (`bf16`, rows: the checkpoint's stored data, copied as it is).
// Both null: absent.
struct eng_linear {
  const float* wt = nullptr;
  int64_t in = 0, out = 0;
  bool rows = false;
  const uint16_t* bf16 = nullptr;
};

// One layer's host weights (pointers stay owned by the caller; read during upload_layer only).
struct eng_layer {
  bool linear_attention = false;
  const float* in_norm = nullptr;    // [hidden], as applied
  const float* post_norm = nullptr;  // [hidden], as applied
  // full attention (q rows per head are [q | gate] when gated)
  bool gated = false;
  eng_linear q, k, v, o;
  const float* q_norm = nullptr;  // [head_dim], or [n_heads * head_dim] / [n_kv_heads * head_dim] (qk whole)
  const float* k_norm = nullptr;
  const float* q_bias = nullptr;  // [n_heads * head_dim] (qkv_bias)
  const float* k_bias = nullptr;  // [n_kv_heads * head_dim]
  const float* v_bias = nullptr;
  // MLA (dims.mla; o is the o_proj above, q the q_proj when q_lora is 0): q_a [hidden -> q_lora], q_b [q_lora ->
  // n_heads * (qk_nope + qk_rope)], kv_a [hidden -> kv_lora + qk_rope], kv_b [kv_lora -> n_heads * (qk_nope +
  // v_head_dim)], their norms; a dense layer's MLP: dense_gate_up [hidden -> 2 dense_ff], dense_down.
  eng_linear q_a, q_b, kv_a, kv_b, dense_gate_up, dense_down;
  const float* q_a_norm = nullptr;   // [q_lora]
  const float* kv_a_norm = nullptr;  // [kv_lora]
  bool dense = false;                // a leading dense layer: no router, no experts
  const float* score_bias = nullptr; // [n_experts] e_score_correction_bias, or null
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
  // gpt_oss (dims.gpt_oss): o_proj's bias [hidden], the sinks [n_heads], the window (a query sees the last `window`
  // positions; 0: all), the router's bias [n_experts], per expert the gate_up bias [gate (ff) | up (ff)] and the
  // down bias [hidden].
  const float* o_bias = nullptr;
  const float* sinks = nullptr;
  int64_t window = 0;
  const float* router_bias = nullptr;
  std::vector<const float*> gate_up_bias, down_bias;
};

enum class eng_weights : uint8_t { f32, bf16 };

struct eng_options {
  int device = 0;
  eng_weights weights = eng_weights::bf16;
  bool tf32 = false;     // fp32 weights only: cuBLAS TF32 tensor-core math (not the reference: ~1e-3 relative)
  bool observe = false;  // run_layer / head fill eng_observations when given one
};

// Where the inputs of the linear maps are observed. mixer_in: the normed input of attention's q/k/v or
// DeltaNet's in_proj_{qkv,z,b,a}; mixer_out: the input of o_proj / out_proj; moe_in: the router's (and the
// shared expert's gate/up/gate); expert_in / expert_act: the routed experts' gate_up / down inputs, per expert;
// shared_act: the shared expert's down input; head_in: lm_head's.
// MLA adds mla_q_b_in (q_b_proj's input, the normed q_a output) and mla_kv_b_in (kv_b_proj's: the normed
// compressed KV); a dense layer has dense_in (gate / up) and dense_act (down) instead of the MoE's points.
enum class eng_point : uint8_t {
  mixer_in, mixer_out, moe_in, expert_in, expert_act, shared_act, head_in, mla_q_b_in, mla_kv_b_in, dense_in,
  dense_act
};

struct eng_input_sums {
  eng_point point = eng_point::mixer_in;
  int64_t cols = 0;
  std::vector<uint64_t> rows;   // [n_mat] rows seen (n_mat = experts for expert_in / expert_act, else 1)
  std::vector<double> sum_sq;   // [n_mat][cols]
  std::vector<double> sum;      // [n_mat][cols]
};

struct eng_observations {
  std::vector<float> x_norm;   // [n] ||router input||_2 per token
  std::vector<int32_t> ids;    // [n][top_k], highest probability first
  std::vector<float> wts;      // [n][top_k] routing weights (renormalised when norm_topk)
  std::vector<eng_input_sums> inputs;
};

struct eng_stats {
  size_t weight_bytes = 0;        // the largest slot's weights (arena size)
  size_t staging_bytes = 0;       // page-locked host staging, both slots
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

  static constexpr int kSlots = 2;
  // Puts `w` into weight slot `slot` (checks the shapes against the dims; converts into the slot's staging
  // buffer, then copies asynchronously; `w`'s buffers may be freed on return). See the file comment.
  status upload_layer(const eng_layer& w, int slot = 0);
  // Benchmark: a layer of the dims' shapes filled on the device with random values (no host data).
  status random_layer(bool linear_attention, bool gated, bool shared_expert, uint64_t seed, int slot = 0);

  // h += mixer(rms(h) * in_norm); h += moe(rms(h) * post_norm), with the layer in `slot`. With `obs` (and
  // eng_options::observe) it returns when the layer is done, `obs` filled; otherwise it may return earlier.
  status run_layer(int slot = 0, eng_observations* obs = nullptr);

  // Final norm (as applied, [hidden]) and head; logits [c, vocab] for tokens [t0, t0 + c) go to `fn` in
  // chunks of `chunk` tokens (host memory, valid during the call). fn returns false to cancel. Uses weight
  // slot `slot`. `obs` gets head_in only. lm_head.wt null: the norm (and its observation) only, no logits.
  status head(const float* final_norm, const eng_linear& lm_head, size_t chunk,
              const std::function<bool(size_t t0, size_t c, const float* logits)>& fn, int slot = 0,
              eng_observations* obs = nullptr);

  status synchronize();
  eng_stats stats() const;
  // The routed experts [n, top_k] of the last run_layer() (highest probability first), for diagnostics.
  std::vector<int32_t> last_routing() const;

 private:
  gpu_engine();
  struct impl;
  std::unique_ptr<impl> p_;
};

}  // namespace razor::cu
