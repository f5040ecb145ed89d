#include "engine/probe.h"

#include <H5Cpp.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>

#include "gguf/convert.h"
#include "gguf/layout.h"
#include "util/output_guard.h"
#include "util/parallel.h"
#include "util/temp_registry.h"

namespace razor::engine {

const input_stats* probe_result::find_input(const std::string& name) const {
  auto it = std::lower_bound(inputs.begin(), inputs.end(), name,
                             [](const input_stats& s, const std::string& n) { return s.name < n; });
  return it != inputs.end() && it->name == name ? &*it : nullptr;
}

namespace {

class probe_observer : public forward_observer {
 public:
  probe_observer(probe_result& r, bool inputs) : r_(r), inputs_(inputs) {}

  // Weight norms, experts on all cores (on the GPU path this runs on the loader thread; it writes layer L's
  // entries only, which nothing else touches).
  void on_layer_loaded(const layer_weights& w) override {
    const size_t E = size_t(r_.n_experts), L = size_t(w.layer);
    if (w.moe.gate_up.size() != E) return;  // a dense layer (DeepSeek's first_k_dense_replace)
    auto fro = [](const linear& l) { return std::sqrt(l.sum_sq()); };
    parallel_for(E, [&](size_t b, size_t e1) {
      for (size_t e = b; e < e1; ++e) {
        r_.wfro_gate_up[L * E + e] = fro(w.moe.gate_up[e]);
        r_.wfro_down[L * E + e] = fro(w.moe.down[e]);
        r_.rnorm[L * E + e] = w.moe.router.row_norm(int64_t(e));
      }
    });
  }

  void on_router(int layer, size_t n, const float* x_norm, const int32_t* ids, const float* wts, int k) override {
    const size_t E = size_t(r_.n_experts), L = size_t(layer);
    for (size_t t = 0; t < n; ++t)
      for (int s = 0; s < k; ++s) {
        size_t e = size_t(ids[t * size_t(k) + size_t(s)]);
        r_.freq[L * E + e] += 1;
        r_.wmass[L * E + e] += wts[t * size_t(k) + size_t(s)];
        r_.asal[L * E + e] += x_norm[t];
      }
  }

  bool wants_input_sums() const override { return inputs_; }

  void on_input_sums(int layer, const std::string& name, int expert, uint64_t rows, int64_t cols,
                     const double* sum_sq, const double* sum) override {
    std::lock_guard lk(mu_);
    auto& s = stats_[name];
    if (s.name.empty()) {
      s.name = name;
      s.layer = layer;
      s.cols = cols;
      s.n_mat = expert >= 0 ? r_.n_experts : 1;
      s.sum_sq.assign(size_t(s.n_mat * cols), 0.0);
      s.sum.assign(size_t(s.n_mat * cols), 0.0);
      s.count.assign(size_t(s.n_mat), 0);
    }
    size_t m = size_t(std::max(expert, 0));
    double* sq = s.sum_sq.data() + m * size_t(cols);
    double* su = s.sum.data() + m * size_t(cols);
    for (int64_t c = 0; c < cols; ++c) {
      sq[c] += sum_sq[c];
      su[c] += sum[c];
    }
    s.count[m] += rows;
  }

  void finish() {
    r_.inputs.clear();
    for (auto& [name, s] : stats_) r_.inputs.push_back(std::move(s));  // std::map: sorted by name
  }

