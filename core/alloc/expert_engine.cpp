#include "alloc/expert_engine.h"

#include <cstring>
#include <filesystem>
#include <map>
#include <memory>

#include "quant/fake_quant.h"
#include "util/numeric.h"

namespace razor::alloc {

using quant::elem_type;
using quant::fake_quant;
using quant::fq_params;
result<quant::alloc_stats> stats_from_probe(const engine::probe_result& p) {
  quant::alloc_stats s;
  s.model = p.model;
  s.n_layers = p.n_layers;
  s.n_experts = p.n_experts;
  s.n_tokens = p.n_tokens;
  s.freq = p.freq;
  s.wmass = p.wmass;
  s.asal = p.asal;
  s.wfro_gate_up = p.wfro_gate_up;
  s.wfro_down = p.wfro_down;
  s.rnorm = p.rnorm;
  const size_t n = s.size();
  auto fill = [&](const char* kind, std::vector<double>& out, int64_t& cols) -> bool {
    std::vector<const engine::input_stats*> per_layer(size_t(p.n_layers), nullptr);
    for (auto& in : p.inputs) {
      if (in.layer < 0 || in.layer >= p.n_layers) continue;
      if (in.name == "layers." + std::to_string(in.layer) + ".mlp.experts." + kind) per_layer[size_t(in.layer)] = &in;
    }
    for (auto* x : per_layer)
      if (!x || x->n_mat != p.n_experts || (cols && x->cols != cols)) return false;
      else cols = x->cols;
    out.assign(n * size_t(cols), 1.0);
    for (int L = 0; L < p.n_layers; ++L) {
      const auto* x = per_layer[size_t(L)];
      if (x->sum_sq.size() != size_t(p.n_experts) * size_t(cols) || x->count.size() != size_t(p.n_experts)) return false;
      for (int e = 0; e < p.n_experts; ++e) {
        const uint64_t c = x->count[size_t(e)];
        if (c == 0) continue;
        for (int64_t j = 0; j < cols; ++j)
          out[s.idx(L, e) * size_t(cols) + size_t(j)] = x->sum_sq[size_t(e) * size_t(cols) + size_t(j)] / double(c);
      }
    }
    return true;
  };
  if (!p.inputs.empty()) {
    if (!fill("gate_up", s.msq_gate_up, s.cols_gate_up) || !fill("down", s.msq_down, s.cols_down)) {
      s.msq_gate_up.clear();
      s.msq_down.clear();
      s.cols_gate_up = s.cols_down = 0;
    }
  }
  RAZOR_TRY(s.validate());
  return s;
}

nlohmann::json probe_identity(const std::string& path, const engine::probe_result& p) {
  std::error_code ec;
  auto sz = std::filesystem::file_size(path, ec);
  auto mt = std::filesystem::last_write_time(path, ec);
  return {{"file", std::filesystem::path(path).filename().string()},
          {"size", ec ? 0 : uint64_t(sz)},
          {"mtime", ec ? 0 : int64_t(mt.time_since_epoch().count())},
          {"n_tokens", p.n_tokens}};
}

engine::weight_transform recipe_transform(const checkpoint& ck, const recipe& r) {
  auto rec = std::make_shared<recipe>(r);
  // fused expert tensors by (layer, proj): gate and up may live in one gate_up tensor
  auto fused = std::make_shared<std::map<std::pair<int, int>, const tensor_entry*>>();
  for (auto& t : ck.tensors())
    if (t.cls.role == tensor_role::routed_expert && t.cls.fused) (*fused)[{t.cls.layer, int(t.cls.proj)}] = &t;
  const checkpoint* ckp = &ck;
  return [rec, fused, ckp](const std::string& name, int layer, int expert, expert_proj proj,
                           engine::tensor_f32& t) -> status {
    const tensor_entry* te = nullptr;
    double bits = kKeepBits;
    if (expert >= 0) {
      te = ckp->find_text(name);
      if (te) {
        RAZOR_ASSIGN_OR_RETURN(bits, rec->tensor_bits(*te));
      } else {
        auto it = fused->find({layer, int(proj)});
        if (it == fused->end() && (proj == expert_proj::gate || proj == expert_proj::up))
          it = fused->find({layer, int(expert_proj::gate_up)});
        if (it == fused->end()) return {};
        te = it->second;
        RAZOR_ASSIGN_OR_RETURN(bits, rec->expert_tag(*te, expert));
      }
    } else {
      te = name == "lm_head.weight" ? ckp->find("lm_head.weight") : ckp->find_text(name);
      if (!te && name == "lm_head.weight" && ckp->config().tie_word_embeddings) te = ckp->find_text("embed_tokens.weight");
      if (!te) return {};
      RAZOR_ASSIGN_OR_RETURN(bits, rec->tensor_bits(*te));
    }
    if (bits >= kKeepBits || t.shape.size() < 2) return {};
    const size_t rows = size_t(t.rows()), cols = size_t(t.cols());
    fq_params p{float(bits), rec->group, rec->clip_steps};
    if (te->dt == dtype::bf16 || te->dt == dtype::f16) {
      const bool bf = te->dt == dtype::bf16;
      std::vector<uint16_t> buf(rows * cols);
      RAZOR_TRY(fake_quant(t.data.data(), elem_type::f32, buf.data(), bf ? elem_type::bf16 : elem_type::f16, rows,
                           cols, p));
      for (size_t i = 0; i < buf.size(); ++i) t.data[i] = bf ? bf16_to_f32(buf[i]) : f16_to_f32(buf[i]);
    } else {
      RAZOR_TRY(fake_quant(t.data.data(), elem_type::f32, t.data.data(), elem_type::f32, rows, cols, p));
    }
    return {};
  };
}

result<engine::kl_result> measure_recipe_kl(const checkpoint& ck, const recipe& r, const std::vector<int32_t>& tokens,
                                            size_t offset, const engine::eval_options& opt) {
  if (offset >= tokens.size()) return make_error(errc::invalid_argument, "evaluation offset is past the text");
  std::vector<int32_t> eval_tokens(tokens.begin() + std::ptrdiff_t(offset), tokens.end());
  auto q = engine::transformed_weights(engine::checkpoint_weights(ck), recipe_transform(ck, r));
  auto ref = engine::checkpoint_weights(ck);
  return engine::kl_divergence(*q, *ref, eval_tokens, opt);
}

}  // namespace razor::alloc
