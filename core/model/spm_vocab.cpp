#include "model/spm_vocab.h"

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <functional>
#include <set>

using nlohmann::json;

namespace razor {

namespace {

// Python's truthiness of a JSON value as gguf-py tests it (`if not special_bos`).
bool truthy(const json& v) {
  if (v.is_null()) return false;
  if (v.is_string()) return !v.get_ref<const std::string&>().empty();
  if (v.is_boolean()) return v.get<bool>();
  if (v.is_number()) return v.get<double>() != 0;
  return !v.empty();
}

const json& get(const json& o, const char* key) {
  static const json null;
  return o.is_object() && o.contains(key) ? o[key] : null;
}

// A tokenizer_config.json special token: a string or an AddedToken object {"content": ...}.
std::optional<std::string> token_content(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return std::nullopt;
}

bool is_byte_token(const std::string& s) {
  auto hex = [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); };
  return s.size() == 6 && s.compare(0, 3, "<0x") == 0 && hex(s[3]) && hex(s[4]) && s[5] == '>';
}

}  // namespace

bool is_sentencepiece_bpe(const json& tj) {
  const json& m = get(tj, "model");
  return m.is_object() && m.value("type", std::string()) == "BPE" && m.contains("byte_fallback") &&
         m["byte_fallback"].is_boolean() && m["byte_fallback"].get<bool>();
}

result<spm_vocab> read_spm_vocab(const json& tj, const json& tc, const std::string& where) {
  try {
    const json& m = get(tj, "model");
    if (!m.is_object() || !m.contains("vocab") || !m["vocab"].is_object())
      return make_error(errc::bad_format, where + ": model.vocab is missing");
    // LlamaHfVocab's own check (it refuses anything else as "Cannot find Llama BPE tokenizer")
    if (get(get(tj, "decoder"), "type") != "Sequence")
      return make_error(errc::unsupported, where + ": a byte_fallback BPE whose decoder is not a \"Sequence\" (llama.cpp's "
                                                   "converter reads only the Llama form)");
    const size_t n = m["vocab"].size();
    if (n == 0 || n > size_t(1) << 24) return make_error(errc::bad_format, where + ": empty or oversized model.vocab");
    std::vector<std::string> tokens(n);
    std::vector<bool> have(n, false);
    std::map<std::string, int64_t> id_of;
    for (auto it = m["vocab"].begin(); it != m["vocab"].end(); ++it) {
      if (!it.value().is_number_integer()) return make_error(errc::bad_format, where + ": vocab id not an integer");
      const int64_t id = it.value().get<int64_t>();
      if (id < 0 || size_t(id) >= n)
        return make_error(errc::bad_format, where + ": vocab id " + std::to_string(id) + " of \"" + it.key() +
                                                "\" is outside 0.." + std::to_string(n - 1) +
                                                " (the base vocabulary must hold every id once)");
      if (have[size_t(id)]) return make_error(errc::bad_format, where + ": two vocab entries share id " + std::to_string(id));
      have[size_t(id)] = true;
      tokens[size_t(id)] = it.key();
      id_of[it.key()] = id;
    }
    // Added tokens past the base vocabulary, in id order, without a gap.
    std::map<int64_t, std::string> added;
    if (tj.contains("added_tokens") && tj["added_tokens"].is_array())
      for (const json& a : tj["added_tokens"]) {
        if (!a.contains("id") || !a.contains("content")) continue;
        const int64_t id = a["id"].get<int64_t>();
        const std::string c = a["content"].get<std::string>();
        if (!id_of.count(c)) id_of[c] = id;
        if (id >= int64_t(n)) added[id] = c;
      }
    for (auto& [id, c] : added) {
      if (id != int64_t(tokens.size()))
        return make_error(errc::unsupported, where + ": added token \"" + c + "\" has id " + std::to_string(id) +
                                                 " where " + std::to_string(tokens.size()) +
                                                 " comes next (llama.cpp's converter would renumber it)");
      tokens.push_back(c);
    }
    // The special tokens (transformers' all_special_tokens of a LlamaTokenizerFast).
    std::set<std::string> specials;
    const bool have_tc = tc.is_object();
    for (const char* typ : {"bos", "eos", "unk", "sep", "pad", "cls", "mask"}) {
      const std::string key = std::string(typ) + "_token";
      if (have_tc && tc.contains(key)) {
        if (auto c = token_content(tc[key])) specials.insert(*c);
      } else if (std::string(typ) == "bos") specials.insert("<s>");
      else if (std::string(typ) == "eos") specials.insert("</s>");
      else if (std::string(typ) == "unk") specials.insert("<unk>");
    }
    if (have_tc && tc.contains("additional_special_tokens") && tc["additional_special_tokens"].is_array())
      for (const json& v : tc["additional_special_tokens"])
        if (auto c = token_content(v)) specials.insert(*c);
    std::set<int64_t> special_ids;
    for (auto& s : specials)
      if (auto it = id_of.find(s); it != id_of.end()) special_ids.insert(it->second);

    spm_vocab v;
    v.scores.assign(tokens.size(), -1000.0f);
    v.types.resize(tokens.size());
    for (size_t i = 0; i < tokens.size(); ++i) {
      spm_token_type t;
      if (i < n) t = is_byte_token(tokens[i])   ? spm_token_type::byte
                     : special_ids.count(int64_t(i)) ? spm_token_type::control
                                                     : spm_token_type::normal;
      else t = specials.count(tokens[i]) && special_ids.count(id_of[tokens[i]]) ? spm_token_type::control
                                                                                : spm_token_type::user_defined;
      v.types[i] = int32_t(t);
    }
    v.tokens = std::move(tokens);
    if (have_tc && tc.contains("add_prefix_space") && tc["add_prefix_space"].is_boolean())
      v.add_space_prefix = tc["add_prefix_space"].get<bool>();
    return v;
  } catch (const json::exception& e) {
    return make_error(errc::bad_format, where + ": unexpected JSON type (" + std::string(e.what()) + ")");
  }
}

