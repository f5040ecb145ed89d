#include "gguf/convert.h"

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
#include "quant/ggml_auto.h"
#include "util/atomic_file.h"
#include "util/fnv.h"
#include "util/json_limits.h"
#include "util/mapped_file.h"
#include "util/printable.h"
#include "util/regex.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace razor::gguf {

// ---------------------------------------------------------------------------------------------------
// recipes
// ---------------------------------------------------------------------------------------------------
result<type_recipe> parse_type_recipe(const std::string& text, const std::string& where) {
  type_recipe r;
  r.source = where;
  std::istringstream in(text);
  std::string line;
  int ln = 0;
  while (std::getline(in, line)) {
    ++ln;
    // "#@ default=q3_K", "#@ output=q8_0", "#@ token_embd=q8_0": razor directives (plain comments to
    // llama-quantize) standing for its ftype argument, --output-tensor-type and --token-embedding-type.
    if (auto b = line.find_first_not_of(" \t"); b != std::string::npos && line.compare(b, 2, "#@") == 0) {
      std::istringstream d(line.substr(b + 2));
      std::string w;
      while (d >> w) {
        auto eq = w.find('=');
        auto t = eq == std::string::npos ? result<ggml::type>(make_error(errc::bad_recipe, "")) : ggml::type_from_name(w.substr(eq + 1));
        std::string key = eq == std::string::npos ? w : w.substr(0, eq);
        if (!t.ok() || (key != "default" && key != "output" && key != "token_embd"))
          return make_error(errc::bad_recipe, where + ":" + std::to_string(ln) + ": bad directive '" + printable(w, 200) +
                                                  "' (expected default=TYPE, output=TYPE or token_embd=TYPE)");
        (key == "default" ? r.default_type : key == "output" ? r.output_type : r.token_embedding_type) = *t;
      }
      continue;
    }
    if (auto h = line.find('#'); h != std::string::npos) line.resize(h);
    std::istringstream words(line);
    std::string w;
    while (words >> w) {
      auto eq = w.find('=');
      if (eq == std::string::npos || eq == 0 || eq + 1 == w.size())
        return make_error(errc::bad_recipe, where + ":" + std::to_string(ln) + ": expected pattern=type, found '" +
                                                printable(w, 200) + "'");
      std::string pat = w.substr(0, eq);
      std::transform(pat.begin(), pat.end(), pat.begin(), [](unsigned char c) { return char(std::tolower(c)); });
      auto t = ggml::type_from_name(w.substr(eq + 1));
      if (!t.ok()) {
        std::string known;
        for (auto& ti : ggml::all_types()) known += (known.empty() ? "" : ", ") + std::string(ti.name);
        return make_error(errc::bad_recipe, where + ":" + std::to_string(ln) + ": unknown or unsupported type '" +
                                                printable(w.substr(eq + 1), 200) + "' (known: " + known + ")");
      }
      if (auto re = regex::compile(pat); !re.ok())
        return make_error(errc::bad_recipe, where + ":" + std::to_string(ln) + ": " + re.error().message());
      r.rules.push_back({pat, *t, ln});
    }
  }
  return r;
}

result<type_recipe> load_type_recipe(const std::string& path) {
  RAZOR_ASSIGN_OR_RETURN(std::string text, read_text_file(path, size_t(16) << 20));
  return parse_type_recipe(text, path);
}

std::string exact_name_pattern(const std::string& name) {
  std::string r = "^";
  for (char c : name) {
    if (c == '.') r += "\\.";
    else r += char(std::tolower(static_cast<unsigned char>(c)));
  }
  return r + "$";
}

static bool contains(const std::string& s, const char* sub) { return s.find(sub) != std::string::npos; }

std::string gguf_role(const std::string& n) {
  if (n.rfind("token_embd", 0) == 0) return "embedding";
  if (n.rfind("output.", 0) == 0) return "output_head";
  if (contains(n, "_exps")) return "routed_expert";
  if (contains(n, "_shexp")) return "shared_expert";
  if (contains(n, "ffn_gate_inp")) return "router";
  if (contains(n, "norm")) return "norm";
  if (contains(n, "ssm_a") || contains(n, "ssm_dt") || contains(n, "ssm_conv1d")) return "ssm_param";
  if (contains(n, "ssm_") || contains(n, "attn_qkv") || contains(n, "attn_gate")) return "linear_attention";
  if (contains(n, "attn_")) return "attention";
  if (contains(n, "ffn_")) return "dense_ffn";
  return "other";
}

int64_t tensor_plan_row::nelements() const {
  int64_t n = 1;
  for (auto d : ne) n *= d;
  return n;
}

// New head p = v * n_k + g takes old head g * r + v.
std::vector<int64_t> v_head_order(int64_t n_k, int64_t n_v) {
  const int64_t r = n_v / n_k;
  std::vector<int64_t> order(static_cast<size_t>(n_v));
  for (int64_t p = 0; p < n_v; ++p) order[size_t(p)] = (p % n_k) * r + p / n_k;
  return order;
}

std::string gguf_arch_for(const std::string& mt) {
  if (mt == "qwen3_moe") return "qwen3moe";
  if (mt == "qwen3_5_moe" || mt == "qwen3_5_moe_text") return "qwen35moe";
  return "";
}

// ---------------------------------------------------------------------------------------------------
// the tensor plan
// ---------------------------------------------------------------------------------------------------
namespace {

// Produces matrix `mat` (0 <= mat < n_mat) of a tensor: ne[0]*ne[1] floats (or all of a 1-D tensor).
using producer = std::function<status(int64_t mat, float* out)>;

struct planned {
  std::string name;
  std::vector<int64_t> ne;
  int64_t n_mat = 1;  // ne[2] for stacked experts
  producer produce;
  int64_t slice() const { return ne.size() >= 2 ? ne[0] * ne[1] : (ne.empty() ? 1 : ne[0]); }
};

struct builder {
  const checkpoint& ck;
  const model_config& cfg;
  std::vector<planned> out;

