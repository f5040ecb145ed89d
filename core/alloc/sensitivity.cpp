#include "alloc/sensitivity.h"

#include <algorithm>
#include <cmath>
#include <mutex>

#include "engine/eval.h"
#include "util/parallel.h"

namespace razor::alloc {

result<reference_pass> reference_pass::run(engine::weight_provider& wp, const std::vector<std::vector<int32_t>>& seqs,
                                           const reference_options& opt) {
  reference_pass r;
  RAZOR_ASSIGN_OR_RETURN(r.d_, engine::dims_for(wp));
  r.seqs_ = seqs;
  r.seq_start_ = {0};
  for (auto& s : seqs) r.seq_start_.push_back(r.seq_start_.back() + s.size());
  const size_t n = r.seq_start_.back(), V = size_t(r.d_.vocab);
  if (n == 0) return make_error(errc::invalid_argument, "no calibration tokens");
  r.K_ = double(n) * double(V) * sizeof(float) <= double(opt.max_full_bytes) ? V : std::min<size_t>(V, size_t(std::max(opt.top_k, 1)));
  r.lp_.assign(n * r.K_, 0.0f);
  if (r.K_ < V) {
    r.idx_.assign(n * r.K_, 0);
    r.rest_.assign(n, 0.0f);
  }
  r.argmax_.assign(n, 0);
  r.hidden_.resize(size_t(r.d_.n_layers) + 1);

  // next token of position t within its sequence (-1 at a sequence's last position)
  std::vector<int32_t> next(n, -1);
  for (size_t s = 0; s < seqs.size(); ++s)
    for (size_t i = 0; i + 1 < seqs[s].size(); ++i) next[r.seq_start_[s] + i] = seqs[s][i + 1];

  engine::run_options ro = opt.run;
  ro.on_layer_input = [&r](int L, const engine::tensor_f32& h) {
    r.hidden_[size_t(L)] = h;
    return true;
  };
  std::mutex mu;
  double nll = 0;
  size_t scored = 0;
  RAZOR_TRY(engine::forward(wp, r.d_, seqs, [&](size_t t0, size_t m, const float* logits) {
    parallel_for(m, [&](size_t b, size_t e) {
      std::vector<float> lp(V);
      std::vector<int32_t> order;
      double my_nll = 0;
      size_t my_scored = 0;
      for (size_t i = b; i < e; ++i) {
        const size_t t = t0 + i;
        engine::log_softmax(logits + i * V, V, lp.data());
        r.argmax_[t] = int32_t(std::max_element(lp.begin(), lp.end()) - lp.begin());
        if (next[t] >= 0) {
          my_nll -= double(lp[size_t(next[t])]);
          ++my_scored;
        }
        if (r.K_ == V) {
          std::copy(lp.begin(), lp.end(), r.lp_.begin() + ptrdiff_t(t * V));
          continue;
        }
        order.resize(V);
        for (size_t v = 0; v < V; ++v) order[v] = int32_t(v);
        std::nth_element(order.begin(), order.begin() + ptrdiff_t(r.K_ - 1), order.end(),
                         [&](int32_t x, int32_t y) { return lp[size_t(x)] > lp[size_t(y)]; });
        for (size_t k = 0; k < r.K_; ++k) {
          r.idx_[t * r.K_ + k] = order[k];
          r.lp_[t * r.K_ + k] = lp[size_t(order[k])];
        }
        double rest = 0;
        for (size_t k = r.K_; k < V; ++k) rest += std::exp(double(lp[size_t(order[k])]));
        r.rest_[t] = float(std::log(std::max(rest, 1e-30)));
      }
      std::lock_guard lk(mu);
      nll += my_nll;
      scored += my_scored;
    }, 8);
    return true;
  }, ro));
  for (auto& h : r.hidden_)
    if (h.data.empty()) return make_error(errc::internal, "reference pass: a layer's input was not captured");
  r.scored_ = n;
  r.ref_nll_ = scored ? nll / double(scored) : 0.0;
  return r;
}

result<kl_stats> reference_pass::kl(engine::weight_provider& wp, int first_layer, const engine::run_options& run) const {
  const size_t n = seq_start_.back(), V = size_t(d_.vocab), K = K_;
  std::vector<double> kls(n, 0.0);
  std::vector<uint8_t> same(n, 0);
  std::vector<int32_t> next(n, -1);
  for (size_t s = 0; s < seqs_.size(); ++s)
    for (size_t i = 0; i + 1 < seqs_[s].size(); ++i) next[seq_start_[s] + i] = seqs_[s][i + 1];
  std::mutex mu;
  double nll = 0;
  size_t scored = 0;
  auto on_logits = [&](size_t t0, size_t m, const float* logits) {
    parallel_for(m, [&](size_t b, size_t e) {
      std::vector<float> lq(V);
      double my_nll = 0;
      size_t my_scored = 0;
      for (size_t i = b; i < e; ++i) {
        const size_t t = t0 + i;
        engine::log_softmax(logits + i * V, V, lq.data());
        const float* lp = lp_.data() + t * K;
        double kl = 0;
        if (K == V) {
          for (size_t v = 0; v < V; ++v) kl += std::exp(double(lp[v])) * (double(lp[v]) - double(lq[v]));
        } else {
          const int32_t* ix = idx_.data() + t * K;
          double q_kept = 0;
          for (size_t k = 0; k < K; ++k) {
            const double lqk = lq[size_t(ix[k])];
            kl += std::exp(double(lp[k])) * (double(lp[k]) - lqk);
            q_kept += std::exp(lqk);
          }
          const double q_rest = std::max(1.0 - q_kept, 1e-30);
          kl += std::exp(double(rest_[t])) * (double(rest_[t]) - std::log(q_rest));
        }
        kls[t] = std::max(kl, 0.0);
        same[t] = (std::max_element(lq.begin(), lq.end()) - lq.begin()) == argmax_[t];
        if (next[t] >= 0) {
          my_nll -= double(lq[size_t(next[t])]);
          ++my_scored;
        }
      }
      std::lock_guard lk(mu);
      nll += my_nll;
      scored += my_scored;
    }, 8);
    return true;
  };
  engine::run_options ro = run;
  ro.on_layer_input = nullptr;
  if (first_layer < 0) {
    RAZOR_TRY(engine::forward(wp, d_, seqs_, on_logits, ro));
  } else {
    if (first_layer > int(d_.n_layers)) return make_error(errc::invalid_argument, "kl: layer out of range");
    RAZOR_TRY(engine::forward_from(wp, d_, seq_start_, hidden_[size_t(first_layer)], first_layer, on_logits, ro));
  }
  kl_stats st;
  st.positions = n;
  double s = 0, sm = 0;
  for (size_t t = 0; t < n; ++t) {
    s += kls[t];
    sm += same[t];
  }
  st.mean = s / double(n);
  st.same_top1 = sm / double(n);
  st.nll = scored ? nll / double(scored) : 0.0;
  std::sort(kls.begin(), kls.end());
  st.p99 = kls[std::min(n - 1, size_t(std::ceil(0.99 * double(n))) - 1)];
  st.max = kls.back();
  return st;
}

}  // namespace razor::alloc
