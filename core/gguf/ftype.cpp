#include "gguf/ftype.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdlib>
#include <regex>

#include "gguf/imatrix.h"
#include "model/checkpoint.h"

namespace razor::gguf {

namespace {

using T = ggml::type;

std::string tname(T t) { return std::string(ggml::type_name(t)); }
// ggml::resolve_row_type; a 32-block type whose block does not divide the row has no smaller block to go to:
// f16, as llama.cpp.
T resolve(T t, int64_t n) {
  auto r = ggml::resolve_row_type(t, n);
  return r.ok() ? *r : T::f16;
}

constexpr std::array kFtypes = {
#define X(ident, name, id, def, alias, desc) ftype_info{ftype::ident, name, id, T::def, alias, desc},
    RAZOR_LLAMA_FTYPES(X)
#undef X
};

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
  return true;
}

bool contains(const std::string& s, const char* sub) { return s.find(sub) != std::string::npos; }
bool ends_with(const std::string& s, const char* suf) {
  const size_t n = std::char_traits<char>::length(suf);
  return s.size() >= n && s.compare(s.size() - n, n, suf) == 0;
}

// llama.cpp's tensor categories (tensor_get_category): name substrings, checked in this order.
enum class category { output, token_embd, attn_qkv, attn_kv_b, attn_v, attn_k, attn_q, attn_output, ffn_up, ffn_gate,
                      ffn_down, other };

category category_of(const std::string& n) {
  if (n == "output.weight") return category::output;
  if (n == "token_embd.weight" || n == "per_layer_token_embd.weight") return category::token_embd;
  if (contains(n, "attn_qkv.weight")) return category::attn_qkv;
  if (contains(n, "attn_kv_b.weight")) return category::attn_kv_b;
  if (contains(n, "attn_v.weight")) return category::attn_v;
  if (contains(n, "attn_k.weight")) return category::attn_k;
  if (contains(n, "attn_q.weight")) return category::attn_q;
  if (contains(n, "attn_output.weight")) return category::attn_output;
  if (contains(n, "ffn_up")) return category::ffn_up;
  if (contains(n, "ffn_gate")) return category::ffn_gate;
  if (contains(n, "ffn_down")) return category::ffn_down;
  return category::other;
}

bool attn_v_like(category c) { return c == category::attn_v || c == category::attn_qkv || c == category::attn_kv_b; }

// The layer number of "blk.N.…", -1 when the name has none (as sscanf("blk.%d.") leaves it).
int layer_of(const std::string& n) {
  if (n.compare(0, 4, "blk.") != 0) return -1;
  const char* b = n.c_str() + 4;
  char* e = nullptr;
  long v = std::strtol(b, &e, 10);
  return e == b ? -1 : int(v);
}

// The 70B model type, the only one llama-quant.cpp asks about (the models' load_arch_hparams).
bool is_type_70b(const ftype_model& m) {
  if (m.arch == "llama")
    return m.n_expert != 8 && m.n_layer == 80 && m.n_head != m.n_head_kv;
  if (m.arch == "qwen2" || m.arch == "deci" || m.arch == "olmo") return m.n_layer == 80;
  if (m.arch == "jais2") return m.n_layer == 68;
  return false;
}

bool one_of(ftype f, std::initializer_list<ftype> l) { return std::find(l.begin(), l.end(), f) != l.end(); }

// llama.cpp's running state over the tensors in its load order.
struct mix_state {
  int n_attention_wv = 0, i_attention_wv = 0;
  int n_ffn = 0;  // n_ffn_down = n_ffn_gate = n_ffn_up = block_count
  int i_ffn_down = 0, i_ffn_gate = 0, i_ffn_up = 0;
  bool tied = true;  // no output.weight: token_embd is also the output head
};

bool use_more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

struct mixer {
  ftype f;
  const ftype_model& m;
  const ftype_options& o;
  mix_state s;
  bool falcon = false, is70b = false;
  int64_t n_gqa = 0;

