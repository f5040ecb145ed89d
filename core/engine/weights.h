// Where the reference engine gets its float32 weights from. The runner asks a weight_provider for one
// layer's tensors at a time (layer streaming) by their name inside the text model ("layers.0.self_attn.
// q_proj.weight", "embed_tokens.weight", "norm.weight", "lm_head.weight") and for routed experts by
// (layer, expert, projection), so per-expert and fused-expert checkpoints look the same.
//
// checkpoint_weights() reads a Hugging Face checkpoint (BF16/F16/F32 widened to F32). A fake-quantized model
// is the same provider wrapped by transformed_weights(): the transform sees every tensor as it is loaded and
// may rewrite its values in place (quantize -> dequantize), so the runner never knows the difference.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "model/adapter.h"
#include "model/config_check.h"
#include "model/hf_config.h"
#include "util/status.h"

namespace razor {
class checkpoint;
}

namespace razor::engine {

// A dense float32 tensor, row-major; 2-D tensors are [rows = out, cols = in] as in PyTorch.
struct tensor_f32 {
  std::vector<int64_t> shape;
  std::vector<float> data;
  int64_t cols() const { return shape.empty() ? 1 : shape.back(); }
  int64_t rows() const { return cols() ? int64_t(data.size()) / cols() : 0; }
};

// A BF16 matrix as stored, [rows][cols] contiguous; borrowed (mapped checkpoint data), valid until
// release_layer of its layer.
struct bf16_matrix {
  const uint16_t* data = nullptr;
  int64_t rows = 0, cols = 0;
};

class weight_provider {
 public:
  virtual ~weight_provider() = default;
  virtual const model_config& config() const = 0;
  virtual bool has(const std::string& name) const = 0;
  // The whole tensor, by its name inside the text model (see the file comment).
  virtual result<tensor_f32> tensor(const std::string& name) = 0;
  // One routed expert's [out, in] matrix.
  virtual result<tensor_f32> expert(int layer, int expert, expert_proj p) = 0;
  // Selected rows of a 2-D tensor (the embedding lookup), [ids.size(), cols]. The default reads the whole
  // tensor; the checkpoint provider reads only the rows.
  virtual result<tensor_f32> rows(const std::string& name, const std::vector<int32_t>& ids);
  // The runner is done with this layer's tensors (drop mapped pages).
  virtual void release_layer(int layer) {}
  // Whether tensor() / expert() may be called from several threads at once (the checkpoint reader: yes).
  virtual bool concurrent_reads() const { return false; }
  // The stored data of a 2-D tensor / one routed expert's matrix when it is BF16 and reaches the runner
  // unchanged (the checkpoint reader), so the GPU engine can upload it with no float copy; nullopt otherwise.
  virtual std::optional<bf16_matrix> stored_bf16(const std::string& name) { return std::nullopt; }
  virtual std::optional<bf16_matrix> stored_bf16_expert(int layer, int expert, expert_proj p) { return std::nullopt; }
  // Shapes without reading data, for checking config.json against them (model/config_check.h): the tensor by
  // its text-model name as stored (lm_head.weight only when the head is stored, not tied), and one routed
  // expert's [out, in]; nullopt when absent.
  virtual std::optional<stored_tensor> shape(const std::string& name) const = 0;
  virtual std::optional<stored_tensor> expert_shape(int layer, int expert, expert_proj p) const = 0;
};

// The config's values checked against this provider's shapes (check_config_shapes).
status check_config(const weight_provider& wp);

// `ck` must outlive the provider.
std::unique_ptr<weight_provider> checkpoint_weights(const checkpoint& ck);

// Rewrites a tensor as it is loaded. `name` is the text-model name; for routed experts it is
// "layers.L.mlp.experts.E.{gate,up,down}_proj.weight" and `expert`/`proj` are set (-1 / none otherwise).
using weight_transform =
    std::function<status(const std::string& name, int layer, int expert, expert_proj proj, tensor_f32& t)>;
std::unique_ptr<weight_provider> transformed_weights(std::unique_ptr<weight_provider> base, weight_transform fn);

// A provider over tensors held in memory (tests, synthetic models). Experts are looked up under
// "layers.L.mlp.experts.E.{gate,up,down}_proj.weight".
class memory_weights : public weight_provider {
 public:
  explicit memory_weights(model_config cfg) : cfg_(std::move(cfg)) {}
  void set(const std::string& name, tensor_f32 t) { tensors_[name] = std::move(t); }
  const model_config& config() const override { return cfg_; }
  bool has(const std::string& name) const override { return tensors_.count(name) != 0; }
  bool concurrent_reads() const override { return true; }
  result<tensor_f32> tensor(const std::string& name) override;
  result<tensor_f32> expert(int layer, int expert, expert_proj p) override;
  std::optional<stored_tensor> shape(const std::string& name) const override;
  std::optional<stored_tensor> expert_shape(int layer, int expert, expert_proj p) const override;

 private:
  model_config cfg_;
  std::map<std::string, tensor_f32> tensors_;
};

std::string expert_tensor_name(int layer, int expert, expert_proj p);
// "layers.<layer>.<rest>": a decoder layer's tensor, by the text model's names.
std::string layer_tensor(int layer, const char* rest);
// shape_mismatch naming `name` and both shapes unless t is [rows, cols].
status check_shape(const std::string& name, const tensor_f32& t, int64_t rows, int64_t cols);
// The tensor `name` as a [rows, cols] matrix (check_shape).
result<tensor_f32> matrix_of_shape(weight_provider& wp, const std::string& name, int64_t rows, int64_t cols);

}  // namespace razor::engine
