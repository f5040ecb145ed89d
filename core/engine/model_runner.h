// The reference forward pass (CPU, float32) of qwen3_moe, qwen3_5_moe(_text), qwen3_next, olmoe, qwen2_moe,
// mixtral and deepseek_v3 / deepseek_v2 / kimi_k2 (engine/mla.h), layer-streamed.
//
// forward() runs a batch of token sequences, each from an empty cache, through the model one decoder layer
// at a time: it asks the weight_provider for that layer's tensors only, converts them, runs every token of
// every sequence through the layer, then drops them. Between layers only the hidden states
// [n_tokens, hidden] are kept, so a model far larger than memory can be run with one layer resident.
// Logits are produced at the end in chunks of tokens and handed to a callback, never stored whole.
//
// Math (verified against transformers' modeling_qwen3_moe / modeling_qwen3_5_moe and llama.cpp's
// qwen3moe / qwen35moe graphs):
//   qwen3_moe layer:  h += o(attn(q_norm(q x'), k_norm(k x'), v x')), x' = rms(h)*w_in;
//                     h += moe(rms(h)*w_post). Full NeoX RoPE, theta from rope_parameters.
//   qwen3_5_moe:      norms are x*(1+w) (we add 1 at load) except linear_attn.norm; layer_types picks
//                     Gated DeltaNet (linear_attention) or gated full attention; MoE adds a shared expert
//                     scaled by sigmoid(shared_expert_gate x).
//   qwen3_next:       qwen3_5_moe's layers; the DeltaNet projections fused per key head (in_proj_qkvz, in_proj_ba),
//                     split at load (engine/families.h); the router renormalises as norm_topk_prob says.
//   olmoe:            qwen3_moe's layer with the QK-norm over the whole q / k projection (one RMSNorm of
//                     n_heads*head_dim, one of n_kv_heads*head_dim) instead of per head.
//   qwen2_moe:        no QK-norm, biases on q / k / v; the shared expert scaled by sigmoid(shared_expert_gate x).
//   mixtral:          no QK-norm, no biases; router and experts under block_sparse_moe (w1 gate, w3 up, w2 down).
//   deepseek_v2/v3, kimi_k2: MLA attention, leading dense layers, group-limited routing, shared experts (engine/mla.h).
//   gpt_oss:          biases on q / k / v / o, a learned sink logit per head in the softmax's denominator, a sliding
//                     window on the layers layer_types names (even layers by default), YaRN RoPE; router with bias,
//                     softmax over the top-k logits, experts with biases and the clamped SwiGLU (engine/families.h).
//   MoE routing:      softmax over all experts, top-k, renormalised when norm_topk_prob; expert =
//                     down(silu(gate x) * up x).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/mla.h"
#include "engine/ops.h"
#include "engine/weights.h"
#include "kernels/engine_cuda.h"
#include "kernels/moe_routing.h"
#include "util/parallel.h"
#include "util/status.h"