  mixer(ftype f_, const ftype_model& m_, const ftype_options& o_) : f(f_), m(m_), o(o_) {
    falcon = m.arch == "falcon";
    is70b = is_type_70b(m);
    n_gqa = m.n_head_kv > 0 ? m.n_head / m.n_head_kv : 0;
  }

  // (layer, layer count) of an ffn tensor: from the name in expert models, else the running counter.
  result<std::pair<int, int>> layer_info(int counter, const std::string& name) const {
    if (std::max<int64_t>(1, m.n_expert) > 1) {
      const int l = layer_of(name);
      if (l < 0) return make_error(errc::invalid_argument, "cannot determine the layer of tensor " + name);
      if (l >= s.n_ffn)
        return make_error(errc::invalid_argument, "bad layer " + std::to_string(l) + " for tensor " + name +
                                                      " (block_count " + std::to_string(s.n_ffn) + ")");
      return std::pair{l, s.n_ffn};
    }
    return std::pair{counter, s.n_ffn};
  }

  // llama_tensor_get_type_impl: the mix's choice for a quantized tensor, starting from the default type.
  result<T> mix(const ftype_tensor& t, category c, T def, std::string& why) {
    using F = ftype;
    T nt = def;
    why = "default";
    const bool iq1 = one_of(f, {F::iq1_s, F::iq1_m});
    const bool iq2_group = iq1 || one_of(f, {F::iq2_xxs, F::iq2_xs, F::iq2_s, F::iq2_m});
    const bool iq2s_or_m = one_of(f, {F::iq2_s, F::iq2_m});
    const std::string fname(info(f).name);
    if (f == F::mxfp4_moe) {  // llama.cpp's own branch: stacked experts mxfp4, the rest (the head too) q8_0
      const bool head = c == category::output || (s.tied && c == category::token_embd);
      if (head && o.output_type) {
        why = "output head: --output-tensor-type";
        return *o.output_type;
      }
      if (!head && t.ne.size() > 2 && t.ne[2] > 1) {
        why = "stacked experts: MXFP4_MOE -> mxfp4";
        return T::mxfp4;
      }
      why = std::string(head ? "output head" : "not stacked experts") + ": MXFP4_MOE -> q8_0";
      return T::q8_0;
    }

    if (c == category::output || (s.tied && c == category::token_embd)) {
      const char* what = c == category::output ? "output head" : "token_embd (tied output head)";
      if (o.output_type) {
        why = std::string(what) + ": --output-tensor-type";
        return *o.output_type;
      }
      const int64_t bs = ggml::info(def).block_size;
      if (falcon || t.ne[0] % bs != 0) {
        why = std::string(what) + (falcon ? ": falcon" : ": row not a multiple of the default block") + " -> q8_0";
        return T::q8_0;
      }
      if (iq2_group || f == F::iq3_xxs) {
        why = std::string(what) + ": " + fname + " -> q5_K";
        return T::q5_k;
      }
      if (def != T::q8_0) {
        why = std::string(what) + " -> q6_K";
        return T::q6_k;
      }
      why = std::string(what) + ": default";
      return nt;
    }
    if (c == category::token_embd) {
      if (o.token_embedding_type) {
        why = "token_embd: --token-embedding-type";
        return *o.token_embedding_type;
      }
      if (iq1 || f == F::iq2_xxs || f == F::iq2_xs) nt = T::q2_k, why = "token_embd: " + fname + " -> q2_K";
      else if (iq2s_or_m || f == F::iq3_xxs) nt = T::iq3_s, why = "token_embd: " + fname + " -> iq3_s";
      else why = "token_embd: default";
      return nt;
    }
    if (iq2_group) {
      if (attn_v_like(c)) {
        if (n_gqa >= 4 || m.n_expert >= 4) nt = T::q4_k, why = "attn_v: IQ1/IQ2 mix, n_gqa >= 4 or n_expert >= 4 -> q4_K";
        else nt = iq2s_or_m ? T::iq3_s : T::q2_k, why = std::string("attn_v: ") + fname + " -> " +
                                                         tname(nt);
        ++s.i_attention_wv;
      } else if (m.n_expert == 8 && c == category::attn_k) {
        nt = T::q4_k, why = "attn_k: IQ1/IQ2 mix, 8 experts -> q4_K";
      } else if (c == category::ffn_down) {
        if (s.i_ffn_down < s.n_ffn / 8) {
          nt = iq2s_or_m ? T::iq3_s : T::q2_k;
          why = "ffn_down: IQ1/IQ2 mix, first block_count/8 ffn_down tensors -> " + tname(nt);
        }
        ++s.i_ffn_down;
      } else if (c == category::attn_output) {
        if (m.n_expert == 8) nt = T::q5_k, why = "attn_output: IQ1/IQ2 mix, 8 experts -> q5_K";
        else if (iq1) nt = T::iq2_xxs, why = "attn_output: " + fname + " -> iq2_xxs";
        else if (iq2s_or_m) nt = T::iq3_s, why = "attn_output: " + fname + " -> iq3_s";
      }
      return nt;
    }
    if (attn_v_like(c)) {
      const int i = s.i_attention_wv, n = s.n_attention_wv;
      std::string r;
      if (f == F::q2_k) nt = n_gqa >= 4 ? T::q4_k : T::q3_k, r = n_gqa >= 4 ? "Q2_K, n_gqa >= 4" : "Q2_K";
      else if (f == F::q2_k_s && n_gqa >= 4) nt = T::q4_k, r = "Q2_K_S, n_gqa >= 4";
      else if (f == F::iq3_xxs)
        nt = n_gqa >= 4 ? T::q4_k : !o.has_imatrix ? T::iq3_s : T::iq3_xxs,
        r = n_gqa >= 4 ? "IQ3_XXS, n_gqa >= 4" : !o.has_imatrix ? "IQ3_XXS without imatrix" : "IQ3_XXS with imatrix";
      else if ((f == F::iq3_xs || f == F::iq3_s) && n_gqa >= 4) nt = T::q4_k, r = fname + ", n_gqa >= 4";
      else if (f == F::iq3_m) nt = T::q4_k, r = "IQ3_M";
      else if (f == F::q3_k_m) nt = i < 2 ? T::q5_k : T::q4_k, r = i < 2 ? "Q3_K_M, first 2" : "Q3_K_M";
      else if (f == F::q3_k_l) nt = T::q5_k, r = "Q3_K_L";
      else if ((f == F::iq4_nl || f == F::iq4_xs) && n_gqa >= 4) nt = T::q5_k, r = fname + ", n_gqa >= 4";
      else if ((f == F::q4_k_m || f == F::q5_k_m) && use_more_bits(i, n)) nt = T::q6_k, r = fname + ", use_more_bits";
      else if (f == F::q4_k_s && i < 4) nt = T::q5_k, r = "Q4_K_S, first 4";
      if (is70b && (nt == T::q3_k || nt == T::q4_k)) nt = T::q5_k, r += (r.empty() ? "" : ", ") + std::string("70B");
      if (m.n_expert == 8) nt = T::q8_0, r = "8 experts";
      if (!r.empty()) why = "attn_v: " + r + " -> " + tname(nt);
      ++s.i_attention_wv;
      return nt;
    }
    if (c == category::attn_k) {
      if (m.n_expert == 8) nt = T::q8_0, why = "attn_k: 8 experts -> q8_0";
      else if (f == F::iq3_xs) nt = T::iq3_xxs, why = "attn_k: IQ3_XS -> iq3_xxs";
      else if (f == F::iq3_xxs) nt = T::iq2_s, why = "attn_k: IQ3_XXS -> iq2_s";
      return nt;
    }
    if (c == category::attn_q) {
      if (f == F::iq3_xs) nt = T::iq3_xxs, why = "attn_q: IQ3_XS -> iq3_xxs";
      else if (f == F::iq3_xxs) nt = T::iq2_s, why = "attn_q: IQ3_XXS -> iq2_s";
      return nt;
    }
    if (c == category::ffn_down) {
      RAZOR_ASSIGN_OR_RETURN(auto li, layer_info(s.i_ffn_down, t.name));
      const int il = li.first, nl = li.second;
      std::string r;
      if (f == F::q2_k) nt = T::q3_k, r = "Q2_K";
      else if (f == F::q2_k_s) {
        if (il < nl / 8) nt = T::q4_k, r = "Q2_K_S, first layers";
      } else if (f == F::iq3_xxs && !o.has_imatrix)
        nt = il < nl / 8 ? T::q4_k : T::q3_k, r = il < nl / 8 ? "IQ3_XXS without imatrix, first layers" : "IQ3_XXS without imatrix";
      else if (f == F::q3_k_m)
        nt = il < nl / 16 ? T::q5_k : (!falcon || use_more_bits(il, nl)) ? T::q4_k : T::q3_k,
        r = il < nl / 16 ? "Q3_K_M, first layers" : "Q3_K_M";
      else if (f == F::iq3_m && (il < nl / 8 || (m.n_expert == 8 && use_more_bits(il, nl))))
        nt = T::q4_k, r = il < nl / 8 ? "IQ3_M, first layers" : "IQ3_M, 8 experts, use_more_bits";
      else if (f == F::q3_k_l) nt = falcon ? T::q4_k : T::q5_k, r = "Q3_K_L";
      else if (f == F::q4_k_m) {
        if (falcon) nt = il < nl / 16 ? T::q6_k : use_more_bits(il, nl) ? T::q5_k : T::q4_k, r = "Q4_K_M, falcon";
        else if (use_more_bits(il, nl)) nt = T::q6_k, r = "Q4_K_M, use_more_bits";
      } else if (il < nl / 8 && (f == F::iq4_nl || f == F::iq4_xs) && !o.has_imatrix)
        nt = T::q5_k, r = fname + " without imatrix, first layers";
      else if (f == F::q5_k_m && use_more_bits(il, nl)) nt = T::q6_k, r = "Q5_K_M, use_more_bits";
      else if (f == F::q4_k_s && !falcon && il < nl / 8) nt = T::q5_k, r = "Q4_K_S, first layers";
      else if ((f == F::q4_0 || f == F::q5_0) && o.has_imatrix && il < nl / 8)
        nt = f == F::q4_0 ? T::q4_1 : T::q5_1, r = fname + " with imatrix, first layers";
      if (!r.empty()) why = "ffn_down: " + r + " -> " + tname(nt);
      ++s.i_ffn_down;
      return nt;
    }
    if (c == category::attn_output) {
      if (!falcon) {
        if (m.n_expert == 8) {
          if (one_of(f, {F::q2_k, F::iq3_xs, F::iq3_xxs, F::q3_k_s, F::q3_k_m, F::iq4_nl, F::q4_k_s, F::q4_k_m, F::iq3_s,
                         F::iq3_m, F::iq4_xs}))
            nt = T::q5_k, why = "attn_output: " + fname + ", 8 experts -> q5_K";
        } else {
          if (f == F::q2_k) nt = T::q3_k;
          else if (f == F::iq3_xxs) nt = T::iq3_s;
          else if (f == F::q3_k_m) nt = T::q4_k;
          else if (f == F::q3_k_l) nt = T::q5_k;
          else if (f == F::iq3_m) nt = T::q4_k;
          if (nt != def) why = "attn_output: " + fname + " -> " + tname(nt);
        }
      } else if (f == F::q3_k_l) {
        nt = T::q4_k, why = "attn_output: Q3_K_L, falcon -> q4_K";
      }
      return nt;
    }
    // (attn_qkv is attn_v-like above, so llama.cpp's own attn_qkv branch never runs.)
    if (c == category::ffn_gate || c == category::ffn_up) {
      int& counter = c == category::ffn_gate ? s.i_ffn_gate : s.i_ffn_up;
      RAZOR_ASSIGN_OR_RETURN(auto li, layer_info(counter, t.name));
      const int il = li.first, nl = li.second;
      if (f == F::iq3_xs && il >= nl / 8 && il < 7 * nl / 8)
        nt = T::iq3_xxs, why = std::string(c == category::ffn_gate ? "ffn_gate" : "ffn_up") + ": IQ3_XS, middle layers -> iq3_xxs";
      ++counter;
      return nt;
    }
    return nt;
  }
};

bool requires_imatrix(const std::string& name, T t, ftype f) {
  if (name == "token_embd.weight" || name == "per_layer_token_embd.weight" || name == "output.weight") return false;
  if (t == T::q2_k) return f == ftype::q2_k_s;
  return ggml::info(t).needs_imatrix;
}

}  // namespace