  std::string layer_name(int l, const std::string& s) const { return "layers." + std::to_string(l) + "." + s; }

  status need(const tensor_entry* t, const std::string& what) const {
    if (!t) return make_error(errc::not_found, ck.dir() + ": tensor '" + what + "' not found in the checkpoint");
    return {};
  }

  // A tensor copied as is (with an optional element-wise map). HF shape [out, in] -> ne {in, out}.
  status copy(const std::string& gname, const tensor_entry* t, const std::string& what,
              std::function<void(float*, int64_t)> fix = nullptr, std::vector<int64_t> ne = {}) {
    RAZOR_TRY(need(t, what));
    if (ne.empty()) ne.assign(t->shape.rbegin(), t->shape.rend());
    int64_t n = 1;
    for (auto d : ne) n *= d;
    if (n != t->numel())
      return make_error(errc::shape_mismatch, ck.dir() + ": '" + t->name + "' has " + std::to_string(t->numel()) +
                                                  " elements, " + gname + " needs " + std::to_string(n));
    const checkpoint* c = &ck;
    out.push_back({gname, ne, 1, [c, t, fix](int64_t, float* dst) -> status {
                     RAZOR_TRY(c->read_f32(*t, 0, t->numel(), dst));
                     if (fix) fix(dst, t->numel());
                     return {};
                   }});
    return {};
  }
  status copy_text(const std::string& gname, const std::string& suffix, std::function<void(float*, int64_t)> fix = nullptr,
                   std::vector<int64_t> ne = {}) {
    return copy(gname, ck.find_text(suffix), suffix, std::move(fix), std::move(ne));
  }

  // Stacked routed experts: ne {in, out, n_expert}.
  status experts(int l, const std::string& gname, expert_proj p) {
    const int64_t E = cfg.num_experts;
    auto v0 = ck.expert_matrix(l, 0, p);
    if (!v0)
      return make_error(errc::not_found, ck.dir() + ": layer " + std::to_string(l) + " has no routed expert " +
                                             std::string(proj_name(p)) + " matrices");
    for (int64_t e = 1; e < E; ++e) {
      auto v = ck.expert_matrix(l, int(e), p);
      if (!v || v->n_rows != v0->n_rows || v->n_cols != v0->n_cols)
        return make_error(errc::shape_mismatch, ck.dir() + ": layer " + std::to_string(l) + " expert " +
                                                    std::to_string(e) + " " + std::string(proj_name(p)) +
                                                    " is missing or differs in shape from expert 0");
    }
    const checkpoint* c = &ck;
    out.push_back({gname, {v0->n_cols, v0->n_rows, E}, E, [c, l, p](int64_t e, float* dst) -> status {
                     auto v = c->expert_matrix(l, int(e), p);
                     return c->read_rows_f32(*v, dst);
                   }});
    return {};
  }
};

void plus_one(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] += 1.0f;
}


// Reorders row blocks [row0, row0 + n_v*head_rows) of a row-major [rows, cols] matrix.
void reorder_rows(float* x, int64_t cols, int64_t row0, int64_t head_rows, const std::vector<int64_t>& order) {
  const int64_t blk = head_rows * cols;
  std::vector<float> tmp(size_t(blk * int64_t(order.size())));
  float* base = x + row0 * cols;
  std::memcpy(tmp.data(), base, tmp.size() * sizeof(float));
  for (size_t p = 0; p < order.size(); ++p)
    std::memcpy(base + int64_t(p) * blk, tmp.data() + order[p] * blk, size_t(blk) * sizeof(float));
}

// Reorders column blocks of width head_cols of a row-major [rows, cols] matrix.
void reorder_cols(float* x, int64_t rows, int64_t cols, int64_t head_cols, const std::vector<int64_t>& order) {
  std::vector<float> tmp(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    float* row = x + r * cols;
    std::memcpy(tmp.data(), row, size_t(cols) * sizeof(float));
    for (size_t p = 0; p < order.size(); ++p)
      std::memcpy(row + int64_t(p) * head_cols, tmp.data() + order[p] * head_cols, size_t(head_cols) * sizeof(float));
  }
}

status plan_qwen3moe(builder& b) {
  const auto& cfg = b.cfg;
  RAZOR_TRY(b.copy_text("token_embd.weight", "embed_tokens.weight"));
  for (int l = 0; l < int(cfg.num_layers); ++l) {
    std::string p = "blk." + std::to_string(l) + ".";
    RAZOR_TRY(b.copy_text(p + "attn_norm.weight", b.layer_name(l, "input_layernorm.weight")));
    RAZOR_TRY(b.copy_text(p + "attn_q.weight", b.layer_name(l, "self_attn.q_proj.weight")));
    RAZOR_TRY(b.copy_text(p + "attn_k.weight", b.layer_name(l, "self_attn.k_proj.weight")));
    RAZOR_TRY(b.copy_text(p + "attn_v.weight", b.layer_name(l, "self_attn.v_proj.weight")));
    RAZOR_TRY(b.copy_text(p + "attn_output.weight", b.layer_name(l, "self_attn.o_proj.weight")));
    RAZOR_TRY(b.copy_text(p + "attn_q_norm.weight", b.layer_name(l, "self_attn.q_norm.weight")));
    RAZOR_TRY(b.copy_text(p + "attn_k_norm.weight", b.layer_name(l, "self_attn.k_norm.weight")));
    RAZOR_TRY(b.copy_text(p + "ffn_norm.weight", b.layer_name(l, "post_attention_layernorm.weight")));
    if (!cfg.layer_is_moe(l))
      return make_error(errc::unsupported, b.ck.dir() + ": layer " + std::to_string(l) +
                                               " is dense; dense layers in qwen3moe are not supported yet");
    RAZOR_TRY(b.copy_text(p + "ffn_gate_inp.weight", b.layer_name(l, "mlp.gate.weight")));
    RAZOR_TRY(b.experts(l, p + "ffn_gate_exps.weight", expert_proj::gate));
    RAZOR_TRY(b.experts(l, p + "ffn_up_exps.weight", expert_proj::up));
    RAZOR_TRY(b.experts(l, p + "ffn_down_exps.weight", expert_proj::down));
  }
  RAZOR_TRY(b.copy_text("output_norm.weight", "norm.weight"));
  if (const tensor_entry* lm = b.ck.find("lm_head.weight"); lm && !cfg.tie_word_embeddings)
    RAZOR_TRY(b.copy("output.weight", lm, "lm_head.weight"));
  return {};
}

