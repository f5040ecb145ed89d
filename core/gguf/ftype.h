// llama-quantize's file types ("ftypes": Q3_K_M, IQ2_XS, ...) and the per-tensor type mix each one stands
// for, as libllama's llama_model_quantize chooses it with default parameters (src/llama-quant.cpp of the
// oracle's llama.cpp build: llama_ftype_get_default_type, tensor_allows_quantization, llama_tensor_get_type,
// tensor_type_fallback, tensor_requires_imatrix). `razor pack --ftype`, the allocator's starting point and
// the GUI read the same table and the same rule; tests/gguf/test_ftype.cpp checks every tensor of both
// bundled models against the real libllama.
//
// What decides a tensor's type (in this order):
//   1. Tensors llama.cpp never quantizes keep their type (we write them f32): 1-D tensors, names not ending
//      in "weight", *_norm.weight, ffn_gate_inp.weight, ssm_conv1d.weight (llama_never_quantizes).
//   2. --token-embedding-type for token_embd.weight, --output-tensor-type for output.weight.
//   3. A non-quantized default type (F32, F16, BF16) is used as is for every other tensor.
//   4. A manual override (--tensor-type pattern=type, first match) replaces the mix for that tensor.
//   5. The mix (`pure` skips it): by tensor category (name substrings: attn_v / attn_qkv / attn_kv_b,
//      attn_k, attn_q, attn_output, ffn_down, ffn_gate, ffn_up, output, token_embd), the ftype, the model
//      (architecture, n_expert, n_gqa = head_count / head_count_kv of layer 0, block_count, the 70B model
//      type), whether an importance matrix is given, and two running counters over the tensors in
//      llama.cpp's load order (layer, then name): the index among attn_v-like tensors (Q3_K_M's first two,
//      Q4_K_S's first four, use_more_bits for Q4_K_M / Q5_K_M) and, in the IQ1/IQ2 mixes, the index among
//      ffn_down tensors (first block_count / 8 of them; shared and routed experts each count). Elsewhere
//      ffn_* use the layer number from the name when the model has experts.
//      Output head (and token_embd when no output.weight exists, tied): q8_0 when the row is not a whole
//      number of the default type's blocks or the ftype's default is q8_0, q5_K for IQ1/IQ2/IQ3_XXS
//      mixes, else q6_K.
//   6. Row-length fallback (ggml::resolve_row_type): a type whose block does not divide ne[0] falls back
//      (a 32-block type, and a fallback that does not divide it either, to f16).
// A tensor needs an importance matrix when its final type is iq1_s/iq1_m/iq2_xxs/iq2_xs/iq2_s/iq3_xxs, or
// q2_K in a Q2_K_S file, unless it is token_embd / output (llama-quantize refuses such files without one).
// Architecture-specific rules llama.cpp has for Falcon, the 70B llama-likes and 8-expert models are kept;
// there are none specific to qwen3moe / qwen35moe. MXFP4_MOE is its own rule: stacked experts (ne[2] > 1)
// mxfp4, every other quantized tensor q8_0 (the output head and token_embd too). Ftypes whose types core/ggml
// cannot write (TQ1_0, TQ2_0, Q1_0, Q2_0, NVFP4) are not in the table.
#pragma once
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ggml/types.h"
#include "gguf/convert.h"
#include "util/status.h"

namespace razor {
class checkpoint;
}