std::span<const ftype_info> all_ftypes() { return kFtypes; }

const ftype_info& info(ftype f) {
  for (const auto& fi : kFtypes)
    if (fi.f == f) return fi;
  return kFtypes[0];  // unreachable for valid enumerators
}

result<ftype> ftype_from_name(std::string_view name) {
  for (const auto& fi : kFtypes)
    if (iequals(fi.name, name) || (!fi.alias.empty() && iequals(fi.alias, name))) return fi.f;
  if (!name.empty() && std::all_of(name.begin(), name.end(), [](char ch) { return ch >= '0' && ch <= '9'; })) {
    const unsigned long id = std::strtoul(std::string(name).c_str(), nullptr, 10);
    for (const auto& fi : kFtypes)
      if (fi.id == id) return fi.f;
  }
  std::string known;
  for (const auto& fi : kFtypes) known += (known.empty() ? "" : ", ") + std::string(fi.name);
  return make_error(errc::invalid_argument, "unknown file type '" + std::string(name) + "' (known: " + known + ")");
}

bool llama_never_quantizes(const std::string& name, std::span<const int64_t> ne, std::string* why) {
  std::string w;
  int nd = int(ne.size());
  while (nd > 1 && ne[size_t(nd - 1)] == 1) --nd;  // ggml_n_dims ignores trailing 1s
  if (nd < 2) w = "kept f32 (1-D)";
  else if (!ends_with(name, "weight")) w = "kept f32 (not a weight)";
  else if (contains(name, "_norm.weight")) w = "kept f32 (norm)";
  else if (contains(name, "ffn_gate_inp.weight")) w = "kept f32 (router)";
  else if (contains(name, "ssm_conv1d")) w = "kept f32 (ssm_conv1d)";
  else if (contains(name, "ffn_gate_tid2eid.weight") || contains(name, "altup") || contains(name, "laurel") ||
           contains(name, "per_layer_model_proj") || name == "position_embd.weight" || name == "token_types.weight" ||
           contains(name, "shortconv.conv.weight") || contains(name, "indexer.k_proj.weight") ||
           contains(name, "indexer.q_proj.weight") || contains(name, "time_mix_") || contains(name, "attn_rel_b.weight"))
    w = "kept f32 (llama.cpp keeps it)";
  if (w.empty()) return false;
  if (why) *why = w;
  return true;
}

