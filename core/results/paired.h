// Paired statistics of two runs over the same items (issue 22): each run's per-sample records (`razor eval`'s
// "<out>.samples.jsonl": {bench, id, correct, ...} per line, docs/eval.md) and McNemar's exact test on the items
// both runs graded. The two-proportion test of bench_result.h treats the runs as independent samples; when the
// questions are the same, the paired test sees only the items on which the two runs disagree, and is the
// sharper and the right one.
#pragma once
#include <map>
#include <memory>
#include <string>

#include "util/status.h"

namespace razor::results {

// id -> correct, per benchmark key.
using sample_outcomes = std::map<std::string, std::map<std::string, bool>>;

// The per-sample side file of a result file ("x.json" -> "x.samples.jsonl"), "" for a name without ".json".
std::string samples_path_for(const std::string& result_path);

// Reads a samples file: one JSON object per line with string "bench" and "id" and boolean "correct". A torn
// last line (a run stopped while writing) is ignored, as `razor eval --out` does on resume; any other line that
// is not such an object is an error naming the file and the line. A (bench, id) seen twice keeps the later
// record. Lines are bounded (16 MiB) and so is the file (4 GiB).
result<sample_outcomes> read_sample_outcomes(const std::string& path);

struct paired_test {
  int n = 0;               // items graded by both runs
  int only_baseline = 0;   // right in the baseline, wrong in the candidate
  int only_candidate = 0;  // wrong in the baseline, right in the candidate
  double p = 1.0;          // McNemar's exact two-sided p-value (binomial on the discordant pairs)
};
// McNemar's exact test over the ids both maps hold.
paired_test mcnemar(const std::map<std::string, bool>& baseline, const std::map<std::string, bool>& candidate);
// Two-sided exact binomial p-value of k successes or fewer (or as extreme above) in n fair trials:
// min(1, 2 P(X <= min(k, n - k))), X ~ Bin(n, 1/2).
double binomial_two_sided_p(int k, int n);

}  // namespace razor::results
