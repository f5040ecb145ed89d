// GPTQ (core/quant/methods.h) on the CPU at the Qwen3.5-122B expert shapes: seconds per slice, split into the
// per-input preparation (H = X^T X, Cholesky, U = upper Cholesky factor of H^-1, shared by an expert's gate and up)
// and the quantization loop, and the extrapolation to every expert slice of the 122B layout (48 layers x 256
// experts x {gate, up, down} = 36,864 linears; the issue counts 12,288 expert slices = one per expert and layer,
// gate_up fused, whose down and gate_up read different tokens: 2 preparations and 3 quantizations each).
// Random heavy-tailed weights (student-t, sigma ~0.02) and tokens with per-channel scales (log-normal), so that
// GPTQ's Hessian is not trivially diagonal. Also reports rtn-asym on the same slice (the floor: no calibration) and
// the in-sample output NMSE of both, as a sanity check.
//
//   bench_gptq [--rows R] [--cols C] [--tokens N] [--bits B] [--group G] [--block K] [--threads T] [--reps N]
//   defaults: --rows 3072 --cols 1024 --tokens 512 --bits 3 --group 128 --block 128 (down_proj's [3072, 1024])
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <sys/resource.h>

#include "quant/methods.h"
#include "util/parallel.h"

using namespace razor;
using namespace razor::quant;

namespace {
double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
// CPU seconds of the process (all threads): on a shared machine this, divided by the threads, is what the wall
// time would be without the other load.
double cpu_now() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + 1e-6 * double(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}
}  // namespace

int main(int argc, char** argv) {
  int64_t rows = 3072, cols = 1024, ntok = 512, group = 128, block = 128;
  int bits = 3, threads = 0, reps = 2;
  for (int i = 1; i < argc; ++i) {
    auto arg = [&](const char* n) { return std::strcmp(argv[i], n) == 0 && i + 1 < argc; };
    if (arg("--rows")) rows = std::atoll(argv[++i]);
    else if (arg("--cols")) cols = std::atoll(argv[++i]);
    else if (arg("--tokens")) ntok = std::atoll(argv[++i]);
    else if (arg("--bits")) bits = std::atoi(argv[++i]);
    else if (arg("--group")) group = std::atoll(argv[++i]);
    else if (arg("--block")) block = std::atoll(argv[++i]);
    else if (arg("--threads")) threads = std::atoi(argv[++i]);
    else if (arg("--reps")) reps = std::max(1, std::atoi(argv[++i]));
    else {
      std::fprintf(stderr, "usage: bench_gptq [--rows R] [--cols C] [--tokens N] [--bits B] [--group G] [--block K] "
                           "[--threads T] [--reps N]\n");
      return 2;
    }
  }
  if (rows <= 0 || cols <= 0 || ntok <= 0 || rows * cols > (int64_t(1) << 32)) {
    std::fprintf(stderr, "bench_gptq: sizes must be positive and rows*cols at most 2^32\n");
    return 2;
  }
  const int nthreads = threads > 0 ? threads : default_threads();
  std::mt19937 gen(1234);
  std::student_t_distribution<float> td(4.0f);
  std::lognormal_distribution<float> ln(0.0f, 0.7f);
  std::normal_distribution<float> nd;
  std::vector<float> w(size_t(rows * cols)), x(size_t(ntok * cols)), chs(static_cast<size_t>(cols));
  for (auto& v : w) v = 0.014f * td(gen);
  for (auto& v : chs) v = ln(gen);
  for (int64_t t = 0; t < ntok; ++t)
    for (int64_t c = 0; c < cols; ++c) x[size_t(t * cols + c)] = chs[size_t(c)] * nd(gen);
  calib_view tk{x.data(), ntok, cols};

  double t_prep = 1e30, t_quant = 1e30, t_rtn = 1e30, c_prep = 1e30, c_quant = 1e30;
  std::vector<float> q(w.size()), r(w.size());
  for (int rep = 0; rep < reps; ++rep) {
    double c0 = cpu_now(), t0 = now();
    auto h = gptq_prepare(tk, 0.01, threads);
    double c1 = cpu_now(), t1 = now();
    if (!h.ok()) {
      std::fprintf(stderr, "bench_gptq: %s\n", h.error().to_string().c_str());
      return 1;
    }
    gptq_quantize(w.data(), q.data(), rows, cols, *h, bits, group, block, threads);
    double c2 = cpu_now(), t2 = now();
    rtn_asym(w.data(), r.data(), rows, cols, bits, group, threads);
    double t3 = now();
    t_prep = std::min(t_prep, t1 - t0);
    t_quant = std::min(t_quant, t2 - t1);
    t_rtn = std::min(t_rtn, t3 - t2);
    c_prep = std::min(c_prep, c1 - c0);
    c_quant = std::min(c_quant, c2 - c1);
  }
  double nmse_g = output_nmse(w.data(), q.data(), rows, cols, tk);
  double nmse_r = output_nmse(w.data(), r.data(), rows, cols, tk);
  const double slice = t_prep + t_quant;
  std::printf("bench_gptq: W [%lld x %lld], %lld tokens, %d bits, group %lld, block %lld, %d threads, best of %d\n",
              (long long)rows, (long long)cols, (long long)ntok, bits, (long long)group, (long long)block, nthreads,
              reps);
  std::printf("  prepare (H, Cholesky, U)   %8.3f s wall  %8.3f s cpu\n", t_prep, c_prep);
  std::printf("  quantize (lazy blocks)     %8.3f s wall  %8.3f s cpu\n", t_quant, c_quant);
  std::printf("  gptq per slice             %8.3f s   (rtn-asym %.4f s: gptq / rtn = %.0fx)\n", slice, t_rtn,
              slice / std::max(t_rtn, 1e-9));
  std::printf("  in-sample output NMSE      gptq %.5f   rtn-asym %.5f   (ratio %.3f)\n", nmse_g, nmse_r,
              nmse_g / nmse_r);
  std::printf("  12,288 slices of this shape: %.1f min wall, %.1f min at the cpu time / %d threads (the issue's "
              "target: < 10 min on one H100)\n",
              slice * 12288 / 60, (c_prep + c_quant) / nthreads * 12288 / 60, nthreads);
  return 0;
}
