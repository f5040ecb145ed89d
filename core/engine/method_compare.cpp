#include "engine/method_compare.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <tuple>

#include "model/checkpoint.h"
#include "quant/quantize.h"
#include "util/numeric.h"
#include "util/parallel.h"

namespace razor::engine {

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void round_bf16(std::vector<float>& v) {
  for (float& x : v) x = bf16_to_f32(f32_to_bf16(x));
}

// The seed's expert metric on x [n, H]: o = down(silu(gate x) * up x) with the reference and the quantized weights
// (gate / up [I, H], down [H, I]); returns sum((o_q - o)^2) / sum(o^2).
double expert_nmse(const quant::calib_view& xv, int64_t I, const float* wg, const float* wu, const float* wd,
                   const float* qg, const float* qu, const float* qd) {
  const int64_t n = xv.n, H = xv.cols;
  std::vector<double> num(size_t(n), 0.0), den(size_t(n), 0.0);
  parallel_for(size_t(n), [&](size_t b, size_t e) {
    std::vector<float> h(static_cast<size_t>(I)), hq(static_cast<size_t>(I));
    for (size_t t = b; t < e; ++t) {
      const float* x = xv.x + t * size_t(H);
      for (int64_t j = 0; j < I; ++j) {
        float g = 0, u = 0, gq = 0, uq = 0;
        const float *rg = wg + j * H, *ru = wu + j * H, *sg = qg + j * H, *su = qu + j * H;
        for (int64_t c = 0; c < H; ++c) g += x[c] * rg[c], u += x[c] * ru[c], gq += x[c] * sg[c], uq += x[c] * su[c];
        h[size_t(j)] = silu(g) * u;
        hq[size_t(j)] = silu(gq) * uq;
      }
      double nu = 0, de = 0;
      for (int64_t o = 0; o < H; ++o) {
        float y = 0, yq = 0;
        const float *rd = wd + o * I, *sd = qd + o * I;
        for (int64_t j = 0; j < I; ++j) y += h[size_t(j)] * rd[j], yq += hq[size_t(j)] * sd[j];
        nu += double(yq - y) * double(yq - y);
        de += double(y) * y;
      }
      num[t] = nu;
      den[t] = de;
    }
  }, 4);
  double a = 0, d = 0;
  for (int64_t t = 0; t < n; ++t) a += num[size_t(t)], d += den[size_t(t)];
  return d > 0 ? a / d : 0.0;
}

double mean_of(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0.0 : s / double(v.size());
}
double median_of(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

const expert_proj kProjs[3] = {expert_proj::gate, expert_proj::up, expert_proj::down};

struct method_acc {
  std::vector<double> expert, proj[3];
  std::map<int, std::vector<double>> per_layer;
  std::map<std::string, int64_t> fallbacks;
  int64_t slices = 0;
  double seconds = 0;
};

}  // namespace

result<nlohmann::json> compare_methods(const checkpoint& ck, const std::vector<int32_t>& calib_tokens,
                                       const std::vector<int32_t>& eval_tokens, const compare_options& opt) {
  using nlohmann::json;
  if (opt.methods.empty()) return make_error(errc::invalid_argument, "compare-methods: no methods given");
  auto wp = checkpoint_weights(ck);
  RAZOR_ASSIGN_OR_RETURN(model_dims d, dims_for(*wp));
  if (d.a == arch::gpt_oss)
    return make_error(errc::unsupported, std::string("compare-methods: ") + arch_name(d.a) +
                                             "'s clamped SwiGLU experts are not covered (the expert metric uses silu)");
  if (d.n_experts <= 0) return make_error(errc::unsupported, "compare-methods: " + ck.dir() + " has no routed experts");
  const size_t M = opt.methods.size();
  std::vector<method_acc> acc(M);
  // method -> (layer, expert, proj) -> quantized matrix (BF16 values), for step 4
  std::vector<std::map<std::tuple<int, int, int>, std::vector<uint16_t>>> store(M);
  json experts = json::array();
  auto reader = checkpoint_weights(ck);  // the pass's own provider stays with the forward
  const double t_start = now_s();
  double t_calib = 0;
  const size_t gptq_mi = size_t(std::find(opt.methods.begin(), opt.methods.end(), quant::quant_method::gptq) -
                                 opt.methods.begin());
  const bool gptq_batched = gptq_mi < M && opt.allow_gpu;
  bool gptq_gpu = false;
  auto on_layer = [&](layer_tokens&& lt) -> status {
    const int L = lt.layer;
    const int64_t H = lt.hidden, I = lt.ff;
    // GPTQ batched (opt.allow_gpu): the slices of experts [e0, e1) in the order `run` asks for them (fused: gate_up,
    // down; else gate, up, down), quantized together by shape (gate and up share tokens), bounded to ~256 MiB.
    struct gptq_slice {
      std::vector<float> q;
      quant::method_report rep;
    };
    std::map<int, std::vector<gptq_slice>> gptq_pre;
    // An expert's gate / up / down as float (shapes checked), and whether the checkpoint fuses gate with up.
    auto read_expert = [&](int e, tensor_f32 (&w)[3], bool& fused) -> status {
      for (int k = 0; k < 3; ++k) {
        RAZOR_ASSIGN_OR_RETURN(w[k], reader->expert(L, e, kProjs[k]));
        const int64_t rows = k < 2 ? I : H, cols = k < 2 ? H : I;
        RAZOR_TRY(check_shape(expert_tensor_name(L, e, kProjs[k]), w[k], rows, cols));
      }
      auto mv = ck.expert_matrix(L, e, expert_proj::gate);
      fused = mv && mv->t && mv->t->cls.fused;
      return {};
    };
    std::map<int, size_t> gptq_next;
    auto gptq_chunk = [&](int e0) -> status {
      const double t0 = now_s();
      const size_t per = size_t(3 * I * H);
      const int e1 = int(std::min<size_t>(lt.experts.size(), size_t(e0) + std::max<size_t>(1, (size_t(64) << 20) / per)));
      std::vector<std::vector<float>> ws;  // the weights, one per slice
      std::vector<quant::gptq_batch_item> gu, gate_up, down;
      ws.reserve(size_t(e1 - e0) * 3);
      for (int e = e0; e < e1; ++e) {
        tensor_f32 w[3];
        bool fused = false;
        RAZOR_TRY(read_expert(e, w, fused));
        const quant::calib_view cal_x = token_view(lt, e, false, token_half::calibration);
        const quant::calib_view cal_a = token_view(lt, e, true, token_half::calibration);
        auto& sl = gptq_pre[e];
        sl.resize(fused ? 2 : 3);
        auto add = [&](std::vector<float> v, const quant::calib_view& cv, gptq_slice& s,
                       std::vector<quant::gptq_batch_item>& to) {
          ws.push_back(std::move(v));
          s.q.resize(ws.back().size());
          to.push_back({ws.back().data(), cv, s.q.data(), &s.rep});
        };
        if (fused) {
          std::vector<float> g(size_t(2 * I * H));
          std::copy(w[0].data.begin(), w[0].data.end(), g.begin());
          std::copy(w[1].data.begin(), w[1].data.end(), g.begin() + I * H);
          add(std::move(g), cal_x, sl[0], gu);
        } else {
          add(std::move(w[0].data), cal_x, sl[0], gate_up);
          add(std::move(w[1].data), cal_x, sl[1], gate_up);
        }
        add(std::move(w[2].data), cal_a, sl.back(), down);
        gptq_next[e] = 0;
      }
      auto batch = [&](const std::vector<quant::gptq_batch_item>& items, int64_t rows, int64_t cols) -> status {
        if (items.empty()) return {};
        bool gpu = false;
        status st = quant::gptq_fake_quant_batch(items, size_t(rows), size_t(cols), opt.bits, opt.group, true, &gpu);
        if (!st.ok())
          return make_error(st.code(), "layer " + std::to_string(L) + " experts " + std::to_string(e0) + ".." +
                                           std::to_string(e1 - 1) + ", gptq: " + st.message());
        gptq_gpu |= gpu;
        return {};
      };
      RAZOR_TRY(batch(gu, 2 * I, H));
      RAZOR_TRY(batch(gate_up, I, H));
      RAZOR_TRY(batch(down, H, I));
      acc[gptq_mi].seconds += now_s() - t0;
      return {};
    };
    for (int e = 0; e < int(lt.experts.size()); ++e) {
      tensor_f32 w[3];
      bool fused = false;
      RAZOR_TRY(read_expert(e, w, fused));
      const quant::calib_view cal_x = token_view(lt, e, false, token_half::calibration);
      const quant::calib_view cal_a = token_view(lt, e, true, token_half::calibration);
      const quant::calib_view held_x = token_view(lt, e, false, token_half::held_out);
      const quant::calib_view held_a = token_view(lt, e, true, token_half::held_out);
      const bool scored = held_x.n >= opt.min_tokens;
      json ej;
      if (scored) ej = {{"layer", L}, {"expert", e}, {"tokens", lt.experts[size_t(e)].n},
                        {"routed", lt.experts[size_t(e)].routed}, {"calibration", cal_x.n}, {"held_out", held_x.n}};
      for (size_t mi = 0; mi < M; ++mi) {
        const quant::quant_method m = opt.methods[mi];
        const double t0 = now_s();
        std::vector<float> q[3];
        auto run = [&](const float* src, size_t rows, size_t cols, const quant::calib_view& cv, float* out) -> status {
          quant::method_report rep;
          status st;
          if (gptq_batched && mi == gptq_mi) {
            if (!gptq_pre.count(e)) RAZOR_TRY(gptq_chunk(e));
            auto& sl = gptq_pre[e];
            size_t& k = gptq_next[e];
            if (k >= sl.size() || sl[k].q.size() != rows * cols)
              return make_error(errc::internal, "compare-methods: the GPTQ batch lost a slice");
            std::copy(sl[k].q.begin(), sl[k].q.end(), out);
            rep = sl[k].rep;
            if (++k == sl.size()) gptq_pre.erase(e);
          } else {
            st = quant::method_fake_quant(m, src, rows, cols, opt.bits, opt.group, opt.clip_steps, cv, out, &rep);
          }
          if (!st.ok())
            return make_error(st.code(), "layer " + std::to_string(L) + " expert " + std::to_string(e) + ", " +
                                             std::string(quant::quant_method_name(m)) + ": " + st.message());
          ++acc[mi].slices;
          if (!rep.fallback.empty()) ++acc[mi].fallbacks[rep.fallback];
          return {};
        };
        q[0].resize(size_t(I * H));
        q[1].resize(size_t(I * H));
        q[2].resize(size_t(H * I));
        if (fused) {  // gate_up [2I, H] as one matrix, as razor quantize sees it
          std::vector<float> gu(size_t(2 * I * H)), qgu(gu.size());
          std::copy(w[0].data.begin(), w[0].data.end(), gu.begin());
          std::copy(w[1].data.begin(), w[1].data.end(), gu.begin() + I * H);
          RAZOR_TRY(run(gu.data(), size_t(2 * I), size_t(H), cal_x, qgu.data()));
          std::copy(qgu.begin(), qgu.begin() + I * H, q[0].begin());
          std::copy(qgu.begin() + I * H, qgu.end(), q[1].begin());
        } else {
          RAZOR_TRY(run(w[0].data.data(), size_t(I), size_t(H), cal_x, q[0].data()));
          RAZOR_TRY(run(w[1].data.data(), size_t(I), size_t(H), cal_x, q[1].data()));
        }
        RAZOR_TRY(run(w[2].data.data(), size_t(H), size_t(I), cal_a, q[2].data()));
        for (auto& v : q) round_bf16(v);
        acc[mi].seconds += now_s() - t0;
        if (scored) {
          const double ng = quant::output_nmse(w[0].data.data(), q[0].data(), I, H, held_x);
          const double nu = quant::output_nmse(w[1].data.data(), q[1].data(), I, H, held_x);
          const double nd = quant::output_nmse(w[2].data.data(), q[2].data(), H, I, held_a);
          const double ne = expert_nmse(held_x, I, w[0].data.data(), w[1].data.data(), w[2].data.data(), q[0].data(),
                                        q[1].data(), q[2].data());
          acc[mi].expert.push_back(ne);
          acc[mi].proj[0].push_back(ng);
          acc[mi].proj[1].push_back(nu);
          acc[mi].proj[2].push_back(nd);
          acc[mi].per_layer[L].push_back(ne);
          ej["nmse"][std::string(quant::quant_method_name(m))] = {{"expert", ne}, {"gate", ng}, {"up", nu}, {"down", nd}};
        }
        if (opt.full_model)
          for (int k = 0; k < 3; ++k) {
            std::vector<uint16_t> b(q[k].size());
            for (size_t i = 0; i < b.size(); ++i) b[i] = f32_to_bf16(q[k][i]);
            store[mi][{L, e, k}] = std::move(b);
          }
      }
      if (scored) experts.push_back(std::move(ej));
    }
    reader->release_layer(L);
    if (opt.log) opt.log("layer " + std::to_string(L) + ": " + std::to_string(lt.experts.size()) + " experts quantized by " +
                         std::to_string(M) + " methods");
    return {};
  };
  RAZOR_TRY(stream_calib_tokens(*wp, calib_tokens, opt.calib, on_layer));
  t_calib = now_s() - t_start;

  json out;
  out["format"] = "razor.method_compare/1";
  out["model"] = ck.dir();
  out["bits"] = opt.bits;
  out["group"] = opt.group;
  out["clip_steps"] = opt.clip_steps;
  out["min_tokens"] = opt.min_tokens;
  out["calibration"] = {{"first_token", opt.calib.first_token}, {"tokens", opt.calib.n_tokens},
                        {"seqlen", opt.calib.seqlen}, {"max_per_expert", opt.calib.max_per_expert},
                        {"split", "first half calibrates, second half is held out"}};
  json methods = json::array(), summary = json::object(), per_layer = json::object();
  for (size_t mi = 0; mi < M; ++mi) {
    const std::string name(quant::quant_method_name(opt.methods[mi]));
    methods.push_back(name);
    const method_acc& a = acc[mi];
    json s = {{"mean_nmse", mean_of(a.expert)},          {"median_nmse", median_of(a.expert)},
              {"n_experts", a.expert.size()},            {"mean_nmse_gate", mean_of(a.proj[0])},
              {"mean_nmse_up", mean_of(a.proj[1])},      {"mean_nmse_down", mean_of(a.proj[2])},
              {"slices", a.slices},                      {"quantize_seconds", a.seconds}};
    json fb = json::object();
    for (auto& [why, n] : a.fallbacks) fb[why] = n;
    s["fallbacks"] = fb;
    summary[name] = s;
    for (auto& [L, v] : a.per_layer) per_layer[std::to_string(L)][name] = mean_of(v);
  }
  out["methods"] = methods;
  out["summary"] = summary;
  out["per_layer"] = per_layer;
  out["experts"] = std::move(experts);
  out["seconds_nmse"] = t_calib;
  if (gptq_mi < M) out["gptq_device"] = gptq_gpu ? "cuda" : "cpu";

  if (opt.full_model) {
    out["eval"] = {{"windows", opt.eval.windows}, {"ctx", opt.eval.ctx}, {"topk", opt.eval.topk}};
    auto ref = checkpoint_weights(ck);
    for (size_t mi = 0; mi < M; ++mi) {
      const std::string name(quant::quant_method_name(opt.methods[mi]));
      if (opt.log) opt.log("KL / ppl of " + name + "'s model");
      const auto* st = &store[mi];
      auto model = transformed_weights(checkpoint_weights(ck), [st](const std::string& tname, int layer, int expert,
                                                                    expert_proj p, tensor_f32& t) -> status {
        if (expert < 0) return {};
        const int k = p == expert_proj::gate ? 0 : p == expert_proj::up ? 1 : p == expert_proj::down ? 2 : -1;
        auto it = st->find({layer, expert, k});
        if (k < 0 || it == st->end()) return make_error(errc::internal, tname + ": no quantized matrix");
        if (it->second.size() != t.data.size()) return make_error(errc::shape_mismatch, tname + ": size differs");
        for (size_t i = 0; i < t.data.size(); ++i) t.data[i] = bf16_to_f32(it->second[i]);
        return {};
      });
      RAZOR_ASSIGN_OR_RETURN(kl_result kr, kl_divergence(*model, *ref, eval_tokens, opt.eval));
      json& s = out["summary"][name];
      s["kl_mean"] = kr.kl_mean;
      s["kl_p99"] = kr.kl_p99;
      s["topk_kl"] = kr.topk_kl;
      s["same_top1"] = kr.same_top1;
      s["ppl"] = kr.model.ppl;
      out["ref_ppl"] = kr.ref.ppl;
      out["eval"]["positions"] = kr.n_positions;
    }
  }
  out["seconds"] = now_s() - t_start;
  return out;
}

}  // namespace razor::engine
