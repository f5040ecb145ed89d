// The allocator's measurements: the probe's statistics (alloc_stats) and the per-expert quantization error
// table (measured with the seed's fake-quant, cached beside the probe).
#include "quant/allocate.h"

#include <algorithm>
#include <atomic>
#include <cfenv>
#include <cmath>
#include <filesystem>
#include <mutex>

#include "model/checkpoint.h"
#include "quant/fake_quant.h"
#include "util/atomic_file.h"
#include "util/json_limits.h"
#include "util/numeric.h"

namespace fs = std::filesystem;

namespace razor::quant {

// ---- stats ----------------------------------------------------------------------------------------------------

status alloc_stats::validate() const {
  if (n_layers <= 0 || n_experts <= 0) return make_error(errc::invalid_argument, "probe: no layers or no experts");
  const size_t n = size();
  for (auto* v : {&freq, &wmass, &asal, &wfro_gate_up, &wfro_down, &rnorm})
    if (!v->empty() && v->size() != n)
      return make_error(errc::bad_format, "probe: a per-expert statistic does not have layers x experts values");
  if (freq.size() != n || wmass.size() != n || asal.size() != n)
    return make_error(errc::bad_format, "probe: freq / wmass / asal missing");
  if (!msq_gate_up.empty() && msq_gate_up.size() != n * size_t(cols_gate_up))
    return make_error(errc::bad_format, "probe: imatrix gate_up statistics have the wrong size");
  if (!msq_down.empty() && msq_down.size() != n * size_t(cols_down))
    return make_error(errc::bad_format, "probe: imatrix down statistics have the wrong size");
  return {};
}

// ---- error table -----------------------------------------------------------------------------------------------

int error_table::bit_index(double b) const {
  for (size_t i = 0; i < bits.size(); ++i)
    if (std::abs(bits[i] - b) < 1e-9) return int(i);
  return -1;
}

nlohmann::json error_table::to_json() const {
  return {{"format", "razor.qerr/1"},
          {"key", key},
          {"n_layers", n_layers},
          {"n_experts", n_experts},
          {"bits", bits},
          {"params", nlohmann::json::array({params[0], params[1], params[2]})},
          {"weighted", weighted},
          {"layout", "[layer][expert][proj gate,up,down][bits]"},
          {"err", err},
          {"ref", ref},
          {"werr", werr},
          {"wref", wref}};
}

result<error_table> error_table::from_json(const nlohmann::json& j) {
  try {
    if (j.value("format", "") != "razor.qerr/1") return make_error(errc::bad_format, "not a razor.qerr/1 file");
    error_table t;
    t.key = j.at("key");
    t.n_layers = j.at("n_layers").get<int>();
    t.n_experts = j.at("n_experts").get<int>();
    t.bits = j.at("bits").get<std::vector<double>>();
    auto p = j.at("params").get<std::vector<int64_t>>();
    if (p.size() != kProjs) return make_error(errc::bad_format, "qerr: params");
    for (int i = 0; i < kProjs; ++i) t.params[i] = p[size_t(i)];
    t.weighted = j.at("weighted").get<bool>();
    t.err = j.at("err").get<std::vector<double>>();
    t.ref = j.at("ref").get<std::vector<double>>();
    t.werr = j.at("werr").get<std::vector<double>>();
    t.wref = j.at("wref").get<std::vector<double>>();
    const size_t n = size_t(t.n_layers) * size_t(t.n_experts) * kProjs * t.bits.size();
    if (t.err.size() != n || t.ref.size() != n || t.werr.size() != n || t.wref.size() != n)
      return make_error(errc::bad_format, "qerr: arrays have the wrong size");
    return t;
  } catch (const std::exception& e) {
    return make_error(errc::bad_format, std::string("qerr: ") + e.what());
  }
}

namespace {

elem_type out_type_of(dtype d) {
  return d == dtype::bf16 ? elem_type::bf16 : d == dtype::f16 ? elem_type::f16 : elem_type::f32;
}

}  // namespace

result<error_table> measure_errors(const checkpoint& ck, const alloc_stats& st, const measure_options& opt) {
  RAZOR_TRY(st.validate());
  error_table t;
  t.n_layers = st.n_layers;
  t.n_experts = st.n_experts;
  t.bits = opt.bits;
  std::sort(t.bits.begin(), t.bits.end());
  for (double b : t.bits)
    if (!valid_bits(b) || b >= kKeepBits)
      return make_error(errc::invalid_argument, "measure: " + std::to_string(b) + " is not a quantized bit width");
  t.weighted = st.has_imatrix();
  const size_t nb = t.bits.size();
  const size_t n = st.size() * kProjs * nb;
  t.err.assign(n, 0.0);
  t.ref.assign(n, 0.0);
  t.werr.assign(n, 0.0);
  t.wref.assign(n, 0.0);
  // The first layer with experts (DeepSeek's leading dense layers have none: their entries stay zero).
  int first_moe = 0;
  while (first_moe + 1 < st.n_layers && !ck.config().layer_is_moe(first_moe)) ++first_moe;
  for (int p = 0; p < kProjs; ++p) {
    auto v = ck.expert_matrix(first_moe, 0, kProjOf[p]);
    if (!v) return make_error(errc::not_found, ck.dir() + ": no routed expert " + std::string(proj_name(kProjOf[p])) +
                                                   " matrix for layer " + std::to_string(first_moe) + " expert 0");
    t.params[p] = v->n_rows * v->n_cols;
  }
  std::atomic<int> done{0};
  std::atomic<bool> cancelled{false};
  std::mutex err_mu;
  status first_error;
  const size_t n_items = st.size();
  parallel_for(
      n_items,
      [&](size_t b0, size_t b1) {
        std::vector<float> w, q;
        std::vector<uint8_t> buf;
        std::vector<double> m;
        for (size_t it = b0; it < b1 && !cancelled.load(); ++it) {
          const int L = int(it / size_t(st.n_experts)), e = int(it % size_t(st.n_experts));
          for (int p = 0; p < kProjs && ck.config().layer_is_moe(L); ++p) {
            auto v = ck.expert_matrix(L, e, kProjOf[p]);
            status s;
            if (!v) {
              s = make_error(errc::not_found, ck.dir() + ": expert matrix missing for layer " + std::to_string(L) +
                                                  " expert " + std::to_string(e));
            } else {
              const size_t rows = size_t(v->n_rows), cols = size_t(v->n_cols);
              w.resize(rows * cols);
              q.resize(rows * cols);
              s = ck.read_rows_f32(*v, w.data());
              // column weights: the imatrix mean squares of this expert's input
              m.assign(cols, 1.0);
              if (s.ok() && t.weighted) {
                const bool down = p == 2;
                const int64_t c = down ? st.cols_down : st.cols_gate_up;
                if (size_t(c) == cols) {
                  const auto& src = down ? st.msq_down : st.msq_gate_up;
                  std::copy_n(src.data() + st.idx(L, e) * cols, cols, m.data());
                }
              }
              const elem_type ot = out_type_of(v->t->dt);
              buf.resize(rows * cols * elem_size(ot));
              for (size_t bi = 0; bi < nb && s.ok(); ++bi) {
                fq_params fp{float(t.bits[bi]), opt.group, opt.clip_steps};
                s = fake_quant(w.data(), elem_type::f32, buf.data(), ot, rows, cols, fp, nullptr, {}, 1);
                if (!s.ok()) break;
                if (ot == elem_type::bf16) {
                  auto* h = reinterpret_cast<const uint16_t*>(buf.data());
                  for (size_t i = 0; i < rows * cols; ++i) q[i] = bf16_to_f32(h[i]);
                } else if (ot == elem_type::f16) {
                  auto* h = reinterpret_cast<const uint16_t*>(buf.data());
                  for (size_t i = 0; i < rows * cols; ++i) q[i] = f16_to_f32(h[i]);
                } else {
                  std::copy_n(reinterpret_cast<const float*>(buf.data()), rows * cols, q.data());
                }
                double e2 = 0, r2 = 0, we2 = 0, wr2 = 0;
                for (size_t r = 0; r < rows; ++r) {
                  const float* wr = w.data() + r * cols;
                  const float* qr = q.data() + r * cols;
                  for (size_t c = 0; c < cols; ++c) {
                    const double d = double(qr[c]) - double(wr[c]);
                    const double ww = double(wr[c]) * double(wr[c]);
                    e2 += d * d;
                    r2 += ww;
                    we2 += m[c] * d * d;
                    wr2 += m[c] * ww;
                  }
                }
                const size_t k = t.at(L, e, p, int(bi));
                t.err[k] = e2;
                t.ref[k] = r2;
                t.werr[k] = we2;
                t.wref[k] = wr2;
              }
            }
            if (!s.ok()) {
              std::lock_guard lk(err_mu);
              if (first_error.ok()) first_error = s;
              cancelled = true;
              break;
            }
          }
          int d = ++done;
          if (opt.progress) {
            std::lock_guard lk(err_mu);
            if (!opt.progress(double(d), double(n_items), "experts")) cancelled = true;
          }
        }
      },
      1, opt.threads);
  if (!first_error.ok()) return first_error;
  if (cancelled) return make_error(errc::cancelled, "error measurement cancelled");
  return t;
}

nlohmann::json file_identity(const std::string& path) {
  std::error_code ec;
  auto sz = fs::file_size(path, ec);
  auto mt = fs::last_write_time(path, ec);
  return {{"file", path}, {"size", ec ? 0 : uint64_t(sz)}, {"mtime", ec ? 0 : int64_t(mt.time_since_epoch().count())}};
}

nlohmann::json weights_identity(const checkpoint& ck) {
  nlohmann::json shards = nlohmann::json::array();
  for (auto& s : ck.shards()) {
    auto f = file_identity(s);
    f["file"] = fs::path(s).filename().string();
    shards.push_back(std::move(f));
  }
  std::error_code ec;
  auto canon = fs::weakly_canonical(ck.dir(), ec);
  return {{"dir", ec ? ck.dir() : canon.string()}, {"shards", shards}};
}

std::string error_cache_path(const std::string& probe_path, int group, int clip_steps) {
  fs::path p(probe_path);
  std::string stem = p.extension() == ".h5" ? p.stem().string() : p.filename().string();
  return (p.parent_path() / (stem + ".qerr-g" + std::to_string(group) + "-c" + std::to_string(clip_steps) + ".json"))
      .string();
}

result<error_table> load_or_measure_errors(const checkpoint& ck, const alloc_stats& st, const measure_options& opt,
                                           const std::string& cache_path, const nlohmann::json& probe_identity,
                                           bool* from_cache) {
  std::vector<double> bits = opt.bits;
  std::sort(bits.begin(), bits.end());
  nlohmann::json key = {{"model", weights_identity(ck)},
                        {"group", opt.group},
                        {"clip_steps", opt.clip_steps},
                        {"bits", bits},
                        {"probe", probe_identity},
                        {"imatrix", st.has_imatrix()},
                        {"fake_quant", "razor.fake_quant seed arithmetic, output cast to the stored dtype"}};
  return cached_error_table<error_table>(cache_path, key, st.n_layers, st.n_experts, from_cache,
                                         [&] { return measure_errors(ck, st, opt); });
}

}  // namespace razor::quant