result<hf_special_vocab> read_hf_special_vocab(const json& tj, const json& tc_in, const json& config, int64_t n_vocab,
                                               const std::string& where, const std::string& chat_template_file) {
  try {
  hf_special_vocab out;
  std::vector<std::string> types = {"bos", "eos", "unk", "sep", "pad", "cls", "mask"};
  auto set_add = [&](const std::string& typ, bool v) {
    for (auto& [t, b] : out.add)
      if (t == typ) return void(b = v);
    out.add.emplace_back(typ, v);
  };
  auto set_id = [&](const std::string& typ, const json& tid) {
    if (!tid.is_number_integer()) return;
    const int64_t id = tid.get<int64_t>();
    if (id < 0 || id >= n_vocab) return;
    for (auto& [t, i] : out.ids)
      if (t == typ) return;
    out.ids.emplace_back(typ, id);
  };
  json tc = tc_in.is_object() ? tc_in : json();  // SpecialVocab edits its copy of tokenizer_config.json
  const bool have_tc = truthy(tc);
  // the normalizer's flags
  std::function<void(const json&)> normalizer = [&](const json& nz) {
    const std::string t = get(nz, "type").is_string() ? get(nz, "type").get<std::string>() : "";
    if (t == "Lowercase") out.lowercase = true;
    else if (t == "StripAccents") out.strip_accents = true;
    else if (t == "BertNormalizer") {
      if (nz.contains("lowercase") && nz["lowercase"].is_boolean()) out.lowercase = nz["lowercase"].get<bool>();
      if (nz.contains("strip_accents") && nz["strip_accents"].is_boolean())
        out.strip_accents = nz["strip_accents"].get<bool>();
    } else if (t == "Sequence" && nz.contains("normalizers") && nz["normalizers"].is_array())
      for (const json& x : nz["normalizers"]) normalizer(x);
  };
  const json& added_tokens = get(tj, "added_tokens");
  if (tj.is_object()) {
    if (truthy(get(tj, "normalizer"))) normalizer(tj["normalizer"]);
    json special_bos = get(tc, "bos_token"), special_cls = get(tc, "cls_token"), special_eos = get(tc, "eos_token"),
         special_sep = get(tc, "sep_token");
    if (!truthy(special_bos) && truthy(special_cls) && have_tc) tc["bos_token"] = special_bos = special_cls;
    if (!truthy(special_eos) && truthy(special_sep) && have_tc) tc["eos_token"] = special_eos = special_sep;
    const json& pp = get(tj, "post_processor");
    if (truthy(pp) && pp.is_object()) {
      json procs = pp.contains("processors") ? pp["processors"] : json::array({pp});
      for (const json& p : procs) {
        const json& ptype = get(p, "type");
        if (ptype == "RobertaProcessing") {
          set_add("bos", true), set_add("eos", true), set_add("sep", true);
          if (!truthy(special_cls) && have_tc) {
            special_cls = p.contains("cls") && p["cls"].is_array() && !p["cls"].empty() ? p["cls"][0] : special_bos;
            tc["cls_token"] = special_cls;
          }
          if (!truthy(special_sep) && have_tc) {
            special_sep = p.contains("sep") && p["sep"].is_array() && !p["sep"].empty() ? p["sep"][0] : special_eos;
            tc["sep_token"] = special_sep;
          }
          continue;
        }
        if (ptype != "TemplateProcessing") continue;
        const json single = get(p, "single").is_array() ? p["single"] : json::array();
        json pair = get(p, "pair").is_array() ? p["pair"] : json::array();
        auto special_id = [](const json& e) { return get(get(e, "SpecialToken"), "id"); };
        json special_first, special_last;
        if (single.size() > 1) {
          special_first = special_id(single.front());
          if (truthy(special_first)) {
            if (!have_tc) special_bos = special_first;
            else if (special_first != special_bos && special_first != special_cls) {
              if (!truthy(special_bos)) tc["bos_token"] = special_bos = special_first;
              if (!truthy(special_cls)) tc["cls_token"] = special_cls = special_first;
            }
            set_add("bos", special_first == special_bos || special_first == special_cls);
          }
          special_last = special_id(single.back());
          if (truthy(special_last)) {
            if (!have_tc) special_eos = special_last;
            else if (special_last != special_eos) {
              if (std::find(types.begin(), types.end(), "eot") == types.end()) {
                types.push_back("eot");
                tc["eot_token"] = special_eos;
              } else if (std::find(types.begin(), types.end(), "eom") == types.end()) {
                types.push_back("eom");
                tc["eom_token"] = special_eos;
              }
              tc["eos_token"] = special_eos = special_last;
            }
            set_add("eos", special_last == special_eos);
          }
        }
        if (!pair.empty()) {
          size_t start = truthy(special_first) && special_id(pair.front()) == special_first ? 1 : 0;
          size_t stop = truthy(special_last) && special_id(pair.back()) == special_last ? pair.size() - 1 : pair.size();
          json mid = json::array();
          for (size_t i = start; i < stop; ++i) mid.push_back(pair[i]);
          if (!mid.empty()) {
            const json a = get(get(mid.front(), "Sequence"), "id"), b = get(get(mid.back(), "Sequence"), "id");
            json inner = json::array();
            for (size_t i = 1; i + 1 < mid.size(); ++i) inner.push_back(mid[i]);
            if (a == "A" && b == "B" && !inner.empty()) {
              bool add_sep = false;
              json e = special_id(inner[0]);
              if (truthy(e) && (e == special_sep || e == special_eos) && !truthy(special_last)) add_sep = true;
              if (inner.size() == 2) {
                e = special_id(inner[1]);
                if (truthy(e) && (e == special_sep || e == special_eos)) add_sep = true;
              }
              set_add("sep", add_sep);
              if (add_sep && !truthy(special_sep) && have_tc) tc["sep_token"] = special_eos;
            }
          }
        }
      }
    }
  }
  if (have_tc) {
    json tmpl = tc.contains("chat_template") ? tc["chat_template"]
                : !chat_template_file.empty() ? json(chat_template_file)
                                              : json();
    if (tmpl.is_string()) out.chat_template = tmpl.get<std::string>();
    else if (tmpl.is_array())
      for (const json& e : tmpl)
        if (get(e, "name") == "default" && get(e, "template").is_string()) out.chat_template = e["template"].get<std::string>();
    for (const std::string& typ : types) {
      const json& add = get(tc, ("add_" + typ + "_token").c_str());
      if (add.is_boolean()) set_add(typ, add.get<bool>());
      auto c = token_content(get(tc, (typ + "_token").c_str()));
      if (!c) continue;
      if (added_tokens.is_array())
        for (const json& a : added_tokens)
          if (get(a, "content") == *c) {
            set_id(typ, get(a, "id"));
            break;
          }
    }
  }
  if (config.is_object())
    for (const std::string& typ : types) {
      json id = get(config, (typ + "_token_id").c_str());
      if (id.is_null() && config.contains("text_config")) id = get(config["text_config"], (typ + "_token_id").c_str());
      set_id(typ, id);
    }
  // cls has no GGUF key (SpecialVocab skips what GGUFWriter has no add_<type>_token_id / add_add_<type>_token for)
  std::erase_if(out.ids, [](const auto& p) { return p.first == "cls"; });
  std::erase_if(out.add, [](const auto& p) { return p.first != "bos" && p.first != "eos" && p.first != "sep"; });
  return out;
  } catch (const json::exception& e) {
    return make_error(errc::bad_format, where + ": tokenizer.json / tokenizer_config.json / config.json: unexpected "
                                                "JSON type (" + std::string(e.what()) + ")");
  }
}

}  // namespace razor
