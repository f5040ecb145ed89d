// What quantizing one tensor does to the model's output: KL(reference || model with that tensor round-tripped
// through a ggml type) over calibration tokens, measured with our engine in memory.
//
// The reference pass keeps the residual stream entering every layer and the reference's next-token
// distributions; a tensor of layer L then costs only layers L.. and the head (engine::forward_from), the output head
// only the head, the token embedding a whole pass. Distributions are kept whole when positions x vocabulary is
// small, else as the reference's top-K log-probabilities plus the mass of the rest (KL over the top-K and one
// "rest" bucket: a lower bound of the full KL, tight when the top-K holds nearly all the mass).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "alloc/roundtrip.h"
#include "engine/model_runner.h"
#include "util/status.h"

namespace razor::alloc {

struct kl_stats {
  double mean = 0, p99 = 0, max = 0;
  double same_top1 = 0;
  double nll = 0;          // mean negative log-likelihood of the next token (model)
  size_t positions = 0;
};

struct reference_options {
  size_t max_full_bytes = size_t(1) << 30;  // keep whole distributions up to this size, else top-K
  int top_k = 256;
  engine::run_options run;                  // progress etc.
};

class reference_pass {
 public:
  // Runs `wp` (the unquantized model) over the sequences (each from an empty cache), keeping what later
  // measurements need. The sequences' next tokens (for nll) are the sequences shifted by one: position i of a
  // sequence predicts token i + 1; the last position of each sequence is not scored.
  static result<reference_pass> run(engine::weight_provider& wp, const std::vector<std::vector<int32_t>>& seqs,
                                    const reference_options& opt = {});

  // KL of `wp` against the reference. `wp` must equal the reference model in every layer before `first_layer`
  // (first_layer = n_layers: only the output head differs; -1: the embeddings differ, a whole pass).
  result<kl_stats> kl(engine::weight_provider& wp, int first_layer, const engine::run_options& run = {}) const;

  const engine::model_dims& dims() const { return d_; }
  size_t positions() const { return scored_; }
  double ref_nll() const { return ref_nll_; }

 private:
  engine::model_dims d_;
  std::vector<std::vector<int32_t>> seqs_;
  std::vector<size_t> seq_start_;
  std::vector<engine::tensor_f32> hidden_;  // [n_layers + 1]
  size_t K_ = 0;                            // entries kept per position (V: whole distributions)
  std::vector<float> lp_;                   // [positions][K] reference log-probs (top-K, or all)
  std::vector<int32_t> idx_;                // [positions][K] their token ids (empty when K = V)
  std::vector<float> rest_;                 // [positions] log of the reference mass outside the top-K
  std::vector<int32_t> argmax_;             // [positions]
  size_t scored_ = 0;
  double ref_nll_ = 0;
};

}  // namespace razor::alloc
