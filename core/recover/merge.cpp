#include "recover/merge.h"

#include <cmath>
#include <cstring>
#include <set>

#include "model/safetensors.h"

namespace razor::recover {

std::string adapter_tensor_name(int layer, bool gate_up, bool a) {
  return "model.layers." + std::to_string(layer) + ".mlp.experts." + (gate_up ? "gate_up" : "down") +
         (a ? ".lora_A" : ".lora_B");
}

namespace {

std::string shape_text(const std::vector<int64_t>& s) {
  std::string o = "[";
  for (size_t i = 0; i < s.size(); ++i) o += (i ? ", " : "") + std::to_string(s[i]);
  return o + "]";
}

}  // namespace

result<lora_adapter> load_adapter(const std::string& path, const model_config& cfg) {
  RAZOR_ASSIGN_OR_RETURN(safetensors_file f, safetensors_file::open(path));
  const auto& h = f.header();
  auto bad = [&](const std::string& what) { return make_error(errc::shape_mismatch, path + ": " + what); };
  auto meta = [&](const char* k) -> std::string {
    auto it = h.metadata.find(k);
    return it == h.metadata.end() ? std::string() : it->second;
  };
  if (meta("format") != kAdapterFormat)
    return make_error(errc::bad_format, path + ": __metadata__.format is \"" + meta("format") + "\", not \"" +
                                            kAdapterFormat + "\"");
  lora_adapter ad;
  ad.model = meta("model");
  {
    const std::string s = meta("scale");
    char* end = nullptr;
    ad.scale = s.empty() ? std::nan("") : std::strtod(s.c_str(), &end);
    if (s.empty() || !end || *end != '\0' || !std::isfinite(ad.scale))
      return make_error(errc::bad_format, path + ": __metadata__.scale \"" + s + "\" is not a finite number");
  }
  if (!cfg.is_moe()) return bad("the model has no routed experts to merge into");
  ad.experts = cfg.num_experts;
  ad.hidden = cfg.hidden_size;
  ad.ff = cfg.moe_intermediate_size;
  const int64_t E = ad.experts, H = ad.hidden, I = ad.ff;
  std::set<std::string> expected;
  for (int64_t L = 0; L < cfg.num_layers; ++L)
    if (cfg.layer_is_moe(L))
      for (bool gu : {true, false})
        for (bool a : {true, false}) expected.insert(adapter_tensor_name(int(L), gu, a));
  // The rank from the first A tensor; every tensor's shape is then fixed.
  for (auto& t : h.tensors) {
    if (!expected.count(t.name))
      return bad("tensor " + t.name + " is not one of the model's adapter tensors (its MoE layers: " +
                 std::to_string(expected.size() / 4) + ", of " + std::to_string(cfg.num_layers) + " layers)");
    if (ad.rank == 0 && t.shape.size() == 3 && t.name.compare(t.name.size() - 7, 7, ".lora_A") == 0) ad.rank = t.shape[1];
  }
  if (ad.rank <= 0 || ad.rank > 65536) {
    for (auto& t : h.tensors)
      if (t.name.size() > 7 && t.name.compare(t.name.size() - 7, 7, ".lora_A") == 0)
        return bad("tensor " + t.name + " has shape " + shape_text(t.shape) + ", not [" + std::to_string(E) + ", rank, ...]");
  }
  const int64_t r = ad.rank;
  for (auto& t : h.tensors) {
    const bool gu = t.name.find(".gate_up.") != std::string::npos;
    const bool a = t.name.compare(t.name.size() - 7, 7, ".lora_A") == 0;
    const std::vector<int64_t> want = gu ? (a ? std::vector<int64_t>{E, r, H} : std::vector<int64_t>{E, 2 * I, r})
                                         : (a ? std::vector<int64_t>{E, r, I} : std::vector<int64_t>{E, H, r});
    if (t.dt != dtype::f32)
      return bad("tensor " + t.name + " is " + std::string(dtype_name(t.dt)) + ", not F32");
    if (t.shape != want)
      return bad("tensor " + t.name + " has shape " + shape_text(t.shape) + ", the model needs " + shape_text(want) +
                 " (experts " + std::to_string(E) + ", rank " + std::to_string(r) + ", hidden " + std::to_string(H) +
                 ", expert FFN " + std::to_string(I) + ")");
    const int layer = std::stoi(t.name.substr(13));  // "model.layers." is 13 characters
    lora_layer& l = ad.layers[layer];
    std::vector<float>& dst = gu ? (a ? l.a_gu : l.b_gu) : (a ? l.a_d : l.b_d);
    dst.resize(size_t(t.numel()));
    std::memcpy(dst.data(), f.tensor_data(t), t.nbytes());
    RAZOR_TRY(f.map().check());
    for (float v : dst)
      if (!std::isfinite(v)) return bad("tensor " + t.name + " holds a value that is not finite");
    expected.erase(t.name);
  }
  if (!expected.empty())
    return bad("tensor " + *expected.begin() + " is missing (" + std::to_string(expected.size()) +
               " of the model's adapter tensors are; the adapter has " + std::to_string(ad.layers.size()) +
               " layers, the model " + std::to_string((expected.size() + 4 * ad.layers.size()) / 4) + " MoE layers)");
  return ad;
}

void add_lora_delta(float* w, size_t rows, size_t cols, const float* b, const float* a, int64_t rank, size_t row0,
                    double scale) {
  std::vector<double> acc(cols);
  for (size_t i = 0; i < rows; ++i) {
    std::fill(acc.begin(), acc.end(), 0.0);
    const float* bi = b + (row0 + i) * size_t(rank);
    for (int64_t k = 0; k < rank; ++k) {
      const double bk = bi[k];
      const float* ak = a + size_t(k) * cols;
      for (size_t j = 0; j < cols; ++j) acc[j] += bk * double(ak[j]);
    }
    float* wi = w + i * cols;
    for (size_t j = 0; j < cols; ++j) wi[j] += float(scale * acc[j]);
  }
}

quant::tensor_transform merge_transform(const lora_adapter& ad) {
  const lora_adapter* p = &ad;
  quant::tensor_transform tf;
  tf.applies = [p](const tensor_entry& t) {
    return t.cls.role == tensor_role::routed_expert && p->layers.count(t.cls.layer) != 0 &&
           t.cls.proj != expert_proj::none;
  };
  tf.apply = [p](const tensor_entry& t, size_t slice, size_t rows, size_t cols, float* data) -> status {
    const lora_adapter& ad = *p;
    const lora_layer& l = ad.layers.at(t.cls.layer);
    const int64_t e = t.cls.fused ? int64_t(slice) : int64_t(t.cls.expert);
    const size_t E = size_t(ad.experts), H = size_t(ad.hidden), I = size_t(ad.ff), r = size_t(ad.rank);
    if (e < 0 || size_t(e) >= E)
      return make_error(errc::shape_mismatch, t.name + ": expert " + std::to_string(e) + " is outside the adapter's " +
                                                  std::to_string(E) + " experts");
    size_t want_rows = 0, want_cols = 0, row0 = 0;
    bool gu = true;
    switch (t.cls.proj) {
      case expert_proj::gate: want_rows = I, want_cols = H, row0 = 0; break;
      case expert_proj::up: want_rows = I, want_cols = H, row0 = I; break;
      case expert_proj::gate_up: want_rows = 2 * I, want_cols = H, row0 = 0; break;
      case expert_proj::down: want_rows = H, want_cols = I, gu = false; break;
      default: return {};
    }
    if (rows != want_rows || cols != want_cols)
      return make_error(errc::shape_mismatch, t.name + ": expert " + std::to_string(e) + " is [" + std::to_string(rows) +
                                                  ", " + std::to_string(cols) + "], the adapter is for [" +
                                                  std::to_string(want_rows) + ", " + std::to_string(want_cols) + "]");
    const size_t b_rows = gu ? 2 * I : H;
    const float* b = (gu ? l.b_gu : l.b_d).data() + size_t(e) * b_rows * r;
    const float* a = (gu ? l.a_gu : l.a_d).data() + size_t(e) * r * cols;
    add_lora_delta(data, rows, cols, b, a, ad.rank, row0, ad.scale);
    return {};
  };
  return tf;
}

result<quant::quantize_report> merge_adapter(const checkpoint& ck, const recipe& r, const lora_adapter& ad,
                                             const std::string& out_dir, quant::quantize_options opt,
                                             const progress_fn& progress) {
  if (ck.config().num_experts != ad.experts || ck.config().hidden_size != ad.hidden ||
      ck.config().moe_intermediate_size != ad.ff)
    return make_error(errc::shape_mismatch, ck.dir() + ": the adapter was checked against another model's shapes");
  opt.transform = merge_transform(ad);
  return quant::quantize_checkpoint(ck, r, out_dir, opt, progress);
}

}  // namespace razor::recover