status plan_qwen35moe(builder& b) {
  const auto& cfg = b.cfg;
  const int64_t n_k = cfg.linear_num_key_heads, n_v = cfg.linear_num_value_heads;
  const int64_t dk = cfg.linear_key_head_dim, dv = cfg.linear_value_head_dim;
  if (n_k <= 0 || n_v <= 0 || n_v % n_k != 0 || dk <= 0 || dv <= 0)
    return make_error(errc::bad_config, b.ck.dir() + ": linear attention head counts/dims are missing or inconsistent");
  const bool reorder = n_k != n_v;
  const auto order = v_head_order(n_k, n_v);
  const int64_t qk_rows = 2 * n_k * dk;  // q and k rows of in_proj_qkv / conv channels before v

  RAZOR_TRY(b.copy_text("token_embd.weight", "embed_tokens.weight"));
  for (int l = 0; l < int(cfg.num_layers); ++l) {
    std::string p = "blk." + std::to_string(l) + ".";
    RAZOR_TRY(b.copy_text(p + "attn_norm.weight", b.layer_name(l, "input_layernorm.weight"), plus_one));
    RAZOR_TRY(b.copy_text(p + "post_attention_norm.weight", b.layer_name(l, "post_attention_layernorm.weight"), plus_one));
    if (cfg.layer_is_linear_attention(l)) {
      auto la = [&](const std::string& s) { return b.layer_name(l, "linear_attn." + s); };
      const int64_t H = cfg.hidden_size;
      RAZOR_TRY(b.copy_text(p + "attn_qkv.weight", la("in_proj_qkv.weight"), [=](float* x, int64_t) {
        if (reorder) reorder_rows(x, H, qk_rows, dv, order);
      }));
      RAZOR_TRY(b.copy_text(p + "attn_gate.weight", la("in_proj_z.weight"), [=](float* x, int64_t) {
        if (reorder) reorder_rows(x, H, 0, dv, order);
      }));
      RAZOR_TRY(b.copy_text(p + "ssm_beta.weight", la("in_proj_b.weight"), [=](float* x, int64_t) {
        if (reorder) reorder_rows(x, H, 0, 1, order);
      }));
      RAZOR_TRY(b.copy_text(p + "ssm_alpha.weight", la("in_proj_a.weight"), [=](float* x, int64_t) {
        if (reorder) reorder_rows(x, H, 0, 1, order);
      }));
      RAZOR_TRY(b.copy_text(p + "ssm_a", la("A_log"), [=](float* x, int64_t n) {
        if (reorder) reorder_rows(x, 1, 0, 1, order);
        for (int64_t i = 0; i < n; ++i) x[i] = -std::exp(x[i]);
      }));
      RAZOR_TRY(b.copy_text(p + "ssm_dt.bias", la("dt_bias"), [=](float* x, int64_t) {
        if (reorder) reorder_rows(x, 1, 0, 1, order);
      }));
      const tensor_entry* conv = b.ck.find_text(la("conv1d.weight"));
      RAZOR_TRY(b.need(conv, la("conv1d.weight")));
      const int64_t channels = conv->shape.empty() ? 0 : conv->shape[0];
      const int64_t kernel = conv->shape.empty() ? 0 : conv->shape.back();
      RAZOR_TRY(b.copy(p + "ssm_conv1d.weight", conv, la("conv1d.weight"), [=](float* x, int64_t) {
        if (reorder) reorder_rows(x, kernel, qk_rows, dv, order);
      }, {kernel, channels}));
      RAZOR_TRY(b.copy_text(p + "ssm_norm.weight", la("norm.weight")));
      RAZOR_TRY(b.copy_text(p + "ssm_out.weight", la("out_proj.weight"), [=](float* x, int64_t n) {
        if (reorder) reorder_cols(x, n / (n_v * dv), n_v * dv, dv, order);
      }));
    } else {
      auto sa = [&](const std::string& s) { return b.layer_name(l, "self_attn." + s); };
      RAZOR_TRY(b.copy_text(p + "attn_q.weight", sa("q_proj.weight")));  // [q_h | gate_h] per head, kept whole
      RAZOR_TRY(b.copy_text(p + "attn_k.weight", sa("k_proj.weight")));
      RAZOR_TRY(b.copy_text(p + "attn_v.weight", sa("v_proj.weight")));
      RAZOR_TRY(b.copy_text(p + "attn_output.weight", sa("o_proj.weight")));
      RAZOR_TRY(b.copy_text(p + "attn_q_norm.weight", sa("q_norm.weight"), plus_one));
      RAZOR_TRY(b.copy_text(p + "attn_k_norm.weight", sa("k_norm.weight"), plus_one));
    }
    RAZOR_TRY(b.copy_text(p + "ffn_gate_inp.weight", b.layer_name(l, "mlp.gate.weight")));
    RAZOR_TRY(b.experts(l, p + "ffn_gate_exps.weight", expert_proj::gate));
    RAZOR_TRY(b.experts(l, p + "ffn_up_exps.weight", expert_proj::up));
    RAZOR_TRY(b.experts(l, p + "ffn_down_exps.weight", expert_proj::down));
    if (const tensor_entry* sg = b.ck.find_text(b.layer_name(l, "mlp.shared_expert.gate_proj.weight"))) {
      RAZOR_TRY(b.copy(p + "ffn_gate_shexp.weight", sg, "shared_expert.gate_proj"));
      RAZOR_TRY(b.copy_text(p + "ffn_up_shexp.weight", b.layer_name(l, "mlp.shared_expert.up_proj.weight")));
      RAZOR_TRY(b.copy_text(p + "ffn_down_shexp.weight", b.layer_name(l, "mlp.shared_expert.down_proj.weight")));
      RAZOR_TRY(b.copy_text(p + "ffn_gate_inp_shexp.weight", b.layer_name(l, "mlp.shared_expert_gate.weight")));
    }
  }
  RAZOR_TRY(b.copy_text("output_norm.weight", "norm.weight", plus_one));
  if (const tensor_entry* lm = b.ck.find("lm_head.weight"); lm && !cfg.tie_word_embeddings)
    RAZOR_TRY(b.copy("output.weight", lm, "lm_head.weight"));
  return {};
}

