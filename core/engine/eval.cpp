#include "engine/eval.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "ggml/quants.h"
#include "gguf/convert.h"
#include "gguf/gguf_file.h"
#include "gguf/layout.h"
#include "model/checkpoint.h"
#include "model/mxfp4.h"
#include "model/recipe.h"
#include "quant/fake_quant.h"
#include "quant/quantize.h"
#include "util/numeric.h"
#include "util/utf8.h"

namespace razor::engine {

result<std::vector<int32_t>> protocol_tokens(const bpe_tokenizer& tk, std::string_view text, const std::string& where,
                                             int32_t separator) {
  RAZOR_TRY(check_utf8(text, where));
  if (separator < 0) separator = tk.protocol_separator();
  std::vector<int32_t> out;
  const std::string_view sep = "\n\n\n";
  size_t pos = 0;
  for (;;) {
    size_t at = text.find(sep, pos);
    std::string_view piece = text.substr(pos, at == std::string_view::npos ? std::string_view::npos : at - pos);
    auto ids = tk.encode(piece, /*split_added=*/true);
    if (!ids.ok()) return make_error(ids.error().code(), where + ": " + ids.error().message());
    out.insert(out.end(), ids->begin(), ids->end());
    out.push_back(separator);
    if (at == std::string_view::npos) break;
    pos = at + sep.size();
  }
  return out;
}

void log_softmax(const float* l, size_t n, float* out) {
  float mx = *std::max_element(l, l + n);
  double s = 0;
  for (size_t i = 0; i < n; ++i) s += std::exp(double(l[i] - mx));
  float lse = mx + float(std::log(s));
  for (size_t i = 0; i < n; ++i) out[i] = l[i] - lse;
}

namespace {

double now_s() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

status check_stream(const std::vector<int32_t>& tokens, const eval_options& opt) {
  if (opt.windows <= 0 || opt.ctx <= 1 || opt.batch_windows <= 0)
    return make_error(errc::invalid_argument, "windows, ctx and batch size must be positive");
  size_t need = size_t(opt.windows) * size_t(opt.ctx) + 1;
  if (tokens.size() < need)
    return make_error(errc::invalid_argument, "the text gives " + std::to_string(tokens.size()) + " tokens; " +
                                                  std::to_string(opt.windows) + " windows of " +
                                                  std::to_string(opt.ctx) + " need " + std::to_string(need));
  return {};
}

std::vector<std::vector<int32_t>> batch_windows(const std::vector<int32_t>& tokens, int w0, int nw, int ctx) {
  std::vector<std::vector<int32_t>> seqs;
  for (int w = w0; w < w0 + nw; ++w)
    seqs.emplace_back(tokens.begin() + ptrdiff_t(w) * ctx, tokens.begin() + ptrdiff_t(w + 1) * ctx);
  return seqs;
}

void maybe_print_plan(const weight_provider& wp, const model_dims& d, const eval_options& opt) {
  if (!opt.print_plan) return;
  int bw = std::min(opt.batch_windows, opt.windows);
  auto p = plan_memory(d, size_t(bw) * size_t(opt.ctx), size_t(bw), size_t(opt.ctx), opt.run.logits_chunk);
  std::fprintf(stderr, "%s (batch of %d windows x %d tokens)\n", p.to_string().c_str(), bw, opt.ctx);
}

}  // namespace

result<ppl_result> perplexity(weight_provider& wp, const std::vector<int32_t>& tokens, const eval_options& opt) {
  RAZOR_TRY(check_stream(tokens, opt));
  RAZOR_ASSIGN_OR_RETURN(model_dims d, dims_for(wp));
  maybe_print_plan(wp, d, opt);
  const double t_start = now_s();
  double nll = 0;
  size_t count = 0;
  const size_t V = size_t(d.vocab), ctx = size_t(opt.ctx);
  for (int w0 = 0; w0 < opt.windows; w0 += opt.batch_windows) {
    if (opt.run.progress && !opt.run.progress(double(w0), double(opt.windows), "windows"))
      return make_error(errc::cancelled, "perplexity cancelled");
    int nw = std::min(opt.batch_windows, opt.windows - w0);
    auto seqs = batch_windows(tokens, w0, nw, opt.ctx);
    std::vector<float> lp(V);
    run_options ro = opt.run;
    ro.progress = nullptr;
    RAZOR_TRY(forward(wp, d, seqs, [&](size_t t0, size_t n, const float* logits) {
      for (size_t i = 0; i < n; ++i) {
        size_t t = t0 + i, w = t / ctx, pos = t % ctx;
        int32_t target = tokens[(size_t(w0) + w) * ctx + pos + 1];
        log_softmax(logits + i * V, V, lp.data());
        nll -= double(lp[size_t(target)]);
        ++count;
      }
      return true;
    }, ro));
  }
  if (opt.run.progress) opt.run.progress(double(opt.windows), double(opt.windows), "windows");
  ppl_result r;
  r.n_predictions = count;
  r.windows = opt.windows;
  r.mean_nll = nll / double(count);
  r.ppl = std::exp(r.mean_nll);
  r.seconds = now_s() - t_start;
  r.tokens_per_s = double(count) / r.seconds;
  return r;
}

result<kl_result> kl_divergence(weight_provider& model, weight_provider& ref, const std::vector<int32_t>& tokens,
                                const eval_options& opt) {
  RAZOR_TRY(check_stream(tokens, opt));
  RAZOR_ASSIGN_OR_RETURN(model_dims dm, dims_for(model));
  RAZOR_ASSIGN_OR_RETURN(model_dims dr, dims_for(ref));
  if (dm.vocab != dr.vocab)
    return make_error(errc::shape_mismatch, "the two models have different vocabularies (" +
                                                std::to_string(dm.vocab) + " vs " + std::to_string(dr.vocab) + ")");
  maybe_print_plan(model, dm, opt);
  const size_t V = size_t(dm.vocab), ctx = size_t(opt.ctx);
  const size_t K = std::min<size_t>(size_t(std::max(opt.topk, 1)), V);
  kl_result r;
  std::vector<double> kls;
  double nll_m = 0, nll_r = 0, topk_sum = 0, t_model = 0, t_ref = 0;
  size_t same = 0;
  std::vector<float> ref_lp;  // [batch tokens][V]
  for (int w0 = 0; w0 < opt.windows; w0 += opt.batch_windows) {
    if (opt.run.progress && !opt.run.progress(double(w0), double(opt.windows), "windows"))
      return make_error(errc::cancelled, "KL divergence cancelled");
    int nw = std::min(opt.batch_windows, opt.windows - w0);
    auto seqs = batch_windows(tokens, w0, nw, opt.ctx);
    run_options ro = opt.run;
    ro.progress = nullptr;
    ref_lp.assign(size_t(nw) * ctx * V, 0.0f);
    double t0 = now_s();
    RAZOR_TRY(forward(ref, dr, seqs, [&](size_t tt, size_t n, const float* logits) {
      for (size_t i = 0; i < n; ++i) log_softmax(logits + i * V, V, ref_lp.data() + (tt + i) * V);
      return true;
    }, ro));
    double t1 = now_s();
    std::vector<float> lq(V);
    std::vector<int32_t> idx(V);
    RAZOR_TRY(forward(model, dm, seqs, [&](size_t tt, size_t n, const float* logits) {
      for (size_t i = 0; i < n; ++i) {
        size_t t = tt + i, w = t / ctx, pos = t % ctx;
        int32_t target = tokens[(size_t(w0) + w) * ctx + pos + 1];
        log_softmax(logits + i * V, V, lq.data());
        const float* lp = ref_lp.data() + t * V;
        double kl = 0;
        size_t am = 0, aq = 0;
        for (size_t v = 0; v < V; ++v) {
          double p = std::exp(double(lp[v]));
          kl += p * (double(lp[v]) - double(lq[v]));
          if (lp[v] > lp[am]) am = v;
          if (lq[v] > lq[aq]) aq = v;
        }
        kls.push_back(std::max(kl, 0.0));
        same += am == aq;
        for (size_t v = 0; v < V; ++v) idx[v] = int32_t(v);
        std::nth_element(idx.begin(), idx.begin() + ptrdiff_t(K - 1), idx.end(),
                         [&](int32_t a, int32_t b) { return lp[size_t(a)] > lp[size_t(b)]; });
        double tk = 0;
        for (size_t k = 0; k < K; ++k) {
          size_t v = size_t(idx[k]);
          tk += std::exp(double(lp[v])) * (double(lp[v]) - double(lq[v]));
        }
        topk_sum += tk;
        nll_m -= double(lq[size_t(target)]);
        nll_r -= double(lp[size_t(target)]);
      }
      return true;
    }, ro));
    t_ref += t1 - t0;
    t_model += now_s() - t1;
  }
  const size_t n = kls.size();
  r.n_positions = n;
  auto fill = [&](ppl_result& p, double nll, double secs) {
    p.n_predictions = n;
    p.windows = opt.windows;
    p.mean_nll = nll / double(n);
    p.ppl = std::exp(p.mean_nll);
    p.seconds = secs;
    p.tokens_per_s = double(n) / secs;
  };
  fill(r.model, nll_m, t_model);
  fill(r.ref, nll_r, t_ref);
  double s = 0;
  for (double k : kls) s += k;
  r.kl_mean = s / double(n);
  std::sort(kls.begin(), kls.end());
  auto pct = [&](double q) { return kls[std::min(n - 1, size_t(std::ceil(q * double(n))) - 1)]; };
  r.kl_p99 = pct(0.99);
  r.kl_p999 = pct(0.999);
  r.kl_max = kls.back();
  r.topk_kl = topk_sum / double(n);
  r.same_top1 = double(same) / double(n);
  return r;
}

// ---------------------------------------------------------------------------------------------------
// fake-quantized weights
// ---------------------------------------------------------------------------------------------------
std::unique_ptr<weight_provider> fake_quant_weights(const checkpoint& ck, const recipe& r) {
  const checkpoint* c = &ck;
  const recipe* rp = &r;
  return transformed_weights(checkpoint_weights(ck), [c, rp](const std::string& name, int layer, int expert,
                                                             expert_proj p, tensor_f32& t) -> status {
    double bits = kKeepBits;
    if (expert >= 0) {
      auto v = c->expert_matrix(layer, expert, p);
      if (!v || !v->t) return {};
      RAZOR_ASSIGN_OR_RETURN(bits, v->t->cls.fused ? rp->expert_tag(*v->t, expert) : rp->tensor_bits(*v->t));
    } else {
      const tensor_entry* te = c->find_text(name);
      if (!te) te = c->find(name);
      if (!te) return {};
      RAZOR_ASSIGN_OR_RETURN(bits, rp->tensor_bits(*te));
    }
    if (bits >= kKeepBits || t.data.empty()) return {};
    if (expert >= 0) {  // the recipe's expert method (quant/quantize.h recipe_method)
      RAZOR_ASSIGN_OR_RETURN(quant::quant_method m, quant::recipe_method(*rp));
      if (quant::quant_method_needs_tokens(m))
        return make_error(errc::unsupported, "recipe " + rp->name + ": method " + std::string(quant::quant_method_name(m)) +
                                                 " needs calibration tokens; quantize with it (razor quantize) and score "
                                                 "the output with eval-ppl --ref, or use razor compare-methods");
      if (m != quant::quant_method::clip) {
        std::vector<float> q(t.data.size());
        RAZOR_TRY(quant::method_fake_quant(m, t.data.data(), size_t(t.rows()), size_t(t.cols()), bits, rp->group,
                                           rp->clip_steps, {}, q.data()));
        for (size_t i = 0; i < q.size(); ++i) t.data[i] = bf16_to_f32(f32_to_bf16(q[i]));
        return {};
      }
    }
    quant::fq_params fp{float(bits), rp->group, rp->clip_steps};
    std::vector<uint16_t> out(t.data.size());
    RAZOR_TRY(quant::fake_quant(t.data.data(), quant::elem_type::f32, out.data(), quant::elem_type::bf16,
                                size_t(t.rows()), size_t(t.cols()), fp));
    for (size_t i = 0; i < out.size(); ++i) {
      uint32_t u = uint32_t(out[i]) << 16;
      std::memcpy(&t.data[i], &u, 4);
    }
    return {};
  });
}

// ---------------------------------------------------------------------------------------------------
// GGUF -> Hugging Face weights
// ---------------------------------------------------------------------------------------------------
namespace {

class gguf_provider : public weight_provider {
 public:
  gguf_provider(gguf::file f, model_config cfg)
      : f_(std::move(f)),
        cfg_(std::move(cfg)),
        layout_(cfg_, is_hybrid(f_.get_string("general.architecture").value_or("")),
                f_.find_tensor("output.weight") != nullptr) {}
  // The architectures with qwen35moe's layout (gguf/layout.h).
  static bool is_hybrid(const std::string& arch) { return arch == "qwen35moe" || arch == "qwen3next"; }
  const model_config& config() const override { return cfg_; }

