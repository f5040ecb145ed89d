// The GPU ggml packer on one 122B-shaped routed-expert layer (Qwen3.5-122B-A10B): gate_up [256 x 2048, 3072]
// and down [256 x 3072, 1024], BF16 random weights (gaussian sigma 0.02, 0.2% outliers 10-30 sigma), one
// imatrix-like weight vector per expert (log-normal per column). Figures are GB/s of BF16 input.
//
//   device:  the whole tensor resident on the GPU, one launch, CUDA events, warm-up, median of several
//   e2e:     razor::cu::ggml_quantize_host from pinned host memory to pinned host memory (chunked, two
//            streams), wall clock, median
//   CPU:     razor::ggml::quantize_tensor (all threads) on the first --cpu-experts experts of each tensor,
//            widened to float outside the timing; the GPU bytes of that slice are compared with it
// Prints a markdown table last. Goal (issue "GGUF export"): >= 5 GB/s of BF16 input on an H100.
//
//   bench_ggml_cuda [--experts N] [--types iq3_xxs,q4_K,q3_K] [--cpu-experts N] [--threads T] [--no-imatrix]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "ggml/quants.h"
#include "ggml/types.h"
#include "kernels/cuda_info.h"
#include "kernels/ggml_quant_cuda.h"
#include "util/numeric.h"
#include "util/parallel.h"

using namespace razor;

