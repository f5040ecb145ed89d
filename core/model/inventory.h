// `razor inspect`: what a checkpoint holds. The JSON form is stable (docs/inventory-format.md):
// {"format": "razor.inventory/1", "path", "model_type", "adapter", "gguf_arch", "architectures",
//  "layers", "hidden_size", "vocab_size", "layer_types": {"full_attention": n, ...},
//  "experts": {"total", "active", "shared", "moe_intermediate_size", "layout": "per_expert|fused|none"},
//  "params_total", "bytes_total", "shards": [...],
//  "by_role": {role: {"tensors", "params", "bytes"}}, "dtypes": {dtype: params},
//  "tensors": [{"name", "role", "layer", "expert", "proj", "fused", "dtype", "shape", "bytes"}]}
#pragma once
#include <nlohmann/json.hpp>

namespace razor {

class checkpoint;

nlohmann::json inventory_json(const checkpoint& ck, bool with_tensors = true);

}  // namespace razor
