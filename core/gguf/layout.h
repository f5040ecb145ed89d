// Where a Hugging Face text-model tensor lives in the GGUF file our conversion (convert.h) writes (qwen3moe,
// qwen35moe; olmoe and qwen2moe use qwen3moe's names, qwen2moe adds attn_{q,k,v}.bias and the shared expert), and how its values were rearranged on the way: the one map from our engine's names to GGUF names,
// used to read a GGUF back into the engine (gguf_weights), to name the probe's importance matrix by GGUF tensor,
// and to quantize a tensor in memory exactly as it is stored in the file (core/alloc's round trip).
//
// Relayouts (docs/gguf.md, the conversion's Qwen3.5 steps; all others are stored as they are):
//   minus_one    zero-centred norms: GGUF = HF + 1
//   a_log        ssm_a = -exp(A_log), V heads reordered
//   qkv_v_rows   attn_qkv: the V rows (after 2 x n_k x head_k_dim q/k rows) reordered by V head (head_v_dim rows each)
//   head_rows    attn_gate: rows reordered by V head (head_v_dim rows each)
//   head_rows_1  ssm_beta / ssm_alpha / ssm_dt.bias: one row (value) per V head, reordered
//   conv_v_rows  ssm_conv1d {kernel, channels}: the V channels reordered
//   head_cols    ssm_out: columns reordered by V head (head_v_dim columns each)
// The V-head reorder (gguf::v_head_order) applies only when linear_num_key_heads != linear_num_value_heads.
// qwen3next (Qwen3-Next) takes qwen35moe's names and norms, never reorders V heads (its graph reads them in HF's
// grouped order), and stores in_proj_ba as ssm_ba; its in_proj_qkvz is split into attn_qkv and attn_gate by the
// conversion (model/qwen3_next_rows.h), so it is read back as in_proj_qkv / in_proj_z; for the checkpoint's name,
// split_parts says which rows each GGUF tensor holds (the allocator's sampling and round trips).
//   rope_rows    llama (mixtral): attn_q / attn_k rows of each head interleaved for llama.cpp's adjacent-pair RoPE:
//                GGUF row 2i + h of a head holds HF row h * head_dim/2 + i (h = 0, 1), as the converter permutes
//   kv_b_split   deepseek2: kv_b_proj [n_head x (qk_nope + v_head_dim), kv_lora] becomes two tensors, attn_k_b (each
//                head's k_nope rows transposed: ne {qk_nope, kv_lora, n_head}) and attn_v_b (its v rows as they are:
//                ne {kv_lora, v_head_dim, n_head}); the GGUF values of the pair are attn_k_b's then attn_v_b's
//                (split_kv_b), gguf_location::tensor2 names attn_v_b
// gpt-oss stores its tensors as they are (o_proj.bias -> attn_output.bias, sinks -> attn_sinks.weight, mlp.router ->
// ffn_gate_inp, post_attention_layernorm -> post_attention_norm); the experts' biases read back as
// mlp.experts.{gate,up,down}_proj.bias [E, n] (ffn_*_exps.bias; the Hub's gate_up_proj_bias interleaves gate and up).
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "model/adapter.h"
#include "model/hf_config.h"
#include "util/status.h"

