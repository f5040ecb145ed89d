#include "jobs/job_params.h"

#include "engine/tokenizer.h"
#include "jobs/methods.h"
#include "model/recipe.h"
#include "util/atomic_file.h"

namespace razor::jobs::job_params {

std::string str(const json& p, const char* key) {
  auto it = p.find(key);
  return it != p.end() && it->is_string() ? it->get<std::string>() : std::string();
}
int64_t num(const json& p, const char* key, int64_t def) {
  auto it = p.find(key);
  return it != p.end() && it->is_number_integer() ? it->get<int64_t>() : def;
}
double real(const json& p, const char* key, double def) {
  auto it = p.find(key);
  return it != p.end() && it->is_number() ? it->get<double>() : def;
}
bool flag(const json& p, const char* key) {
  auto it = p.find(key);
  return it != p.end() && it->is_boolean() && it->get<bool>();
}
std::vector<std::string> list(const json& p, const char* key) {
  std::vector<std::string> v;
  auto it = p.find(key);
  if (it == p.end()) return v;
  if (it->is_string()) {
    v = split_list(it->get<std::string>());
  } else if (it->is_array()) {
    for (auto& e : *it)
      if (e.is_string()) v.push_back(e.get<std::string>());
  }
  return v;
}
status range(const json& p, const char* key, int64_t lo, int64_t hi) {
  int64_t v = num(p, key, lo);
  if (v < lo || v > hi)
    return make_error(errc::invalid_argument, std::string("params.") + key + " must be in [" + std::to_string(lo) +
                                                  ", " + std::to_string(hi) + "]");
  return {};
}

result<std::vector<int32_t>> protocol_tokens(const std::string& model, const std::string& text_path) {
  RAZOR_ASSIGN_OR_RETURN(std::string text, read_text_file(text_path));  // regular files only
  RAZOR_ASSIGN_OR_RETURN(bpe_tokenizer tk, bpe_tokenizer::load(model + "/tokenizer.json"));
  return engine::protocol_tokens(tk, text, text_path);
}

json kl_json(const engine::kl_result& r, int topk) {
  return {{"ppl", r.model.ppl},       {"ref_ppl", r.ref.ppl},   {"kl_mean", r.kl_mean},
          {"kl_p99", r.kl_p99},       {"kl_p999", r.kl_p999},   {"kl_max", r.kl_max},
          {"topk_kl", r.topk_kl},     {"topk", topk},           {"same_top1", r.same_top1},
          {"n_predictions", r.n_positions}, {"tokens_per_s", r.model.tokens_per_s}};
}

}  // namespace razor::jobs::job_params
