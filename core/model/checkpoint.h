// A Hugging Face checkpoint directory: config.json + one or many *.safetensors shards
// (+ model.safetensors.index.json naming the shard of every tensor). Opening memory-maps every shard and
// reads only headers, so indexing a 245 GB checkpoint takes milliseconds; tensor bytes are paged in when
// read. Every tensor gets a role from the adapter table.
//
// FP8 E4M3 weights with block scales (the Hub's fine-grained layout, DeepSeek-V3 / Qwen *-FP8): config.json's
// quantization_config {"quant_method": "fp8", "weight_block_size": [BR, BC]} and, beside each F8_E4M3 weight
// "<name>", a float tensor "<name>_scale_inv" of shape [..., ceil(R / BR), ceil(C / BC)] for a weight
// [..., R, C]: element (r, c) is fp8(r, c) * scale_inv[r / BR][c / BC]. Opening binds each weight to its scale
// (errors: a scale of the wrong shape or dtype, an FP8 weight without its scale in a block-quantized checkpoint,
// a scale without weight_block_size); read_f32 dequantizes on read, so every reader of weights (quantize, pack,
// the engine, allocate) sees the real values. The *_scale_inv tensors keep their quant_scale role: never
// quantized or packed as weights.
//
// MXFP4 weights (gpt-oss's experts, model/mxfp4.h): with quantization_config {"quant_method": "mxfp4"}, each U8
// "<name>_blocks" [..., R, C / 32, 16] is bound to its U8 "<name>_scales" [..., R, C / 32] at opening and takes
// the shape of the values it holds, [..., R, C] (`mxfp4` set; its bytes stay the codes'); read_f32 decodes it.
// A _blocks tensor without its scales, scales of the wrong shape, or a block whose scale is NaN (255) are
// errors naming the tensor. The _scales tensors are quant_scale tensors like the FP8 ones.
//
// Errors name the file and the problem: missing config.json, a shard the index names that is absent, a
// tensor the index places in a shard that does not hold it, a tensor name present in two shards, and
// every safetensors header problem (see safetensors.h).
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "model/adapter.h"
#include "model/dtype.h"
#include "model/hf_config.h"
#include "model/safetensors.h"
#include "util/status.h"

namespace razor {

struct tensor_entry : tensor_desc {  // name, dtype, shape as the shard's header states them
  int shard = 0;           // index into checkpoint::shards()
  uint64_t offset = 0;     // absolute byte offset of the data in the shard file
  uint64_t nbytes = 0;
  tensor_class cls;
  // FP8 block scale (see the top of this file): index of "<name>_scale_inv" in checkpoint::tensors(), -1 when
  // none, -2 for FP8 scaled another way (per-tensor / per-channel weight_scale: read_f32 refuses it); the
  // block's rows and columns.
  int scale = -1;
  int64_t block_rows = 0, block_cols = 0;
  bool mxfp4 = false;  // MXFP4 codes (U8 _blocks) decoded with the E8M0 scales of tensor `scale`
  int64_t cols() const { return shape.empty() ? 1 : shape.back(); }  // last (input) axis
  int64_t rows() const { return cols() ? numel() / cols() : 0; }
};

// A 2-D slice of a tensor viewed as [rows(), cols()]: rows row0, row0 + row_step, ... (n_rows of them).
// gpt-oss's fused experts (bind_gpt_oss_experts): gate and up are the even and odd rows of gate_up (row_step 2),
// and its BF16 form stores each expert's matrix transposed, [E, in, out] (`transposed`: logical row e * out + j
// is column j of expert e's [in, out] slab; the rows of one view lie in one expert).
struct matrix_view {
  const tensor_entry* t = nullptr;
  int64_t row0 = 0, n_rows = 0, n_cols = 0;
  int64_t row_step = 1;
  bool transposed = false;
  // Whole rows stored contiguously as the view reads them (row_step 1, not transposed).
  bool plain() const { return row_step == 1 && !transposed; }
  // Row i of the view as a one-row view.
  matrix_view row(int64_t i) const { return {t, row0 + i * row_step, 1, n_cols, 1, transposed}; }
};

class checkpoint {
 public:
  static result<checkpoint> open(const std::string& dir);

  const std::string& dir() const { return dir_; }
  const model_config& config() const { return cfg_; }
  const adapter_def& adapter() const { return *adapter_; }
  const std::vector<tensor_entry>& tensors() const { return tensors_; }
  const tensor_entry* find(std::string_view name) const;
  const std::vector<std::string>& shards() const { return shard_paths_; }
  // "model.language_model." for vision-language checkpoints, "model." otherwise (prefix of layers).
  const std::string& text_prefix() const { return prefix_; }

  const uint8_t* data(const tensor_entry& t) const;
  // Converts elements [first, first + count) of t to float32: BF16/F16/F32/F64, FP8 E4M3 times its block
  // scale when it has one (t.scale >= 0), and MXFP4 (t.mxfp4).
  status read_f32(const tensor_entry& t, int64_t first, int64_t count, float* out) const;
  result<std::vector<float>> read_f32(const tensor_entry& t) const;
  status read_rows_f32(const matrix_view& v, float* out) const;

  // The [out, in] matrix of one routed expert's projection, whatever the layout: per-expert tensors,
  // or a fused gate_up_proj [E, 2I, H] (gate = first I rows of expert e, up = next I) / down_proj [E, H, I].
  std::optional<matrix_view> expert_matrix(int layer, int expert, expert_proj p) const;
  // Looks a tensor up by its name within the text model: "layers.3.mlp.gate.weight" -> prefix + name.
  const tensor_entry* find_text(std::string_view suffix) const;

  // errc::io naming the shard when one was truncated while mapped (util/mapped_file.h): the bytes read from
  // it past its new end were zeros. Readers of data() call it after each tensor; read_f32 does itself.
  status check_mapped() const;

  void advise_sequential(const tensor_entry& t) const;
  void release(const tensor_entry& t) const;  // drop its pages from memory (layer streaming)

 private:
  status read_f32_unchecked(const tensor_entry& t, int64_t first, int64_t count, float* out) const;
  status read_fp8_scaled(const tensor_entry& t, int64_t first, int64_t count, float* out) const;
  status bind_block_scales();
  status bind_mxfp4();
  void bind_gpt_oss_experts();
  status read_mxfp4(const tensor_entry& t, int64_t first, int64_t count, float* out) const;
  std::string dir_, prefix_;
  model_config cfg_;
  const adapter_def* adapter_ = nullptr;
  std::vector<std::unique_ptr<safetensors_file>> files_;
  std::vector<std::string> shard_paths_;
  std::vector<tensor_entry> tensors_;
  std::unordered_map<std::string, size_t> by_name_;
  // (layer, expert, proj) -> view, built at open for per-expert and fused layouts
  std::unordered_map<uint64_t, matrix_view> experts_;
};

}  // namespace razor