result<ftype_model> ftype_model_of(const checkpoint& ck) {
  const model_config& c = ck.config();
  ftype_model m;
  RAZOR_ASSIGN_OR_RETURN(m.arch, gguf_arch_of(ck));
  m.n_layer = c.num_layers;
  m.n_expert = c.num_experts;
  m.n_head = c.num_heads;
  m.n_head_kv = c.num_kv_heads > 0 ? c.num_kv_heads : c.num_heads;
  m.n_vocab = c.vocab_size;
  return m;
}

result<std::vector<ftype_choice>> ftype_mix(ftype f, const ftype_model& m, const std::vector<ftype_tensor>& tensors,
                                            const ftype_options& o) {
  const T def = info(f).default_type;
  mixer mx(f, m, o);
  mx.s.n_ffn = int(m.n_layer);
  for (auto& t : tensors) {
    const category c = category_of(t.name);
    if (attn_v_like(c)) ++mx.s.n_attention_wv;
    if (c == category::output) mx.s.tied = false;
  }
  std::vector<std::regex> overrides;
  for (auto& r : o.overrides) overrides.emplace_back(r.pattern);

  // llama.cpp walks the tensors in its loader's order: by layer ("blk.N.", others first), then by name.
  std::vector<size_t> order(tensors.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const int la = layer_of(tensors[a].name), lb = layer_of(tensors[b].name);
    if (la != lb) return la < lb;
    return tensors[a].name < tensors[b].name;
  });

  std::vector<ftype_choice> out(tensors.size());
  for (size_t k : order) {
    const ftype_tensor& t = tensors[k];
    ftype_choice& ch = out[k];
    ch.name = t.name;
    std::string why;
    if (t.ne.empty() || llama_never_quantizes(t.name, t.ne, &why)) {
      ch.why = t.ne.empty() ? "kept f32 (no shape)" : why;
      continue;
    }
    ch.quantized = true;
    const category c = category_of(t.name);
    T wanted = def;
    bool decided = false;
    if (o.token_embedding_type && c == category::token_embd) {
      wanted = *o.token_embedding_type, ch.why = "--token-embedding-type", decided = true;
    } else if (o.output_type && c == category::output) {
      wanted = *o.output_type, ch.why = "--output-tensor-type", decided = true;
    }
    if (decided) {
      ch.wanted = ch.type = wanted;  // llama.cpp applies no row-length fallback to these two
    } else if (!ggml::info(def).is_quantized()) {  // F32, F16, BF16
      ch.wanted = ch.type = def;
      ch.why = "default";
    } else {
      bool manual = false;
      for (size_t i = 0; i < overrides.size(); ++i)
        if (std::regex_search(t.name, overrides[i])) {
          wanted = o.overrides[i].type;
          ch.why = "--tensor-type " + o.overrides[i].pattern;
          manual = true;
          break;
        }
      if (!manual && !o.pure) {
        RAZOR_ASSIGN_OR_RETURN(wanted, mx.mix(t, c, def, ch.why));
      } else if (!manual) {
        ch.why = "default (--pure)";
      }
      ch.wanted = wanted;
      ch.type = resolve(wanted, t.ne[0]);
      if (ch.type != wanted) ch.why += "; rows of " + std::to_string(t.ne[0]) + " -> fallback " + tname(ch.type);
    }
    ch.needs_imatrix = requires_imatrix(t.name, ch.type, f);
  }
  return out;
}

