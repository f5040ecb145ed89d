// Token sampling for razor recover's student rollouts (phase A, docs/recovery-cli.md) and the teacher's top-k
// (phase B).
//
// sample_token, the order vLLM applies its sampling parameters in: logits / temperature; keep the top_k largest
// (ties: the lower token id first); softmax over those (double accumulation); keep the smallest prefix of them,
// by probability descending, whose mass reaches top_p (at least one token); renormalise; draw with one uniform
// number u in [0, 1) from the sequence's own generator (the first token whose cumulative probability exceeds
// u * total). temperature 0 is greedy (the argmax, lowest id on ties). top_k 0 (or >= vocabulary) means the whole
// vocabulary, top_p 1 no nucleus cut.
//
// Each sequence has its own generator, seeded from (seed, prompt index, sample index) (rollout_rng), so a rollout's
// tokens do not depend on what else is in the batch or on the thread that runs it: same seed, same tokens.
#pragma once
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "util/status.h"

namespace razor::recover {

struct sampling_params {
  double temperature = 0.6;  // the seed's (seed-reference.md Appendix A)
  double top_p = 0.95;
  int top_k = 20;
};
// errc::invalid_argument naming the value: temperature in [0, 100], top_p in (0, 1], top_k >= 0.
status check_sampling(const sampling_params& p);

// xoshiro256** seeded through splitmix64: the same numbers on every platform (std's distributions are not).
class rng {
 public:
  explicit rng(uint64_t seed);
  uint64_t next();
  double uniform();  // [0, 1), 53 random bits
 private:
  uint64_t s_[4];
};
rng rollout_rng(uint64_t seed, int64_t prompt, int64_t sample);

// One token from a row of `n` logits (see the file comment). `scratch` is reused between calls.
int32_t sample_token(const float* logits, size_t n, const sampling_params& p, rng& g,
                     std::vector<std::pair<float, int32_t>>* scratch = nullptr);

// The k largest entries of log-softmax(logits) (the whole row normalised, double accumulation as
// engine::log_softmax), best first, ties by lower id: (id, log-probability). k is capped at n.
void top_log_probs(const float* logits, size_t n, size_t k, int32_t* ids, float* lps);

}  // namespace razor::recover