namespace {

constexpr size_t kHidden = 3072, kInter = 1024;

uint64_t splitmix(uint64_t& s) {
  uint64_t z = (s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// random BF16 weights, generated in parallel (deterministic per 64K-element block)
void fill_weights(uint16_t* w, size_t n, uint64_t seed) {
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
}

std::vector<float> make_imatrix(size_t experts, size_t cols, uint64_t seed) {
  std::vector<float> w(experts * cols);
  uint64_t s = seed;
  for (size_t i = 0; i < w.size(); ++i) {
    const double u1 = (double(splitmix(s) >> 11) + 0.5) * 0x1p-53, u2 = double(splitmix(s) >> 11) * 0x1p-53;
    const double g = std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
    w[i] = float(std::exp(1.5 * g));
  }
  return w;
}

struct host_tensor {
  const char* name;
  size_t rows_per_expert, cols;
  uint16_t* data = nullptr;
  bool pinned = false;
  std::vector<uint16_t> fallback;
  std::vector<float> imatrix;
};

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

}  // namespace

int main(int argc, char** argv) {
  size_t experts = 256, cpu_experts = 1;
  int threads = 0;
  bool use_imatrix = true;
  std::string types_arg = "iq3_xxs,q4_K,q3_K";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> const char* { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--experts") experts = size_t(std::atol(next()));
    else if (a == "--cpu-experts") cpu_experts = size_t(std::atol(next()));
    else if (a == "--threads") threads = std::atoi(next());
    else if (a == "--types") types_arg = next();
    else if (a == "--no-imatrix") use_imatrix = false;
    else {
      std::fprintf(stderr, "usage: bench_ggml_cuda [--experts N] [--types a,b] [--cpu-experts N] [--threads T] [--no-imatrix]\n");
      return 2;
    }
  }
  if (threads <= 0) threads = default_threads();
  cpu_experts = std::min(cpu_experts, experts);
  std::string why;
  const auto devs = cu::devices(&why);
  if (devs.empty()) {
    std::printf("no GPU: %s\n", why.c_str());
    return 0;
  }
  std::vector<ggml::type> types;
  for (size_t p = 0; p < types_arg.size();) {
    const size_t q = std::min(types_arg.find(',', p), types_arg.size());
    auto t = ggml::type_from_name(types_arg.substr(p, q - p));
    if (!t || !cu::ggml_quant_supported(*t)) {
      std::fprintf(stderr, "unsupported type %s\n", types_arg.substr(p, q - p).c_str());
      return 2;
    }
    types.push_back(*t);
    p = q + 1;
  }

  host_tensor tensors[2] = {{"gate_up_proj", 2 * kInter, kHidden}, {"down_proj", kHidden, kInter}};
  double t0 = now_s();
  size_t total_elems = 0;
  for (int k = 0; k < 2; ++k) {
    auto& T = tensors[k];
    const size_t n = experts * T.rows_per_expert * T.cols;
    total_elems += n;
    T.data = static_cast<uint16_t*>(cu::pinned_alloc(n * 2));
    T.pinned = T.data != nullptr;
    if (!T.pinned) {
      T.fallback.resize(n);
      T.data = T.fallback.data();
    }
    fill_weights(T.data, n, 1234 + uint64_t(k));
    T.imatrix = make_imatrix(experts, T.cols, 99 + uint64_t(k));
  }
  const double total_gb = double(total_elems) * 2 / 1e9;
  std::printf("device: %s (%d SMs); layer: %zu experts, %.3f GB of BF16 (%s host memory), generated in %.1f s; "
              "CPU threads %d\n",
              devs[0].name.c_str(), devs[0].sm_count, experts, total_gb, tensors[0].pinned ? "pinned" : "pageable",
              now_s() - t0, threads);
  std::fflush(stdout);

  struct row_t {
    std::string type;
    double dev_ms = 0, e2e_ms = 0, cpu_gbps = 0;
    bool identical = true;
    std::string note;
  };
  std::vector<row_t> rows;
  bool failed = false;
  for (ggml::type t : types) {
    row_t R;
    R.type = std::string(ggml::type_name(t));
    double cpu_s = 0, cpu_gb = 0;
    for (auto& T : tensors) {
      const int64_t nrows = int64_t(experts * T.rows_per_expert), ncols = int64_t(T.cols);
      const size_t rs = ggml::row_size(t, ncols);
      std::vector<uint8_t> gpu_out(size_t(nrows) * rs);
      cu::gq_bench_request q;
      q.type = t;
      q.src_type = cu::gq_src::bf16;
      q.host_src = T.data;
      q.nrows = nrows;
      q.n_per_row = ncols;
      q.host_weights = use_imatrix ? T.imatrix.data() : nullptr;
      q.rows_per_weight = int64_t(T.rows_per_expert);
      q.warmup = 1;
      q.iters = 1;
      auto probe = cu::ggml_quant_bench(q);
      if (!probe) {
        std::printf("%s %s: %s\n", R.type.c_str(), T.name, probe.error().to_string().c_str());
        return 1;
      }
      q.iters = std::clamp(int(12000.0 / std::max(1.0, probe->kernel_ms_median)), 3, 9);
      q.e2e_iters = probe->kernel_ms_median < 3000 ? 3 : 1;
      q.host_dst = gpu_out.data();
      auto res = cu::ggml_quant_bench(q);
      if (!res) {
        std::printf("%s %s: %s\n", R.type.c_str(), T.name, res.error().to_string().c_str());
        return 1;
      }
      std::printf("  %-8s %-13s device %9.2f ms (min %.2f max %.2f, %d iters)  e2e %9.2f ms  %.2f GB/s device\n",
                  R.type.c_str(), T.name, res->kernel_ms_median, res->kernel_ms_min, res->kernel_ms_max, q.iters,
                  res->e2e_ms_median, double(nrows * ncols) * 2 / (res->kernel_ms_median * 1e-3) / 1e9);
      std::fflush(stdout);
      R.dev_ms += res->kernel_ms_median;
      R.e2e_ms += res->e2e_ms_median;

      // CPU on the first cpu_experts experts (one quantize_tensor per expert: its own imatrix vector)
      const int64_t cr = int64_t(cpu_experts * T.rows_per_expert);
      std::vector<float> wide(size_t(cr * ncols));
      parallel_for(wide.size(), [&](size_t b, size_t e) {
        for (size_t i = b; i < e; ++i) wide[i] = bf16_to_f32(T.data[i]);
      }, 1 << 16, threads);
      std::vector<uint8_t> cpu_out(size_t(cr) * rs);
      ggml::quantize_options o;
      o.threads = threads;
      const double c0 = now_s();
      for (size_t e = 0; e < cpu_experts; ++e) {
        const int64_t r0 = int64_t(e * T.rows_per_expert);
        auto r = ggml::quantize_tensor(t, wide.data() + r0 * ncols, cpu_out.data() + size_t(r0) * rs,
                                       cpu_out.size() - size_t(r0) * rs, int64_t(T.rows_per_expert), ncols,
                                       use_imatrix ? T.imatrix.data() + e * T.cols : nullptr, o);
        if (!r) {
          std::printf("CPU %s: %s\n", R.type.c_str(), r.error().to_string().c_str());
          return 1;
        }
      }
      cpu_s += now_s() - c0;
      cpu_gb += double(cr * ncols) * 2 / 1e9;
      if (std::memcmp(cpu_out.data(), gpu_out.data(), cpu_out.size()) != 0) {
        R.identical = false;
        size_t i = 0;
        while (cpu_out[i] == gpu_out[i]) ++i;
        std::printf("  MISMATCH %s %s: first differing byte %zu (row %zu)\n", R.type.c_str(), T.name, i, i / rs);
        failed = true;
      }
    }
    R.cpu_gbps = cpu_gb / cpu_s;
    rows.push_back(R);
  }

  std::printf("\n| type | device ms (layer) | device GB/s | vs 5 GB/s goal | e2e ms (pinned host) | e2e GB/s | "
              "CPU GB/s (%zu expert%s, %d threads) | device / CPU | GPU bytes == CPU (CPU slice) |\n",
              cpu_experts, cpu_experts == 1 ? "" : "s", threads);
  std::printf("|---|---:|---:|---:|---:|---:|---:|---:|---|\n");
  for (const auto& R : rows) {
    const double dg = total_gb / (R.dev_ms * 1e-3), eg = R.e2e_ms > 0 ? total_gb / (R.e2e_ms * 1e-3) : 0;
    std::printf("| %s | %.1f | %.2f | %.2fx | %.1f | %.2f | %.3f | %.0fx | %s |\n", R.type.c_str(), R.dev_ms, dg,
                dg / 5.0, R.e2e_ms, eg, R.cpu_gbps, dg / R.cpu_gbps, R.identical ? "yes" : "NO");
  }
  for (auto& T : tensors)
    if (T.pinned) cu::pinned_free(T.data);
  return failed ? 1 : 0;
}
