// Hugging Face checkpoint -> GGUF, written directly in the requested ggml types (convert + quantize in one
// pass, streaming one expert matrix at a time).
//
// Architectures (HF model_type -> GGUF general.architecture):
//   qwen3_moe                          -> qwen3moe
//   qwen3_5_moe, qwen3_5_moe_text      -> qwen35moe
// What is written follows docs/gguf.md (metadata keys, tokenizer, tensor names/shapes and the Qwen3.5
// transformations: V-head reorder grouped->tiled, ssm_a = -exp(A_log), dt_bias -> ssm_dt.bias, conv1d
// squeezed, +1 on the zero-centred norms except linear_attn.norm, q_proj kept whole, rope sections).
//
// Per-tensor types come from a tensor-type recipe in llama-quantize's --tensor-type-file syntax:
//   pattern=type                 one per line or separated by whitespace; '#' starts a comment
// Patterns are lower-cased and matched with std::regex_search against the GGUF tensor name; the first
// matching line wins (llama.cpp's llama_tensor_get_type). Precedence, as in llama-quantize:
//   1. tensors llama.cpp never quantizes stay F32: 1-D tensors (ggml_n_dims ignores trailing 1s, so
//      ffn_gate_inp_shexp {n,1} is 1-D), names not ending in "weight", *_norm.weight, ffn_gate_inp.weight,
//      ssm_conv1d.weight (recipe lines for them are ignored, and reported);
//   2. token_embd.weight -> token_embedding_type, output.weight -> output_tensor_type, when set;
//   3. the first matching recipe line;
//   4. the default type.
// A row length the type's block does not divide falls back per core/ggml's table (reported). Types that
// need an importance matrix are refused (errc::needs_imatrix) for tensors the imatrix has no entry for.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ggml/types.h"
#include "gguf/imatrix.h"
#include "util/parallel.h"
#include "util/status.h"

namespace razor {
class checkpoint;
}

namespace razor::gguf {

// ---- tensor-type recipes ----------------------------------------------------------------------------
struct type_rule {
  std::string pattern;  // lower-cased regex
  ggml::type type;
  int line = 0;
};

struct type_recipe {
  std::vector<type_rule> rules;
  std::optional<ggml::type> default_type;        // "--type"
  std::optional<ggml::type> output_type;         // --output-tensor-type
  std::optional<ggml::type> token_embedding_type;  // --token-embedding-type
  std::string source;                            // file name for messages
};

// Parses `pattern=type` entries and "#@ default=T output=T token_embd=T" directive comments ('#' comments, blank lines). Unknown types, missing '=' and invalid
// regexes are errors (errc::bad_recipe) naming `where` and the line.
result<type_recipe> parse_type_recipe(const std::string& text, const std::string& where);
result<type_recipe> load_type_recipe(const std::string& path);

// The role of a GGUF tensor from its name ("routed_expert", "shared_expert", "router", "attention",
// "linear_attention", "ssm_param", "norm", "embedding", "output_head", "other"), for reports.
std::string gguf_role(const std::string& tensor_name);

// ---- conversion -------------------------------------------------------------------------------------
struct convert_options {
  ggml::type default_type = ggml::type::f32;  // overridden by recipe.default_type when set
  type_recipe recipe;
  imatrix* imat = nullptr;  // checked against the model (match_model reshapes legacy entries in place)
  uint64_t max_shard_bytes = 0;               // split output when > 0
  uint32_t alignment = 32;
  int threads = 0;
  std::string name;                           // general.name (default: the model folder's name)
  progress_fn progress;                       // bytes written / total; false cancels
};

struct tensor_plan_row {
  std::string name;
  std::string role;
  std::vector<int64_t> ne;
  ggml::type requested = ggml::type::f32;  // what the recipe asked
  ggml::type stored = ggml::type::f32;     // what was written (after fallback)
  std::string why;                         // "default", "recipe line 12", "kept f32 (norm)", ...
  bool fallback = false;
  bool imatrix_used = false;
  uint64_t bytes = 0;
  int64_t nelements() const;
};

struct convert_report {
  std::string arch;
  std::vector<tensor_plan_row> tensors;
  std::vector<std::string> notes;     // fallbacks, ignored recipe lines
  std::vector<std::string> paths;     // output files
  uint64_t file_bytes = 0;
};

// GGUF architecture for an HF config's model type, "" when we cannot convert it.
std::string gguf_arch_for(const std::string& model_type);

// Plans the conversion (names, shapes, types, sizes) without reading tensor data.
result<convert_report> plan_gguf(const checkpoint& ck, const convert_options& o);
// Converts `model_dir` to `out_path` (atomically; shards "-0000N-of-0000M.gguf" when max_shard_bytes > 0).
result<convert_report> convert_to_gguf(const std::string& model_dir, const std::string& out_path,
                                       const convert_options& o);

}  // namespace razor::gguf