namespace razor::engine {

enum class arch : uint8_t { qwen3_moe, qwen3_5_moe, olmoe, qwen2_moe, mixtral, deepseek, qwen3_next, gpt_oss };
// The QK-norm of an architecture: none, per head (RMSNorm of head_dim, qwen3), or over the whole projection (olmoe).
enum class qk_norm_kind : uint8_t { none, per_head, whole };
// The model_type a family is named by in messages ("olmoe").
const char* arch_name(arch a);

struct model_dims {
  arch a = arch::qwen3_moe;
  int64_t hidden = 0, n_layers = 0, vocab = 0;
  int64_t n_heads = 0, n_kv_heads = 0, head_dim = 0, rot_dims = 0;
  double eps = 1e-6, rope_theta = 10000.0;
  int64_t n_experts = 0, top_k = 0, moe_ff = 0, shared_ff = 0;
  bool norm_topk = true;
  bool zero_centred_norms = false;        // Qwen3.5 / Qwen3-Next: RMSNorm weight w is applied as (1 + w)
  qk_norm_kind qk_norm = qk_norm_kind::per_head;
  bool qkv_bias = false;                  // qwen2_moe: q_proj / k_proj / v_proj have biases
  std::vector<bool> linear_layer;         // per layer: Gated DeltaNet instead of full attention
  int64_t lin_k_heads = 0, lin_v_heads = 0, lin_k_dim = 0, lin_v_dim = 0, conv_kernel = 0;
  deepseek_dims ds;                       // arch::deepseek only
  // arch::gpt_oss: layers with a sliding window of sliding_window tokens; YaRN when yarn_factor > 1 (frequencies
  // blended as ggml does, cos / sin scaled by 1 + 0.1 ln(factor)); the SwiGLU's clamp
  std::vector<bool> sliding_layer;
  int64_t sliding_window = 0, yarn_orig_ctx = 0;
  double yarn_factor = 1.0, yarn_beta_fast = 32.0, yarn_beta_slow = 1.0;
  float swiglu_limit = 7.0f;
};
// The engine's view of a config; errors (errc::bad_config, naming config.json and the key) for a value out of
// range (model/config_check.h check_config_values). dims_for also checks every value against the provider's
// tensor shapes (check_config_shapes), before anything runs: the entry point of perplexity, KL and the probe.
result<model_dims> dims_from_config(const model_config& cfg);
result<model_dims> dims_for(const weight_provider& wp);

// ---- one layer's weights, converted (linear maps transposed, +1 applied to zero-centred norms) ----
struct attention_weights {
  linear q, k, v, o;            // q: [hidden -> n_heads*head_dim*(gated ? 2 : 1)]
  std::vector<float> q_norm, k_norm;  // head_dim each (per_head), the whole projection (whole), or empty (none)
  std::vector<float> q_bias, k_bias, v_bias;  // empty without biases
  bool gated = false;           // Qwen3.5: q rows per head [q | gate]
  std::vector<float> o_bias, sinks;  // gpt_oss: o_proj's bias [hidden], one sink logit per head
  int64_t window = 0;           // gpt_oss: a query sees the last `window` positions (0: all)
};
struct deltanet_weights {
  linear qkv, z, b, a, out;
  std::vector<float> conv;      // [channels][kernel]
  std::vector<float> a_log, dt_bias, norm;
};
struct moe_weights {
  linear router;                                   // [hidden -> n_experts]
  std::vector<linear> gate_up, down;               // per expert; gate_up output = [gate (ff) | up (ff)]
  linear shared_gate_up, shared_down, shared_gate; // shared expert (empty when absent; DeepSeek's has no gate)
  std::vector<float> score_bias;                   // DeepSeek-V3: e_score_correction_bias [n_experts]
  std::vector<float> router_bias;                  // gpt_oss: [n_experts]
  std::vector<std::vector<float>> gate_up_bias, down_bias;  // gpt_oss, per expert: [gate (ff) | up (ff)], [hidden]
};
struct layer_weights {
  int layer = 0;
  std::vector<float> in_norm, post_norm;
  bool linear_attention = false;
  attention_weights attn;
  deltanet_weights dn;
  mla_weights mla;                // arch::deepseek: attention, and the dense MLP of its leading layers
  moe_weights moe;                // empty in DeepSeek's dense layers
  size_t bytes() const;
};
// Linear maps in `layout` (rows: the GPU engine's, no transposition). Routed experts load on all cores when
// the provider allows concurrent reads.
result<layer_weights> load_layer(weight_provider& wp, const model_dims& d, int layer,
                                 weight_layout layout = weight_layout::transposed);
// The final norm (as applied) and the output head (lm_head, or the tied embeddings).
struct head_weights {
  std::vector<float> norm;
  linear lm_head;
};
// Without `lm_head`, the norm only.
result<head_weights> load_head(weight_provider& wp, const model_dims& d,
                               weight_layout layout = weight_layout::transposed, bool lm_head = true);

// ---- observation hooks (probe, imatrix); the CPU and the GPU path make the same calls ----
class forward_observer {
 public:
  virtual ~forward_observer() = default;
  // The layer's weights as loaded (on the GPU path: in weight_layout::rows, from a loader thread).
  virtual void on_layer_loaded(const layer_weights& w) {}
  // Router of `layer` for `n` tokens: x_norm[t] = ||router input of token t||_2 (the post-attention-normed
  // hidden state); ids/weights [n, top_k].
  virtual void on_router(int layer, size_t n, const float* x_norm, const int32_t* ids, const float* weights,
                         int top_k) {}
  // Input statistics of a linear map (only when wants_input_sums()): over `rows` input rows, per column, the
  // sum of squares and the sum. `name` is the text-model tensor name; routed experts give
  // "layers.L.mlp.experts.gate_up" / ".down" with `expert` set (gate and up share one input). May be called
  // from several threads at once.
  virtual bool wants_input_sums() const { return false; }
  virtual void on_input_sums(int layer, const std::string& name, int expert, uint64_t rows, int64_t cols,
                             const double* sum_sq, const double* sum) {}
  // The tokens routed to each expert (only when wants_expert_tokens(); the CPU path: forward() does not take the GPU
  // engine for such an observer): once per (layer, expert) that received any, in token order, x [n, hidden] the
  // expert's input (the post-attention-normed hidden states, the input of gate / up) and act [n, ff] the input of
  // down (act(gate x) * up x from the weights as loaded). Called from one thread (core/engine/calib_tokens.h).
  virtual bool wants_expert_tokens() const { return false; }
  virtual void on_expert_tokens(int layer, int expert, size_t n, const float* x, int64_t hidden, const float* act,
                                int64_t ff) {}
};

// The tensors whose input an observation point is (layer -1: the head), one list for both paths: the CPU blocks
// observe each input once and report it under these names, and so does the GPU path (cu::eng_point). `router`: the
// router's name within the layer, the checkpoint's own (router_suffix: Mixtral's block_sparse_moe.gate.weight,
// gpt-oss's mlp.router.weight).
std::vector<std::string> input_names(cu::eng_point p, int layer, bool linear_attention, bool shared_expert,
                                     const char* router = "mlp.gate.weight");
// The router's tensor name within a layer of this family, as the checkpoint names it.
const char* router_suffix(const model_dims& d);

// ---- blocks (exposed for tests). x is the normed input [n, hidden]; y gets the block output. ----
// Sequences are [seq_start[i], seq_start[i+1]) of the rows; positions restart at 0 in each.
void attention_block(const model_dims& d, const attention_weights& w, const float* x,
                     const std::vector<size_t>& seq_start, float* y, int layer = -1,
                     forward_observer* obs = nullptr);
void deltanet_block(const model_dims& d, const deltanet_weights& w, const float* x,
                    const std::vector<size_t>& seq_start, float* y, int layer = -1, forward_observer* obs = nullptr);
void moe_block(const model_dims& d, const moe_weights& w, const float* x, size_t n, float* y, int layer = -1,
               forward_observer* obs = nullptr);

// ---- memory plan ----
struct memory_plan {
  uint64_t hidden_bytes = 0;        // hidden states kept between layers
  uint64_t layer_weight_bytes = 0;  // largest layer's converted float32 weights (GPU: both slots, see weight_slots)
  int weight_slots = 1;             // layers' weights held at once (the GPU path: 2)
  uint64_t head_bytes = 0;          // final norm + lm_head as float32
  uint64_t kv_bytes_per_seq = 0;    // full-attention K and V per sequence (all attention layers, seq_len)
  uint64_t state_bytes_per_seq = 0; // DeltaNet recurrent + conv state per sequence (all linear layers)
  uint64_t work_bytes = 0;          // largest per-layer scratch (projections, expert activations)
  uint64_t logits_bytes = 0;        // one chunk of logits
  uint64_t peak_bytes() const;
  std::string to_string() const;
};
memory_plan plan_memory(const model_dims& d, size_t n_tokens, size_t n_seqs, size_t seq_len, size_t logits_chunk);

// ---- the forward pass ----
// Called with consecutive chunks of logits: rows for tokens [token0, token0 + n) of the batch (rows of
// `vocab` floats). Return false to cancel.
using logits_fn = std::function<bool(size_t token0, size_t n, const float* logits)>;

// Where forward() runs the layers. cpu: this file's float32 reference. cuda: the GPU engine
// (kernels/engine_cuda.h; core/engine/gpu_runner.cpp: BF16 weights by default, two layers in flight: one
// computing while the next is loaded, converted and copied); an error when no GPU is usable. automatic: cuda
// when a GPU is present, else cpu. The environment variable RAZOR_ENGINE (cpu | gpu | cuda | auto) overrides
// the default `cpu` (so `RAZOR_ENGINE=gpu razor eval-ppl ...` runs on the GPU). Observers run on both paths;
// on_layer_input (the allocator's restart points) and an observer that wants_expert_tokens take the CPU path.
enum class backend : uint8_t { cpu, cuda, automatic };
// The GPU engine's weights: bf16 (the default: half the memory and the upload, tensor cores; the inputs of
// every GEMM rounded to BF16) or f32 (the reference math, float32 rounding from the CPU). RAZOR_GPU_WEIGHTS
// (bf16 | f32) overrides.
enum class gpu_precision : uint8_t { bf16, f32 };

// Where the GPU path's time went, summed over the layers (seconds). The loader thread's reading (load), the
// observer's look at the weights beside the staging (observe), conversion into page-locked memory and the
// upload (stage) run while the previous layer computes; `wait` is the time the GPU side waited for the loader
// (host-bound when it is large), `compute` the time in run_layer (observations copied back included).
// layer_done[L]: when layer L's results were back, from the start of the forward pass; the steady-state cost
// of a layer is the slope of that list, free of the fixed costs of the first layer.
struct gpu_time_split {
  double load = 0, observe = 0, stage = 0, wait = 0, compute = 0;
  std::vector<double> layer_done;
  double steady_layer_seconds() const {
    return layer_done.size() < 2 ? 0.0 : (layer_done.back() - layer_done.front()) / double(layer_done.size() - 1);
  }
};

struct run_options {
  forward_observer* observer = nullptr;
  gpu_time_split* gpu_times = nullptr;  // filled by the GPU path when given
  progress_fn progress;          // units: layers (+1 for the head)
  size_t logits_chunk = 512;     // tokens per logits callback
  bool compute_logits = true;    // false: no logits (the probe); the final norm still runs when the observer
                                 // wants input sums (lm_head's input statistics): see runs_head
  backend device = backend::cpu;  // RAZOR_ENGINE overrides when set
  gpu_precision gpu_weights = gpu_precision::bf16;
  // Called with the residual stream [n_tokens, hidden] entering each layer L, and with L = n_layers for the
  // stream entering the final norm (forward_from can restart from any of them). Return false to cancel.
  // Takes the CPU path, like an observer.
  std::function<bool(int layer, const tensor_f32& h)> on_layer_input;
};

// Whether a pass with `opt` goes past the last layer: for the logits, or for the head's input statistics.
inline bool runs_head(const run_options& opt) {
  return opt.compute_logits || (opt.observer && opt.observer->wants_input_sums());
}

status forward(weight_provider& wp, const model_dims& d, const std::vector<std::vector<int32_t>>& seqs,
               const logits_fn& on_logits, const run_options& opt = {});

// The CPU path of forward() from layer `first_layer` on: h is the residual stream entering that layer, [n, hidden],
// for the sequences [seq_start[i], seq_start[i+1]) (first_layer == n_layers: only the final norm and the head).
// What a change to the weights of layer L and later does to the logits costs only these layers (the allocator's
// sensitivity measurement, core/alloc).
status forward_from(weight_provider& wp, const model_dims& d, const std::vector<size_t>& seq_start, tensor_f32 h,
                    int first_layer, const logits_fn& on_logits, const run_options& opt = {});

// The GPU path of forward() on the embedded hidden states h [n, hidden] (core/engine/gpu_runner.cpp; exposed
// for tests and the bench). Prints nothing; gpu_memory_plan says what it will hold.
status forward_gpu(weight_provider& wp, const model_dims& d, const std::vector<size_t>& seq_start,
                   const tensor_f32& h, const logits_fn& on_logits, const run_options& opt = {});
// The GPU path's device memory for n_tokens in n_seqs: two weight slots (the largest layer or the head), the
// hidden states and the largest layer's activations, at `p`. The same fields as plan_memory.
memory_plan gpu_memory_plan(const model_dims& d, size_t n_tokens, size_t logits_chunk, gpu_precision p);
// The GPU engine's view of the dims / of one loaded layer (pointers into `w`, valid while it lives).
cu::eng_dims gpu_dims(const model_dims& d);
cu::eng_layer gpu_layer(const layer_weights& w);
// The router of a family (kernels/moe_routing.h: one copy for the CPU blocks and the GPU engine).
cu::moe_route moe_route_of(const model_dims& d);

// The backend forward() will use for `opt` (after RAZOR_ENGINE), and whether a GPU engine is usable here.
backend resolve_backend(const run_options& opt);
bool gpu_engine_available(std::string* why_not = nullptr);
// Whether the GPU engine (kernels/engine) implements this architecture: every family of arch.
// forward() runs the others on the CPU when the backend was `automatic` and refuses them, naming the family, when
// the GPU was asked for.
bool gpu_engine_runs(const model_dims& d, std::string* why_not = nullptr);

}  // namespace razor::engine