// ---- metadata ---------------------------------------------------------------------------------------

result<json> read_json(const std::string& path, bool required) {
  std::error_code ec;
  const bool present = fs::exists(path, ec);  // a symlink loop: an error naming the path, not a throw
  if (ec && ec != std::errc::no_such_file_or_directory) return make_error(errc::io, path + ": " + ec.message());
  if (!present) {
    if (required) return make_error(errc::not_found, path + ": not found");
    return json();
  }
  json_limits lim;
  lim.max_bytes = size_t(256) << 20;  // tokenizer.json of a 262,144-token vocabulary: ~30 MB
  return read_json_file(path, lim);
}

uint32_t u32_of(int64_t v) { return uint32_t(std::max<int64_t>(0, v)); }

status add_tokenizer(writer& w, const checkpoint& ck) {
  // A hostile tokenizer.json / tokenizer_config.json with keys of the wrong JSON type makes nlohmann::json
  // throw: an error value here.
  try {
    return [&]() -> status {
  const std::string dir = ck.dir();
  RAZOR_ASSIGN_OR_RETURN(json tj, read_json(dir + "/tokenizer.json", true));
  RAZOR_ASSIGN_OR_RETURN(json tc, read_json(dir + "/tokenizer_config.json", false));
  const json& model = tj.contains("model") ? tj["model"] : json();
  if (!model.is_object() || model.value("type", "") != "BPE" || !model.contains("vocab") || !model["vocab"].is_object())
    return make_error(errc::unsupported, dir + "/tokenizer.json: only byte-level BPE tokenizers (model.type \"BPE\") "
                                               "are converted");
  std::map<int64_t, std::string> by_id;
  std::map<std::string, int64_t> id_of;
  for (auto it = model["vocab"].begin(); it != model["vocab"].end(); ++it) {
    if (!it.value().is_number_integer()) continue;
    by_id[it.value().get<int64_t>()] = it.key();
    id_of[it.key()] = it.value().get<int64_t>();
  }
  std::map<int64_t, bool> added_special;  // id -> special
  if (tj.contains("added_tokens") && tj["added_tokens"].is_array())
    for (auto& a : tj["added_tokens"]) {
      if (!a.contains("id") || !a.contains("content")) continue;
      int64_t id = a["id"].get<int64_t>();
      by_id[id] = a["content"].get<std::string>();
      id_of[a["content"].get<std::string>()] = id;
      added_special[id] = a.value("special", false);
    }
  int64_t n = by_id.empty() ? 0 : by_id.rbegin()->first + 1;
  n = std::max<int64_t>(n, ck.config().vocab_size);
  if (n <= 0 || by_id.begin()->first < 0) return make_error(errc::bad_format, dir + "/tokenizer.json: empty or invalid vocabulary");
  std::vector<std::string> tokens(static_cast<size_t>(n));
  std::vector<int32_t> types(static_cast<size_t>(n), 1);  // NORMAL
  for (int64_t i = 0; i < n; ++i) {
    auto it = by_id.find(i);
    if (it == by_id.end()) {
      tokens[size_t(i)] = "[PAD" + std::to_string(i) + "]";
      types[size_t(i)] = 5;  // UNUSED
      continue;
    }
    tokens[size_t(i)] = it->second;
    if (auto a = added_special.find(i); a != added_special.end()) types[size_t(i)] = a->second ? 3 : 4;  // CONTROL / USER_DEFINED
  }
  std::vector<std::string> merges;
  if (model.contains("merges") && model["merges"].is_array())
    for (auto& m : model["merges"]) {
      if (m.is_string()) merges.push_back(m.get<std::string>());
      else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string())
        merges.push_back(m[0].get<std::string>() + " " + m[1].get<std::string>());
      else return make_error(errc::bad_format, dir + "/tokenizer.json: a merge is neither \"a b\" nor [a, b]");
    }
  w.set("tokenizer.ggml.model", value::str("gpt2"));
  w.set("tokenizer.ggml.pre", value::str("qwen2"));
  w.set("tokenizer.ggml.tokens", value::strings(std::move(tokens)));
  w.set("tokenizer.ggml.token_type", value::i32s(types));
  w.set("tokenizer.ggml.merges", value::strings(std::move(merges)));

  // Special ids: tokenizer_config.json's token strings first, then config.json's ids.
  auto token_id = [&](const char* key) -> std::optional<int64_t> {
    if (tc.is_object() && tc.contains(key)) {
      const json& v = tc[key];
      std::string s = v.is_string() ? v.get<std::string>() : (v.is_object() && v.contains("content") ? v["content"].get<std::string>() : "");
      if (auto it = id_of.find(s); !s.empty() && it != id_of.end()) return it->second;
    }
    return std::nullopt;
  };
  auto config_id = [&](const char* key) -> std::optional<int64_t> {
    for (const json* j : {&ck.config().text, &ck.config().raw}) {
      if (!j->is_object() || !j->contains(key)) continue;
      const json& v = (*j)[key];
      if (v.is_number_integer()) return v.get<int64_t>();
      if (v.is_array() && !v.empty() && v[0].is_number_integer()) return v[0].get<int64_t>();
    }
    return std::nullopt;
  };
  struct sp {
    const char *tc_key, *cfg_key, *gguf_key;
  };
  for (auto s : {sp{"bos_token", "bos_token_id", "tokenizer.ggml.bos_token_id"},
                 sp{"eos_token", "eos_token_id", "tokenizer.ggml.eos_token_id"},
                 sp{"pad_token", "pad_token_id", "tokenizer.ggml.padding_token_id"},
                 sp{"unk_token", "unk_token_id", "tokenizer.ggml.unknown_token_id"}}) {
    auto id = token_id(s.tc_key);
    if (!id) id = config_id(s.cfg_key);
    if (id && *id >= 0 && *id < n) w.set(s.gguf_key, value::u32(uint32_t(*id)));
  }
  w.set("tokenizer.ggml.add_bos_token", value::boolean(false));
  std::string tmpl;
  if (tc.is_object() && tc.contains("chat_template")) {
    const json& ct = tc["chat_template"];
    if (ct.is_string()) tmpl = ct.get<std::string>();
    else if (ct.is_array())
      for (auto& e : ct)
        if (e.is_object() && e.value("name", "") == "default") tmpl = e.value("template", "");
  }
  if (std::error_code ec; tmpl.empty() && fs::exists(dir + "/chat_template.jinja", ec)) {
    RAZOR_ASSIGN_OR_RETURN(tmpl, read_text_file(dir + "/chat_template.jinja", size_t(16) << 20));
  }
  if (!tmpl.empty()) w.set("tokenizer.chat_template", value::str(tmpl));
  return {};
}();
  } catch (const nlohmann::json::exception& e) {
    return make_error(errc::bad_format, ck.dir() + "/tokenizer.json: unexpected JSON type (" + std::string(e.what()) + ")");
  }
}

