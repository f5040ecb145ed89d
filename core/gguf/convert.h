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
// Patterns are lower-cased and searched for in the GGUF tensor name (util/regex.h: PCRE2 under limits, with
// ECMAScript-style escapes; docs/gguf.md "Pattern syntax"); the first matching line wins (llama.cpp's
// llama_tensor_get_type). Precedence, as in llama-quantize:
//   1. tensors llama.cpp never quantizes stay F32 (gguf/ftype.h, llama_never_quantizes): 1-D tensors
//      (ggml_n_dims ignores trailing 1s, so ffn_gate_inp_shexp {n,1} is 1-D), names not ending in "weight",
//      *_norm.weight, ffn_gate_inp.weight, ssm_conv1d.weight (recipe lines for them are ignored, and reported);
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
#include "gguf/type_recipe.h"
#include "model/layer_selection.h"
#include "util/parallel.h"
#include "util/status.h"

namespace razor {
class checkpoint;
struct recipe;
}

namespace razor::gguf {


// ---- fake-quant recipes (razor.recipe/1, core/model/recipe.h) -> one ggml type per GGUF tensor ----------
// A fused GGUF expert tensor (ffn_{gate,up,down}_exps) holds one type, so per-expert bits (expert_bits) are
// collapsed: the parameter-weighted mean of the recipe's bits over the tensor's experts is rounded to the
// nearest rung of the ladder 2 -> q2_K, 3 -> q3_K (iq3_xxs when `iq3`, which needs an imatrix), 4 -> q4_K,
// 5 -> q5_K, 6 -> q6_K, 8 -> q8_0 (ties go to the higher rung; ternary 1.58 becomes q2_K); tensors the
// recipe keeps (16 bits) get `keep_type`. Other tensors map the same way from their own bits. The result is a
// type_recipe of exact-name rules (default keep_type) and, per GGUF tensor, what was asked and what it became.
struct collapsed_tensor {
  std::string name;              // GGUF tensor
  double mean_bits = 0;          // parameter-weighted mean of the recipe's bits
  double min_bits = 0, max_bits = 0;
  int64_t params = 0;
  ggml::type type = ggml::type::f32;
  std::string change;            // "" when the recipe's bits map to the type unchanged
};
struct collapsed_recipe {
  type_recipe recipe;
  std::vector<collapsed_tensor> tensors;
};
ggml::type type_for_bits(double bits, bool iq3, ggml::type keep_type);
result<collapsed_recipe> collapse_bits_recipe(const checkpoint& ck, const recipe& r, bool iq3,
                                              ggml::type keep_type = ggml::type::bf16);

// The role of a GGUF tensor from its name ("routed_expert", "shared_expert", "router", "attention",
// "linear_attention", "ssm_param", "norm", "embedding", "output_head", "vision": an mmproj file's v.* / mm.*, "other"),
// for reports.
std::string gguf_role(const std::string& tensor_name);

// ---- conversion -------------------------------------------------------------------------------------
struct convert_options {
  ggml::type default_type = ggml::type::f32;  // overridden by recipe.default_type when set
  type_recipe recipe;
  imatrix* imat = nullptr;  // checked against the model (match_model reshapes legacy entries in place)
  // Quantize types that need an importance matrix (iq3_xxs) without one, for tensors the imatrix has no
  // entry for (or with no imatrix at all): ggml accepts null weights; llama-quantize refuses. Only for
  // comparisons (razor pack --allow-missing-imatrix); every such tensor is reported in the notes.
  bool allow_missing_imatrix = false;
  std::optional<uint32_t> file_type;          // general.file_type (llama_ftype); default: from the main type
  uint64_t max_shard_bytes = 0;               // split output when > 0
  uint32_t alignment = 32;
  int threads = 0;
  bool allow_gpu = true;                      // false: the CPU quantizers even where a GPU packer exists
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

// Where a conversion's time went (seconds, wall clock): reading and converting the source to floats (`read`:
// what the quantizing thread waited for it, the first group and any group not ready in time; `read_ahead`:
// the reading done beside the quantizer, the next group while the current one is quantized), quantizing on
// the GPU packer (host <-> device copies included) or on the CPU, writing.
struct convert_times {
  double read = 0, read_ahead = 0, quantize_gpu = 0, quantize_cpu = 0, write = 0;
};

struct convert_report {
  std::string arch;
  std::vector<tensor_plan_row> tensors;
  std::vector<std::string> notes;     // fallbacks, ignored recipe lines
  std::vector<std::string> paths;     // output files
  // plan_gguf: the exact size of the unsplit file (header + every tensor padded to the alignment) and of its
  // header alone (metadata, tensor infos, padding), which does not depend on the tensors' types.
  // convert_to_gguf: the bytes written (all shards).
  uint64_t file_bytes = 0;
  uint64_t header_bytes = 0;
  convert_times times;  // convert_to_gguf, convert_gguf_part
};

// Bytes a tensor of `bytes` takes in the file, padded to the alignment.
inline uint64_t padded_bytes(uint64_t bytes, uint64_t alignment = 32) {
  return (bytes + alignment - 1) / alignment * alignment;
}

// Qwen3-Next / Qwen3.5 value-head order: HF groups value heads by key head ([G0v0, G0v1, G1v0, G1v1]),
// llama.cpp tiles them ([G0v0, G1v0, G0v1, G1v1]): new head p takes old head order[p] = (p % n_k) * (n_v / n_k)
// + p / n_k. Used for the tensors (convert) and for the ssm_out imatrix columns (engine/probe.h).
std::vector<int64_t> v_head_order(int64_t n_k, int64_t n_v);

// GGUF architecture for an HF config's model type, "" when we cannot convert it.
std::string gguf_arch_for(const std::string& model_type);
// The checkpoint's GGUF architecture, or errc::unsupported naming the model_type, its adapter, llama.cpp's arch
// and what our conversion of it lacks (every path of pack refuses through it).
result<std::string> gguf_arch_of(const checkpoint& ck);

// Plans the conversion (names, shapes, types, sizes) without reading tensor data.
result<convert_report> plan_gguf(const checkpoint& ck, const convert_options& o);
// Converts `model_dir` to `out_path` (atomically; shards "-0000N-of-0000M.gguf" when max_shard_bytes > 0).
result<convert_report> convert_to_gguf(const std::string& model_dir, const std::string& out_path,
                                       const convert_options& o);

// ---- split conversion (razor pack --layers / --from-part, the Slurm array jobs of core/jobs/slurm.h) -------
// A part holds the quantized bytes of the selected GGUF tensors (blk.N.* for the layers in the range; all others
// for "rest"), in plan order, in gguf_part.bin, and gguf_part.json (razor.gguf_part/1: plan fingerprint, layers,
// per tensor name, type, ne, offset, bytes). The plan (every tensor's name, shape and type) is made as for a
// whole conversion, so the same options must be given to every part and to the merge.
inline constexpr const char* kGgufPartManifest = "gguf_part.json";
inline constexpr const char* kGgufPartData = "gguf_part.bin";
result<convert_report> convert_gguf_part(const std::string& model_dir, const std::string& part_dir,
                                         const convert_options& o, const layer_selection& sel);
// Writes the GGUF a single convert_to_gguf with the same options writes (same metadata, same header, same tensor
// bytes), taking the tensor bytes from the parts. Refuses, naming the part, a part made with another plan, a
// truncated or missing part, a tensor in two parts; and, naming the layer, a tensor in no part.
result<convert_report> merge_gguf_parts(const std::string& model_dir, const std::vector<std::string>& part_dirs,
                                        const std::string& out_path, const convert_options& o);

}  // namespace razor::gguf
