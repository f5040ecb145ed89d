#include "alloc/roundtrip.h"

#include <algorithm>
#include <tuple>

#include "ggml/quants.h"

namespace razor::alloc {

result<std::vector<float>> importance_for(const gguf::imatrix* imat, const std::string& g, int64_t mat, int64_t cols) {
  if (!imat || !imat->find(g)) return std::vector<float>{};
  RAZOR_ASSIGN_OR_RETURN(std::vector<float> w, imat->weights_for(g, mat));
  if (int64_t(w.size()) != cols)
    return make_error(errc::shape_mismatch, imat->source + ": " + g + " has " + std::to_string(w.size()) +
                                                " importance weights per row, the tensor " + std::to_string(cols));
  return w;
}

error_weights error_weights_for(const gguf::imatrix* imat, const std::string& g, int64_t mat, int64_t n_mat,
                                int64_t cols, int64_t n_used) {
  error_weights w;
  w.col.assign(size_t(cols), 1.0);
  if (n_mat > 1) w.share = double(std::max<int64_t>(n_used, 1)) / double(n_mat);
  const gguf::imatrix_entry* e = imat ? imat->find(g) : nullptr;
  if (!e || e->n_per_row != cols || mat >= e->n_mat || e->counts.size() != size_t(e->n_mat)) return w;
  double total = 0;
  for (float n : e->counts) total += double(n);
  const double n = double(e->counts[size_t(mat)]);
  if (e->n_mat > 1 && total > 0) {
    const double tokens = total / double(std::max<int64_t>(n_used, 1));
    w.share = std::max(n, 0.01 * total / double(e->n_mat)) / tokens;
  }
  if (n > 0)
    for (int64_t j = 0; j < cols; ++j) w.col[size_t(j)] = double(e->in_sum2[size_t(mat * cols + j)]) / n;
  return w;
}

void add_error(roundtrip_error& e, const error_weights& w, const float* orig, const float* rt, int64_t rows,
               int64_t cols, double scale) {
  double werr = 0, wref = 0;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j) {
      const size_t k = size_t(r * cols + j);
      const double x = orig[k], d = double(rt[k]) - x;
      werr += w.col[size_t(j)] * d * d;
      wref += w.col[size_t(j)] * x * x;
    }
  e.werr += scale * w.share * werr;
  e.wref += scale * w.share * wref;
}

status roundtrip_rows(ggml::type t, float* data, int64_t rows, int64_t cols, const float* imatrix, int threads) {
  if (t == ggml::type::f32) return {};
  const size_t rs = ggml::row_size(t, cols);
  std::vector<uint8_t> buf(rs * size_t(rows));
  ggml::quantize_options qo;
  qo.threads = threads;
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


// Round-trips matrix `mat` of the `n_mat` of a GGUF tensor (t in GGUF layout) and adds its error.
status roundtrip_weights::roundtrip(const std::string& g, int64_t mat, int64_t n_mat, engine::tensor_f32& t) {
  const ggml::type ty = *type_of(g);
  const int64_t rows = t.rows(), cols = t.cols();
  RAZOR_ASSIGN_OR_RETURN(std::vector<float> w, importance_for(imat_, g, mat, cols));
  const std::vector<float> orig = t.data;
  RAZOR_TRY(roundtrip_rows(ty, t.data.data(), rows, cols, w.empty() ? nullptr : w.data()));
  add_error(errors_[g], error_weights_for(imat_, g, mat, n_mat, cols, base_.config().num_experts_per_tok), orig.data(),
            t.data.data(), rows, cols);
  return {};
}

result<engine::tensor_f32> roundtrip_weights::tensor(const std::string& name) {
  RAZOR_ASSIGN_OR_RETURN(engine::tensor_f32 t, base_.tensor(name));
  auto loc = layout_.locate(name);
  if (loc && loc->how == gguf::gguf_relayout::kv_b_split) {  // attn_k_b's values, then attn_v_b's, each its own width
    RAZOR_TRY(layout_.to_gguf(*loc, name, t.data.data(), t.rows(), t.cols()));
    const gguf::kv_b_shape ks = layout_.kv_b_parts();
    int64_t off = 0;
    for (const auto& [g, cols, n] : {std::tuple{loc->tensor, ks.k_cols, ks.k_values},
                                     std::tuple{loc->tensor2, ks.v_cols, int64_t(t.data.size()) - ks.k_values}}) {
      if (type_of(g)) {
        engine::tensor_f32 part;
        part.shape = {n / cols, cols};
        part.data.assign(t.data.begin() + off, t.data.begin() + off + n);
        RAZOR_TRY(roundtrip(g, 0, 1, part));
        std::copy(part.data.begin(), part.data.end(), t.data.begin() + off);
      }
      off += n;
    }
    RAZOR_TRY(layout_.to_hf(*loc, name, t.data.data(), t.rows(), t.cols()));
    return t;
  }
  if (!loc) {  // a tensor the conversion splits (qwen3next's in_proj_qkvz): each part's rows round-tripped as its own
    const int64_t cols = t.cols();
    for (const auto& part : layout_.split_parts(name)) {
      if (!type_of(part.tensor)) continue;
      engine::tensor_f32 p;
      p.shape = {int64_t(part.rows.size()), cols};
      p.data.resize(part.rows.size() * size_t(cols));
      for (size_t i = 0; i < part.rows.size(); ++i) {
        if (part.rows[i] >= t.rows()) return make_error(errc::shape_mismatch, name + ": fewer rows than its GGUF parts");
        std::copy_n(t.data.data() + size_t(part.rows[i] * cols), size_t(cols), p.data.data() + i * size_t(cols));
      }
      RAZOR_TRY(roundtrip(part.tensor, 0, 1, p));
      for (size_t i = 0; i < part.rows.size(); ++i)
        std::copy_n(p.data.data() + i * size_t(cols), size_t(cols), t.data.data() + size_t(part.rows[i] * cols));
    }
    return t;
  }
  if (!type_of(loc->tensor)) return t;
  RAZOR_TRY(layout_.to_gguf(*loc, name, t.data.data(), t.rows(), t.cols()));
  RAZOR_TRY(roundtrip(loc->tensor, 0, 1, t));
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
  RAZOR_TRY(roundtrip(g, e, base_.config().num_experts, t));
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