uint32_t ftype_for(ggml::type t) { return ggml::info(t).ftype; }  // the type table's ftype column

status add_arch_metadata(writer& w, const std::string& arch, const model_config& c) {
  auto k = [&](const std::string& s) { return arch + "." + s; };
  w.set(k("block_count"), value::u32(u32_of(c.num_layers)));
  w.set(k("context_length"), value::u32(u32_of(c.max_position_embeddings > 0 ? c.max_position_embeddings : 4096)));
  w.set(k("embedding_length"), value::u32(u32_of(c.hidden_size)));
  if (c.intermediate_size > 0) w.set(k("feed_forward_length"), value::u32(u32_of(c.intermediate_size)));
  w.set(k("attention.head_count"), value::u32(u32_of(c.num_heads)));
  w.set(k("attention.head_count_kv"), value::u32(u32_of(c.num_kv_heads > 0 ? c.num_kv_heads : c.num_heads)));
  w.set(k("rope.freq_base"), value::f32(float(c.rope_theta)));
  w.set(k("attention.layer_norm_rms_epsilon"), value::f32(float(c.rms_norm_eps)));
  w.set(k("expert_count"), value::u32(u32_of(c.num_experts)));
  w.set(k("expert_used_count"), value::u32(u32_of(c.num_experts_per_tok)));
  const int64_t hd = c.head_dim > 0 ? c.head_dim : c.hidden_size / std::max<int64_t>(1, c.num_heads);
  w.set(k("attention.key_length"), value::u32(u32_of(hd)));
  w.set(k("attention.value_length"), value::u32(u32_of(hd)));
  w.set(k("expert_feed_forward_length"), value::u32(u32_of(c.moe_intermediate_size)));
  if (arch == "qwen35moe") {
    // the engine's default when the key is absent; config_check compared it with the conv1d tensors
    w.set(k("ssm.conv_kernel"), value::u32(u32_of(c.linear_conv_kernel_dim > 0 ? c.linear_conv_kernel_dim : 4)));
    w.set(k("ssm.state_size"), value::u32(u32_of(c.linear_key_head_dim)));
    w.set(k("ssm.group_count"), value::u32(u32_of(c.linear_num_key_heads)));
    w.set(k("ssm.time_step_rank"), value::u32(u32_of(c.linear_num_value_heads)));
    w.set(k("ssm.inner_size"), value::u32(u32_of(c.linear_value_head_dim * c.linear_num_value_heads)));
    int64_t interval = c.full_attention_interval > 0 ? c.full_attention_interval : 4;
    for (int64_t l = 0; l < c.num_layers; ++l)
      if (c.layer_is_linear_attention(l) != ((l + 1) % interval != 0))
        return make_error(errc::unsupported, "layer_types does not follow full_attention_interval " +
                                                 std::to_string(interval) + " (layer " + std::to_string(l) + ")");
    w.set(k("full_attention_interval"), value::u32(u32_of(interval)));
    w.set(k("rope.dimension_count"), value::u32(u32_of(c.rotary_dims())));
    std::vector<int32_t> sections = {11, 11, 10, 0};  // the converter's default when the config has none
    for (const json* j : {&c.text, &c.raw}) {
      const json* rp = nullptr;
      if (j->contains("rope_parameters") && (*j)["rope_parameters"].is_object()) rp = &(*j)["rope_parameters"];
      else if (j->contains("rope_scaling") && (*j)["rope_scaling"].is_object()) rp = &(*j)["rope_scaling"];
      if (rp && rp->contains("mrope_section") && (*rp)["mrope_section"].is_array()) {
        sections.assign(4, 0);
        for (size_t i = 0; i < (*rp)["mrope_section"].size() && i < 4; ++i)
          sections[i] = (*rp)["mrope_section"][i].get<int32_t>();
        break;
      }
    }
    w.set(k("rope.dimension_sections"), value::i32s(sections));
    if (c.shared_expert_intermediate_size > 0)
      w.set(k("expert_shared_feed_forward_length"), value::u32(u32_of(c.shared_expert_intermediate_size)));
  }
  return {};
}

// ---- type selection ---------------------------------------------------------------------------------

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

struct full_plan {
  std::vector<planned> tensors;
  convert_report report;
};

