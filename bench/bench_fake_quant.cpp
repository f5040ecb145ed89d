// Fake-quant with the seed's clip search on one layer of routed experts at Qwen3.5-122B shapes:
// gate_up [256 x 2048, 3072] and down [256 x 3072, 1024], BF16, random weights (gaussian sigma 0.02 with
// 0.2% outliers up to 30 sigma).
//
// CPU: runs a fraction of the experts (--scale, default 1/32 = 8 experts) through the fast path and the
// reference (on a small sample), and extrapolates to the full layer and to --layers layers.
// --gpu: the full layer on the GPU (device buffers; events, warm-up, median of --iters) for both division
// modes, plus rcp_check on the legacy half-warp kernel (cu::fq_bench_request::legacy_kernel: before/after on
// the same card), the floor (bytes read + written) / (device-to-device copy bandwidth measured in the same run),
// the host-streamed path, and GPU output == CPU reference on sampled rows (+ == CPU fast path on all rows).
//
//   bench_fake_quant [--scale F] [--layers L] [--threads T] [--bits B] [--group G] [--clip N] [--reps R]
//                    [--all-isa] [--gpu] [--gpu-experts N] [--iters N]
//   bench_fake_quant --gpu-check     (GPU == CPU reference over the test configuration matrix; exit 1 if not)
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <random>
#include <string>
#include <vector>

#include "kernels/cuda_info.h"
#include "kernels/fake_quant_cuda.h"
#include "quant/fake_quant.h"
#include "util/numeric.h"
#include "util/parallel.h"

using namespace razor;
using namespace razor::quant;

