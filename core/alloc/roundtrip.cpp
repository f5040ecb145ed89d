#include "alloc/roundtrip.h"

#include <algorithm>

#include "ggml/quants.h"

namespace razor::alloc {

status roundtrip_rows(ggml::type t, float* data, int64_t rows, int64_t cols, const float* imatrix) {
  if (t == ggml::type::f32) return {};
  const size_t rs = ggml::row_size(t, cols);
  std::vector<uint8_t> buf(rs * size_t(rows));
  ggml::quantize_options qo;
  qo.allow_missing_imatrix = true;  // which types need one is the caller's rule (llama.cpp's, at planning)
  RAZOR_TRY(ggml::quantize_tensor(t, data, buf.data(), buf.size(), rows, cols, imatrix, qo).error());
  for (int64_t r = 0; r < rows; ++r)
    RAZOR_TRY(ggml::dequantize_row(t, buf.data() + size_t(r) * rs, data + r * cols, cols));
  return {};
}

roundtrip_weights::roundtrip_weights(engine::weight_provider& base, const gguf::imatrix* imat, type_assignment types)
    : base_(base), imat_(imat), types_(std::move(types)), layout_(base.config()) {}

const ggml::type* roundtrip_weights::type_of(const std::string& gguf_name) const {
  auto it = types_.find(gguf_name);
  return it == types_.end() ? nullptr : &it->second;
}

// The importance weights pack uses for matrix `mat` of the tensor (none when the imatrix has no entry).
result<std::vector<float>> roundtrip_weights::weights(const std::string& gguf_name, int64_t mat, int64_t cols) const {
  if (!imat_ || !imat_->find(gguf_name)) return std::vector<float>{};
  RAZOR_ASSIGN_OR_RETURN(std::vector<float> w, imat_->weights_for(gguf_name, mat));
  if (int64_t(w.size()) != cols)
    return make_error(errc::shape_mismatch, imat_->source + ": " + gguf_name + " has " + std::to_string(w.size()) +
                                                " importance weights per row, the tensor " + std::to_string(cols));
  return w;
}

// Round-trips matrix `mat` of a GGUF tensor (t in GGUF layout) and adds its error.
status roundtrip_weights::roundtrip(const std::string& g, int64_t mat, engine::tensor_f32& t) {
  const ggml::type ty = *type_of(g);
  const int64_t rows = t.rows(), cols = t.cols();
  RAZOR_ASSIGN_OR_RETURN(std::vector<float> w, weights(g, mat, cols));
  const std::vector<float> orig = t.data;
  RAZOR_TRY(roundtrip_rows(ty, t.data.data(), rows, cols, w.empty() ? nullptr : w.data()));
  // error weights: column mean squares and the matrix's share of the tokens
  std::vector<double> s(size_t(cols), 1.0);
  double c = 1.0;
  if (const gguf::imatrix_entry* e = imat_ ? imat_->find(g) : nullptr;
      e && e->n_per_row == cols && mat < e->n_mat && e->counts.size() == size_t(e->n_mat)) {
    double mean = 0;
    for (float n : e->counts) mean += double(n) / double(e->n_mat);
    const double n = double(e->counts[size_t(mat)]);
    c = std::max(n, 0.01 * mean);
    if (n > 0)
      for (int64_t j = 0; j < cols; ++j) s[size_t(j)] = double(e->in_sum2[size_t(mat * cols + j)]) / n;
  }
  double werr = 0, wref = 0;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j) {
      const size_t k = size_t(r * cols + j);
      const double x = orig[k], d = double(t.data[k]) - x;
      werr += s[size_t(j)] * d * d;
      wref += s[size_t(j)] * x * x;
    }
  auto& acc = errors_[g];
  acc.werr += c * werr;
  acc.wref += c * wref;
  return {};
}

result<engine::tensor_f32> roundtrip_weights::tensor(const std::string& name) {
  RAZOR_ASSIGN_OR_RETURN(engine::tensor_f32 t, base_.tensor(name));
  auto loc = layout_.locate(name);
  if (!loc || !type_of(loc->tensor)) return t;
  RAZOR_TRY(layout_.to_gguf(*loc, name, t.data.data(), t.rows(), t.cols()));
  RAZOR_TRY(roundtrip(loc->tensor, 0, t));
  RAZOR_TRY(layout_.to_hf(*loc, name, t.data.data(), t.rows(), t.cols()));
  return t;
}

result<engine::tensor_f32> roundtrip_weights::rows(const std::string& name, const std::vector<int32_t>& ids) {
  auto loc = layout_.locate(name);
  if (!loc || !type_of(loc->tensor)) return base_.rows(name, ids);
  return weight_provider::rows(name, ids);  // the whole tensor round-tripped, then the rows
}

result<engine::tensor_f32> roundtrip_weights::expert(int layer, int e, expert_proj p) {
  RAZOR_ASSIGN_OR_RETURN(engine::tensor_f32 t, base_.expert(layer, e, p));
  const std::string g = gguf::gguf_layout::expert_tensor(layer, p);
  if (!type_of(g)) return t;
  RAZOR_TRY(roundtrip(g, e, t));
  return t;
}

result<engine::tensor_f32> cached_weights::tensor(const std::string& name) {
  auto it = cache_.find(name);
  if (it == cache_.end()) {
    RAZOR_ASSIGN_OR_RETURN(engine::tensor_f32 t, base_.tensor(name));
    it = cache_.emplace(name, std::move(t)).first;
  }
  return it->second;
}

result<engine::tensor_f32> cached_weights::expert(int layer, int e, expert_proj p) {
  const std::string key = engine::expert_tensor_name(layer, e, p);
  auto it = cache_.find(key);
  if (it == cache_.end()) {
    RAZOR_ASSIGN_OR_RETURN(engine::tensor_f32 t, base_.expert(layer, e, p));
    it = cache_.emplace(key, std::move(t)).first;
  }
  return it->second;
}

}  // namespace razor::alloc