namespace razor::gguf {

enum class gguf_relayout { none, minus_one, qkv_v_rows, head_rows, head_rows_1, a_log, conv_v_rows, head_cols, rope_rows,
                           kv_b_split };

struct gguf_location {
  std::string tensor;                      // GGUF tensor name ("blk.3.attn_qkv.weight")
  gguf_relayout how = gguf_relayout::none;
  std::string tensor2;                     // kv_b_split: the second tensor (attn_v_b); empty otherwise
};

// DeepSeek's kv_b_proj hf [nh * (nope + vd), kvl] -> attn_k_b k_b [nh][kvl][nope] and attn_v_b v_b [nh][vd][kvl]
// (either may be null), and back.
void split_kv_b(const float* hf, int64_t nh, int64_t nope, int64_t vd, int64_t kvl, float* k_b, float* v_b);
void join_kv_b(const float* k_b, const float* v_b, int64_t nh, int64_t nope, int64_t vd, int64_t kvl, float* hf);

// deepseek2's attn_k_b / attn_v_b: row widths (ne[0]) and attn_k_b's value count (attn_v_b's follow in kv_b_split).
struct kv_b_shape {
  int64_t k_cols = 0, v_cols = 0, k_values = 0;
};

class gguf_layout {
 public:
  // `qwen35`: the qwen35moe or qwen3next conversion (else qwen3moe); `has_output`: the file stores output.weight (else the head
  // is tied to token_embd.weight).
  gguf_layout(const model_config& cfg, bool qwen35, bool has_output);
  // For the model config's own architecture (qwen35moe for qwen3_5_moe*, else qwen3moe), output.weight stored
  // unless the embeddings are tied.
  explicit gguf_layout(const model_config& cfg);

  // The GGUF tensor of a text-model tensor name ("layers.0.self_attn.q_proj.weight", "lm_head.weight"), nullopt for a
  // name the conversion does not write. Routed experts: expert_tensor().
  std::optional<gguf_location> locate(const std::string& hf_name) const;
  // A checkpoint tensor the conversion splits into several GGUF tensors (qwen3next's in_proj_qkvz: attn_qkv and
  // attn_gate, model/qwen3_next_rows.h): each part's GGUF tensor and the checkpoint rows it holds, in its row order;
  // empty for any other name (locate() then gives its one location).
  struct part {
    std::string tensor;
    std::vector<int64_t> rows;
  };
  std::vector<part> split_parts(const std::string& hf_name) const;
  // "blk.L.ffn_{gate,up,down}_exps.weight": expert e is matrix e of it, stored as is.
  static std::string expert_tensor(int layer, expert_proj p);
  // The GGUF tensors a probe's input-statistics entry feeds ("layers.L.mlp.experts.gate_up" feeds the gate and up
  // expert tensors; a linear weight feeds its own tensor); empty when it has none.
  std::vector<std::string> imatrix_targets(const std::string& probe_name) const;
  // For a tensor stored with head_cols: GGUF column c holds HF column perm[c] (identity otherwise).
  std::vector<size_t> column_order(const gguf_location& loc, size_t cols) const;

  // GGUF values -> HF values in place: x holds rows x cols floats (cols = ne[0]; a 1-D tensor is one row).
  status to_hf(const gguf_location& loc, const std::string& hf_name, float* x, int64_t rows, int64_t cols) const;
  // HF values -> GGUF values in place: the exact inverse of to_hf (for a_log, up to float rounding).
  status to_gguf(const gguf_location& loc, const std::string& hf_name, float* x, int64_t rows, int64_t cols) const;

  bool reorders_v_heads() const { return reorder_; }
  kv_b_shape kv_b_parts() const { return {kv_nope_, kv_lora_, kv_heads_ * kv_lora_ * kv_nope_}; }

 private:
  status kv_b(const std::string& name, float* x, int64_t n, bool to_hf) const;
  status permute(const gguf_location& loc, const std::string& hf_name, float* x, int64_t rows, int64_t cols,
                 bool to_hf) const;
  bool q35_ = false, has_output_ = true, reorder_ = false;
  bool llama_ = false;  // mixtral -> llama: q/k rows interleaved per head, the router under block_sparse_moe
  bool oss_ = false;    // gpt_oss -> gpt-oss: post_attention_layernorm is post_attention_norm
  bool next_ = false;   // qwen3_next -> qwen3next: qwen35moe's layout without the V-head reorder, ssm_ba
  int64_t kv_heads_ = 0, kv_nope_ = 0, kv_v_ = 0, kv_lora_ = 0;  // deepseek2's kv_b_split (0: not deepseek2)
  int64_t n_k_ = 0, n_v_ = 0, dk_ = 0, dv_ = 0, head_dim_ = 0;
  std::vector<int64_t> order_;
};

}  // namespace razor::gguf
