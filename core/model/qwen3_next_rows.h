// Qwen3-Next's fused Gated DeltaNet projections and the split layout the engine and llama.cpp's qwen3next use.
// The Hub stores them fused per key head g (r = linear_num_value_heads / linear_num_key_heads value heads each):
//   in_proj_qkvz rows: for each g: [q_g (head_k_dim), k_g (head_k_dim), v_g (r x head_v_dim), z_g (r x head_v_dim)]
//   in_proj_ba rows:   for each g: [b_g (r), a_g (r)]
// The split layout (qwen3_5_moe's in_proj_qkv / in_proj_z / in_proj_b / in_proj_a, and the GGUF's attn_qkv /
// attn_gate): qkv = [q of every key head | k of every key head | v of every value head], then z; b, then a;
// value heads in HF's grouped order (value head g x r + j reads key head g).
#pragma once
#include <cstdint>
#include <vector>

namespace razor {

// qkvz_split_rows(...)[i]: the in_proj_qkvz row that row i of [qkv ; z] (2 n_k dk + n_v dv rows, then n_v dv)
// takes.
std::vector<int64_t> qkvz_split_rows(int64_t n_k, int64_t n_v, int64_t dk, int64_t dv);
// ba_split_rows(...)[i]: the in_proj_ba row that row i of [b ; a] (n_v rows each) takes.
std::vector<int64_t> ba_split_rows(int64_t n_k, int64_t n_v);

}  // namespace razor
