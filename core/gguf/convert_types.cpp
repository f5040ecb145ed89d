// The ggml type of every GGUF tensor: tensor-type recipes (parse), their rules and llama.cpp's (which tensors
// are never quantized, row-length fallbacks, importance-matrix requirements), and razor.recipe/1 bit widths
// collapsed into a tensor-type recipe.
#include "gguf/convert_internal.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "ggml/quants.h"
#include "gguf/ftype.h"
#include "gguf/gguf_file.h"
#include "gguf/output_check.h"
#include "model/checkpoint.h"
#include "model/config_check.h"
#include "model/recipe.h"
#include "util/atomic_file.h"
#include "util/fnv.h"
#include "util/json_limits.h"
#include "util/mapped_file.h"
#include "util/printable.h"
#include "util/regex.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace razor::gguf {

using namespace convert_detail;

// ---------------------------------------------------------------------------------------------------
// type selection
// ---------------------------------------------------------------------------------------------------
namespace {

bool never_quantized(const planned& p, std::string* why) { return llama_never_quantizes(p.name, p.ne, why); }

struct chooser {
  const convert_options& o;
  std::vector<regex> res;
  explicit chooser(const convert_options& opt) : o(opt) {}
  std::string line_of(size_t i) const {
    return (o.recipe.source.empty() ? std::string("recipe") : o.recipe.source) + ":" +
           std::to_string(o.recipe.rules[i].line);
  }
  status compile() {
    for (size_t i = 0; i < o.recipe.rules.size(); ++i) {
      // razor's own exact-name rules (collapse_bits_recipe) may be longer than a hand-written pattern
      regex_options ro;
      ro.max_pattern_bytes = size_t(1) << 16;
      auto re = regex::compile(o.recipe.rules[i].pattern, ro);
      if (!re.ok()) return make_error(errc::bad_recipe, line_of(i) + ": " + re.error().message());
      res.push_back(std::move(re).value());
    }
    return {};
  }
  // The first rule matching `name` (-1 for none); a match limit reached is an error naming the line.
  result<int> first_rule(const std::string& name) const {
    for (size_t i = 0; i < res.size(); ++i) {
      auto m = res[i].search(name);
      if (!m.ok()) return make_error(errc::bad_recipe, line_of(i) + ": " + m.error().message());
      if (*m) return int(i);
    }
    return -1;
  }
  ggml::type default_type() const { return o.recipe.default_type.value_or(o.default_type); }

  status choose(const planned& p, tensor_plan_row& row, std::vector<std::string>& notes) {
    std::string why;
    if (never_quantized(p, &why)) {
      row.requested = row.stored = ggml::type::f32;
      row.why = why;
      RAZOR_ASSIGN_OR_RETURN(const int i, first_rule(p.name));
      if (i >= 0 && o.recipe.rules[size_t(i)].type != ggml::type::f32)
        notes.push_back(p.name + ": recipe line " + std::to_string(o.recipe.rules[size_t(i)].line) + " (" +
                        o.recipe.rules[size_t(i)].pattern + "=" +
                        std::string(ggml::type_name(o.recipe.rules[size_t(i)].type)) +
                        ") ignored: llama.cpp never quantizes this tensor");
      return {};
    }
    ggml::type t = default_type();
    row.why = "default";
    bool special = false;
    if (p.name == "token_embd.weight" && o.recipe.token_embedding_type) {
      t = *o.recipe.token_embedding_type;
      row.why = "token embedding type";
      special = true;
    } else if (p.name == "output.weight" && o.recipe.output_type) {
      t = *o.recipe.output_type;
      row.why = "output tensor type";
      special = true;
    }
    if (!special) {
      RAZOR_ASSIGN_OR_RETURN(const int i, first_rule(p.name));
      if (i >= 0) {
        t = o.recipe.rules[size_t(i)].type;
        row.why = (o.recipe.source.empty() ? std::string("recipe") : o.recipe.source) + " line " +
                  std::to_string(o.recipe.rules[size_t(i)].line);
      }
    }
    row.requested = t;
    auto r = ggml::resolve_row_type(t, p.ne[0]);
    ggml::type s = r.ok() ? *r : ggml::type::f16;
    if (s != t) {
      row.fallback = true;
      notes.push_back(p.name + ": rows of " + std::to_string(p.ne[0]) + " do not fit " + std::string(ggml::type_name(t)) +
                      " blocks; stored as " + std::string(ggml::type_name(s)));
    }
    row.stored = s;
    const bool is_embd_or_out = p.name == "token_embd.weight" || p.name == "output.weight";
    if (ggml::info(s).weights == ggml::weights_use::required && (!o.imat || !o.imat->find(p.name)))
      return make_error(errc::needs_imatrix,
                        p.name + ": " + std::string(ggml::type_name(s)) +
                            " cannot be written without importance weights for this tensor (ggml's quantizer "
                            "requires them; --allow-missing-imatrix cannot lift that)" +
                            (o.imat ? ", and " + o.imat->source + " has no entry for it" : ", and no --imatrix was given") +
                            "; choose another type for it (a recipe line, --token-embedding-type, --output-tensor-type)");
    if (ggml::info(s).needs_imatrix && !is_embd_or_out && o.allow_missing_imatrix &&
        (!o.imat || !o.imat->find(p.name))) {
      notes.push_back("WARNING " + p.name + ": " + std::string(ggml::type_name(s)) +
                      " quantized WITHOUT an importance matrix (--allow-missing-imatrix; llama-quantize refuses this)");
    } else if (ggml::info(s).needs_imatrix && !is_embd_or_out) {
      if (!o.imat)
        return make_error(errc::needs_imatrix, p.name + ": " + std::string(ggml::type_name(s)) +
                                                   " needs an importance matrix (--imatrix FILE); none was given");
      if (!o.imat->find(p.name))
        return make_error(errc::needs_imatrix, p.name + ": " + std::string(ggml::type_name(s)) +
                                                   " needs an importance matrix, and " + o.imat->source +
                                                   " has no entry for this tensor");
    }
    row.imatrix_used = o.imat && o.imat->find(p.name) && ggml::info(s).is_quantized();
    return {};
  }
};

}  // namespace