result<full_plan> make_plan(const checkpoint& ck, const convert_options& o) {
  const model_config& cfg = ck.config();
  full_plan fp;
  fp.report.arch = gguf_arch_for(cfg.model_type);
  if (fp.report.arch.empty()) fp.report.arch = gguf_arch_for(cfg.top_model_type);
  if (fp.report.arch.empty())
    return make_error(errc::unsupported, ck.dir() + ": GGUF export of model_type '" + cfg.model_type +
                                             "' is not supported (supported: qwen3_moe, qwen3_5_moe)");
  // config.json against the tensors, before anything is written (block_count, expert_used_count, the
  // embedding's orientation, ... would otherwise reach the GGUF unchecked).
  RAZOR_TRY(check_checkpoint_config(ck));
  builder b{ck, cfg, {}};
  if (fp.report.arch == "qwen3moe") RAZOR_TRY(plan_qwen3moe(b));
  else RAZOR_TRY(plan_qwen35moe(b));
  fp.tensors = std::move(b.out);

  if (o.imat) {
    std::vector<imatrix_target> targets;
    for (auto& p : fp.tensors)
      if (p.ne.size() >= 2) targets.push_back({p.name, p.ne[0], p.n_mat});

    RAZOR_TRY(o.imat->match_model(targets, ck.dir()));
  }
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
  return fp;
}

}  // namespace

namespace {

// The header of the output: metadata, then every tensor declared in plan order. The same for a single
// conversion and for a merge of parts, so both files are identical.
status declare_output(writer& w, const checkpoint& ck, const convert_report& rep, const std::string& model_dir,
                      const convert_options& o) {
  const model_config& cfg = ck.config();
  w.set("general.architecture", value::str(rep.arch));
  std::string name = o.name;
  if (name.empty()) name = fs::path(model_dir).filename().string();
  if (name.empty()) name = fs::path(model_dir).parent_path().filename().string();
  w.set("general.name", value::str(name));
  // file type: the most common stored type among quantizable tensors (by elements)
  std::map<ggml::type, int64_t> by_type;
  for (auto& r : rep.tensors)
    if (r.why.rfind("kept", 0) != 0) by_type[r.stored] += r.nelements();
  ggml::type main_type = ggml::type::f32;
  int64_t best = -1;
  for (auto& [t, n] : by_type)
    if (n > best) best = n, main_type = t;
  w.set("general.file_type", value::u32(o.file_type.value_or(ftype_for(main_type))));
  w.set("general.quantization_version", value::u32(2));
  w.set("general.quantized_by", value::str("razor " RAZOR_VERSION));
  RAZOR_TRY(add_arch_metadata(w, rep.arch, cfg));
  RAZOR_TRY(add_tokenizer(w, ck));
  if (o.imat) {
    w.set("quantize.imatrix.file", value::str(o.imat->source));
    if (!o.imat->datasets.empty()) w.set("quantize.imatrix.dataset", value::str(o.imat->datasets[0]));
    w.set("quantize.imatrix.entries_count", value::i32(int32_t(o.imat->entries.size())));
    if (o.imat->chunk_count > 0) w.set("quantize.imatrix.chunks_count", value::i32(int32_t(o.imat->chunk_count)));
  }
  for (auto& r : rep.tensors) RAZOR_TRY(w.add_tensor(r.name, r.ne, uint32_t(r.stored)));
  return {};
}

}  // namespace

result<convert_report> plan_gguf(const checkpoint& ck, const convert_options& o) {
  RAZOR_ASSIGN_OR_RETURN(full_plan fp, make_plan(ck, o));
  // The exact size of the file: the header the conversion writes (its metadata does not depend on the types
  // beyond general.file_type, a fixed-size value) and every tensor padded to the alignment.
  writer_options wo;
  wo.alignment = o.alignment;
  writer w(wo);
  RAZOR_TRY(declare_output(w, ck, fp.report, ck.dir(), o));
  fp.report.file_bytes = w.planned_bytes();
  uint64_t data = 0;
  for (auto& r : fp.report.tensors) data += padded_bytes(r.bytes, o.alignment);
  fp.report.header_bytes = fp.report.file_bytes - data;
  return fp.report;
}