  bool has(const std::string& name) const override {
    auto loc = layout_.locate(name);
    return loc && f_.find_tensor(loc->tensor) != nullptr;
  }

  result<tensor_f32> tensor(const std::string& name) override {
    auto loc = layout_.locate(name);
    if (!loc) return make_error(errc::not_found, f_.path() + ": no GGUF tensor for " + name);
    const gguf::tensor_info* ti = f_.find_tensor(loc->tensor);
    if (!ti) return make_error(errc::not_found, f_.path() + ": tensor " + loc->tensor + " (for " + name + ") not found");
    if (loc->how == gguf::gguf_relayout::kv_b_split) return joined_kv_b(*loc, name, *ti);
    const int64_t cols = ti->ne.empty() ? 1 : ti->ne[0];
    const int64_t rows = cols ? ti->nelements() / cols : 0;
    tensor_f32 t;
    t.shape = ti->ne.size() >= 2 ? std::vector<int64_t>{rows, cols} : std::vector<int64_t>{cols};
    t.data.resize(size_t(rows * cols));
    RAZOR_TRY(dequant(*ti, 0, rows, t.data.data()));
    RAZOR_TRY(layout_.to_hf(*loc, name, t.data.data(), t.rows(), t.cols()));
    return t;
  }

  result<tensor_f32> expert(int layer, int e, expert_proj p) override {
    const std::string g = gguf::gguf_layout::expert_tensor(layer, p);
    const gguf::tensor_info* ti = f_.find_tensor(g);
    if (!ti || ti->ne.size() < 3) return make_error(errc::not_found, f_.path() + ": tensor " + g + " not found");
    if (e < 0 || e >= ti->ne[2]) return make_error(errc::invalid_argument, g + ": expert " + std::to_string(e) + " out of range");
    const int64_t cols = ti->ne[0], rows = ti->ne[1];
    tensor_f32 t;
    t.shape = {rows, cols};
    t.data.resize(size_t(rows * cols));
    RAZOR_TRY(dequant(*ti, int64_t(e) * rows, rows, t.data.data()));
    return t;
  }

