#include "alloc/whole_file.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <set>
#include <sstream>

#include "gguf/gguf_file.h"
#include "gguf/layout.h"
#include "model/checkpoint.h"
#include "quant/allocate.h"

namespace razor::alloc {

namespace {

double now_s() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

bool starts_with(const std::string& s, const char* p) { return s.rfind(p, 0) == 0; }

// "blk.12.ffn_up_exps.weight" -> 12; -1 for tensors outside the blocks.
int block_of(const std::string& name) {
  if (!starts_with(name, "blk.")) return -1;
  int l = 0;
  size_t i = 4;
  if (i >= name.size() || !std::isdigit(static_cast<unsigned char>(name[i]))) return -1;
  while (i < name.size() && std::isdigit(static_cast<unsigned char>(name[i]))) l = l * 10 + (name[i++] - '0');
  return l;
}

std::string regex_exact(const std::string& name) {
  std::string r = "^";
  for (char c : name) {
    if (std::string_view(".^$|()[]{}*+?\\").find(c) != std::string_view::npos) r += '\\';
    r += c;
  }
  return r + "$";
}

// Spearman rank correlation.
double spearman(const std::vector<double>& a, const std::vector<double>& b) {
  const size_t n = a.size();
  if (n < 2) return 0;
  auto ranks = [&](const std::vector<double>& v) {
    std::vector<size_t> idx(n);
    std::iota(idx.begin(), idx.end(), 0);
    std::sort(idx.begin(), idx.end(), [&](size_t x, size_t y) { return v[x] < v[y]; });
    std::vector<double> r(n);
    for (size_t i = 0; i < n;) {
      size_t j = i;
      while (j + 1 < n && v[idx[j + 1]] == v[idx[i]]) ++j;
      for (size_t k = i; k <= j; ++k) r[idx[k]] = 0.5 * double(i + j);
      i = j + 1;
    }
    return r;
  };
  auto ra = ranks(a), rb = ranks(b);
  double ma = 0, mb = 0;
  for (size_t i = 0; i < n; ++i) ma += ra[i] / double(n), mb += rb[i] / double(n);
  double sab = 0, saa = 0, sbb = 0;
  for (size_t i = 0; i < n; ++i) {
    sab += (ra[i] - ma) * (rb[i] - mb);
    saa += (ra[i] - ma) * (ra[i] - ma);
    sbb += (rb[i] - mb) * (rb[i] - mb);
  }
  return saa > 0 && sbb > 0 ? sab / std::sqrt(saa * sbb) : 0.0;
}

double bpw_of(uint64_t bytes, int64_t params) { return params > 0 ? 8.0 * double(bytes) / double(params) : 0.0; }

}  // namespace

std::vector<ggml::type> default_ladder() {
  std::vector<ggml::type> v;
  // mxfp4 is gpt-oss's expert format (kept as the Hub's blocks by pack); its power-of-two scales lose to the
  // k-quants at the same size, so it is in the ladder only when the user names it.
  for (auto& ti : ggml::all_types())
    if ((ti.is_quantized() && ti.t != ggml::type::mxfp4) || ti.t == ggml::type::f16) v.push_back(ti.t);
  return v;
}

// ---- items ----------------------------------------------------------------------------------------------------
result<wf_plan> plan_items(const checkpoint& ck, const plan_options& opt) {
  if (opt.ladder.empty()) return make_error(errc::invalid_argument, "the type ladder is empty");
  gguf::convert_options co;
  co.default_type = ggml::type::q8_0;
  co.imat = const_cast<gguf::imatrix*>(opt.imat);  // plan_gguf checks it against the model (in place for legacy files)
  RAZOR_ASSIGN_OR_RETURN(gguf::convert_report rep, gguf::plan_gguf(ck, co));
  wf_plan plan;
  plan.ladder = opt.ladder;
  plan.alignment = co.alignment;
  plan.header_bytes = rep.header_bytes;
  plan.fixed_bytes = rep.header_bytes;

  // engine tensor names feeding each GGUF tensor
  const gguf::gguf_layout layout(ck.config());
  std::map<std::string, std::vector<std::string>> sources;
  const std::string& prefix = ck.text_prefix();
  for (auto& t : ck.tensors()) {
    std::string name = starts_with(t.name, prefix.c_str()) ? t.name.substr(prefix.size()) : t.name;
    if (auto loc = layout.locate(name)) {
      sources[loc->tensor].push_back(name);
      if (!loc->tensor2.empty()) sources[loc->tensor2].push_back(name);  // deepseek2's kv_b_proj feeds two
    }
    for (const auto& part : layout.split_parts(name)) sources[part.tensor].push_back(name);  // qwen3next's in_proj_qkvz
  }
  const int n_layers = int(ck.config().num_layers);
  for (auto& r : rep.tensors) {
    plan.total_params += r.nelements();
    if (starts_with(r.why, "kept")) {
      plan.fixed_bytes += gguf::padded_bytes(r.bytes, plan.alignment);
      continue;
    }
    wf_item it;
    it.tensor = r.name;
    it.role = r.role;
    it.ne = r.ne;
    it.params = r.nelements();
    const int L = block_of(r.name);
    it.first_layer = r.name == "token_embd.weight" ? -1 : L >= 0 ? L : n_layers;
    for (int p = 0; p < 3 && L >= 0; ++p)
      if (r.name == gguf::gguf_layout::expert_tensor(L, p == 0 ? expert_proj::gate : p == 1 ? expert_proj::up
                                                                                           : expert_proj::down)) {
        it.expert_layer = L;
        it.expert_proj = p;
      }
    if (it.expert_layer < 0) {
      auto s = sources.find(r.name);
      if (s == sources.end())
        return make_error(errc::internal, ck.dir() + ": no checkpoint tensor maps to GGUF tensor " + r.name);
      it.sources = s->second;
    }
    const bool embd_or_out = r.name == "token_embd.weight" || r.name == "output.weight";
    auto allowed = opt.role_types.find(it.role);
    std::set<ggml::type> seen;
    for (ggml::type t : opt.ladder) {
      if (allowed != opt.role_types.end() &&
          std::find(allowed->second.begin(), allowed->second.end(), t) == allowed->second.end())
        continue;
      auto stored = ggml::resolve_row_type(t, r.ne.empty() ? 1 : r.ne[0]);
      if (!stored.ok() || !seen.insert(*stored).second) continue;
      // llama.cpp's rule (types it quantizes only with an imatrix, token_embd / output exempt), and ggml's (it
      // asserts weights for some types, whatever the tensor)
      const bool covered = opt.imat && opt.imat->find(r.name);
      if (ggml::info(*stored).needs_imatrix && !embd_or_out && !opt.allow_missing_imatrix && !covered) continue;
      if (ggml::info(*stored).weights == ggml::weights_use::required && !covered) continue;
      auto bytes = gguf::tensor_bytes(uint32_t(*stored), r.ne);
      if (!bytes) continue;
      it.choices.push_back({*stored, gguf::padded_bytes(*bytes, plan.alignment)});
    }
    if (it.choices.empty())
      return make_error(errc::invalid_argument, r.name + ": no type of the ladder can store it" +
                                                    (allowed != opt.role_types.end() ? " (role " + it.role + " restricted)" : ""));
    std::stable_sort(it.choices.begin(), it.choices.end(), [](auto& a, auto& b) { return a.bytes < b.bytes; });
    plan.items.push_back(std::move(it));
  }
  if (plan.items.empty()) return make_error(errc::invalid_argument, ck.dir() + ": no tensor to quantize");
  return plan;
}

// ---- measurement ----------------------------------------------------------------------------------------------
namespace {

// Reads every matrix of the item through rt (which round-trips it when it has a type), so rt's error accumulates.
status touch(roundtrip_weights& rt, const checkpoint& ck, const wf_item& it) {
  if (it.expert_layer >= 0) {
    const expert_proj p = expert_proj_of(it);
    for (int e = 0; e < int(ck.config().num_experts); ++e) RAZOR_TRY(rt.expert(it.expert_layer, e, p).error());
    return {};
  }
  for (auto& s : it.sources) RAZOR_TRY(rt.tensor(s).error());
  return {};
}

// The choices whose KL is measured: all, or `k` spread over those below 7 bits per weight (above it the KL is
// round-off noise), always including the cheapest.
std::vector<size_t> measured_subset(const wf_item& it, bool all, int k) {
  std::vector<size_t> out;
  if (all) {
    for (size_t i = 0; i < it.choices.size(); ++i) out.push_back(i);
    return out;
  }
  std::vector<size_t> pool;
  for (size_t i = 0; i < it.choices.size(); ++i)
    if (bpw_of(it.choices[i].bytes, it.params) < 7.0) pool.push_back(i);
  if (pool.empty()) pool.push_back(0);
  k = std::max(1, std::min(k, int(pool.size())));
  for (int j = 0; j < k; ++j) {
    size_t at = k == 1 ? 0 : size_t(std::lround(double(j) * double(pool.size() - 1) / double(k - 1)));
    if (out.empty() || out.back() != pool[at]) out.push_back(pool[at]);
  }
  return out;
}

// Choices whose measured KL informs the fit: below 7 bits per weight (above, the KL is at the level of the
// engine's own round-off and says nothing about the curve).
bool fit_point(const wf_item& it, const wf_choice& c) {
  return c.kl > 0 && c.rel_error > 0 && bpw_of(c.bytes, it.params) < 7.0;
}

// Fitted damage S_t x e^alpha: alpha pooled over items (per-item intercepts), S_t per item.
void fit(wf_plan& plan, measure_report& rep, bool keep_measured) {
  double sxy = 0, sxx = 0;
  for (auto& it : plan.items) {
    std::vector<double> x, y;
    for (auto& c : it.choices)
      if (fit_point(it, c)) x.push_back(std::log(c.rel_error)), y.push_back(std::log(c.kl));
    if (x.size() < 2) continue;
    const double mx = std::accumulate(x.begin(), x.end(), 0.0) / double(x.size());
    const double my = std::accumulate(y.begin(), y.end(), 0.0) / double(y.size());
    for (size_t i = 0; i < x.size(); ++i) sxy += (x[i] - mx) * (y[i] - my), sxx += (x[i] - mx) * (x[i] - mx);
  }
  rep.alpha = sxx > 0 ? std::clamp(sxy / sxx, 0.5, 2.0) : 1.0;
  std::vector<double> measured, fitted;
  for (auto& it : plan.items) {
    double s = 0;
    int n = 0;
    for (auto& c : it.choices)
      if (fit_point(it, c)) s += std::log(c.kl) - rep.alpha * std::log(c.rel_error), ++n;
    it.sensitivity = n ? std::exp(s / n) : 0.0;
    for (auto& c : it.choices) {
      const double f = c.rel_error > 0 ? it.sensitivity * std::pow(c.rel_error, rep.alpha) : 0.0;
      if (fit_point(it, c)) measured.push_back(c.kl), fitted.push_back(f);
      c.damage = keep_measured && c.kl >= 0 ? c.kl : f;
    }
  }
  rep.fit_spearman = spearman(measured, fitted);
}

}  // namespace

result<measure_report> measure(const checkpoint& ck, const gguf::imatrix* imat, wf_plan& plan,
                               const measure_options& opt) {
  const double t0 = now_s();
  auto base = engine::checkpoint_weights(ck);
  std::unique_ptr<cached_weights> cache;
  engine::weight_provider* src = base.get();
  if (opt.cache_weights) {
    cache = std::make_unique<cached_weights>(*base);
    src = cache.get();
  }
  roundtrip_weights rt(*src, imat);
  RAZOR_ASSIGN_OR_RETURN(reference_pass ref, reference_pass::run(rt, opt.seqs, opt.ref));
  measure_report rep;
  rep.ref_nll = ref.ref_nll();
  rep.positions = ref.positions();

  std::vector<std::vector<size_t>> subsets;
  size_t total = 0;
  for (auto& it : plan.items) {
    subsets.push_back(measured_subset(it, opt.all_types, opt.fit_types));
    total += subsets.back().size();
  }
  size_t done = 0;
  for (size_t i = 0; i < plan.items.size(); ++i) {
    wf_item& it = plan.items[i];
    for (size_t ci = 0; ci < it.choices.size(); ++ci) {
      wf_choice& c = it.choices[ci];
      rt.set_types({{it.tensor, c.type}});
      rt.clear_errors();
      const bool with_kl = std::find(subsets[i].begin(), subsets[i].end(), ci) != subsets[i].end();
      if (with_kl) {
        if (opt.progress && !opt.progress(double(done), double(total), it.tensor.c_str()))
          return make_error(errc::cancelled, "sensitivity measurement cancelled");
        RAZOR_ASSIGN_OR_RETURN(kl_stats k, ref.kl(rt, it.first_layer));
        c.kl = k.mean;
        ++done;
        ++rep.measurements;
      } else {
        RAZOR_TRY(touch(rt, ck, it));
      }
      auto e = rt.errors().find(it.tensor);
      if (e == rt.errors().end())
        return make_error(errc::internal, it.tensor + ": the measurement never read the tensor");
      c.rel_error = e->second.relative();
    }
  }
  if (opt.progress) opt.progress(double(total), double(total), "done");
  fit(plan, rep, opt.all_types);
  rep.seconds = now_s() - t0;
  return rep;
}

// measure_report <-> its JSON fields (same names), for the cache file below.
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(measure_report, alpha, fit_spearman, ref_nll, positions, seconds, measurements)

nlohmann::json measurements_json(const wf_plan& plan, const measure_report& rep, const nlohmann::json& key) {
  nlohmann::json items = nlohmann::json::array();
  for (auto& it : plan.items) {
    nlohmann::json ch = nlohmann::json::array();
    for (auto& c : it.choices)
      ch.push_back({{"type", ggml::type_name(c.type)}, {"rel_error", c.rel_error}, {"kl", c.kl}, {"damage", c.damage}});
    items.push_back({{"tensor", it.tensor}, {"sensitivity", it.sensitivity}, {"seconds", it.seconds}, {"choices", ch}});
  }
  nlohmann::json j = rep;
  j["format"] = "razor.gguf_sensitivity/1";
  j["key"] = key;
  j["items"] = std::move(items);
  return j;
}

result<measure_report> apply_cached(const nlohmann::json& j, const nlohmann::json& key, wf_plan& plan) {
  if (!j.is_object() || j.value("format", "") != "razor.gguf_sensitivity/1" || !j.contains("key") || j["key"] != key)
    return make_error(errc::not_found, "no matching sensitivity measurements");
  try {
    std::map<std::string, const nlohmann::json*> by_name;
    for (auto& it : j.at("items")) by_name[it.at("tensor").get<std::string>()] = &it;
    for (auto& it : plan.items) {
      auto f = by_name.find(it.tensor);
      if (f == by_name.end()) return make_error(errc::not_found, "sensitivity measurements lack " + it.tensor);
      it.sensitivity = f->second->at("sensitivity").get<double>();
      it.seconds = f->second->value("seconds", 0.0);
      std::map<std::string, const nlohmann::json*> ch;
      for (auto& c : f->second->at("choices")) ch[c.at("type").get<std::string>()] = &c;
      for (auto& c : it.choices) {
        auto g = ch.find(std::string(ggml::type_name(c.type)));
        if (g == ch.end()) return make_error(errc::not_found, "sensitivity measurements lack " + it.tensor + " at " +
                                                                  std::string(ggml::type_name(c.type)));
        c.rel_error = g->second->at("rel_error").get<double>();
        c.kl = g->second->at("kl").get<double>();
        c.damage = g->second->at("damage").get<double>();
      }
    }
    return j.get<measure_report>();
  } catch (const nlohmann::json::exception& e) {
    return make_error(errc::bad_format, std::string("sensitivity measurements: ") + e.what());
  }
}

// ---- the allocation -------------------------------------------------------------------------------------------
result<wf_target> parse_wf_target(std::string_view s) {
  RAZOR_ASSIGN_OR_RETURN(quant::alloc_target t, quant::parse_target(s));
  wf_target w;
  w.text = t.text;
  w.value = t.value;
  w.k = t.k == quant::alloc_target::kind::packed_bytes ? wf_target::kind::file_bytes : wf_target::kind::bpw;
  return w;
}

result<double> target_file_bytes(const wf_plan& plan, const wf_target& target) {
  double file_target = target.value;
  if (target.k == wf_target::kind::bpw) file_target = target.value * double(plan.total_params) / 8.0 + double(plan.header_bytes);
  uint64_t cheapest = plan.fixed_bytes;
  for (auto& it : plan.items) cheapest += it.choices.front().bytes;
  if (file_target < double(cheapest))
    return make_error(errc::invalid_argument,
                      "target " + target.text + " (" + std::to_string(uint64_t(file_target)) + " bytes) is below the " +
                          "smallest file the ladder allows: " + std::to_string(cheapest) + " bytes (header and F32 " +
                          "tensors " + std::to_string(plan.fixed_bytes) + ")");
  return file_target;
}

result<wf_allocation> allocate(const checkpoint& ck, const wf_plan& plan, const wf_target& target,
                               const gguf::convert_options& pack_options) {
  RAZOR_ASSIGN_OR_RETURN(const double file_target, target_file_bytes(plan, target));
  const double budget = file_target - double(plan.fixed_bytes);  // for the items

  // solver items: choices by bytes; equal bytes keep the smaller damage
  std::vector<quant::solver_item> items(plan.items.size());
  std::vector<std::vector<int>> map(plan.items.size());
  for (size_t i = 0; i < plan.items.size(); ++i) {
    const auto& ch = plan.items[i].choices;
    for (size_t c = 0; c < ch.size(); ++c) {
      if (!items[i].cost.empty() && items[i].cost.back() == double(ch[c].bytes)) {
        if (ch[c].damage < items[i].damage.back()) {
          items[i].damage.back() = ch[c].damage;
          map[i].back() = int(c);
        }
        continue;
      }
      items[i].cost.push_back(double(ch[c].bytes));
      items[i].damage.push_back(ch[c].damage);
      map[i].push_back(int(c));
    }
  }
  quant::solver_options so;
  so.unit = double(plan.alignment);  // every cost is a multiple of the alignment
  RAZOR_ASSIGN_OR_RETURN(quant::solver_result sr, quant::solve_budget(items, budget, so));

  wf_allocation out;
  out.choice.resize(plan.items.size());
  uint64_t item_bytes = 0;
  for (size_t i = 0; i < plan.items.size(); ++i) {
    out.choice[i] = map[i][size_t(sr.choice[i])];
    const wf_choice& c = plan.items[i].choices[size_t(out.choice[i])];
    item_bytes += c.bytes;
    out.predicted_kl += c.damage;
  }
  out.file_bytes = plan.fixed_bytes + item_bytes;
  out.bpw = bpw_of(out.file_bytes - plan.header_bytes, plan.total_params);

  std::ostringstream os;
  os << "# razor allocate --mode gguf (whole file): one type per quantized tensor, target " << target.text << "\n"
     << "# file " << out.file_bytes << " bytes, " << out.bpw << " bits per weight, predicted KL " << out.predicted_kl
     << "\n# llama-quantize --tensor-type-file syntax; razor pack --recipe takes it unchanged.\n";
  for (size_t i = 0; i < plan.items.size(); ++i)
    os << regex_exact(plan.items[i].tensor) << "="
       << ggml::type_name(plan.items[i].choices[size_t(out.choice[i])].type) << "\n";
  out.recipe_text = os.str();

  // what pack will do with it: the same types and the same size, to the byte
  gguf::convert_options co = pack_options;
  RAZOR_ASSIGN_OR_RETURN(co.recipe, gguf::parse_type_recipe(out.recipe_text, "allocated recipe"));
  RAZOR_ASSIGN_OR_RETURN(gguf::convert_report planned, gguf::plan_gguf(ck, co));
  std::map<std::string, ggml::type> stored;
  for (auto& r : planned.tensors) stored[r.name] = r.stored;
  for (size_t i = 0; i < plan.items.size(); ++i) {
    const ggml::type want = plan.items[i].choices[size_t(out.choice[i])].type;
    auto s = stored.find(plan.items[i].tensor);
    if (s == stored.end() || s->second != want)
      return make_error(errc::internal, plan.items[i].tensor + ": pack would store " +
                                            (s == stored.end() ? std::string("nothing") : std::string(ggml::type_name(s->second))) +
                                            ", allocated " + std::string(ggml::type_name(want)));
  }
  if (planned.file_bytes != out.file_bytes)
    return make_error(errc::internal, "allocated file of " + std::to_string(out.file_bytes) + " bytes, pack plans " +
                                          std::to_string(planned.file_bytes));

  nlohmann::json rep;
  rep["format"] = "razor.gguf_allocation/2";
  rep["model"] = ck.dir();
  std::vector<std::string> ladder;
  for (auto t : plan.ladder) ladder.emplace_back(ggml::type_name(t));
  rep["ladder"] = ladder;
  rep["target"] = {{"text", target.text},
                   {"kind", target.k == wf_target::kind::file_bytes ? "file_bytes" : "bpw"},
                   {"file_bytes", file_target}};
  rep["size"] = {{"file_bytes", out.file_bytes},
                 {"header_bytes", plan.header_bytes},
                 {"fixed_bytes", plan.fixed_bytes},
                 {"quantized_bytes", item_bytes},
                 {"bpw", out.bpw},
                 {"within_target", double(out.file_bytes) <= file_target}};
  rep["predicted_kl"] = out.predicted_kl;
  rep["solver"] = {{"exact", sr.exact}, {"lambda_per_byte", sr.lambda}, {"greedy_damage", sr.greedy_damage},
                   {"damage", sr.damage}};
  nlohmann::json tensors = nlohmann::json::array();
  std::map<std::string, std::pair<uint64_t, int64_t>> by_role;
  for (size_t i = 0; i < plan.items.size(); ++i) {
    const wf_item& it = plan.items[i];
    const wf_choice& c = it.choices[size_t(out.choice[i])];
    nlohmann::json curve = nlohmann::json::array();
    for (auto& x : it.choices)
      curve.push_back({{"type", ggml::type_name(x.type)}, {"bytes", x.bytes}, {"bpw", bpw_of(x.bytes, it.params)},
                       {"rel_error", x.rel_error}, {"kl", x.kl}, {"damage", x.damage}});
    tensors.push_back({{"tensor", it.tensor},
                       {"role", it.role},
                       {"type", ggml::type_name(c.type)},
                       {"bytes", c.bytes},
                       {"bpw", bpw_of(c.bytes, it.params)},
                       {"damage", c.damage},
                       {"sensitivity", it.sensitivity},
                       {"gain_per_byte", sr.gain.empty() ? 0.0 : sr.gain[i]},
                       {"next_gain_per_byte", sr.next_gain.empty() ? 0.0 : sr.next_gain[i]},
                       {"rank", sr.rank.empty() ? 0 : sr.rank[i]},
                       {"choices", curve}});
    by_role[it.role].first += c.bytes;
    by_role[it.role].second += it.params;
  }
  rep["tensors"] = tensors;
  nlohmann::json roles = nlohmann::json::object();
  for (auto& [r, v] : by_role) roles[r] = {{"bytes", v.first}, {"params", v.second}, {"bpw", bpw_of(v.first, v.second)}};
  rep["roles"] = roles;
  out.report = rep;
  return out;
}

result<kl_stats> measure_allocation(const checkpoint& ck, const gguf::imatrix* imat, const wf_plan& plan,
                                    const std::vector<int>& choice, const std::vector<std::vector<int32_t>>& seqs,
                                    const reference_options& ref_opt) {
  if (choice.size() != plan.items.size()) return make_error(errc::invalid_argument, "allocation and plan differ");
  auto base = engine::checkpoint_weights(ck);
  roundtrip_weights rt(*base, imat);
  RAZOR_ASSIGN_OR_RETURN(reference_pass ref, reference_pass::run(rt, seqs, ref_opt));
  type_assignment types;
  for (size_t i = 0; i < plan.items.size(); ++i) types[plan.items[i].tensor] = plan.items[i].choices[size_t(choice[i])].type;
  rt.set_types(std::move(types));
  return ref.kl(rt, -1);
}

}  // namespace razor::alloc
