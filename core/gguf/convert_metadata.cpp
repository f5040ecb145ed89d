// The GGUF header of a conversion: general.*, the architecture's hyperparameters, the tokenizer, the
// importance matrix's provenance, and the tensor declarations.
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
#include "model/deepseek_config.h"
#include "model/recipe.h"
#include "model/spm_vocab.h"
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

namespace {

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

// LlamaModel.set_vocab for a llama-arch checkpoint with tokenizer.json only (_set_vocab_llama_hf): tokenizer_config's
// add_prefix_space, model "llama", pre "default", tokens / scores / token types (LlamaHfVocab), no merges, then
// SpecialVocab's ids, add_* flags, chat template and normalizer flags, in the converter's order.
status add_spm_tokenizer(writer& w, const checkpoint& ck, const json& tj, const json& tc) {
  const std::string dir = ck.dir();
  RAZOR_ASSIGN_OR_RETURN(spm_vocab v, read_spm_vocab(tj, tc, dir + "/tokenizer.json"));
  // The converter writes the tokens as they are (no padding): llama.cpp then refuses an embedding of another size.
  if (int64_t(v.tokens.size()) != ck.config().vocab_size)
    return make_error(errc::unsupported, dir + "/tokenizer.json: " + std::to_string(v.tokens.size()) +
                                             " tokens, but config.json's vocab_size is " +
                                             std::to_string(ck.config().vocab_size) +
                                             " (llama.cpp's converter writes the tokenizer's tokens unpadded, and "
                                             "llama.cpp refuses an embedding of another size)");
  if (v.add_space_prefix) w.set("tokenizer.ggml.add_space_prefix", value::boolean(*v.add_space_prefix));
  w.set("tokenizer.ggml.model", value::str("llama"));
  w.set("tokenizer.ggml.pre", value::str("default"));
  const auto n = int64_t(v.tokens.size());
  w.set("tokenizer.ggml.tokens", value::strings(std::move(v.tokens)));
  w.set("tokenizer.ggml.scores", value::f32s(v.scores));
  w.set("tokenizer.ggml.token_type", value::i32s(v.types));
  std::string jinja;
  if (std::error_code ec; fs::exists(dir + "/chat_template.jinja", ec)) {
    RAZOR_ASSIGN_OR_RETURN(jinja, read_text_file(dir + "/chat_template.jinja", size_t(16) << 20));
  }
  RAZOR_ASSIGN_OR_RETURN(const hf_special_vocab sv, read_hf_special_vocab(tj, tc, ck.config().raw, n, dir, jinja));
  for (auto& [typ, id] : sv.ids) {
    const std::string key = typ == "unk" ? "unknown" : typ == "sep" ? "seperator" : typ == "pad" ? "padding" : typ;
    w.set("tokenizer.ggml." + key + "_token_id", value::u32(uint32_t(id)));
  }
  for (auto& [typ, on] : sv.add) w.set("tokenizer.ggml.add_" + typ + "_token", value::boolean(on));
  if (sv.chat_template) w.set("tokenizer.chat_template", value::str(*sv.chat_template));
  if (sv.lowercase) w.set("tokenizer.ggml.normalizer.lowercase", value::boolean(*sv.lowercase));
  if (sv.strip_accents) w.set("tokenizer.ggml.normalizer.strip_accents", value::boolean(*sv.strip_accents));
  return {};
}

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
  // SentencePiece-style BPE (Mixtral / Llama-2: "▁" for spaces, <0xNN> byte tokens) is llama.cpp's "llama"
  // tokenizer with scores, not gpt2's byte-level one.
  if (is_sentencepiece_bpe(tj)) return add_spm_tokenizer(w, ck, tj, tc);
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
  if (arch == "qwen35moe" || arch == "qwen3next") {
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
  }
  if (arch == "qwen35moe") {  // M-RoPE (qwen3next's RoPE is plain NeoX)
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
  }
  if (arch == "llama") {  // LlamaModel.set_gguf_parameters: the vocabulary size and the rotary dimensions
    w.set(k("vocab_size"), value::u32(u32_of(c.vocab_size)));
    w.set(k("rope.dimension_count"), value::u32(u32_of(c.rotary_dims())));
  }
  if (arch == "deepseek2") {  // DeepseekV2Model.set_gguf_parameters: MLA as MQA with larger heads, then decompressed
    RAZOR_ASSIGN_OR_RETURN(deepseek_dims ds, deepseek_dims_from_config(c));
    const json& t = c.text;
    w.set(k("attention.head_count_kv"), value::u32(1));
    w.set(k("leading_dense_block_count"), value::u32(u32_of(ds.first_dense)));
    w.set(k("vocab_size"), value::u32(u32_of(c.vocab_size)));
    if (ds.q_lora_rank > 0) w.set(k("attention.q_lora_rank"), value::u32(u32_of(ds.q_lora_rank)));
    w.set(k("attention.kv_lora_rank"), value::u32(u32_of(ds.kv_lora_rank)));
    w.set(k("attention.key_length"), value::u32(u32_of(ds.kv_lora_rank + ds.qk_rope)));
    w.set(k("attention.value_length"), value::u32(u32_of(ds.kv_lora_rank)));
    w.set(k("attention.key_length_mla"), value::u32(u32_of(ds.qk_head_dim())));
    w.set(k("attention.value_length_mla"), value::u32(u32_of(ds.v_head_dim)));
    w.set(k("expert_shared_count"), value::u32(u32_of(ds.n_shared)));
    if (t.contains("routed_scaling_factor") && t["routed_scaling_factor"].is_number())
      w.set(k("expert_weights_scale"), value::f32(float(ds.routed_scale)));
    if (t.contains("norm_topk_prob") && c.norm_topk_prob) w.set(k("expert_weights_norm"), value::boolean(true));
    w.set(k("rope.dimension_count"), value::u32(u32_of(ds.qk_rope)));
    // TextModel: the groups and the scoring function when config.json names them (keys absent otherwise)
    if (t.contains("n_group") && t["n_group"].is_number_integer()) w.set(k("expert_group_count"), value::u32(u32_of(t["n_group"].get<int64_t>())));
    if (t.contains("topk_group") && t["topk_group"].is_number_integer())
      w.set(k("expert_group_used_count"), value::u32(u32_of(t["topk_group"].get<int64_t>())));
    if (t.contains("scoring_func") && t["scoring_func"].is_string())
      w.set(k("expert_gating_func"), value::u32(ds.sigmoid ? 2 : 1));  // llama.cpp's SIGMOID = 2, SOFTMAX = 1
    if (ds.yarn) {  // TextModel's YaRN keys, and the deepseek2 log multiplier (0.1 x mscale_all_dim, as written)
      const json& r = t["rope_scaling"];
      w.set(k("rope.scaling.type"), value::str("yarn"));
      w.set(k("rope.scaling.factor"), value::f32(float(ds.yarn_factor)));
      w.set(k("rope.scaling.original_context_length"), value::u32(u32_of(ds.yarn_orig_ctx)));
      if (r.contains("beta_fast")) w.set(k("rope.scaling.yarn_beta_fast"), value::f32(float(ds.yarn_beta_fast)));
      if (r.contains("beta_slow")) w.set(k("rope.scaling.yarn_beta_slow"), value::f32(float(ds.yarn_beta_slow)));
      w.set(k("rope.scaling.yarn_log_multiplier"), value::f32(float(0.1 * ds.yarn_mscale_all_dim)));
    }
  }
  if (arch == "gpt-oss") {  // GptOssModel.set_gguf_parameters: the window; TextModel's YaRN keys
    const json& t = c.text;
    if (t.contains("sliding_window") && t["sliding_window"].is_number_integer())
      w.set(k("attention.sliding_window"), value::u32(u32_of(t["sliding_window"].get<int64_t>())));
    for (const char* key : {"rope_scaling", "rope_parameters"}) {
      if (!t.contains(key) || !t[key].is_object()) continue;
      const json& r = t[key];
      const std::string type = r.contains("rope_type") && r["rope_type"].is_string() ? r["rope_type"].get<std::string>()
                               : r.contains("type") && r["type"].is_string()       ? r["type"].get<std::string>()
                                                                                    : "";
      if (type != "yarn" || !r.contains("factor") || !r["factor"].is_number()) break;
      w.set(k("rope.scaling.type"), value::str("yarn"));
      w.set(k("rope.scaling.factor"), value::f32(r["factor"].get<float>()));
      if (r.contains("original_max_position_embeddings") && r["original_max_position_embeddings"].is_number_integer())
        w.set(k("rope.scaling.original_context_length"),
              value::u32(u32_of(r["original_max_position_embeddings"].get<int64_t>())));
      if (r.contains("beta_fast") && r["beta_fast"].is_number())
        w.set(k("rope.scaling.yarn_beta_fast"), value::f32(r["beta_fast"].get<float>()));
      if (r.contains("beta_slow") && r["beta_slow"].is_number())
        w.set(k("rope.scaling.yarn_beta_slow"), value::f32(r["beta_slow"].get<float>()));
      break;
    }
  }
  if ((arch == "qwen35moe" || arch == "qwen2moe" || arch == "qwen3next") && c.shared_expert_intermediate_size > 0)
    w.set(k("expert_shared_feed_forward_length"), value::u32(u32_of(c.shared_expert_intermediate_size)));
  return {};
}

}  // namespace

status convert_detail::declare_output(writer& w, const checkpoint& ck, const convert_report& rep,
                                      const std::string& model_dir, const convert_options& o) {
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

}  // namespace razor::gguf