namespace {

// Quantizes one planned tensor matrix by matrix into `sink`; done/total advance the progress.
status quantize_planned(const planned& p, const tensor_plan_row& row, const convert_options& o,
                        const std::function<status(const uint8_t*, size_t)>& sink, uint64_t& done, uint64_t total) {
  const int64_t slice = p.slice();
  const int64_t n_per_row = p.ne.empty() ? 1 : p.ne[0];
  const int64_t rows = slice / n_per_row;
  const size_t slice_bytes = size_t(row.bytes / uint64_t(p.n_mat));
  std::vector<float> buf(static_cast<size_t>(slice));
  std::vector<uint8_t> qbuf(slice_bytes);
  for (int64_t m = 0; m < p.n_mat; ++m) {
    RAZOR_TRY(p.produce(m, buf.data()));
    std::vector<float> weights;
    if (row.imatrix_used) {
      auto wts = o.imat->weights_for(p.name, m);
      if (!wts.ok()) return wts.error();
      weights = std::move(wts).value();
    }
    // The GPU packer when a device is present (bytes identical to the CPU path, tests/ggml/test_ggml_cuda.cpp).
    quant::quantize_auto_options qo;
    qo.cpu.threads = o.threads;
    qo.allow_gpu = o.allow_gpu;
    qo.cpu.allow_missing_imatrix = true;  // the refusal happened at planning, per llama.cpp's rule
    auto n = quant::quantize_tensor_auto(row.stored, buf.data(), qbuf.data(), qbuf.size(), rows, n_per_row,
                                        weights.empty() ? nullptr : weights.data(), qo);
    if (!n.ok()) return make_error(n.error().code(), p.name + ": " + n.error().message());
    if (n->bytes != slice_bytes)
      return make_error(errc::internal, p.name + ": quantizer wrote " + std::to_string(n->bytes) +
                                            " bytes, expected " + std::to_string(slice_bytes));
    RAZOR_TRY(sink(qbuf.data(), qbuf.size()));
    done += slice_bytes;
    if (o.progress && !o.progress(double(done), double(total), p.name.c_str()))
      return make_error(errc::cancelled, "conversion cancelled at " + p.name);
  }
  return {};
}

// The decoder layer of a GGUF tensor ("blk.12.ffn_up_exps.weight" -> 12), -1 for the others.
int gguf_layer_of(const std::string& name) {
  if (name.rfind("blk.", 0) != 0) return -1;
  int l = 0;
  size_t i = 4;
  if (i >= name.size() || !std::isdigit(static_cast<unsigned char>(name[i]))) return -1;
  while (i < name.size() && std::isdigit(static_cast<unsigned char>(name[i]))) l = l * 10 + (name[i++] - '0');
  return l;
}

// What a part must agree on with the merge: the source tensors and every planned GGUF tensor's name, shape,
// type and size (so the recipe, the types and the imatrix coverage were the same).
std::string plan_fingerprint(const checkpoint& ck, const convert_report& rep, const convert_options& o) {
  fnv1a64 h;
  auto mix = [&](std::string_view s) { h.field(s); };
  for (auto& t : ck.tensors()) {
    mix(t.name);
    mix(std::string(dtype_name(t.dt)));
    for (auto d : t.shape) mix(std::to_string(d));
  }
  for (auto& r : rep.tensors) {
    mix(r.name);
    mix(std::to_string(uint32_t(r.stored)));
    mix(r.imatrix_used ? "imatrix" : "-");
    for (auto d : r.ne) mix(std::to_string(d));
  }
  if (o.imat) mix(o.imat->source);
  if (o.file_type) mix("ftype " + std::to_string(*o.file_type));
  return h.hex();
}

// Commits the written GGUF after checking its name once more (a file may have appeared there meanwhile), then
// removes the files of the earlier output of that name the new one did not overwrite.
status finish_output(writer& w, const std::string& out_path, const std::vector<std::string>& inputs,
                     convert_report& rep) {
  auto earlier = check_gguf_output(out_path, inputs);
  if (!earlier) {
    w.abort();
    return earlier.error();
  }
  RAZOR_TRY(w.finish());
  rep.paths = w.paths();
  rep.file_bytes = w.total_bytes();
  for (auto& p : remove_stale_gguf_files(*earlier, rep.paths))
    rep.notes.push_back("removed " + p + ", a file of the earlier output of this name that the new one replaces");
  return {};
}

}  // namespace

result<convert_report> convert_to_gguf(const std::string& model_dir, const std::string& out_path,
                                       const convert_options& o) {
  RAZOR_ASSIGN_OR_RETURN(checkpoint ck, checkpoint::open(model_dir));
  // What is at out_path may be replaced only if razor wrote it (gguf/output_check.h): refused before any work.
  const std::vector<std::string> inputs = {model_dir, o.imat ? o.imat->source : std::string()};
  RAZOR_TRY(check_gguf_output(out_path, inputs).error());
  RAZOR_ASSIGN_OR_RETURN(full_plan fp, make_plan(ck, o));
  convert_report& rep = fp.report;

  writer_options wo;
  wo.alignment = o.alignment;
  wo.max_shard_bytes = o.max_shard_bytes;
  writer w(wo);
  RAZOR_TRY(declare_output(w, ck, rep, model_dir, o));
  RAZOR_TRY(w.begin(out_path));

  uint64_t total = 0, done = 0;
  for (auto& r : rep.tensors) total += r.bytes;
  auto sink = [&w](const uint8_t* d, size_t n) { return w.write(d, n); };
  for (size_t i = 0; i < fp.tensors.size(); ++i) {
    status st = quantize_planned(fp.tensors[i], rep.tensors[i], o, sink, done, total);
    if (st.ok()) st = ck.check_mapped();  // a shard truncated while it was read (util/mapped_file.h)
    if (!st.ok()) {
      w.abort();
      return st;
    }
  }
  RAZOR_TRY(finish_output(w, out_path, inputs, rep));
  return rep;
}

result<convert_report> convert_gguf_part(const std::string& model_dir, const std::string& part_dir,
                                         const convert_options& o, const layer_selection& sel) {
  RAZOR_ASSIGN_OR_RETURN(checkpoint ck, checkpoint::open(model_dir));
  if (sel.has_range() && sel.last > ck.config().num_layers)
    return make_error(errc::invalid_argument, "--layers " + sel.to_string() + ": " + model_dir + " has " +
                                                  std::to_string(ck.config().num_layers) + " layers");
  RAZOR_ASSIGN_OR_RETURN(full_plan fp, make_plan(ck, o));
  convert_report& rep = fp.report;
  atomic_dir dir;
  RAZOR_TRY(dir.open(part_dir, "pack --layers " + sel.to_string(), {model_dir}));
  atomic_writer out;
  RAZOR_TRY(out.open(dir.path() + "/" + kGgufPartData));
  uint64_t total = 0, done = 0;
  for (size_t i = 0; i < rep.tensors.size(); ++i)
    if (sel.contains(gguf_layer_of(rep.tensors[i].name))) total += rep.tensors[i].bytes;
  nlohmann::json tensors = nlohmann::json::array();
  auto sink = [&out](const uint8_t* d, size_t n) { return out.write(d, n); };
  convert_report part_rep = rep;
  part_rep.tensors.clear();
  for (size_t i = 0; i < fp.tensors.size(); ++i) {
    const tensor_plan_row& row = rep.tensors[i];
    if (!sel.contains(gguf_layer_of(row.name))) continue;
    const uint64_t offset = out.bytes_written();
    RAZOR_TRY(quantize_planned(fp.tensors[i], row, o, sink, done, total));
    RAZOR_TRY(ck.check_mapped());
    tensors.push_back({{"name", row.name}, {"type", uint32_t(row.stored)}, {"ne", row.ne}, {"offset", offset},
                       {"bytes", row.bytes}});
    part_rep.tensors.push_back(row);
  }
  const uint64_t data_bytes = out.bytes_written();
  RAZOR_TRY(out.commit());
  nlohmann::json pj;
  pj["format"] = "razor.gguf_part/1";
  pj["source"] = ck.dir();
  pj["plan_fingerprint"] = plan_fingerprint(ck, rep, o);
  pj["layers"] = sel.to_string();
  pj["data_bytes"] = data_bytes;
  pj["tensors"] = tensors;
  RAZOR_TRY(write_file_atomic(dir.path() + "/" + kGgufPartManifest, dump_json(pj, 1) + "\n"));
  RAZOR_TRY(dir.commit());
  part_rep.paths = {part_dir};
  part_rep.file_bytes = data_bytes;
  return part_rep;
}

