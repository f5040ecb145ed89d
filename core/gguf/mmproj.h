// The mmproj GGUF of a checkpoint's vision tower: the `clip` file llama.cpp's converter writes with
// `convert_hf_to_gguf.py MODEL --mmproj --outtype T` for Qwen3-VL / Qwen3.5 (conversion/qwen3vl.py, class
// Qwen3VLVisionModel, projector type "qwen3vl_merger"), which llama-server loads with `--mmproj FILE` beside the
// text model to take images (tools/mtmd/clip.cpp). docs/gguf.md "mmproj" lists the file.
//
// Metadata: general.architecture "clip", general.type "mmproj", general.name, general.file_type (llama_ftype of T),
// general.quantized_by (razor: the output rules), clip.has_vision_encoder, clip.projector_type, clip.use_gelu,
// clip.vision.{projection_dim (the text model's hidden size), image_size (vision_config.image_size, else
// sqrt(num_position_embeddings) x patch_size), patch_size, embedding_length, feed_forward_length, block_count,
// attention.head_count, attention.layer_norm_epsilon (text_config.rms_norm_eps), image_mean, image_std
// (preprocessor_config.json), spatial_merge_size (when the config has it), is_deepstack_layers},
// general.quantization_version.
//
// Tensors, in the converter's order (shards by file name, each shard's tensors by name), model/vision_tower.h's names ->
// GGUF (shapes in ggml order, ne[0] innermost):
//   patch_embed.proj.weight [H, C, 2, P, P] -> v.patch_embd.weight and v.patch_embd.weight.1 {P, P, C, H}: the
//       Conv3d split into its two temporal slices (temporal_patch_size must be 2, as the converter requires)
//   patch_embed.proj.bias -> v.patch_embd.bias;  pos_embed.weight -> v.position_embd.weight {H, N}
//   blocks.N.{norm1, norm2, attn.qkv, attn.proj, mlp.linear_fc1, mlp.linear_fc2}
//       -> v.blk.N.{ln1, ln2, attn_qkv, attn_out, ffn_up, ffn_down}
//   merger.{norm, linear_fc1, linear_fc2} -> v.post_ln, mm.0, mm.2
//   deepstack_merger_list.K.{norm, linear_fc1, linear_fc2} -> v.deepstack.I.{norm, fc1, fc2}, I the K-th deepstack index
// Types, the converter's rules: 1-D tensors (biases, norms) and v.position_embd.weight F32; the patch embedding F16
// when T is f16, else F32; every other weight T, except that a q8_0 weight whose rows are not a multiple of 32
// falls back to F16 (gguf-py's QuantError fallback: the 122B's ffn_down, rows of 4304). The bytes are those of the
// converter (bf16 -> f32 exactly, then ggml's round-to-nearest-even f16 / bf16 and reference q8_0).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "ggml/types.h"
#include "gguf/gguf_file.h"
#include "model/vision_tower.h"
#include "util/parallel.h"
#include "util/status.h"

namespace razor {
class checkpoint;
}

namespace razor::gguf {

inline constexpr const char* kMmprojProjector = "qwen3vl_merger";

struct mmproj_options {
  ggml::type type = ggml::type::f16;  // --outtype: f32, f16, bf16 or q8_0
  std::string name;                   // general.name (default: the model folder's name)
  int threads = 0;
  progress_fn progress;               // bytes written / total; false cancels
};

struct mmproj_tensor {
  std::string name;              // GGUF name
  std::string source;            // the checkpoint's tensor
  int temporal = -1;             // the patch embedding's temporal slice (0 or 1), else -1
  std::vector<int64_t> ne;       // ggml order
  ggml::type type = ggml::type::f32;
  std::string why;               // "f32 (1-D)", "f16 (row of 4304 not a multiple of q8_0's 32)", ...
  uint64_t bytes = 0;
};

struct mmproj_plan {
  vision_tower_config vision;
  std::vector<kv_pair> metadata;
  std::vector<mmproj_tensor> tensors;
  std::vector<std::string> notes;
  uint64_t file_bytes = 0;       // the exact size of the file (header, padding, data)
  std::vector<std::string> paths;  // write_mmproj: the file written
};

// The file a checkpoint's tower becomes, without reading tensor data. Errors (errc::unsupported / bad_config /
// not_found, naming the file or tensor): an architecture the converter's Qwen3VLVisionModel does not handle, no
// vision_config, temporal_patch_size other than 2, out_hidden_size other than the text hidden size (llama.cpp
// refuses the pair), no image_mean / image_std in preprocessor_config.json (or processor_config.json), a tower
// tensor missing or of another shape, a tensor under the tower's prefix that the converter cannot map, a type
// other than f32 / f16 / bf16 / q8_0.
result<mmproj_plan> plan_mmproj(const checkpoint& ck, const mmproj_options& o);

// Writes the file at out_path (atomically; what is there may be replaced only when razor wrote it,
// gguf/output_check.h), then reads it back through check_mmproj.
result<mmproj_plan> write_mmproj(const std::string& model_dir, const std::string& out_path, const mmproj_options& o);

// What llama.cpp's clip loader and its qwen3vl_merger graph require of a file (tools/mtmd/clip.cpp load_hparams /
// load_tensors, models/qwen3vl.cpp), as our own table: every key's GGUF type (its gguf_get_val_* asserts the type),
// the required keys, each tensor's name, shape and type, and that no other tensor is present. The first problem,
// errc::bad_format naming the file and the key or tensor.
status check_mmproj(const file& f);

}  // namespace razor::gguf