namespace {

constexpr size_t kExperts = 256, kHidden = 3072, kInter = 1024;

struct tensor_desc {
  const char* name;
  size_t rows_per_expert, cols;
};
const tensor_desc kTensors[] = {{"gate_up_proj", 2 * kInter, kHidden}, {"down_proj", kHidden, kInter}};

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
// CPU time of the whole process (all threads): on a machine shared with other builds, wall time hides how
// much of the cores we actually got; weights per CPU-second times the thread count is the uncontended rate.
double cpu_s() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

uint64_t splitmix(uint64_t& s) {
  uint64_t z = (s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// random BF16 weights, generated in parallel (deterministic per 64K-element block)
std::vector<uint16_t> make_weights(size_t n, uint64_t seed) {
  std::vector<uint16_t> w(n);
  const size_t block = 1 << 16;
  parallel_for((n + block - 1) / block, [&](size_t b0, size_t b1) {
    for (size_t b = b0; b < b1; ++b) {
      uint64_t s = seed * 0x100000001b3ull + b;
      const size_t e = std::min(n, (b + 1) * block);
      for (size_t i = b * block; i < e; i += 2) {
        const double u1 = (double(splitmix(s) >> 11) + 0.5) * 0x1p-53, u2 = double(splitmix(s) >> 11) * 0x1p-53;
        const double r = std::sqrt(-2.0 * std::log(u1)) * 0.02;
        float g0 = float(r * std::cos(6.283185307179586 * u2)), g1 = float(r * std::sin(6.283185307179586 * u2));
        const uint64_t o = splitmix(s);
        if ((o & 1023) < 2) g0 *= 10.0f + float((o >> 10) % 20);
        w[i] = f32_to_bf16(g0);
        if (i + 1 < e) w[i + 1] = f32_to_bf16(g1);
      }
    }
  });
  return w;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

std::vector<uint16_t> ref_rows(const uint16_t* in, size_t rows, size_t cols, const fq_params& p) {
  std::vector<float> f(rows * cols), o(rows * cols);
  for (size_t i = 0; i < f.size(); ++i) f[i] = bf16_to_f32(in[i]);
  if (!fake_quant_rows_ref(f.data(), o.data(), rows, cols, p).ok()) return {};
  std::vector<uint16_t> r(o.size());
  for (size_t i = 0; i < o.size(); ++i) r[i] = o[i] != o[i] ? uint16_t(0x7fc0) : f32_to_bf16(o[i]);
  return r;
}

// GPU == reference, bit for bit, over the configuration matrix of tests/quant (no GoogleTest needed):
// returns the number of failing cases.
int gpu_check_matrix() {
  struct cfg {
    float tag;
    int group, clip;
  };
  const cfg cfgs[] = {{3, 128, 16}, {3, 128, 0}, {4, 128, 16}, {2, 128, 16}, {8, 128, 16}, {3, 64, 16}, {3, 32, 16},
                      {3, 0, 16},   {4, 32, 8},  {3, 128, 24}, {1.58f, 128, 0}, {1.58f, 0, 0}, {16, 128, 0}, {5, 64, 1}};
  const size_t shapes[][2] = {{64, 3072}, {48, 1024}, {33, 100}, {16, 256}, {7, 4096}};
  int fails = 0, cases = 0;
  for (auto& sh : shapes) {
    const size_t rows = sh[0], cols = sh[1];
    auto w = make_weights(rows * cols, 1000 + cols);
    if (rows == 16) {  // specials: NaN, +-inf, huge, subnormal row, -0
      w[3 * cols + 5] = 0x7fc0;
      w[4 * cols + 7] = 0x7f80;
      w[5 * cols + 1] = 0xff80;
      w[6 * cols + 3] = f32_to_bf16(3.0e38f);
      for (size_t c = 0; c < cols; ++c) w[7 * cols + c] = uint16_t((c * 2654435761u) & 0x807f);
      w[8 * cols + 2] = 0x8000;
    }
    for (const cfg& c : cfgs) {
      const fq_params p{c.tag, c.group, c.clip};
      auto plan = make_plan(p, cols);
      if (!plan.ok()) return 1000;
      const auto ref = ref_rows(w.data(), rows, cols, p);
      fq_stats rs;
      std::vector<float> f(w.size()), o(w.size());
      for (size_t i = 0; i < f.size(); ++i) f[i] = bf16_to_f32(w[i]);
      (void)fake_quant_rows_ref(f.data(), o.data(), rows, cols, p, &rs);
      for (int dm = 0; dm < 2; ++dm) {
        std::vector<uint16_t> out(w.size(), 0xdead);
        cu::fq_device_stats ds;
        status st = cu::fake_quant_bf16_host(w.data(), out.data(), rows, cols, kernel_params(*plan, cu::fq_div_mode(dm)),
                                             &ds);
        size_t bad = 0;
        for (size_t i = 0; i < out.size(); ++i) bad += out[i] != ref[i];
        bool hist_ok = true;
        if (plan->mode == fq_mode::integer)
          for (int i = 0; i < 32; ++i) hist_ok &= ds.hist[i] == rs.clip_hist[size_t(i)];
        const bool ck_ok = plan->mode == fq_mode::identity || ds.sum_checksum == rs.sum_checksum;
        ++cases;
        if (!st.ok() || bad || !hist_ok || !ck_ok) {
          ++fails;
          std::printf("  FAIL %zux%zu tag %.2f group %d clip %d div %d: %s, %zu differing weights, hist %s, "
                      "sum checksum %s\n",
                      rows, cols, c.tag, c.group, c.clip, dm, st.ok() ? "ok" : st.to_string().c_str(), bad,
                      hist_ok ? "ok" : "DIFFERS", ck_ok ? "ok" : "DIFFERS");
        }
      }
    }
  }
  std::printf("gpu-check: %d/%d cases bit-identical to the CPU reference (outputs, clip histogram, per-group "
              "float32 sums)\n", cases - fails, cases);
  return fails;
}

}  // namespace

int main(int argc, char** argv) {
  double scale = 1.0 / 32;
  int layers = 48, threads = 0, reps = 3, iters = 10;
  size_t gpu_experts = kExperts;
  bool gpu = false, all_isa = false, gpu_check = false;
  fq_params p{3, 128, 16};
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--scale") scale = std::atof(next());
    else if (a == "--layers") layers = std::atoi(next());
    else if (a == "--threads") threads = std::atoi(next());
    else if (a == "--bits") p.tag = float(std::atof(next()));
    else if (a == "--group") p.group = std::atoi(next());
    else if (a == "--clip") p.clip_steps = std::atoi(next());
    else if (a == "--reps") reps = std::max(1, std::atoi(next()));
    else if (a == "--iters") iters = std::max(1, std::atoi(next()));
    else if (a == "--gpu") gpu = true;
    else if (a == "--gpu-experts") gpu_experts = size_t(std::atoi(next()));
    else if (a == "--all-isa") all_isa = true;
    else if (a == "--gpu-check") gpu_check = true;
    else {
      std::fprintf(stderr,
                   "usage: bench_fake_quant [--scale F] [--layers L] [--threads T] [--bits B] [--group G] "
                   "[--clip N] [--reps R] [--all-isa] [--gpu] [--gpu-experts N] [--iters N] | --gpu-check\n");
      return 2;
    }
  }
  if (gpu_check) {
    std::string why;
    if (cu::devices(&why).empty()) {
      std::printf("gpu-check: no GPU (%s)\n", why.c_str());
      return 1;
    }
    return gpu_check_matrix() == 0 ? 0 : 1;
  }
  const size_t cpu_experts = std::max<size_t>(1, size_t(std::lround(double(kExperts) * scale)));
  const double layer_weights = double(kExperts) * (2.0 * kInter * kHidden + kHidden * double(kInter));
  std::printf("fake-quant bench: tag %.2f group %d clip_steps %d; one layer = %zu experts x (gate_up %zux%zu + "
              "down %zux%zu) = %.3f G weights (BF16 in and out)\n",
              p.tag, p.group, p.clip_steps, kExperts, 2 * kInter, kHidden, kHidden, kInter, layer_weights * 1e-9);

  // ---------------- CPU ----------------
  const int nthreads = threads > 0 ? threads : default_threads();
  std::printf("\nCPU: %d threads, fast path %s, %zu of %zu experts (scale %.4f), median of %d\n", nthreads,
              isa_name(fast_path_isa()), cpu_experts, kExperts, double(cpu_experts) / kExperts, reps);
  std::vector<fq_isa> isas = {fq_isa::best};
  if (all_isa)
    for (fq_isa i : {fq_isa::avx512, fq_isa::avx2, fq_isa::sse42, fq_isa::baseline})
      if (fast_path_isa(i) == i) isas.push_back(i);
  bool cpu_ok = true;
  for (fq_isa isa : isas) {
    double total_s = 0, total_w = 0, total_cpu = 0;
    for (const auto& t : kTensors) {
      const size_t rows = cpu_experts * t.rows_per_expert;
      const auto w = make_weights(rows * t.cols, 42 + t.cols);
      std::vector<uint16_t> out(w.size());
      std::vector<double> ts;
      fq_stats st;
      std::vector<double> cs;
      for (int r = 0; r < reps; ++r) {
        const double t0 = now_s(), c0 = cpu_s();
        status s = fake_quant(w.data(), elem_type::bf16, out.data(), elem_type::bf16, rows, t.cols, p, &st, {},
                              threads, isa);
        ts.push_back(now_s() - t0);
        cs.push_back(cpu_s() - c0);
        if (!s.ok()) {
          std::printf("error: %s\n", s.to_string().c_str());
          return 1;
        }
      }
      const double sec = median(ts), nw = double(rows * t.cols), csec = median(cs);
      total_s += sec;
      total_cpu += csec;
      total_w += nw;
      // the reference on 64 rows spread over the slice: bit-exact check and its own speed
      const size_t sample = std::min<size_t>(64, rows);
      size_t bad = 0;
      double ref_s = 0;
      for (size_t k = 0; k < sample; ++k) {
        const size_t row = (k * 7919) % rows;
        const double t0 = now_s();
        auto ref = ref_rows(w.data() + row * t.cols, 1, t.cols, p);
        ref_s += now_s() - t0;
        bad += std::memcmp(ref.data(), out.data() + row * t.cols, t.cols * 2) != 0;
      }
      cpu_ok &= bad == 0;
      if (isa == fq_isa::best) {
        std::printf("  %-12s %8zu x %4zu  %7.3f s  %7.1f M weights/s (%.1f M per CPU-second)  rel.err %.4f  "
                    "(reference: %.2f M weights/s; %zu/%zu sampled rows bit-identical)\n",
                    t.name, rows, t.cols, sec, nw / sec * 1e-6, nw / csec * 1e-6, st.rel_error(),
                    double(sample * t.cols) / ref_s * 1e-6, sample - bad, sample);
      }
    }
    const double rate = total_w / total_s, crate = total_w / total_cpu * nthreads;
    std::printf("  %-20s wall %6.1f M weights/s -> one layer %6.2f s, %d layers %5.1f min | uncontended "
                "(CPU-time x %d threads) %6.1f M weights/s -> %6.2f s, %5.1f min\n",
                isa == fq_isa::best ? "total" : isa_name(isa), rate * 1e-6, layer_weights / rate, layers,
                layer_weights * layers / rate / 60.0, nthreads, crate * 1e-6, layer_weights / crate,
                layer_weights * layers / crate / 60.0);
  }
  if (!cpu_ok) std::printf("CPU FAST PATH != REFERENCE on sampled rows\n");

  // ---------------- GPU ----------------
  if (!gpu) return cpu_ok ? 0 : 1;
  std::string why;
  auto devs = cu::devices(&why);
  if (devs.empty()) {
    std::printf("\nGPU: none (%s)\n", why.c_str());
    return 1;
  }
  std::printf("\nGPU: %s (%d SMs, %.1f GiB), %zu experts, median of %d after warm-up\n", devs[0].name.c_str(),
              devs[0].sm_count, double(devs[0].total_memory) / (1ull << 30), gpu_experts, iters);
  bool gpu_ok = true;
  struct row_t {
    double kernel_ms[3] = {0, 0, 0}, floor_ms = 0, d2d_gbps = 0, stream_ms = 0, bytes = 0;
  } tot;
  // variants: 0 = exact_div, 1 = rcp_check (the shipped kernel), 2 = rcp_check on the legacy half-warp
  // kernel (before/after on the same card in the same run)
  const char* const vname[3] = {"exact_div", "rcp_check", "legacy_rcp"};
  for (const auto& t : kTensors) {
    const size_t rows = gpu_experts * t.rows_per_expert;
    const double t0 = now_s();
    const auto w = make_weights(rows * t.cols, 7 + t.cols);
    std::vector<uint16_t> out(w.size());
    std::printf("  %s: %zu x %zu (%.2f GB), data generated in %.1f s\n", t.name, rows, t.cols,
                double(w.size()) * 2e-9, now_s() - t0);
    auto plan = make_plan(p, t.cols);
    if (!plan.ok()) return 1;
    std::vector<uint16_t> cpu(w.size());
    const double c0 = now_s();
    if (!fake_quant_bf16(w.data(), cpu.data(), rows, t.cols, p).ok()) return 1;
    const double cpu_s = now_s() - c0;
    for (int v = 0; v < 3; ++v) {
      const int dm = v == 0 ? 0 : 1;
      cu::fq_bench_request rq;
      rq.host_in = w.data();
      rq.rows = rows;
      rq.cols = t.cols;
      rq.params = kernel_params(*plan, cu::fq_div_mode(dm));
      rq.legacy_kernel = v == 2;
      rq.warmup = 2;
      rq.iters = iters;
      std::fill(out.begin(), out.end(), uint16_t(0xdead));
      rq.host_out = out.data();
      auto r = cu::fake_quant_bench(rq, /*time_host_stream=*/v == 1);
      if (!r.ok()) {
        std::printf("GPU error: %s\n", r.error().to_string().c_str());
        return 1;
      }
      const double bytes = 4.0 * double(w.size());
      std::printf("    %-11s kernel %8.3f ms (min %.3f max %.3f)  %6.0f GB/s  floor %.3f ms (D2D %.0f GB/s)  "
                  "ratio %.2fx  %.1f G weights/s\n",
                  vname[v], r->kernel_ms_median, r->kernel_ms_min, r->kernel_ms_max,
                  bytes / (r->kernel_ms_median * 1e-3) * 1e-9, r->floor_ms, r->d2d_gbps,
                  r->kernel_ms_median / r->floor_ms, double(w.size()) / (r->kernel_ms_median * 1e-3) * 1e-9);
      tot.kernel_ms[v] += r->kernel_ms_median;
      if (v == 1) {
        tot.floor_ms += r->floor_ms;
        tot.d2d_gbps = r->d2d_gbps;
        tot.stream_ms += r->stream_ms;
        std::printf("    host-streamed (pageable -> pinned chunks -> GPU -> back): %.1f ms, %.1f GB/s of BF16 in\n",
                    r->stream_ms, double(w.size()) * 2 / (r->stream_ms * 1e-3) * 1e-9);
      }
      // GPU output == CPU reference on sampled rows (ground truth) ...
      size_t bad = 0;
      const size_t sample = 256;
      for (size_t k = 0; k < sample; ++k) {
        const size_t row = (k * 104729 + 13) % rows;
        auto ref = ref_rows(w.data() + row * t.cols, 1, t.cols, p);
        bad += std::memcmp(ref.data(), out.data() + row * t.cols, t.cols * 2) != 0;
      }
      // ... and == the CPU fast path (itself tested bit-exact against the reference) on every row
      size_t diff = 0;
      for (size_t i = 0; i < cpu.size(); ++i) diff += cpu[i] != out[i];
      std::printf("    GPU == CPU reference on %zu/%zu sampled rows; GPU vs CPU fast path (all rows, %.1f s on CPU): "
                  "%zu differing weights\n",
                  sample - bad, sample, cpu_s, diff);
      gpu_ok &= bad == 0 && diff == 0;
    }
  }
  const double frac = double(gpu_experts) / kExperts;
  std::printf("\nGPU layer (%zu experts): exact_div %.2f ms, rcp_check %.2f ms (legacy kernel %.2f ms: %.2fx faster); "
              "floor %.2f ms (D2D %.0f GB/s); ratio %.2fx / %.2fx (legacy %.2fx); full layer %.2f ms -> %d layers "
              "%.2f s; host-streamed layer %.0f ms\n",
              gpu_experts, tot.kernel_ms[0], tot.kernel_ms[1], tot.kernel_ms[2], tot.kernel_ms[2] / tot.kernel_ms[1],
              tot.floor_ms, tot.d2d_gbps, tot.kernel_ms[0] / tot.floor_ms, tot.kernel_ms[1] / tot.floor_ms,
              tot.kernel_ms[2] / tot.floor_ms, std::min(tot.kernel_ms[0], tot.kernel_ms[1]) / frac, layers,
              std::min(tot.kernel_ms[0], tot.kernel_ms[1]) / frac * layers * 1e-3, tot.stream_ms / frac);
  std::printf("GPU == CPU: %s\n", gpu_ok ? "yes, bit for bit" : "NO - MISMATCH");
  return cpu_ok && gpu_ok ? 0 : 1;
}