  std::optional<stored_tensor> shape(const std::string& name) const override {
    auto loc = layout_.locate(name);
    if (!loc) return std::nullopt;
    if (loc->how == gguf::gguf_relayout::kv_b_split) {  // kv_b_proj [n_head x (qk_nope + v_head_dim), kv_lora]
      const gguf::tensor_info* k = f_.find_tensor(loc->tensor);
      const gguf::tensor_info* v = f_.find_tensor(loc->tensor2);
      if (!k || !v || k->ne.size() != 3 || v->ne.size() != 3) return std::nullopt;
      return stored_tensor{f_.path() + ": " + loc->tensor + " + " + loc->tensor2,
                           {k->ne[2] * (k->ne[0] + v->ne[1]), v->ne[0]}};
    }
    const std::string& g = loc->tensor;
    const gguf::tensor_info* ti = f_.find_tensor(g);
    if (!ti) return std::nullopt;
    const int64_t cols = ti->ne.empty() ? 1 : ti->ne[0];
    const int64_t rows = cols ? ti->nelements() / cols : 0;
    return stored_tensor{f_.path() + ": " + g,
                         ti->ne.size() >= 2 ? std::vector<int64_t>{rows, cols} : std::vector<int64_t>{cols}};
  }

  std::optional<stored_tensor> expert_shape(int layer, int e, expert_proj p) const override {
    const std::string g = gguf::gguf_layout::expert_tensor(layer, p);
    const gguf::tensor_info* ti = f_.find_tensor(g);
    if (!ti || ti->ne.size() < 3 || e < 0 || e >= ti->ne[2]) return std::nullopt;
    return stored_tensor{f_.path() + ": " + g + " (expert " + std::to_string(e) + ")", {ti->ne[1], ti->ne[0]}};
  }