namespace razor::gguf {

// clang-format off
// ident, llama-quantize's name, llama_ftype id, default ggml type, alias (llama-quantize accepts it for
// this row, "" none), description (llama-quantize's own: size and ppl for Llama-3-8B, or bits per weight).
#define RAZOR_LLAMA_FTYPES(X)                                                                          \
  X(f32,     "F32",     0,  f32,     "",     "26.00G @ 7B (no quantization)")                          \
  X(f16,     "F16",     1,  f16,     "",     "14.00G, +0.0020 ppl @ Mistral-7B")                       \
  X(bf16,    "BF16",    32, bf16,    "",     "14.00G, -0.0050 ppl @ Mistral-7B")                       \
  X(q8_0,    "Q8_0",    7,  q8_0,    "",     " 7.96G, +0.0026 ppl @ Llama-3-8B")                       \
  X(q6_k,    "Q6_K",    18, q6_k,    "",     " 6.14G, +0.0217 ppl @ Llama-3-8B")                       \
  X(q5_k_m,  "Q5_K_M",  17, q5_k,    "Q5_K", " 5.33G, +0.0569 ppl @ Llama-3-8B")                       \
  X(q5_k_s,  "Q5_K_S",  16, q5_k,    "",     " 5.21G, +0.1049 ppl @ Llama-3-8B")                       \
  X(q5_1,    "Q5_1",    9,  q5_1,    "",     " 5.65G, +0.1062 ppl @ Llama-3-8B")                       \
  X(q5_0,    "Q5_0",    8,  q5_0,    "",     " 5.21G, +0.1316 ppl @ Llama-3-8B")                       \
  X(q4_k_m,  "Q4_K_M",  15, q4_k,    "Q4_K", " 4.58G, +0.1754 ppl @ Llama-3-8B")                       \
  X(q4_k_s,  "Q4_K_S",  14, q4_k,    "",     " 4.37G, +0.2689 ppl @ Llama-3-8B")                       \
  X(q4_1,    "Q4_1",    3,  q4_1,    "",     " 4.78G, +0.4511 ppl @ Llama-3-8B")                       \
  X(q4_0,    "Q4_0",    2,  q4_0,    "",     " 4.34G, +0.4685 ppl @ Llama-3-8B")                       \
  X(iq4_nl,  "IQ4_NL",  25, iq4_nl,  "",     " 4.50 bpw non-linear quantization")                      \
  X(iq4_xs,  "IQ4_XS",  30, iq4_xs,  "",     " 4.25 bpw non-linear quantization")                      \
  X(mxfp4_moe, "MXFP4_MOE", 38, mxfp4, "",   " MXFP4 MoE")                                             \
  X(q3_k_l,  "Q3_K_L",  13, q3_k,    "",     " 4.03G, +0.5562 ppl @ Llama-3-8B")                       \
  X(q3_k_m,  "Q3_K_M",  12, q3_k,    "Q3_K", " 3.74G, +0.6569 ppl @ Llama-3-8B")                       \
  X(q3_k_s,  "Q3_K_S",  11, q3_k,    "",     " 3.41G, +1.6321 ppl @ Llama-3-8B")                       \
  X(iq3_m,   "IQ3_M",   27, iq3_s,   "",     " 3.66 bpw quantization mix")                             \
  X(iq3_s,   "IQ3_S",   26, iq3_s,   "",     " 3.44 bpw quantization")                                 \
  X(iq3_xs,  "IQ3_XS",  22, iq3_s,   "",     " 3.3 bpw quantization")                                  \
  X(iq3_xxs, "IQ3_XXS", 23, iq3_xxs, "",     " 3.06 bpw quantization")                                 \
  X(q2_k,    "Q2_K",    10, q2_k,    "",     " 2.96G, +3.5199 ppl @ Llama-3-8B")                       \
  X(q2_k_s,  "Q2_K_S",  21, q2_k,    "",     " 2.96G, +3.1836 ppl @ Llama-3-8B")                       \
  X(iq2_m,   "IQ2_M",   29, iq2_s,   "",     " 2.7  bpw quantization")                                 \
  X(iq2_s,   "IQ2_S",   28, iq2_xs,  "",     " 2.5  bpw quantization")                                 \
  X(iq2_xs,  "IQ2_XS",  20, iq2_xs,  "",     " 2.31 bpw quantization")                                 \
  X(iq2_xxs, "IQ2_XXS", 19, iq2_xxs, "",     " 2.06 bpw quantization")                                 \
  X(iq1_m,   "IQ1_M",   31, iq1_m,   "",     " 1.75 bpw quantization")                                 \
  X(iq1_s,   "IQ1_S",   24, iq1_s,   "",     " 1.56 bpw quantization")
// clang-format on

enum class ftype : uint32_t {
#define X(ident, name, id, def, alias, desc) ident = id,
  RAZOR_LLAMA_FTYPES(X)
#undef X
};

struct ftype_info {
  ftype f;
  std::string_view name;         // llama-quantize's spelling, "Q3_K_M"
  uint32_t id;                   // llama_ftype, written as general.file_type
  ggml::type default_type;       // llama_ftype_get_default_type
  std::string_view alias;        // "Q3_K" for Q3_K_M; "" none
  std::string_view description;  // llama-quantize's
};

// Every ftype, in table order (largest first).
std::span<const ftype_info> all_ftypes();
const ftype_info& info(ftype f);
// By name or alias (case-insensitive: "q3_k_m", "Q3_K") or by llama_ftype number ("12").
result<ftype> ftype_from_name(std::string_view name);

// llama.cpp's tensor_allows_quantization for the tensors a GGUF of ours holds: false means llama-quantize
// copies the tensor unchanged; `why` then says which rule ("kept f32 (norm)", ...). `ne` as in the GGUF.
bool llama_never_quantizes(const std::string& name, std::span<const int64_t> ne, std::string* why = nullptr);

// The model facts the mix reads (from the GGUF metadata llama.cpp loads).
struct ftype_model {
  std::string arch;         // general.architecture: "qwen3moe", "qwen35moe", "llama", "falcon", ...
  int64_t n_layer = 0;      // <arch>.block_count
  int64_t n_expert = 0;     // <arch>.expert_count (0 for dense)
  int64_t n_head = 0;       // <arch>.attention.head_count of layer 0
  int64_t n_head_kv = 0;    // <arch>.attention.head_count_kv of layer 0
  int64_t n_vocab = 0;      // only for llama-arch model typing (granite); 0 when unknown
};
// The facts of an HF checkpoint we convert (core/gguf/convert.h writes the same values).
result<ftype_model> ftype_model_of(const checkpoint& ck);

struct ftype_tensor {
  std::string name;
  std::vector<int64_t> ne;
};

struct ftype_options {
  bool has_imatrix = false;                          // llama-quantize --imatrix given
  std::optional<ggml::type> output_type;             // --output-tensor-type
  std::optional<ggml::type> token_embedding_type;    // --token-embedding-type
  std::vector<type_rule> overrides;                  // --tensor-type pattern=type (first match wins)
  bool pure = false;                                 // --pure: the default type everywhere, no mix
};

struct ftype_choice {
  std::string name;
  bool quantized = false;     // false: llama.cpp keeps the tensor as is (we write f32); `type` is f32
  ggml::type wanted = ggml::type::f32;  // the mix's choice
  ggml::type type = ggml::type::f32;    // after the row-length fallback: what is written
  bool needs_imatrix = false; // llama-quantize refuses to write it without importance data for this tensor
  std::string why;            // the rule that chose it: "default", "attn_v: Q3_K_M first 2", ...
};

// The type of every tensor of `tensors` (any order; the result follows it) in file type `f`. Errors
// (invalid_argument) where llama.cpp throws: a tensor of an expert model whose ffn_* name has no layer
// number in [0, n_layer).
result<std::vector<ftype_choice>> ftype_mix(ftype f, const ftype_model& m, const std::vector<ftype_tensor>& tensors,
                                            const ftype_options& o = {});

// ---- for razor pack --ftype ------------------------------------------------------------------------
struct ftype_plan {
  type_recipe recipe;                 // one exact-name rule per quantized tensor; default_type = the ftype's
  std::vector<ftype_choice> tensors;  // in plan order
  std::vector<std::string> notes;     // tensors written without the importance matrix they need (allowed)
};
// The mix for checkpoint `ck` as convert_to_gguf will write it (its tensor names and shapes). With `imat`
// (has_imatrix is taken from it) every tensor that needs importance data must have an entry; without one,
// tensors that need it are refused (errc::needs_imatrix, naming the tensor, its type and the ftype), as
// llama-quantize refuses, unless `allow_missing_imatrix` (each such tensor is then listed in notes).
result<ftype_plan> plan_ftype(const checkpoint& ck, ftype f, const ftype_options& o, const imatrix* imat,
                              bool allow_missing_imatrix = false);

}  // namespace razor::gguf
