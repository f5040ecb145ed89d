#include "engine/calib_tokens.h"

#include <algorithm>

namespace razor::engine {

quant::calib_view token_view(const layer_tokens& lt, int expert, bool down, token_half h) {
  if (expert < 0 || size_t(expert) >= lt.experts.size()) return {};
  const expert_tokens& e = lt.experts[size_t(expert)];
  const int64_t cols = down ? lt.ff : lt.hidden;
  const float* base = down ? e.act.data() : e.x.data();
  const int64_t half = e.n / 2;
  int64_t first = 0, n = e.n;
  if (h == token_half::calibration) n = half;
  if (h == token_half::held_out) first = half, n = e.n - half;
  if (n <= 0) return {nullptr, 0, cols};
  return {base + first * cols, n, cols};
}

namespace {

// Collects one layer at a time; the finished layer goes to the sink when the next one loads and at the end.
class token_observer : public forward_observer {
 public:
  token_observer(const model_dims& d, size_t cap, const std::function<status(layer_tokens&&)>& sink)
      : d_(d), cap_(cap), sink_(sink) {}

  bool wants_expert_tokens() const override { return true; }

  void on_layer_loaded(const layer_weights& w) override { flush(); }

  void on_expert_tokens(int layer, int expert, size_t n, const float* x, int64_t hidden, const float* act,
                        int64_t ff) override {
    if (!err_.ok()) return;
    if (cur_.layer != layer) {
      flush();
      cur_ = layer_tokens{};
      cur_.layer = layer;
      cur_.hidden = hidden;
      cur_.ff = ff;
      cur_.experts.resize(size_t(d_.n_experts));
    }
    if (expert < 0 || size_t(expert) >= cur_.experts.size()) return;
    expert_tokens& e = cur_.experts[size_t(expert)];
    e.routed += int64_t(n);
    const size_t take = std::min(n, cap_ - std::min(cap_, size_t(e.n)));
    if (!take) return;
    e.x.insert(e.x.end(), x, x + take * size_t(hidden));
    e.act.insert(e.act.end(), act, act + take * size_t(ff));
    e.n += int64_t(take);
  }

  void flush() {
    if (cur_.layer < 0 || !err_.ok()) return;
    err_ = sink_(std::move(cur_));
    cur_ = layer_tokens{};
  }
  const status& error() const { return err_; }

 private:
  const model_dims& d_;
  size_t cap_;
  const std::function<status(layer_tokens&&)>& sink_;
  layer_tokens cur_;
  status err_;
};

}  // namespace

status stream_calib_tokens(weight_provider& wp, const std::vector<int32_t>& tokens, const calib_options& opt,
                           const std::function<status(layer_tokens&&)>& on_layer) {
  RAZOR_ASSIGN_OR_RETURN(model_dims d, dims_for(wp));
  if (opt.seqlen == 0) return make_error(errc::invalid_argument, "seqlen must be positive");
  if (opt.max_per_expert == 0) return make_error(errc::invalid_argument, "tokens per expert must be positive");
  if (opt.first_token >= tokens.size())
    return make_error(errc::invalid_argument, "first token " + std::to_string(opt.first_token) + " is past the " +
                                                  std::to_string(tokens.size()) + " tokens of the stream");
  const size_t n = std::min(opt.n_tokens, tokens.size() - opt.first_token);
  if (n == 0) return make_error(errc::invalid_argument, "no calibration tokens");
  std::vector<std::vector<int32_t>> seqs;
  const auto base = tokens.begin() + ptrdiff_t(opt.first_token);
  for (size_t t0 = 0; t0 < n; t0 += opt.seqlen)
    seqs.emplace_back(base + ptrdiff_t(t0), base + ptrdiff_t(std::min(n, t0 + opt.seqlen)));
  token_observer obs(d, opt.max_per_expert, on_layer);
  run_options ro;
  ro.observer = &obs;
  ro.progress = opt.progress;
  ro.device = backend::cpu;
  ro.compute_logits = false;
  status st = forward(wp, d, seqs, [](size_t, size_t, const float*) { return true; }, ro);
  if (!obs.error().ok()) return obs.error();  // the sink's error first: it is why the pass stopped
  RAZOR_TRY(st);
  obs.flush();
  return obs.error();
}

uint64_t calib_tokens_bytes(const model_dims& d, size_t max_per_expert, size_t n_tokens) {
  // An expert keeps at most min(cap, tokens) rows; a layer's experts together at most tokens * top_k rows.
  const uint64_t per_layer_rows = std::min<uint64_t>(uint64_t(d.n_experts) * std::min(max_per_expert, n_tokens),
                                                     uint64_t(n_tokens) * uint64_t(std::max<int64_t>(d.top_k, 1)));
  return uint64_t(d.n_layers) * per_layer_rows * uint64_t(d.hidden + d.moe_ff) * sizeof(float);
}

result<std::vector<layer_tokens>> capture_calib_tokens(weight_provider& wp, const std::vector<int32_t>& tokens,
                                                       const calib_options& opt, uint64_t max_bytes) {
  RAZOR_ASSIGN_OR_RETURN(model_dims d, dims_for(wp));
  const uint64_t need = calib_tokens_bytes(d, opt.max_per_expert, opt.n_tokens);
  if (max_bytes && need > max_bytes)
    return make_error(errc::unsupported, "calibration tokens would take up to " + std::to_string(need >> 20) +
                                             " MiB (" + std::to_string(opt.max_per_expert) +
                                             " per expert), more than the bound of " + std::to_string(max_bytes >> 20) +
                                             " MiB: lower the tokens per expert");
  std::vector<layer_tokens> out(size_t(d.n_layers));
  for (size_t L = 0; L < out.size(); ++L) out[L].layer = int(L);
  RAZOR_TRY(stream_calib_tokens(wp, tokens, opt, [&](layer_tokens&& lt) -> status {
    if (lt.layer >= 0 && size_t(lt.layer) < out.size()) out[size_t(lt.layer)] = std::move(lt);
    return {};
  }));
  return out;
}

}  // namespace razor::engine
