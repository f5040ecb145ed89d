// `razor compare-methods`: the seed's moe_compare (seed-reference.md §1.6, F13) for every expert of every layer,
// plus each method's whole model against the unquantized one.
//
// 1. Calibration tokens per expert from the reference engine (engine/calib_tokens.h, capped per expert), split in
//    a calibration half (first n/2) and a held-out half (the rest).
// 2. Per layer (streamed: one layer's tokens at a time) and routed expert, every method fake-quantizes the expert
//    at `bits` (group, clip_steps for clip) calibrating on the calibration half only (core/quant's
//    method_fake_quant; gate and up as one [2I, H] matrix when the checkpoint fuses them, as razor quantize
//    does); the result is rounded to BF16, what a checkpoint holds.
// 3. On the held-out half: NMSE per projection, sum((X Wq^T - X W^T)^2) / sum((X W^T)^2) (quant::output_nmse),
//    and per expert the seed's metric, the full expert output down(silu(gate x) * up x) with every projection
//    quantized, sum((o_q - o)^2) / sum(o^2) (= mean / mean). Experts with fewer than min_tokens held-out tokens
//    are quantized but not scored.
// 4. Each method's model (the quantized experts, every other tensor unquantized, so only the expert algorithm
//    differs) against the unquantized one on evaluation text: KL (engine/eval.h), ppl. This holds every method's
//    quantized experts in memory (BF16); full_model = false skips it and keeps the pass per layer.
//
// The result (format razor.method_compare/1) is described in docs/methods.md.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/calib_tokens.h"
#include "engine/eval.h"
#include "quant/methods.h"

namespace razor {
class checkpoint;
}

namespace razor::engine {

struct compare_options {
  std::vector<quant::quant_method> methods;
  double bits = 3;
  int group = 128;
  int clip_steps = 16;
  int64_t min_tokens = 8;        // held-out tokens an expert needs to be scored
  calib_options calib;           // the calibration pass (max_per_expert: the seed's moe_compare used 256)
  bool full_model = true;        // step 4
  eval_options eval;             // windows, ctx of step 4
  // GPTQ: a layer's expert slices of one shape batched through quant::gptq_fake_quant_batch, on the GPU when one is
  // present; false: one slice at a time on the CPU (the same bytes as the batch on the CPU). Result: "gptq_device".
  bool allow_gpu = true;
  std::function<void(const std::string&)> log;
};

// calib_tokens: the calibration stream; eval_tokens: the evaluation stream (step 4).
result<nlohmann::json> compare_methods(const checkpoint& ck, const std::vector<int32_t>& calib_tokens,
                                       const std::vector<int32_t>& eval_tokens, const compare_options& opt);

}  // namespace razor::engine