 private:
  // deepseek2's kv_b_proj from attn_k_b and attn_v_b (gguf/layout.h's kv_b_split).
  result<tensor_f32> joined_kv_b(const gguf::gguf_location& loc, const std::string& name, const gguf::tensor_info& k) {
    const gguf::tensor_info* v = f_.find_tensor(loc.tensor2);
    if (!v) return make_error(errc::not_found, f_.path() + ": tensor " + loc.tensor2 + " (for " + name + ") not found");
    const gguf::kv_b_shape ks = layout_.kv_b_parts();
    if (k.ne.size() != 3 || v->ne.size() != 3 || k.nelements() != ks.k_values || k.ne[0] != ks.k_cols ||
        v->ne[0] != ks.v_cols || v->ne[2] != k.ne[2])
      return make_error(errc::shape_mismatch, f_.path() + ": " + loc.tensor + " / " + loc.tensor2 +
                                                  " do not match the config's MLA sizes");
    tensor_f32 t;
    t.shape = {k.ne[2] * (k.ne[0] + v->ne[1]), v->ne[0]};
    t.data.resize(size_t(k.nelements() + v->nelements()));
    RAZOR_TRY(dequant(k, 0, k.nelements() / k.ne[0], t.data.data()));
    RAZOR_TRY(dequant(*v, 0, v->nelements() / v->ne[0], t.data.data() + k.nelements()));
    RAZOR_TRY(layout_.to_hf(loc, name, t.data.data(), t.rows(), t.cols()));
    return t;
  }

