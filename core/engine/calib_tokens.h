// Calibration tokens per expert (the seed's moe_compare / moe_quant_method capture, seed-reference.md §1.6):
// one layer-streamed forward pass of the unquantized model over calibration text, keeping for every layer and
// routed expert the hidden states routed to it (the input of gate_proj / up_proj, the post-attention-normed
// stream) and the matching input of down_proj, act(gate x) * up x computed from the unquantized gate / up.
//
// - Order and cap: an expert's tokens are the batch's tokens whose top-k holds it, in token order, the first
//   `max_per_expert` of them (the seed's --max-tok-per-expert: 256 for moe_compare, 64 for checkpoints).
// - Split: the calibration half is the first n/2 tokens of an expert, the held-out half the rest (moe_compare:
//   AWQ / GPTQ calibrate on the first half, NMSE is measured on the second).
// - Memory: each layer's tokens are handed to `on_layer` when the layer is done (the pass then keeps only the
//   hidden states), so a consumer that processes and drops a layer holds one layer's tokens at a time:
//   n_experts x max_per_expert x (hidden + moe_ff) floats. capture_calib_tokens keeps them all
//   (calib_tokens_bytes says how much that is) and refuses above a bound.
// The pass runs on the CPU engine (the GPU engine does not hand out per-expert activations).
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "engine/model_runner.h"
#include "quant/methods.h"

namespace razor::engine {

struct expert_tokens {
  int64_t n = 0;           // tokens kept (<= max_per_expert)
  int64_t routed = 0;      // tokens routed to the expert in the pass (the probe's freq), kept or not
  std::vector<float> x;    // [n, hidden]: the input of gate / up
  std::vector<float> act;  // [n, ff]: the input of down
};

struct layer_tokens {
  int layer = -1;
  int64_t hidden = 0, ff = 0;
  std::vector<expert_tokens> experts;  // [n_experts]; empty for a layer without routed experts
};

enum class token_half { all, calibration, held_out };
// The rows of one expert's tokens: all of them, the first n/2 (calibration) or the other n - n/2 (held out);
// `down` picks the input of down_proj instead of gate / up.
quant::calib_view token_view(const layer_tokens& lt, int expert, bool down, token_half h);

struct calib_options {
  size_t n_tokens = 8192;        // tokens of the stream from first_token on
  size_t first_token = 0;
  size_t seqlen = 256;           // each sequence from an empty cache
  size_t max_per_expert = 256;
  progress_fn progress;          // units: layers
};

// Streams: on_layer gets each layer with routed experts once, in order; an error from it stops the pass.
status stream_calib_tokens(weight_provider& wp, const std::vector<int32_t>& tokens, const calib_options& opt,
                           const std::function<status(layer_tokens&&)>& on_layer);

// Every layer's tokens, indexed by layer (a layer without routed experts: empty experts).
// errc::unsupported above max_bytes (0: no bound), before the pass runs, naming the bound.
uint64_t calib_tokens_bytes(const model_dims& d, size_t max_per_expert, size_t n_tokens);
result<std::vector<layer_tokens>> capture_calib_tokens(weight_provider& wp, const std::vector<int32_t>& tokens,
                                                       const calib_options& opt, uint64_t max_bytes = 0);

}  // namespace razor::engine
