// A model as llama.cpp will see it after packing, without writing a file: every GGUF tensor given a ggml type is
// rearranged into its GGUF layout (gguf/layout.h), quantized with our byte-exact ggml quantizers and the
// importance matrix pack would use, dequantized, and put back into the engine's layout. Tensors without a type
// pass unchanged (the unquantized model). The allocator measures what one tensor's type does to the output with
// it (sensitivity.h), and what a whole allocation does (whole_file.h), in memory.
#pragma once
#include <map>
#include <memory>
#include <string>

#include "engine/weights.h"
#include "ggml/types.h"
#include "gguf/imatrix.h"
#include "gguf/layout.h"
#include "util/status.h"

namespace razor::alloc {

// GGUF tensor name -> stored type (after the row-length fallback).
using type_assignment = std::map<std::string, ggml::type>;

// The weight error of a round trip, weighted as the output error it causes to first order: each column by the
// mean square of its input (the importance matrix's sum_sq / count; 1 without one), each expert matrix by its share
// of the routed tokens (the imatrix counts, floored at 1 % of the mean so a rarely routed expert is not free).
//   werr = sum_m c_m sum_{r,j} s_j (q - w)^2        wref = sum_m c_m sum_{r,j} s_j w^2
struct roundtrip_error {
  double werr = 0, wref = 0;
  double relative() const { return wref > 0 ? werr / wref : 0.0; }
};

// The importance weights pack quantizes matrix `mat` of GGUF tensor `g` with (empty when the imatrix has no entry).
result<std::vector<float>> importance_for(const gguf::imatrix* imat, const std::string& g, int64_t mat, int64_t cols);

// The weights of those sums for matrix `mat` of GGUF tensor `g` (`n_mat` matrices: experts, else 1; `n_used` experts
// per token): `col` each column's mean square input (1 without an imatrix entry), `share` the fraction of tokens that
// pass through the matrix (1 for a tensor every token passes; a routed expert's count over the tokens, floored at
// 1 % of the mean; n_used / n_mat without an entry). werr with these is the output error energy per token.
struct error_weights {
  std::vector<double> col;
  double share = 1;
};
error_weights error_weights_for(const gguf::imatrix* imat, const std::string& g, int64_t mat, int64_t n_mat,
                                int64_t cols, int64_t n_used);
// Adds the weighted error of `rows` rows (`orig` before, `rt` after the round trip) to e, times `scale`.
void add_error(roundtrip_error& e, const error_weights& w, const float* orig, const float* rt, int64_t rows,
               int64_t cols, double scale = 1.0);

// Quantizes `rows` rows of `cols` floats with type t (importance weights `imatrix`, may be null) and writes the
// dequantized values back in place, on `threads` threads (0: all).
status roundtrip_rows(ggml::type t, float* data, int64_t rows, int64_t cols, const float* imatrix, int threads = 0);

// `base` provides the unquantized weights; `imat` (may be null) must outlive the provider; `types` may be changed
// between forward passes with set_types().
class roundtrip_weights : public engine::weight_provider {
 public:
  roundtrip_weights(engine::weight_provider& base, const gguf::imatrix* imat, type_assignment types = {});
  void set_types(type_assignment types) { types_ = std::move(types); }
  const type_assignment& types() const { return types_; }
  // Errors of the round trips made since the last clear, per GGUF tensor (all of its matrices that were read).
  const std::map<std::string, roundtrip_error>& errors() const { return errors_; }
  void clear_errors() { errors_.clear(); }

  const model_config& config() const override { return base_.config(); }
  bool has(const std::string& name) const override { return base_.has(name); }
  result<engine::tensor_f32> tensor(const std::string& name) override;
  result<engine::tensor_f32> expert(int layer, int expert, expert_proj p) override;
  result<engine::tensor_f32> rows(const std::string& name, const std::vector<int32_t>& ids) override;
  void release_layer(int layer) override { base_.release_layer(layer); }
  std::optional<razor::stored_tensor> shape(const std::string& name) const override { return base_.shape(name); }
  std::optional<razor::stored_tensor> expert_shape(int layer, int expert, expert_proj p) const override {
    return base_.expert_shape(layer, expert, p);
  }

 private:
  const ggml::type* type_of(const std::string& gguf_name) const;
  status roundtrip(const std::string& gguf_name, int64_t mat, int64_t n_mat, engine::tensor_f32& t);
  engine::weight_provider& base_;
  std::map<std::string, roundtrip_error> errors_;
  const gguf::imatrix* imat_;
  type_assignment types_;
  gguf::gguf_layout layout_;
};

// Holds every tensor of `base` in memory as float32 after the first read (for models that fit: the allocator runs
// many forward passes over the same weights). `base` must outlive it.
class cached_weights : public engine::weight_provider {
 public:
  explicit cached_weights(engine::weight_provider& base) : base_(base) {}
  const model_config& config() const override { return base_.config(); }
  bool has(const std::string& name) const override { return base_.has(name); }
  result<engine::tensor_f32> tensor(const std::string& name) override;
  result<engine::tensor_f32> expert(int layer, int expert, expert_proj p) override;
  std::optional<razor::stored_tensor> shape(const std::string& name) const override { return base_.shape(name); }
  std::optional<razor::stored_tensor> expert_shape(int layer, int expert, expert_proj p) const override {
    return base_.expert_shape(layer, expert, p);
  }

 private:
  engine::weight_provider& base_;
  std::map<std::string, engine::tensor_f32> cache_;
};

}  // namespace razor::alloc
