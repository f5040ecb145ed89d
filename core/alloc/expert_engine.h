// The expert allocation (razor::quant, core/quant/allocate.h) meets the reference engine here: a probe file's
// statistics as alloc_stats, and a weight transform that fake-quantizes every tensor with a recipe as the engine
// loads it (recipe_transform), so a recipe is evaluated without writing a checkpoint. It lives in razor_alloc,
// the library that may depend on both razor_quant and razor_engine (docs/DEVELOPING.md, "Dependency order").
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/eval.h"
#include "engine/probe.h"
#include "engine/weights.h"
#include "model/checkpoint.h"
#include "model/recipe.h"
#include "quant/allocate.h"
#include "util/status.h"

namespace razor::alloc {

// The probe's per-expert statistics; imatrix mean squares (sum_sq / count, 1.0 for an expert never reached)
// when the probe recorded them.
result<quant::alloc_stats> stats_from_probe(const engine::probe_result& p);

// The probe file's identity (name, size, mtime, tokens), recorded in the error cache.
nlohmann::json probe_identity(const std::string& path, const engine::probe_result& p);

// Fake-quantizes every tensor the engine loads with the recipe's bits for it (per expert for routed experts),
// exactly as `razor quantize` writes it: the seed's fake-quant, group and clip search of the recipe, output
// rounded to the stored dtype (BF16 / F16), then widened back to float32 for the engine.
engine::weight_transform recipe_transform(const checkpoint& ck, const recipe& r);

// KL of the recipe's fake-quantized model against the unquantized one, on the windows of `tokens` that start
// at token `offset` (the probe calibrated on the tokens before it: keep them disjoint).
result<engine::kl_result> measure_recipe_kl(const checkpoint& ck, const recipe& r, const std::vector<int32_t>& tokens,
                                            size_t offset, const engine::eval_options& opt);

}  // namespace razor::alloc
