// GPU tokens/s of the reference engine on a stack of Qwen3.5-122B-A10B-shaped layers (hidden 3072, 256 experts
// of 1024, top-8, shared expert 1024, Gated DeltaNet 16 k-heads / 64 v-heads of 128, gated attention 32 q-heads
// / 2 kv-heads of 256), with the GPU memory peak, and the CPU reference on a slice for the ratio.
//
//   bench_engine_gpu [--config resources/configs/qwen3.5-122b-a10b.json] [--layers 4] [--seqs 8] [--seqlen 512]
//                    [--reps 3] [--cpu-seqlen 512] [--no-cpu] [--no-tf32]
//
// Variants: BF16 weights (the engine's default: cuBLAS GemmEx on tensor cores), fp32 (SGEMM, the reference
// math) and TF32 (fp32 weights on tensor cores).
//
// Weights: the config restricted to --layers layers (its layer_types: 3 linear-attention + 1 full-attention
// for 4) with random values filled on the device per layer (gpu_engine::random_layer: the same arena and
// layout an uploaded layer gets). A synthetic checkpoint of these shapes (`razor synth`) would be ~19 GB of
// BF16 for 4 layers: too big to carry to the GPU machine, and its upload is measured separately (PCIe rate
// x one layer's bytes). Timing: a warm-up pass through the stack, then --reps passes; per layer the median
// of host-clock times around run_layer() with the device synchronised before and after.
// CPU: one linear-attention and one full-attention layer of the same shapes built from host random weights,
// --cpu-seqlen tokens (one sequence) through engine's blocks; the same weights and tokens go through the GPU
// engine (upload_layer) for a GPU-vs-CPU check on 122B shapes.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "util/paths.h"
#include "engine/model_runner.h"
#include "kernels/cuda_info.h"
#include "kernels/engine_cuda.h"
#include "model/hf_config.h"
#include "util/parallel.h"

using namespace razor;
using clk = std::chrono::steady_clock;

namespace {

double secs(clk::time_point a) { return std::chrono::duration<double>(clk::now() - a).count(); }
double gib(double b) { return b / double(1ull << 30); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

uint64_t mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}
void fill(std::vector<float>& v, size_t n, uint64_t seed, float scale, float offset = 0.0f) {
  v.resize(n);
  parallel_for(n, [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i) {
      float u = float(mix64(seed * 0x9e3779b97f4a7c15ULL + i) >> 40) * (1.0f / 8388608.0f) - 1.0f;
      v[i] = offset + scale * u;
    }
  }, 1 << 16);
}
uint64_t g_seed = 1;
engine::linear rlin(int64_t in, int64_t out) {
  engine::linear l;
  l.in = in;
  l.out = out;
  fill(l.wt, size_t(in * out), g_seed++, 1.0f / std::sqrt(float(in)));
  return l;
}
std::vector<float> rvec(size_t n, float scale, float offset) {
  std::vector<float> v;
  fill(v, n, g_seed++, scale, offset);
  return v;
}

// Keeps the CPU router's choices (ids [n, top_k]).
struct router_obs : engine::forward_observer {
  std::vector<int32_t> ids;
  void on_router(int, size_t n, const float*, const int32_t* i, const float*, int top_k) override {  // x_norm unused
    ids.assign(i, i + n * size_t(top_k));
  }
};

// The CPU reference layer (model_runner.cpp's forward loop body).
void cpu_layer(const engine::model_dims& d, const engine::layer_weights& w, std::vector<float>& h,
               const std::vector<size_t>& seq_start, engine::forward_observer* obs) {
  const size_t n = seq_start.back(), H = size_t(d.hidden);
  std::vector<float> xn(n * H), y(n * H);
  const float eps = float(d.eps);
  engine::rms_norm(h.data(), n, H, w.in_norm.data(), eps, xn.data());
  if (w.linear_attention)
    engine::deltanet_block(d, w.dn, xn.data(), seq_start, y.data());
  else
    engine::attention_block(d, w.attn, xn.data(), seq_start, y.data());
  for (size_t i = 0; i < n * H; ++i) h[i] += y[i];
  engine::rms_norm(h.data(), n, H, w.post_norm.data(), eps, xn.data());
  engine::moe_block(d, w.moe, xn.data(), n, y.data(), -1, obs);
  for (size_t i = 0; i < n * H; ++i) h[i] += y[i];
}

