#include "alloc/weight_damage.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <chrono>
#include <mutex>

#include "gguf/layout.h"
#include "model/checkpoint.h"

namespace razor::alloc {

namespace {

// KL ~ gain_role x werr^alpha. The output error energy of different roles reaches the logits with very different
// gains (a value or down projection writes the residual stream directly; q, k, gate and up pass a softmax or a
// gate and another matrix first), which no weight statistic gives. These are the medians of log(KL / werr^alpha)
// over every (tensor, type) of both bundled fixtures' measured sensitivities (`--sensitivity full`, 8 windows of
// the calibration half, the imatrix of 102,400 calibration tokens; 1,403 pairs above 1e-5), alpha fitted with them:
// the fitted KL ranks the measured one with Spearman 0.87 (tiny-qwen3-moe) and 0.85 (tiny-qwen3-5-moe), against
// 0.59 / 0.58 for werr alone. A prior from two small models, not a measurement of the model at hand.
constexpr double kWeightsAlpha = 0.8;
struct role_gain {
  const char* suffix;  // GGUF tensor name, without "blk.N." and ".weight"
  double log_gain;
};
constexpr role_gain kRoleGains[] = {
    {"token_embd", 0.06},       {"output", -2.06},          {"attn_q", -5.40},          {"attn_k", -4.45},
    {"attn_v", -3.01},          {"attn_output", -2.89},     {"attn_qkv", -6.15},        {"attn_gate", -5.91},
    {"ssm_alpha", -4.61},       {"ssm_beta", -2.71},        {"ssm_out", -2.10},         {"ffn_gate_exps", -6.63},
    {"ffn_up_exps", -6.81},     {"ffn_down_exps", -4.91},   {"ffn_gate_shexp", -7.04},  {"ffn_up_shexp", -7.04},
    {"ffn_down_shexp", -4.62},  {"ffn_gate", -6.63},        {"ffn_up", -6.81},          {"ffn_down", -4.91},
};
constexpr double kOtherLogGain = -4.6;  // a tensor of no listed kind: the median over all pairs

}  // namespace

std::string weights_prior_id() {
  std::string s = "alpha " + std::to_string(kWeightsAlpha) + " other " + std::to_string(kOtherLogGain);
  for (const role_gain& g : kRoleGains) s += std::string(" ") + g.suffix + " " + std::to_string(g.log_gain);
  return s;
}

namespace {

double log_gain_of(const std::string& tensor) {
  std::string s = tensor;
  if (s.rfind("blk.", 0) == 0) s = s.substr(std::min(s.size(), s.find('.', 4) + 1));
  if (auto dot = s.rfind(".weight"); dot != std::string::npos && dot + 7 == s.size()) s.resize(dot);
  for (const role_gain& g : kRoleGains)
    if (s == g.suffix) return g.log_gain;
  return kOtherLogGain;
}

// The sampled rows of one matrix of an item, in GGUF column order.
struct sampled_matrix {
  std::vector<float> data;
  int64_t rows = 0, cols = 0;
  int64_t mat = 0;     // which matrix of the GGUF tensor (expert), for the imatrix
  double scale = 1;    // all rows / sampled rows
};

// `n` of `rows` rows, evenly spread (all when n >= rows).
std::vector<int64_t> spread(int64_t rows, int64_t n) {
  std::vector<int64_t> r;
  if (n <= 0 || n >= rows) {
    for (int64_t i = 0; i < rows; ++i) r.push_back(i);
    return r;
  }
  for (int64_t i = 0; i < n; ++i) r.push_back((2 * i + 1) * rows / (2 * n));
  return r;
}

// `row_map`: the view's rows the GGUF tensor holds (a part of a split tensor), all of them when null.
status read_sample(const checkpoint& ck, const matrix_view& v, int64_t want, const std::vector<size_t>* col_order,
                   int64_t mat, std::vector<sampled_matrix>& out, const std::vector<int64_t>* row_map = nullptr) {
  const int64_t n_rows = row_map ? int64_t(row_map->size()) : v.n_rows;
  std::vector<int64_t> rows = spread(n_rows, want);
  if (row_map)
    for (auto& r : rows) r = (*row_map)[size_t(r)];
  sampled_matrix m;
  m.rows = int64_t(rows.size());
  m.cols = v.n_cols;
  m.mat = mat;
  m.scale = m.rows ? double(n_rows) / double(m.rows) : 0.0;
  m.data.resize(size_t(m.rows * m.cols));
  std::vector<float> row(size_t(v.n_cols));
  for (size_t i = 0; i < rows.size(); ++i) {
    float* dst = m.data.data() + i * size_t(m.cols);
    if (!col_order) {
      RAZOR_TRY(ck.read_rows_f32(v.row(rows[i]), dst));
      continue;
    }
    RAZOR_TRY(ck.read_rows_f32(v.row(rows[i]), row.data()));
    for (size_t c = 0; c < row.size(); ++c) dst[c] = row[(*col_order)[c]];
  }
  out.push_back(std::move(m));
  return {};
}

// The item's matrices as the GGUF file stores them, `sample_rows` rows in all (0: every row).
result<std::vector<sampled_matrix>> sample_item(const checkpoint& ck, const gguf::gguf_layout& layout, const wf_item& it,
                                                int64_t sample_rows) {
  std::vector<sampled_matrix> out;
  if (it.expert_layer >= 0) {
    const expert_proj p = expert_proj_of(it);
    // fewer rows than experts: one row of each of `sample_rows` experts spread over them (each standing for E / n)
    const int64_t E = ck.config().num_experts;
    const std::vector<int64_t> experts = spread(E, sample_rows > 0 ? std::min(E, sample_rows) : E);
    const int64_t n_e = int64_t(experts.size());
    const int64_t per = sample_rows > 0 ? std::max<int64_t>(1, (sample_rows + n_e - 1) / n_e) : 0;
    for (int64_t e : experts) {
      auto v = ck.expert_matrix(it.expert_layer, int(e), p);
      if (!v) return make_error(errc::not_found, ck.dir() + ": no expert " + std::to_string(e) + " for " + it.tensor);
      RAZOR_TRY(read_sample(ck, *v, per, nullptr, e, out));
      out.back().scale *= double(E) / double(n_e);
    }
    return out;
  }
  const int64_t n_src = int64_t(it.sources.size());
  const int64_t per = sample_rows > 0 ? std::max<int64_t>(1, (sample_rows + n_src - 1) / n_src) : 0;
  for (auto& s : it.sources) {
    const tensor_entry* t = ck.find_text(s);
    auto loc = layout.locate(s);
    bool split = false;  // a part of a split tensor (qwen3next's in_proj_qkvz): the rows it holds, in any order
    if (t && !loc)
      for (const auto& part : layout.split_parts(s))
        if (part.tensor == it.tensor) {
          RAZOR_TRY(read_sample(ck, {t, 0, t->rows(), t->cols()}, per, nullptr, 0, out, &part.rows));
          split = true;
        }
    if (split) continue;
    if (!t || !loc) return make_error(errc::internal, ck.dir() + ": " + s + " (feeding " + it.tensor + ") not found");
    // the item's values are the checkpoint's up to a reorder of rows (which the error sum ignores) or of columns
    if (loc->how != gguf::gguf_relayout::none && loc->how != gguf::gguf_relayout::qkv_v_rows &&
        loc->how != gguf::gguf_relayout::head_rows && loc->how != gguf::gguf_relayout::head_rows_1 &&
        loc->how != gguf::gguf_relayout::head_cols)
      return make_error(errc::internal, it.tensor + ": its values are transformed on conversion; weights-only "
                                                    "damage cannot sample them");
    const matrix_view v{t, 0, t->rows(), t->cols()};
    std::vector<size_t> order;
    if (loc->how == gguf::gguf_relayout::head_cols) order = layout.column_order(*loc, size_t(v.n_cols));
    RAZOR_TRY(read_sample(ck, v, per, order.empty() ? nullptr : &order, 0, out));
  }
  return out;
}

status measure_item(const checkpoint& ck, const gguf::gguf_layout& layout, const gguf::imatrix* imat, wf_item& it,
                    int64_t sample_rows) {
  const auto t0 = std::chrono::steady_clock::now();
  RAZOR_ASSIGN_OR_RETURN(const std::vector<sampled_matrix> mats, sample_item(ck, layout, it, sample_rows));
  const int64_t n_mat = it.expert_layer >= 0 ? ck.config().num_experts : 1;
  std::vector<std::vector<float>> importance;
  std::vector<error_weights> ew;
  for (auto& m : mats) {
    RAZOR_ASSIGN_OR_RETURN(std::vector<float> w, importance_for(imat, it.tensor, m.mat, m.cols));
    importance.push_back(std::move(w));
    ew.push_back(error_weights_for(imat, it.tensor, m.mat, n_mat, m.cols, ck.config().num_experts_per_tok));
  }
  // looked up (embedding) or scored (head) one row per token: the mean over rows
  const bool per_row = it.tensor == "token_embd.weight" || it.tensor == "output.weight";
  const double rows = double(it.params) / double(it.ne.empty() ? 1 : std::max<int64_t>(1, it.ne[0]));
  const double unit = per_row ? 1.0 / rows : 1.0;
  it.sensitivity = std::exp(log_gain_of(it.tensor));
  std::vector<float> q;
  for (auto& c : it.choices) {
    roundtrip_error e;
    for (size_t i = 0; i < mats.size(); ++i) {
      const sampled_matrix& m = mats[i];
      q = m.data;
      RAZOR_TRY(roundtrip_rows(c.type, q.data(), m.rows, m.cols, importance[i].empty() ? nullptr : importance[i].data(), 1));
      add_error(e, ew[i], m.data.data(), q.data(), m.rows, m.cols, m.scale * unit);
    }
    c.rel_error = e.relative();
    c.kl = -1;
    c.damage = it.sensitivity * std::pow(e.werr, kWeightsAlpha);
  }
  it.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return {};
}

}  // namespace

result<measure_report> measure_weights(const checkpoint& ck, const gguf::imatrix* imat, wf_plan& plan,
                                       const weights_options& opt) {
  const auto t0 = std::chrono::steady_clock::now();
  const gguf::gguf_layout layout(ck.config());
  const size_t n = plan.items.size();
  std::atomic<size_t> done{0};
  std::atomic<bool> cancelled{false};
  std::mutex mu;  // the first error, and the progress callback (never concurrent with itself)
  status first;
  parallel_for(
      n,
      [&](size_t b, size_t e) {
        for (size_t i = b; i < e && !cancelled; ++i) {
          status st = measure_item(ck, layout, imat, plan.items[i], opt.sample_rows);
          std::lock_guard<std::mutex> lock(mu);
          if (!st.ok()) {
            if (first.ok()) first = st;
            cancelled = true;
            return;
          }
          const size_t d = ++done;
          if (opt.progress && !opt.progress(double(d), double(n), plan.items[i].tensor.c_str())) cancelled = true;
        }
      },
      1, opt.threads);
  RAZOR_TRY(first);
  if (cancelled) return make_error(errc::cancelled, "weights-only damage cancelled");
  RAZOR_TRY(ck.check_mapped());
  measure_report rep;
  rep.alpha = kWeightsAlpha;
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return rep;
}

}  // namespace razor::alloc
