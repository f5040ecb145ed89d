#include "engine/weights.h"

#include "model/checkpoint.h"

namespace razor::engine {

std::string expert_tensor_name(int layer, int expert, expert_proj p) {
  return "layers." + std::to_string(layer) + ".mlp.experts." + std::to_string(expert) + "." +
         std::string(proj_name(p)) + "_proj.weight";
}

result<tensor_f32> weight_provider::rows(const std::string& name, const std::vector<int32_t>& ids) {
  RAZOR_ASSIGN_OR_RETURN(tensor_f32 t, tensor(name));
  int64_t c = t.cols(), r = t.rows();
  tensor_f32 out;
  out.shape = {int64_t(ids.size()), c};
  out.data.resize(ids.size() * size_t(c));
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= r)
      return make_error(errc::invalid_argument, name + ": row " + std::to_string(ids[i]) + " out of range");
    std::copy_n(t.data.data() + size_t(ids[i]) * size_t(c), size_t(c), out.data.data() + i * size_t(c));
  }
  return out;
}

namespace {

class ckpt_provider : public weight_provider {
 public:
  explicit ckpt_provider(const checkpoint& ck) : ck_(ck) {}
  const model_config& config() const override { return ck_.config(); }

  const tensor_entry* lookup(const std::string& name) const {
    if (name == "lm_head.weight") {
      if (auto* t = ck_.find("lm_head.weight")) return t;
      if (ck_.config().tie_word_embeddings) return ck_.find_text("embed_tokens.weight");
      return nullptr;
    }
    return ck_.find_text(name);
  }
  bool has(const std::string& name) const override { return lookup(name) != nullptr; }
  bool concurrent_reads() const override { return true; }

  result<tensor_f32> tensor(const std::string& name) override {
    const tensor_entry* t = lookup(name);
    if (!t) return make_error(errc::not_found, ck_.dir() + ": tensor " + ck_.text_prefix() + name + " not found");
    tensor_f32 out;
    out.shape = t->shape;
    RAZOR_ASSIGN_OR_RETURN(out.data, ck_.read_f32(*t));
    return out;
  }

  result<tensor_f32> expert(int layer, int e, expert_proj p) override {
    auto v = ck_.expert_matrix(layer, e, p);
    if (!v)
      return make_error(errc::not_found, ck_.dir() + ": no " + std::string(proj_name(p)) + " matrix for expert " +
                                             std::to_string(e) + " of layer " + std::to_string(layer));
    tensor_f32 out;
    out.shape = {v->n_rows, v->n_cols};
    out.data.resize(size_t(v->n_rows * v->n_cols));
    RAZOR_TRY(ck_.read_rows_f32(*v, out.data.data()));
    return out;
  }

  result<tensor_f32> rows(const std::string& name, const std::vector<int32_t>& ids) override {
    const tensor_entry* t = lookup(name);
    if (!t) return make_error(errc::not_found, ck_.dir() + ": tensor " + name + " not found");
    int64_t c = t->cols(), r = t->rows();
    tensor_f32 out;
    out.shape = {int64_t(ids.size()), c};
    out.data.resize(ids.size() * size_t(c));
    for (size_t i = 0; i < ids.size(); ++i) {
      if (ids[i] < 0 || ids[i] >= r)
        return make_error(errc::invalid_argument, name + ": token id " + std::to_string(ids[i]) + " >= " +
                                                      std::to_string(r));
      RAZOR_TRY(ck_.read_f32(*t, int64_t(ids[i]) * c, c, out.data.data() + i * size_t(c)));
    }
    return out;
  }

  std::optional<bf16_matrix> stored_bf16(const std::string& name) override {
    const tensor_entry* t = lookup(name);
    if (!t || t->shape.size() != 2) return std::nullopt;
    return bf16_view({t, 0, t->rows(), t->cols()});
  }
  std::optional<bf16_matrix> stored_bf16_expert(int layer, int e, expert_proj p) override {
    auto v = ck_.expert_matrix(layer, e, p);
    return v ? bf16_view(*v) : std::nullopt;
  }

  void release_layer(int layer) override {
    for (const auto& t : ck_.tensors())
      if (t.cls.layer == layer) ck_.release(t);
  }

  std::optional<stored_tensor> shape(const std::string& name) const override { return shapes_.tensor(name); }
  std::optional<stored_tensor> expert_shape(int layer, int e, expert_proj p) const override {
    return shapes_.expert(layer, e, p);
  }