  status dequant(const gguf::tensor_info& ti, int64_t row0, int64_t rows, float* out) const {
    const int64_t cols = ti.ne.empty() ? 1 : ti.ne[0];
    const uint8_t* base = f_.tensor_data(ti);
    // (gpt-oss's experts as llama.cpp's converter writes them are mxfp4: ggml's dequantizer, a type-table row)
    RAZOR_ASSIGN_OR_RETURN(ggml::type ty, ggml::type_from_id(ti.type));
    const size_t rs = ggml::row_size(ty, cols);
    for (int64_t r = 0; r < rows; ++r)
      RAZOR_TRY(ggml::dequantize_row(ty, base + size_t(row0 + r) * rs, out + r * cols, cols));
    return {};
  }

  gguf::file f_;
  model_config cfg_;
  gguf::gguf_layout layout_;
};

}  // namespace

result<std::unique_ptr<weight_provider>> gguf_weights(const std::string& path, const model_config& cfg) {
  RAZOR_ASSIGN_OR_RETURN(gguf::file f, gguf::file::open(path));
  if (f.get_int("split.count").value_or(1) > 1)
    return make_error(errc::unsupported, path + ": split GGUF files are not supported here (merge the shards first)");
  const std::string arch = f.get_string("general.architecture").value_or("");
  const std::string want = gguf::gguf_arch_for(cfg.model_type).empty() ? gguf::gguf_arch_for(cfg.top_model_type)
                                                                        : gguf::gguf_arch_for(cfg.model_type);
  if (want.empty())  // the architectures our conversion writes are the ones read back (gguf/layout.h)
    return make_error(errc::unsupported, path + ": architecture '" + arch + "': model_type " + cfg.model_type +
                                             " has no GGUF conversion to read back");
  if (want != arch)
    return make_error(errc::invalid_argument, path + ": a " + arch + " file, but the config is " + cfg.model_type);
  return std::unique_ptr<weight_provider>(new gguf_provider(std::move(f), cfg));
}

}  // namespace razor::engine