struct gpu_run {
  std::vector<double> layer_ms;  // median per layer
  std::vector<double> fill_ms;
  std::vector<size_t> layer_bytes;
  cu::eng_stats st;
};

result<gpu_run> run_gpu_stack(const engine::model_dims& d, size_t seqs, size_t seqlen, int reps,
                              const cu::eng_options& o) {
  RAZOR_ASSIGN_OR_RETURN(auto eng, cu::gpu_engine::create(engine::gpu_dims(d), o));
  const size_t n = seqs * seqlen, H = size_t(d.hidden);
  std::vector<size_t> ss{0};
  for (size_t s = 0; s < seqs; ++s) ss.push_back(ss.back() + seqlen);
  std::vector<float> h0 = rvec(n * H, 1.0f, 0.0f);
  const int L = int(d.n_layers);
  std::vector<std::vector<double>> t(static_cast<size_t>(L)), tf(static_cast<size_t>(L));
  gpu_run r;
  r.layer_bytes.assign(size_t(L), 0);
  for (int rep = -1; rep < reps; ++rep) {  // rep -1: warm-up
    RAZOR_TRY(eng->set_hidden(h0.data(), ss));
    for (int l = 0; l < L; ++l) {
      RAZOR_TRY(eng->synchronize());
      auto a = clk::now();
      RAZOR_TRY(eng->random_layer(d.linear_layer[size_t(l)], true, d.shared_ff > 0, uint64_t(100 + l)));
      RAZOR_TRY(eng->synchronize());
      double fms = secs(a) * 1e3;
      r.layer_bytes[size_t(l)] = eng->stats().weight_bytes;
      a = clk::now();
      RAZOR_TRY(eng->run_layer());
      RAZOR_TRY(eng->synchronize());
      double ms = secs(a) * 1e3;
      if (rep >= 0) {
        t[size_t(l)].push_back(ms);
        tf[size_t(l)].push_back(fms);
      }
    }
    std::vector<float> hout(n * H);
    RAZOR_TRY(eng->get_hidden(hout.data()));
    size_t bad = 0;
    for (float v : hout) bad += !std::isfinite(v);
    if (bad) return make_error(errc::internal, std::to_string(bad) + " non-finite hidden values after the stack");
  }
  for (int l = 0; l < L; ++l) {
    r.layer_ms.push_back(median(t[size_t(l)]));
    r.fill_ms.push_back(median(tf[size_t(l)]));
  }
  r.st = eng->stats();
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  std::string config = razor::source_dir() + "/resources/configs/qwen3.5-122b-a10b.json";
  int layers = 4, reps = 3;
  size_t seqs = 8, seqlen = 512, cpu_seqlen = 512;
  bool do_cpu = true, do_tf32 = true;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> const char* { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--config") config = next();
    else if (a == "--layers") layers = std::atoi(next());
    else if (a == "--seqs") seqs = size_t(std::atol(next()));
    else if (a == "--seqlen") seqlen = size_t(std::atol(next()));
    else if (a == "--reps") reps = std::atoi(next());
    else if (a == "--cpu-seqlen") cpu_seqlen = size_t(std::atol(next()));
    else if (a == "--no-cpu") do_cpu = false;
    else if (a == "--no-tf32") do_tf32 = false;
    else {
      std::fprintf(stderr, "unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  auto cfg = load_model_config(config);
  if (!cfg.ok()) {
    std::fprintf(stderr, "%s\n", cfg.error().to_string().c_str());
    return 1;
  }
  cfg->num_layers = layers;
  if (cfg->layer_types.size() > size_t(layers)) cfg->layer_types.resize(size_t(layers));
  cfg->vocab_size = 8192;
  auto d = engine::dims_from_config(*cfg);
  if (!d.ok()) {
    std::fprintf(stderr, "%s\n", d.error().to_string().c_str());
    return 1;
  }
  std::string why;
  if (!engine::gpu_engine_available(&why)) {
    std::printf("no GPU (%s): nothing to measure\n", why.c_str());
    return 0;
  }
  const size_t n = seqs * seqlen;
  std::printf("config %s restricted to %d layers: hidden %lld, %lld experts of %lld, top-%lld, shared %lld, "
              "attention %lldx%lld (kv %lld), DeltaNet k %lldx%lld v %lldx%lld\n",
              config.c_str(), layers, (long long)d->hidden, (long long)d->n_experts, (long long)d->moe_ff,
              (long long)d->top_k, (long long)d->shared_ff, (long long)d->n_heads, (long long)d->head_dim,
              (long long)d->n_kv_heads, (long long)d->lin_k_heads, (long long)d->lin_k_dim, (long long)d->lin_v_heads,
              (long long)d->lin_v_dim);
  std::printf("batch: %zu sequences x %zu tokens = %zu tokens; CPU threads %d\n", seqs, seqlen, n, default_threads());

  // PCIe upload rate (page-locked), for the streaming estimate.
  double gbps = 0;
  if (auto g = cu::pinned_h2d_gbps(size_t(1) << 30); g.ok()) gbps = *g;

  struct variant {
    const char* name;
    cu::eng_options o;
  };
  cu::eng_options o_bf16, o_f32, o_tf32;
  o_f32.weights = o_tf32.weights = cu::eng_weights::f32;
  o_tf32.tf32 = true;
  std::vector<variant> vars{{"bf16", o_bf16}, {"fp32", o_f32}};
  if (do_tf32) vars.push_back({"tf32", o_tf32});
  std::vector<gpu_run> runs;
  for (auto& v : vars) {
    auto r = run_gpu_stack(*d, seqs, seqlen, reps, v.o);
    if (!r.ok()) {
      std::fprintf(stderr, "GPU %s: %s\n", v.name, r.error().to_string().c_str());
      return 1;
    }
    runs.push_back(std::move(*r));
  }
  const auto& st = runs[0].st;
  std::printf("\ncard: %s (%.1f GiB); H2D page-locked %.1f GB/s\n\n", st.device_name.c_str(), gib(double(st.device_total)), gbps);

  std::printf("| layer | type | weights (bf16) |");
  for (auto& v : vars) std::printf(" %s ms | tokens/s |", v.name);
  std::printf(" + upload at %.0f GB/s: tokens/s (bf16, serial) |\n|---|---|---|", gbps);
  for (size_t v = 0; v < vars.size(); ++v) std::printf("---|---|");
  std::printf("---|\n");
  std::vector<double> tot(runs.size(), 0.0);
  double tot_up = 0;
  for (int l = 0; l < layers; ++l) {
    double up_ms = gbps > 0 ? double(runs[0].layer_bytes[size_t(l)]) / (gbps * 1e9) * 1e3 : 0;
    std::printf("| %d | %s | %.2f GiB |", l, d->linear_layer[size_t(l)] ? "Gated DeltaNet + MoE" : "gated attention + MoE",
                gib(double(runs[0].layer_bytes[size_t(l)])));
    for (size_t v = 0; v < runs.size(); ++v)
      std::printf(" %.1f | %.0f |", runs[v].layer_ms[size_t(l)], double(n) / (runs[v].layer_ms[size_t(l)] * 1e-3));
    std::printf(" %.0f |\n", double(n) / ((runs[0].layer_ms[size_t(l)] + up_ms) * 1e-3));
    for (size_t v = 0; v < runs.size(); ++v) tot[v] += runs[v].layer_ms[size_t(l)];
    tot_up += up_ms;
  }
  std::printf("| stack | %d layers | |", layers);
  for (size_t v = 0; v < runs.size(); ++v) std::printf(" %.1f | **%.0f** |", tot[v], double(n) / (tot[v] * 1e-3));
  std::printf(" %.0f |\n", double(n) / ((tot[0] + tot_up) * 1e-3));
  std::printf("\nrandom fill of a layer on the device: %.1f ms (not in the layer times)\n", runs[0].fill_ms[0]);
  for (size_t v = 0; v < runs.size(); ++v) {
    const auto& s = runs[v].st;
    std::printf("memory %s: engine allocations peak %.2f GiB (largest layer's weights %.2f GiB); device used peak "
                "%.2f GiB (cudaMemGetInfo, incl. context %.2f GiB at start)\n",
                vars[v].name, gib(double(s.tracked_peak_bytes)),
                gib(double(*std::max_element(runs[v].layer_bytes.begin(), runs[v].layer_bytes.end()))),
                gib(double(s.device_used_peak)), gib(double(s.device_used_base)));
  }
  std::printf("GPU engine's memory plan for the same batch (bf16): %s\n",
              engine::gpu_memory_plan(*d, n, 512, engine::gpu_precision::bf16).to_string().c_str());
  engine::memory_plan mp = engine::plan_memory(*d, n, seqs, seqlen, 512);
  std::printf("CPU engine's memory plan for the same batch: %s\n", mp.to_string().c_str());

  if (!do_cpu) return 0;
  // ---- CPU slice and GPU-vs-CPU on 122B shapes ----
  auto t0 = clk::now();
  const int64_t H = d->hidden;
  engine::layer_weights w;
  w.in_norm = rvec(size_t(H), 0.1f, 1.0f);
  w.post_norm = rvec(size_t(H), 0.1f, 1.0f);
  {
    auto& a = w.attn;
    a.gated = true;
    int64_t qd = d->n_heads * d->head_dim, kvd = d->n_kv_heads * d->head_dim;
    a.q = rlin(H, 2 * qd);
    a.k = rlin(H, kvd);
    a.v = rlin(H, kvd);
    a.o = rlin(qd, H);
    a.q_norm = rvec(size_t(d->head_dim), 0.1f, 1.0f);
    a.k_norm = rvec(size_t(d->head_dim), 0.1f, 1.0f);
    auto& nn = w.dn;
    int64_t kd = d->lin_k_heads * d->lin_k_dim, vd = d->lin_v_heads * d->lin_v_dim, ch = 2 * kd + vd;
    nn.qkv = rlin(H, ch);
    nn.z = rlin(H, vd);
    nn.b = rlin(H, d->lin_v_heads);
    nn.a = rlin(H, d->lin_v_heads);
    nn.out = rlin(vd, H);
    nn.conv = rvec(size_t(ch * d->conv_kernel), 0.5f, 0.0f);
    nn.a_log = rvec(size_t(d->lin_v_heads), 0.5f, 0.0f);
    nn.dt_bias = rvec(size_t(d->lin_v_heads), 0.5f, 0.0f);
    nn.norm = rvec(size_t(d->lin_v_dim), 0.1f, 1.0f);
    auto& m = w.moe;
    m.router = rlin(H, d->n_experts);
    for (int64_t e = 0; e < d->n_experts; ++e) {
      m.gate_up.push_back(rlin(H, 2 * d->moe_ff));
      m.down.push_back(rlin(d->moe_ff, H));
    }
    if (d->shared_ff) {
      m.shared_gate_up = rlin(H, 2 * d->shared_ff);
      m.shared_down = rlin(d->shared_ff, H);
      m.shared_gate = rlin(H, 1);
    }
  }
  std::printf("\nCPU slice: host weights of one 122B-shaped layer generated in %.1f s\n", secs(t0));
  const size_t nc = cpu_seqlen;
  std::vector<size_t> ss{0, nc};
  std::vector<float> x0 = rvec(nc * size_t(H), 1.0f, 0.0f);
  auto eng = cu::gpu_engine::create(engine::gpu_dims(*d), o_f32);  // the reference math for the comparison
  if (!eng.ok()) {
    std::fprintf(stderr, "%s\n", eng.error().to_string().c_str());
    return 1;
  }
  std::printf("\n| layer type (%zu tokens, 1 sequence) | CPU ms | CPU tokens/s | GPU ms (same slice) | upload ms (pageable) | "
              "GPU vs CPU rel L2 | max rel | tokens routed differently |\n|---|---|---|---|---|---|---|---|\n", nc);
  double cpu_ms_total = 0;
  bool ok = true;
  for (int lin = 1; lin >= 0; --lin) {
    w.linear_attention = lin != 0;
    std::vector<float> hc = x0;
    auto a = clk::now();
    router_obs ro;
    cpu_layer(*d, w, hc, ss, &ro);
    double cms = secs(a) * 1e3;
    cpu_ms_total += cms * (lin ? 3 : 1);
    a = clk::now();
    if (auto s = (*eng)->upload_layer(engine::gpu_layer(w)); !s.ok()) {
      std::fprintf(stderr, "%s\n", s.to_string().c_str());
      return 1;
    }
    (void)(*eng)->synchronize();
    double ums = secs(a) * 1e3;
    std::vector<float> hg(hc.size());
    double gms = 0;
    for (int r = 0; r < 2; ++r) {  // second run timed (first warms up)
      (void)(*eng)->set_hidden(x0.data(), ss);
      (void)(*eng)->synchronize();
      a = clk::now();
      auto s = (*eng)->run_layer();
      (void)(*eng)->synchronize();
      gms = secs(a) * 1e3;
      if (!s.ok()) {
        std::fprintf(stderr, "%s\n", s.to_string().c_str());
        return 1;
      }
    }
    (void)(*eng)->get_hidden(hg.data());
    // Tokens whose expert set differs between the two routers (a near-tie flipped by float32 rounding of the
    // router input: then that token's MoE output legitimately differs). Those are counted, not compared.
    const size_t K = size_t(d->top_k), Hs = size_t(H);
    std::vector<int32_t> gids = (*eng)->last_routing();
    std::vector<char> flipped(nc, 0);
    size_t n_flip = 0;
    for (size_t t = 0; t < nc && gids.size() == nc * K && ro.ids.size() == nc * K; ++t) {
      std::vector<int32_t> a(ro.ids.begin() + std::ptrdiff_t(t * K), ro.ids.begin() + std::ptrdiff_t((t + 1) * K));
      std::vector<int32_t> b(gids.begin() + std::ptrdiff_t(t * K), gids.begin() + std::ptrdiff_t((t + 1) * K));
      std::sort(a.begin(), a.end());
      std::sort(b.begin(), b.end());
      if (a != b) flipped[t] = 1, ++n_flip;
    }
    // Compare the layer's contribution (h_out - h_in), not h_out: the residual would hide errors.
    double num = 0, den = 0, md = 0, mr = 0, num_all = 0, den_all = 0;
    for (size_t i = 0; i < hc.size(); ++i) {
      double rc = double(hc[i]) - x0[i], rg = double(hg[i]) - x0[i];
      num_all += (rg - rc) * (rg - rc);
      den_all += rc * rc;
      if (!std::isfinite(hg[i])) num = INFINITY;
      if (flipped[i / Hs]) continue;
      num += (rg - rc) * (rg - rc);
      den += rc * rc;
      md = std::max(md, std::fabs(rg - rc));
      mr = std::max(mr, std::fabs(rc));
    }
    double rel = std::sqrt(num / den), rel_all = std::sqrt(num_all / den_all);
    ok = ok && rel < 1e-4 && n_flip <= std::max<size_t>(2, nc / 100) && gids.size() == nc * K;
    std::printf("| %s | %.0f | %.0f | %.1f | %.0f | %.2e | %.2e | %zu (all tokens: rel L2 %.2e) |\n",
                lin ? "Gated DeltaNet + MoE" : "gated attention + MoE", cms, double(nc) / (cms * 1e-3), gms, ums, rel,
                md / mr, n_flip, rel_all);
  }
  double cpu_stack_tps = double(nc) / (cpu_ms_total * 1e-3);
  std::printf("\nCPU stack estimate (3 DeltaNet + 1 attention layers, %zu tokens): %.0f tokens/s; GPU/CPU:", nc,
              cpu_stack_tps);
  for (size_t v = 0; v < runs.size(); ++v) std::printf(" %s %.0fx", vars[v].name, double(n) / (tot[v] * 1e-3) / cpu_stack_tps);
  std::printf("\n");
  std::printf("GPU vs CPU on 122B-shaped layers: %s (bounds: 1e-4 relative L2 of the layer's update over the tokens both "
              "routers send to the same experts; at most max(2, 1%%) tokens routed differently)\n", ok ? "PASS" : "FAIL");
  return ok ? 0 : 3;
}