status convert_detail::choose_types(const convert_options& o, full_plan& fp) {
  chooser ch(o);
  RAZOR_TRY(ch.compile());
  for (auto& p : fp.tensors) {
    tensor_plan_row row;
    row.name = p.name;
    row.role = gguf_role(p.name);
    row.ne = p.ne;
    RAZOR_TRY(ch.choose(p, row, fp.report.notes));
    row.bytes = *tensor_bytes(uint32_t(row.stored), row.ne);
    fp.report.tensors.push_back(std::move(row));
  }
  return {};
}

// ---------------------------------------------------------------------------------------------------
// razor.recipe/1 -> per-tensor ggml types
// ---------------------------------------------------------------------------------------------------
ggml::type type_for_bits(double bits, bool iq3, ggml::type keep_type) {
  if (bits >= kKeepBits) return keep_type;
  struct rung {
    double bits;
    ggml::type t;
  };
  const rung ladder[] = {{2, ggml::type::q2_k}, {3, iq3 ? ggml::type::iq3_xxs : ggml::type::q3_k},
                         {4, ggml::type::q4_k}, {5, ggml::type::q5_k}, {6, ggml::type::q6_k},
                         {8, ggml::type::q8_0}};
  ggml::type best = ladder[0].t;
  double bd = 1e9;
  for (auto& r : ladder) {
    double d = std::fabs(bits - r.bits);
    if (d <= bd + 1e-12) bd = d, best = r.t;  // ties: the higher rung (later in the ladder)
  }
  return best;
}

namespace {
// GGUF suffix (after "blk.L.") of a text-model tensor suffix (after "layers.L."), "" when none.
std::string gguf_layer_suffix(const std::string& s) {
  static const std::map<std::string, std::string> m = {
      {"self_attn.q_proj.weight", "attn_q.weight"},       {"self_attn.k_proj.weight", "attn_k.weight"},
      {"self_attn.v_proj.weight", "attn_v.weight"},       {"self_attn.o_proj.weight", "attn_output.weight"},
      {"linear_attn.in_proj_qkv.weight", "attn_qkv.weight"}, {"linear_attn.in_proj_z.weight", "attn_gate.weight"},
      {"linear_attn.in_proj_b.weight", "ssm_beta.weight"}, {"linear_attn.in_proj_a.weight", "ssm_alpha.weight"},
      {"linear_attn.out_proj.weight", "ssm_out.weight"},  // routers (ffn_gate_inp*) are never quantized: no rule
      {"mlp.shared_expert.gate_proj.weight", "ffn_gate_shexp.weight"},
      {"mlp.shared_expert.up_proj.weight", "ffn_up_shexp.weight"},
      {"mlp.shared_expert.down_proj.weight", "ffn_down_shexp.weight"},
  };
  auto it = m.find(s);
  return it == m.end() ? "" : it->second;
}
}  // namespace

