// Weights-only damage for the whole-file allocation (`razor allocate --mode gguf --sensitivity weights`): no forward
// pass, for models too large to run once per (tensor, type), such as Qwen3.5-122B-A10B. Every choice of every item
// gets the output error energy its round trip adds per calibration token (roundtrip.h's weighting: each column by
// its input's mean square from the imatrix, each routed expert by its share of the tokens), measured on a sample of
// the tensor's rows read straight from the checkpoint and scaled to all of them:
//   damage = sum_m share_m x rows_m / sampled_m x sum_{sampled r, j} E[x_j^2] (q_rj - w_rj)^2
// The embedding and the output head are looked up / scored one row per token, so theirs is divided by their rows
// (the mean over the vocabulary). Rows quantize independently (every ggml block lies within a row), so a sample of
// rows estimates the sum without bias. The damage is gain_role x werr^alpha: the gains and alpha are a prior fitted
// on the bundled fixtures' measured KLs (weight_damage.cpp), reported as S_t and alpha; rel_error is werr / wref as
// in the measured modes.
#pragma once
#include <cstdint>
#include <string>

#include "alloc/whole_file.h"

namespace razor::alloc {

struct weights_options {
  // rows per tensor read and quantized, spread over its matrices (fewer than the experts: one row of each of
  // that many experts); 0: every row
  int64_t sample_rows = 0;
  int threads = 0;          // 0: all
  progress_fn progress;     // units: tensors
};

// The prior (alpha and the role gains) as text: part of the measurement cache's key.
std::string weights_prior_id();

result<measure_report> measure_weights(const checkpoint& ck, const gguf::imatrix* imat, wf_plan& plan,
                                       const weights_options& opt);

}  // namespace razor::alloc