result<ftype_plan> plan_ftype(const checkpoint& ck, ftype f, const ftype_options& in, const imatrix* imat,
                              bool allow_missing_imatrix) {
  RAZOR_ASSIGN_OR_RETURN(ftype_model m, ftype_model_of(ck));
  convert_options co;  // the tensor list only: names and shapes do not depend on the types
  RAZOR_ASSIGN_OR_RETURN(convert_report rep, plan_gguf(ck, co));
  std::vector<ftype_tensor> ts;
  ts.reserve(rep.tensors.size());
  for (auto& r : rep.tensors) ts.push_back({r.name, r.ne});
  ftype_options o = in;
  o.has_imatrix = imat != nullptr;
  ftype_plan p;
  RAZOR_ASSIGN_OR_RETURN(p.tensors, ftype_mix(f, m, ts, o));
  const ftype_info& fi = info(f);
  p.recipe.source = "--ftype " + std::string(fi.name);
  p.recipe.default_type = fi.default_type;
  for (auto& ch : p.tensors) {  // llama-quantize's refusal first
    if (!ch.needs_imatrix || (imat && imat->find(ch.name))) continue;
    const std::string what = ch.name + ": " + tname(ch.type) + " (file type " + std::string(fi.name) +
                             ") needs an importance matrix";
    if (!allow_missing_imatrix)
      return make_error(errc::needs_imatrix, what + (imat ? ", and " + imat->source + " has no entry for this tensor"
                                                          : " (--imatrix FILE); none was given") +
                                                 " (llama-quantize refuses this file type without one)");
    p.notes.push_back("WARNING " + what + "; quantized WITHOUT one (--allow-missing-imatrix)");
  }
  for (auto& ch : p.tensors) {
    if (!ch.quantized) continue;
    p.recipe.rules.push_back({exact_name_pattern(ch.name), ch.type, 0});
  }
  return p;
}

}  // namespace razor::gguf