result<convert_report> merge_gguf_parts(const std::string& model_dir, const std::vector<std::string>& part_dirs,
                                        const std::string& out_path, const convert_options& o) {
  RAZOR_ASSIGN_OR_RETURN(checkpoint ck, checkpoint::open(model_dir));
  std::vector<std::string> inputs = part_dirs;
  inputs.push_back(model_dir);
  if (o.imat) inputs.push_back(o.imat->source);
  RAZOR_TRY(check_gguf_output(out_path, inputs).error());
  RAZOR_ASSIGN_OR_RETURN(full_plan fp, make_plan(ck, o));
  convert_report& rep = fp.report;
  const std::string fingerprint = plan_fingerprint(ck, rep, o);
  if (part_dirs.empty()) return make_error(errc::invalid_argument, "pack: no parts given");
  struct src {
    const mapped_file* data;
    uint64_t offset, bytes;
  };
  std::vector<mapped_file> maps(part_dirs.size());
  std::map<std::string, std::pair<src, size_t>> found;  // tensor -> bytes, part index
  for (size_t i = 0; i < part_dirs.size(); ++i) {
    const std::string& d = part_dirs[i];
    auto bad = [&](const std::string& m) { return make_error(errc::bad_format, "part " + d + ": " + m); };
    std::error_code ec;
    if (!fs::is_directory(d, ec))
      return make_error(errc::not_found, "part " + d + " does not exist (its task did not finish or failed)");
    const std::string mpath = d + "/" + kGgufPartManifest;
    if (!fs::exists(mpath, ec))
      return make_error(errc::not_found, "part " + d + ": " + kGgufPartManifest +
                                             " is missing (not a finished razor pack --layers part)");
    auto pjr = read_json_file(mpath);
    if (!pjr.ok()) return bad(pjr.error().message());
    nlohmann::json& pj = *pjr;
    if (!pj.is_object() || pj.value("format", "") != "razor.gguf_part/1")
      return bad("not a razor.gguf_part/1 manifest");
    if (pj.value("plan_fingerprint", "") != fingerprint)
      return make_error(errc::invalid_argument, "part " + d + " was made from another checkpoint or with other " +
                                                    "types / recipe / imatrix than this pack");
    auto m = mapped_file::open(d + "/" + kGgufPartData);
    if (!m.ok()) return make_error(m.error().code(), "part " + d + ": " + m.error().message());
    maps[i] = std::move(m).value();
    if (maps[i].size() != pj.value("data_bytes", uint64_t(0)))
      return bad(std::string(kGgufPartData) + " has " + std::to_string(maps[i].size()) + " bytes, the manifest says " +
                 std::to_string(pj.value("data_bytes", uint64_t(0))) + " (truncated)");
    for (auto& t : pj["tensors"]) {
      const std::string name = t.value("name", "");
      const uint64_t off = t.value("offset", uint64_t(0)), n = t.value("bytes", uint64_t(0));
      if (off + n > maps[i].size()) return bad(name + " runs past the end of " + kGgufPartData);
      auto [it, fresh] = found.emplace(name, std::pair{src{&maps[i], off, n}, i});
      if (!fresh)
        return make_error(errc::invalid_argument, "GGUF tensor " + name + " is in two parts: " +
                                                      part_dirs[it->second.second] + " and " + d);
    }
  }
  for (auto& r : rep.tensors) {
    auto it = found.find(r.name);
    if (it == found.end()) {
      int l = gguf_layer_of(r.name);
      return make_error(errc::not_found, "GGUF tensor " + r.name + " (" +
                                             (l >= 0 ? "layer " + std::to_string(l) : std::string("rest")) +
                                             ") is in no part: the task for it is missing or failed");
    }
    if (it->second.first.bytes != r.bytes)
      return make_error(errc::bad_format, "part " + part_dirs[it->second.second] + ": " + r.name + " has " +
                                              std::to_string(it->second.first.bytes) + " bytes, the plan " +
                                              std::to_string(r.bytes));
  }
  if (found.size() != rep.tensors.size())
    return make_error(errc::invalid_argument, "the parts hold GGUF tensors this plan does not have");

  writer_options wo;
  wo.alignment = o.alignment;
  wo.max_shard_bytes = o.max_shard_bytes;
  writer w(wo);
  RAZOR_TRY(declare_output(w, ck, rep, model_dir, o));
  RAZOR_TRY(w.begin(out_path));
  uint64_t total = 0, done = 0;
  for (auto& r : rep.tensors) total += r.bytes;
  for (auto& r : rep.tensors) {
    const src& s = found.at(r.name).first;
    RAZOR_TRY(w.write(s.data->data() + s.offset, size_t(s.bytes)));
    RAZOR_TRY(s.data->check());  // truncated while it was read (util/mapped_file.h)
    done += s.bytes;
    if (o.progress && !o.progress(double(done), double(total), r.name.c_str())) {
      w.abort();
      return make_error(errc::cancelled, "merge cancelled at " + r.name);
    }
  }
  RAZOR_TRY(finish_output(w, out_path, inputs, rep));
  return rep;
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
std::string fmt_bits(double b) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", b);
  return buf;
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
      for (auto& [b, n] : a.hist) asked += (asked.empty() ? "" : ", ") + std::to_string(n) + "x" + fmt_bits(b);
      asked = "per-expert bits {" + asked + "}, mean " + fmt_bits(std::round(c.mean_bits * 1000) / 1000);
    } else {
      asked = fmt_bits(c.mean_bits) + " bits";
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