 private:
  // Rows of a BF16 tensor whose rows are whole (n_cols == the tensor's last axis), in the mapped file.
  std::optional<bf16_matrix> bf16_view(const matrix_view& v) const {
    if (!v.plain() || v.t->dt != dtype::bf16 || v.n_cols != v.t->cols() || (v.row0 + v.n_rows) * v.n_cols > v.t->numel())
      return std::nullopt;
    const auto* base = reinterpret_cast<const uint16_t*>(ck_.data(*v.t));
    return bf16_matrix{base + size_t(v.row0 * v.n_cols), v.n_rows, v.n_cols};
  }

  const checkpoint& ck_;
  model_shapes shapes_ = checkpoint_shapes(ck_);
};

class transform_provider : public weight_provider {
 public:
  transform_provider(std::unique_ptr<weight_provider> base, weight_transform fn)
      : base_(std::move(base)), fn_(std::move(fn)) {}
  const model_config& config() const override { return base_->config(); }
  bool has(const std::string& name) const override { return base_->has(name); }
  static int layer_of(const std::string& name) {
    if (name.rfind("layers.", 0) != 0) return -1;
    return std::atoi(name.c_str() + 7);
  }
  result<tensor_f32> tensor(const std::string& name) override {
    RAZOR_ASSIGN_OR_RETURN(tensor_f32 t, base_->tensor(name));
    RAZOR_TRY(fn_(name, layer_of(name), -1, expert_proj::none, t));
    return t;
  }
  result<tensor_f32> expert(int layer, int e, expert_proj p) override {
    RAZOR_ASSIGN_OR_RETURN(tensor_f32 t, base_->expert(layer, e, p));
    RAZOR_TRY(fn_(expert_tensor_name(layer, e, p), layer, e, p, t));
    return t;
  }
  // rows() uses the default (whole tensor through the transform): a quantized embedding must be seen whole.
  void release_layer(int layer) override { base_->release_layer(layer); }
  std::optional<stored_tensor> shape(const std::string& name) const override { return base_->shape(name); }
  std::optional<stored_tensor> expert_shape(int layer, int e, expert_proj p) const override {
    return base_->expert_shape(layer, e, p);
  }

 private:
  std::unique_ptr<weight_provider> base_;
  weight_transform fn_;
};

}  // namespace

std::unique_ptr<weight_provider> checkpoint_weights(const checkpoint& ck) { return std::make_unique<ckpt_provider>(ck); }

std::unique_ptr<weight_provider> transformed_weights(std::unique_ptr<weight_provider> base, weight_transform fn) {
  return std::make_unique<transform_provider>(std::move(base), std::move(fn));
}

result<tensor_f32> memory_weights::tensor(const std::string& name) {
  auto it = tensors_.find(name);
  if (it == tensors_.end() && name == "lm_head.weight" && cfg_.tie_word_embeddings)
    it = tensors_.find("embed_tokens.weight");
  if (it == tensors_.end()) return make_error(errc::not_found, "tensor " + name + " not found");
  return it->second;
}

result<tensor_f32> memory_weights::expert(int layer, int e, expert_proj p) {
  return tensor(expert_tensor_name(layer, e, p));
}

std::optional<stored_tensor> memory_weights::shape(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) return std::nullopt;
  return stored_tensor{name, it->second.shape};
}

std::optional<stored_tensor> memory_weights::expert_shape(int layer, int e, expert_proj p) const {
  return shape(expert_tensor_name(layer, e, p));
}

status check_config(const weight_provider& wp) {
  model_shapes s;
  s.tensor = [&wp](const std::string& name) { return wp.shape(name); };
  s.expert = [&wp](int layer, int e, expert_proj p) { return wp.expert_shape(layer, e, p); };
  return check_config_shapes(wp.config(), s);
}

std::string layer_tensor(int layer, const char* rest) { return "layers." + std::to_string(layer) + "." + rest; }

status check_shape(const std::string& name, const tensor_f32& t, int64_t rows, int64_t cols) {
  if (t.rows() != rows || t.cols() != cols)
    return make_error(errc::shape_mismatch, name + ": expected [" + std::to_string(rows) + ", " + std::to_string(cols) +
                                                "], got [" + std::to_string(t.rows()) + ", " + std::to_string(t.cols()) + "]");
  return {};
}

result<tensor_f32> matrix_of_shape(weight_provider& wp, const std::string& name, int64_t rows, int64_t cols) {
  RAZOR_ASSIGN_OR_RETURN(tensor_f32 t, wp.tensor(name));
  RAZOR_TRY(check_shape(name, t, rows, cols));
  return t;
}

}  // namespace razor::engine