result<collapsed_recipe> collapse_bits_recipe(const checkpoint& ck, const recipe& r, bool iq3, ggml::type keep_type) {
  const model_config& cfg = ck.config();
  struct acc {
    double wsum = 0, mn = 1e9, mx = -1e9;
    int64_t params = 0;
    std::map<double, int> hist;  // bits -> experts
    bool experts = false;
  };
  std::map<std::string, acc> by;
  std::vector<std::string> order;
  auto add = [&](const std::string& g, double bits, int64_t params, bool expert) {
    auto [it, fresh] = by.try_emplace(g);
    if (fresh) order.push_back(g);
    acc& a = it->second;
    a.wsum += bits * double(params);
    a.params += params;
    a.mn = std::min(a.mn, bits);
    a.mx = std::max(a.mx, bits);
    a.experts |= expert;
    if (expert) a.hist[bits]++;
  };
  const std::string& pre = ck.text_prefix();
  for (auto& t : ck.tensors()) {
    if (t.cls.role == tensor_role::routed_expert) continue;  // below, through expert_matrix
    std::string n = t.name;
    if (n.rfind(pre, 0) == 0) n = n.substr(pre.size());
    std::string g;
    if (n == "embed_tokens.weight") g = "token_embd.weight";
    else if (t.name == "lm_head.weight" || n == "lm_head.weight") g = "output.weight";
    else if (n.rfind("layers.", 0) == 0) {
      size_t dot = n.find('.', 7);
      if (dot != std::string::npos) {
        std::string suf = gguf_layer_suffix(n.substr(dot + 1));
        if (!suf.empty()) g = "blk." + n.substr(7, dot - 7) + "." + suf;
      }
    }
    if (g.empty()) continue;  // norms, SSM parameters, vision, ...: never quantized or not exported
    RAZOR_ASSIGN_OR_RETURN(const double bits, r.tensor_bits(t));
    add(g, bits, t.numel(), false);
  }
  if (cfg.num_experts > 0) {
    for (int l = 0; l < int(cfg.num_layers); ++l) {
      for (auto p : {expert_proj::gate, expert_proj::up, expert_proj::down}) {
        const std::string g = "blk." + std::to_string(l) + ".ffn_" +
                              (p == expert_proj::gate ? "gate" : p == expert_proj::up ? "up" : "down") + "_exps.weight";
        for (int e = 0; e < int(cfg.num_experts); ++e) {
          auto v = ck.expert_matrix(l, e, p);
          if (!v || !v->t) break;
          RAZOR_ASSIGN_OR_RETURN(const double bits, v->t->cls.fused ? r.expert_tag(*v->t, e) : r.tensor_bits(*v->t));
          add(g, bits, v->n_rows * v->n_cols, true);
        }
      }
    }
  }
  collapsed_recipe out;
  out.recipe.source = r.path.empty() ? r.name : r.path;
  out.recipe.default_type = keep_type;
  int line = 0;
  for (auto& g : order) {
    const acc& a = by[g];
    collapsed_tensor c;
    c.name = g;
    c.params = a.params;
    c.mean_bits = a.params ? a.wsum / double(a.params) : kKeepBits;
    c.min_bits = a.mn;
    c.max_bits = a.mx;
    c.type = type_for_bits(c.mean_bits, iq3, keep_type);
    out.recipe.rules.push_back({exact_name_pattern(g), c.type, ++line});
    std::string asked;
    if (a.experts && a.mn != a.mx) {
      for (auto& [b, n] : a.hist) asked += (asked.empty() ? "" : ", ") + std::to_string(n) + "x" + bits_text(b);
      asked = "per-expert bits {" + asked + "}, mean " + bits_text(std::round(c.mean_bits * 1000) / 1000);
    } else {
      asked = bits_text(c.mean_bits) + " bits";
    }
    // Unchanged when every part asked for exactly the rung's nominal bits (or was kept).
    const double nominal = c.type == keep_type ? kKeepBits
                           : c.type == ggml::type::q2_k ? 2 : (c.type == ggml::type::q3_k || c.type == ggml::type::iq3_xxs) ? 3
                           : c.type == ggml::type::q4_k ? 4 : c.type == ggml::type::q5_k ? 5 : c.type == ggml::type::q6_k ? 6 : 8;
    if (!(a.mn == a.mx && (a.mn == nominal || (nominal >= kKeepBits && a.mn >= kKeepBits))))
      c.change = asked + " -> " + std::string(ggml::type_name(c.type));
    out.tensors.push_back(std::move(c));
  }
  return out;
}

}  // namespace razor::gguf
