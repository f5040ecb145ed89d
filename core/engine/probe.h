// The probe: one layer-streamed forward pass over calibration text that records, per layer x expert, how
// the router uses the experts, plus per-tensor input statistics for an importance matrix. Definitions follow
// the seed (seed-reference.md §2.2); the HDF5 layout is in docs/probe-format.md.
//
// Per (layer L, expert e), summed over every token-slot in which e is among the token's top-k:
//   freq   += 1                          routing count
//   wmass  += routing weight of the slot (after top-k renormalisation when the model does it)
//   asal   += ||x||_2 of the router input (the post-attention-normed hidden state) — activation salience
// Weights (no data): wfro_gate_up[L][e] = ||[W_gate; W_up]||_F, wfro_down[L][e] = ||W_down||_F,
//   rnorm[L][e] = ||router row e||_2.
// Per layer: entropy = H(p) / log E with p = (freq + 1e-9) normalised over the layer; maxshare = max freq /
//   total; max_mean = max freq / mean freq; cold_frac = share of experts with freq < 0.1 x the layer mean.
//
// Importance-matrix statistics (llama-imatrix's collection rule): for every linear map, per column, the sum
// of squared inputs (and of inputs) over the rows it multiplied, and the number of rows, per expert for
// routed experts (rows routed to that expert only). Tensor names are the Hugging Face text-model names
// ("layers.0.self_attn.q_proj.weight", "lm_head.weight"); routed experts are "layers.L.mlp.experts.gate_up"
// (the input of both gate_proj and up_proj) and "layers.L.mlp.experts.down", with n_mat = experts.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/model_runner.h"
#include "gguf/imatrix.h"

namespace razor::engine {

struct input_stats {
  std::string name;            // see the file comment
  int layer = -1;              // -1 for lm_head
  int64_t cols = 0;            // the weight's input width
  int64_t n_mat = 1;           // experts (1 for dense tensors)
  std::vector<double> sum_sq;  // [n_mat][cols]
  std::vector<double> sum;     // [n_mat][cols]
  std::vector<uint64_t> count; // [n_mat] input rows seen
};

struct probe_result {
  std::string model;
  int n_layers = 0, n_experts = 0, top_k = 0;
  int64_t hidden = 0;
  size_t n_tokens = 0, n_seqs = 0, seqlen = 0;
  size_t first_token = 0;                      // tokens of the stream skipped before the probed ones
  std::vector<double> freq, wmass, asal;       // [n_layers][n_experts]
  std::vector<double> wfro_gate_up, wfro_down; // [n_layers][n_experts]
  std::vector<double> rnorm;                   // [n_layers][n_experts]
  std::vector<double> entropy, maxshare, max_mean, cold_frac;  // [n_layers]
  std::vector<input_stats> inputs;             // sorted by name
  double seconds = 0, tokens_per_s = 0;
  gpu_time_split gpu_times;                    // the GPU path only (device cuda)
  const input_stats* find_input(const std::string& name) const;
};

struct probe_options {
  size_t n_tokens = 8192;      // tokens taken from the stream, starting at first_token
  size_t first_token = 0;      // skip this many tokens first (calibrate on windows disjoint from the scored
                               // ones: the reference imatrix used windows 256..655 -> first_token 65536,
                               // n_tokens 102400)
  size_t seqlen = 256;         // each sequence starts from an empty cache
  bool collect_inputs = true;  // imatrix statistics
  progress_fn progress;        // units: layers
  backend device = backend::cpu;  // cuda: the GPU engine (its observations reduced on the device)
  gpu_precision gpu_weights = gpu_precision::bf16;
};

result<probe_result> run_probe(weight_provider& wp, const std::vector<int32_t>& tokens, const probe_options& opt);
// Writes the HDF5 file atomically (temporary name, renamed when complete). An existing file at `path` is
// replaced only when it is razor's own probe file (probe_h5_file; util/output_guard.h).
status write_probe_h5(const probe_result& r, const std::string& path);
// own_test (util/output_guard.h): an HDF5 file whose root attribute "format" is "razor-probe".
status probe_h5_file(const std::string& path);
result<probe_result> read_probe_h5(const std::string& path);

// The probe's input statistics as a llama.cpp GGUF importance matrix, named by GGUF tensor (core/gguf's
// conversion of the same config): "layers.L.self_attn.q_proj.weight" -> "blk.L.attn_q.weight", ...,
// "lm_head.weight" -> "output.weight" (token_embd.weight when the embeddings are tied);
// "layers.L.mlp.experts.gate_up" -> both blk.L.ffn_gate_exps.weight and blk.L.ffn_up_exps.weight (same
// statistics), "layers.L.mlp.experts.down" -> blk.L.ffn_down_exps.weight, with per-expert counts;
// Qwen3.5 with num_v_heads != num_k_heads: ssm_out's columns are permuted per value head grouped -> tiled
// (gguf::v_head_order), as the conversion permutes the weight's columns. in_sum2 = sum of x^2, counts =
// rows seen, in_sum = sum of x; chunk_count = sequences, chunk_size = seqlen. Names it cannot map are
// reported in `notes` and left out.
result<gguf::imatrix> probe_to_imatrix(const probe_result& r, const model_config& cfg, const std::string& dataset,
                                       std::vector<std::string>* notes = nullptr);

}  // namespace razor::engine
