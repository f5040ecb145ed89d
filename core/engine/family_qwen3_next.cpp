// Qwen3-Next (model_type qwen3_next): Qwen3.5's hybrid layers (Gated DeltaNet + gated attention, zero-centred
// norms, shared expert with its sigmoid gate) with the DeltaNet projections fused per key head. Only the
// loading differs: the fused rows are split into the shared deltanet_block's layout (engine/families.h).
#include <cstring>

#include "engine/families.h"
#include "model/qwen3_next_rows.h"

namespace razor::engine {

namespace {

// Rows order[first, first + n) of t, as a [n, cols] matrix.
tensor_f32 take_rows(const tensor_f32& t, const std::vector<int64_t>& order, size_t first, size_t n) {
  const int64_t cols = t.cols();
  tensor_f32 out;
  out.shape = {int64_t(n), cols};
  out.data.resize(n * size_t(cols));
  for (size_t i = 0; i < n; ++i)
    std::memcpy(out.data.data() + i * size_t(cols), t.data.data() + size_t(order[first + i]) * size_t(cols),
                size_t(cols) * sizeof(float));
  return out;
}

}  // namespace

status load_qwen3_next_projections(weight_provider& wp, const model_dims& d, int L, weight_layout lay,
                                   deltanet_weights& w) {
  const int64_t nk = d.lin_k_heads, nv = d.lin_v_heads, dk = d.lin_k_dim, dv = d.lin_v_dim;
  const int64_t kd = nk * dk, vd = nv * dv, ch = 2 * kd + vd;
  const std::string qkvz = layer_tensor(L, "linear_attn.in_proj_qkvz.weight");
  if (wp.has(qkvz)) {
    RAZOR_ASSIGN_OR_RETURN(tensor_f32 t, matrix_of_shape(wp, qkvz, ch + vd, d.hidden));
    const auto order = qkvz_split_rows(nk, nv, dk, dv);
    w.qkv = make_linear(take_rows(t, order, 0, size_t(ch)), lay);
    w.z = make_linear(take_rows(t, order, size_t(ch), size_t(vd)), lay);
  } else {  // a qwen3next GGUF read back: attn_qkv and attn_gate, already split
    RAZOR_ASSIGN_OR_RETURN(tensor_f32 q, matrix_of_shape(wp, layer_tensor(L, "linear_attn.in_proj_qkv.weight"), ch, d.hidden));
    RAZOR_ASSIGN_OR_RETURN(tensor_f32 z, matrix_of_shape(wp, layer_tensor(L, "linear_attn.in_proj_z.weight"), vd, d.hidden));
    w.qkv = make_linear(std::move(q), lay);
    w.z = make_linear(std::move(z), lay);
  }
  RAZOR_ASSIGN_OR_RETURN(tensor_f32 ba, matrix_of_shape(wp, layer_tensor(L, "linear_attn.in_proj_ba.weight"), 2 * nv, d.hidden));
  const auto order = ba_split_rows(nk, nv);
  w.b = make_linear(take_rows(ba, order, 0, size_t(nv)), lay);
  w.a = make_linear(take_rows(ba, order, size_t(nv), size_t(nv)), lay);
  return {};
}

}  // namespace razor::engine