 private:
  probe_result& r_;
  bool inputs_;
  std::mutex mu_;
  std::map<std::string, input_stats> stats_;
};

}  // namespace

result<probe_result> run_probe(weight_provider& wp, const std::vector<int32_t>& tokens, const probe_options& opt) {
  RAZOR_ASSIGN_OR_RETURN(model_dims d, dims_for(wp));
  if (opt.seqlen == 0) return make_error(errc::invalid_argument, "seqlen must be positive");
  if (opt.first_token >= tokens.size())
    return make_error(errc::invalid_argument, "first_token " + std::to_string(opt.first_token) + " is past the " +
                                                  std::to_string(tokens.size()) + " tokens of the stream");
  size_t n = std::min(opt.n_tokens, tokens.size() - opt.first_token);
  if (n == 0) return make_error(errc::invalid_argument, "no tokens to probe");
  std::vector<std::vector<int32_t>> seqs;
  const auto base = tokens.begin() + ptrdiff_t(opt.first_token);
  for (size_t t0 = 0; t0 < n; t0 += opt.seqlen)
    seqs.emplace_back(base + ptrdiff_t(t0), base + ptrdiff_t(std::min(n, t0 + opt.seqlen)));
  probe_result r;
  r.n_layers = int(d.n_layers);
  r.n_experts = int(d.n_experts);
  r.top_k = int(d.top_k);
  r.hidden = d.hidden;
  r.n_tokens = n;
  r.first_token = opt.first_token;
  r.n_seqs = seqs.size();
  r.seqlen = opt.seqlen;
  const size_t LE = size_t(d.n_layers * d.n_experts);
  for (auto* v : {&r.freq, &r.wmass, &r.asal, &r.wfro_gate_up, &r.wfro_down, &r.rnorm}) v->assign(LE, 0.0);
  probe_observer obs(r, opt.collect_inputs);
  run_options ro;
  ro.observer = &obs;
  ro.progress = opt.progress;
  ro.device = opt.device;
  ro.gpu_times = &r.gpu_times;
  ro.gpu_weights = opt.gpu_weights;
  ro.compute_logits = false;  // lm_head's input statistics need the final norm only (runs_head)
  auto t0 = std::chrono::steady_clock::now();
  RAZOR_TRY(forward(wp, d, seqs, [](size_t, size_t, const float*) { return true; }, ro));
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.tokens_per_s = double(n) / r.seconds;
  obs.finish();
  const size_t E = size_t(d.n_experts);
  for (size_t L = 0; L < size_t(d.n_layers); ++L) {
    const double* f = r.freq.data() + L * E;
    double tot = 0, mx = 0, h = 0, tot_eps = 0;
    for (size_t e = 0; e < E; ++e) {
      tot += f[e];
      mx = std::max(mx, f[e]);
      tot_eps += f[e] + 1e-9;
    }
    for (size_t e = 0; e < E; ++e) {
      double p = (f[e] + 1e-9) / tot_eps;
      h -= p * std::log(p);
    }
    double mean = tot / double(E);
    size_t cold = 0;
    for (size_t e = 0; e < E; ++e) cold += f[e] < 0.1 * mean;
    r.entropy.push_back(E > 1 ? h / std::log(double(E)) : 0.0);
    r.maxshare.push_back(tot > 0 ? mx / tot : 0.0);
    r.max_mean.push_back(mean > 0 ? mx / mean : 0.0);
    r.cold_frac.push_back(double(cold) / double(E));
  }
  return r;
}

// ------------------------------------------------------------------------------------------------
// HDF5

namespace {

void write_attr_str(H5::H5Object& o, const char* name, const std::string& v) {
  H5::StrType t(H5::PredType::C_S1, std::max<size_t>(v.size(), 1));
  auto a = o.createAttribute(name, t, H5::DataSpace(H5S_SCALAR));
  a.write(t, v.empty() ? std::string(" ") : v);
}
template <class T>
void write_attr(H5::H5Object& o, const char* name, const H5::PredType& t, T v) {
  auto a = o.createAttribute(name, t, H5::DataSpace(H5S_SCALAR));
  a.write(t, &v);
}
void write_ds(H5::Group& g, const std::string& name, const std::vector<double>& v, std::vector<hsize_t> dims) {
  H5::DataSpace sp(int(dims.size()), dims.data());
  auto ds = g.createDataSet(name, H5::PredType::IEEE_F64LE, sp);
  if (!v.empty()) ds.write(v.data(), H5::PredType::NATIVE_DOUBLE);
}
void write_ds_u64(H5::Group& g, const std::string& name, const std::vector<uint64_t>& v) {
  hsize_t dim = v.size();
  H5::DataSpace sp(1, &dim);
  auto ds = g.createDataSet(name, H5::PredType::STD_U64LE, sp);
  if (!v.empty()) ds.write(v.data(), H5::PredType::NATIVE_UINT64);
}
// The per-layer datasets of the file (docs/probe-format.md), written and read through this one table.
struct dataset_row {
  const char* group;
  const char* name;
  std::vector<double> probe_result::*field;
  bool per_expert;  // [n_layers][n_experts], else [n_layers]
};
const dataset_row kDatasets[] = {
    {"/routing", "freq", &probe_result::freq, true},
    {"/routing", "wmass", &probe_result::wmass, true},
    {"/routing", "asal", &probe_result::asal, true},
    {"/weights", "wfro_gate_up", &probe_result::wfro_gate_up, true},
    {"/weights", "wfro_down", &probe_result::wfro_down, true},
    {"/weights", "rnorm", &probe_result::rnorm, true},
    {"/layers", "entropy", &probe_result::entropy, false},
    {"/layers", "maxshare", &probe_result::maxshare, false},
    {"/layers", "max_mean", &probe_result::max_mean, false},
    {"/layers", "cold_frac", &probe_result::cold_frac, false},
};

std::vector<double> read_ds(const H5::Group& g, const std::string& name) {
  auto ds = g.openDataSet(name);
  auto sp = ds.getSpace();
  std::vector<double> v(size_t(sp.getSimpleExtentNpoints()));
  if (!v.empty()) ds.read(v.data(), H5::PredType::NATIVE_DOUBLE);
  return v;
}
template <class T>
T read_attr(const H5::H5Object& o, const char* name, const H5::PredType& t) {
  T v{};
  o.openAttribute(name).read(t, &v);
  return v;
}

}  // namespace

status probe_h5_file(const std::string& path) {
  try {
    H5::Exception::dontPrint();
    if (!H5::H5File::isHdf5(path)) return make_error(errc::bad_format, "not an HDF5 file");
    H5::H5File f(path, H5F_ACC_RDONLY);
    H5::Group root = f.openGroup("/");
    if (!root.attrExists("format")) return make_error(errc::bad_format, "an HDF5 file without razor's format attribute");
    H5::Attribute a = root.openAttribute("format");
    std::string v;
    a.read(a.getStrType(), v);
    if (v != "razor-probe") return make_error(errc::bad_format, "an HDF5 file of format \"" + v + "\"");
    return {};
  } catch (const H5::Exception& e) {
    return make_error(errc::bad_format, "unreadable as HDF5: " + e.getDetailMsg());
  }
}

status write_probe_h5(const probe_result& r, const std::string& path) {
  namespace fs = std::filesystem;
  RAZOR_TRY(check_output_file(path, probe_h5_file));
  fs::path p(path);
  std::string tmp = (p.parent_path() / ("." + p.filename().string() + ".partial-" + std::to_string(getpid()))).string();
  const scoped_temp reg(tmp, temp_kind::file);  // a SIGINT / SIGTERM removes it
  try {
    H5::Exception::dontPrint();
    {
      H5::H5File f(tmp, H5F_ACC_TRUNC);
      H5::Group root = f.openGroup("/");
      write_attr_str(root, "format", "razor-probe");
      write_attr(root, "version", H5::PredType::NATIVE_INT32, int32_t(1));
      write_attr_str(root, "model", r.model);
      write_attr(root, "n_layers", H5::PredType::NATIVE_INT32, int32_t(r.n_layers));
      write_attr(root, "n_experts", H5::PredType::NATIVE_INT32, int32_t(r.n_experts));
      write_attr(root, "top_k", H5::PredType::NATIVE_INT32, int32_t(r.top_k));
      write_attr(root, "n_tokens", H5::PredType::NATIVE_UINT64, uint64_t(r.n_tokens));
      write_attr(root, "n_seqs", H5::PredType::NATIVE_UINT64, uint64_t(r.n_seqs));
      write_attr(root, "seqlen", H5::PredType::NATIVE_UINT64, uint64_t(r.seqlen));
      write_attr(root, "first_token", H5::PredType::NATIVE_UINT64, uint64_t(r.first_token));
      write_attr(root, "seconds", H5::PredType::NATIVE_DOUBLE, r.seconds);
      const std::vector<hsize_t> le = {hsize_t(r.n_layers), hsize_t(r.n_experts)}, l = {hsize_t(r.n_layers)};
      for (const char* g : {"/routing", "/weights", "/layers"}) f.createGroup(g);
      for (const auto& ds : kDatasets) {
        auto g = f.openGroup(ds.group);
        write_ds(g, ds.name, r.*ds.field, ds.per_expert ? le : l);
      }
      auto im = f.createGroup("/imatrix");
      for (const auto& s : r.inputs) {
        auto g = im.createGroup(s.name);
        write_attr(g, "layer", H5::PredType::NATIVE_INT32, int32_t(s.layer));
        write_attr(g, "cols", H5::PredType::NATIVE_INT64, int64_t(s.cols));
        write_attr(g, "n_mat", H5::PredType::NATIVE_INT64, int64_t(s.n_mat));
        const std::vector<hsize_t> mc = {hsize_t(s.n_mat), hsize_t(s.cols)};
        write_ds(g, "sum_sq", s.sum_sq, mc);
        write_ds(g, "sum", s.sum, mc);
        write_ds_u64(g, "count", s.count);
      }
    }
    std::error_code ec;
    if (!claim_temp(reg.handle())) return make_error(errc::cancelled, path + ": interrupted");
    fs::rename(tmp, path, ec);
    if (ec) {
      fs::remove(tmp, ec);
      return make_error(errc::io, path + ": cannot rename the finished probe file into place");
    }
  } catch (const H5::Exception& e) {
    std::error_code ec;
    fs::remove(tmp, ec);
    return make_error(errc::io, path + ": HDF5 write failed: " + e.getDetailMsg());
  }
  return {};
}

result<probe_result> read_probe_h5(const std::string& path) {
  probe_result r;
  try {
    H5::Exception::dontPrint();
    H5::H5File f(path, H5F_ACC_RDONLY);
    H5::Group root = f.openGroup("/");
    r.n_layers = read_attr<int32_t>(root, "n_layers", H5::PredType::NATIVE_INT32);
    r.n_experts = read_attr<int32_t>(root, "n_experts", H5::PredType::NATIVE_INT32);
    r.top_k = read_attr<int32_t>(root, "top_k", H5::PredType::NATIVE_INT32);
    r.n_tokens = read_attr<uint64_t>(root, "n_tokens", H5::PredType::NATIVE_UINT64);
    r.n_seqs = read_attr<uint64_t>(root, "n_seqs", H5::PredType::NATIVE_UINT64);
    r.seqlen = read_attr<uint64_t>(root, "seqlen", H5::PredType::NATIVE_UINT64);
    if (root.attrExists("first_token"))  // absent in files written before it existed
      r.first_token = read_attr<uint64_t>(root, "first_token", H5::PredType::NATIVE_UINT64);
    for (const auto& ds : kDatasets) r.*ds.field = read_ds(f.openGroup(ds.group), ds.name);
    auto im = f.openGroup("/imatrix");
    for (hsize_t i = 0; i < im.getNumObjs(); ++i) {
      input_stats s;
      s.name = im.getObjnameByIdx(i);
      auto g = im.openGroup(s.name);
      s.layer = read_attr<int32_t>(g, "layer", H5::PredType::NATIVE_INT32);
      s.cols = read_attr<int64_t>(g, "cols", H5::PredType::NATIVE_INT64);
      s.n_mat = read_attr<int64_t>(g, "n_mat", H5::PredType::NATIVE_INT64);
      s.sum_sq = read_ds(g, "sum_sq");
      s.sum = read_ds(g, "sum");
      auto ds = g.openDataSet("count");
      s.count.resize(size_t(ds.getSpace().getSimpleExtentNpoints()));
      if (!s.count.empty()) ds.read(s.count.data(), H5::PredType::NATIVE_UINT64);
      r.inputs.push_back(std::move(s));
    }
    std::sort(r.inputs.begin(), r.inputs.end(), [](auto& a, auto& b) { return a.name < b.name; });
  } catch (const H5::Exception& e) {
    return make_error(errc::bad_format, path + ": not a readable razor probe file: " + e.getDetailMsg());
  }
  return r;
}

// ---------------------------------------------------------------------------------------------------
// probe -> GGUF imatrix
// ---------------------------------------------------------------------------------------------------
result<gguf::imatrix> probe_to_imatrix(const probe_result& r, const model_config& cfg, const std::string& dataset,
                                       std::vector<std::string>* notes) {
  if (r.inputs.empty())
    return make_error(errc::invalid_argument, "the probe holds no input statistics (run it without --no-imatrix)");
  const gguf::gguf_layout layout(cfg);
  gguf::imatrix im;
  im.datasets = {dataset};
  im.chunk_count = int64_t(r.n_seqs);
  im.chunk_size = int64_t(r.seqlen);
  for (const auto& s : r.inputs) {
    const std::vector<std::string> targets = layout.imatrix_targets(s.name);
    if (targets.empty()) {
      if (notes) notes->push_back(s.name + ": no GGUF tensor for it; left out of the imatrix");
      continue;
    }
    const size_t cols = size_t(s.cols), n_mat = size_t(s.n_mat);
    if (s.sum_sq.size() != cols * n_mat || s.count.size() != n_mat)
      return make_error(errc::internal, s.name + ": inconsistent input statistics");
    // Column permutation (ssm_out's V heads): GGUF column c takes HF column perm[c].
    const auto loc = layout.locate(s.name);
    const std::vector<size_t> perm = layout.column_order(loc.value_or(gguf::gguf_location{}), cols);
    if (loc && loc->how == gguf::gguf_relayout::head_cols && layout.reorders_v_heads()) {
      if (perm.size() != cols || cols != size_t(cfg.linear_num_value_heads * cfg.linear_value_head_dim))
        return make_error(errc::shape_mismatch, s.name + ": " + std::to_string(cols) +
                                                    " columns, expected num_v_heads x head_v_dim = " +
                                                    std::to_string(cfg.linear_num_value_heads * cfg.linear_value_head_dim));
      if (notes) notes->push_back(s.name + ": columns reordered grouped -> tiled (V heads) as in the conversion");
    }
    for (auto& t : targets) {
      gguf::imatrix_entry e;
      e.name = t;
      e.n_per_row = s.cols;
      e.n_mat = s.n_mat;
      e.in_sum2.resize(cols * n_mat);
      e.in_sum.resize(s.sum.size() == cols * n_mat ? cols * n_mat : 0);
      e.counts.resize(n_mat);
      for (size_t m = 0; m < n_mat; ++m) {
        e.counts[m] = float(s.count[m]);
        for (size_t c = 0; c < cols; ++c) {
          e.in_sum2[m * cols + c] = float(s.sum_sq[m * cols + perm[c]]);
          if (!e.in_sum.empty()) e.in_sum[m * cols + c] = float(s.sum[m * cols + perm[c]]);
        }
      }
      im.entries.push_back(std::move(e));
    }
  }
  std::sort(im.entries.begin(), im.entries.end(), [](auto& a, auto& b) { return a.name < b.name; });
  return im;
}

}  // namespace razor::engine
