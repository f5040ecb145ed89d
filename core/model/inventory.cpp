#include "model/inventory.h"

#include <map>

#include "model/checkpoint.h"
#include "util/json_limits.h"

namespace razor {

nlohmann::json inventory_json(const checkpoint& ck, bool with_tensors) {
  const auto& c = ck.config();
  nlohmann::ordered_json j;
  j["format"] = "razor.inventory/1";
  j["path"] = ck.dir();
  j["model_type"] = c.model_type;
  j["adapter"] = ck.adapter().name;
  j["gguf_arch"] = ck.adapter().gguf_arch;
  j["architectures"] = c.architectures;
  j["layers"] = c.num_layers;
  j["hidden_size"] = c.hidden_size;
  j["vocab_size"] = c.vocab_size;
  std::map<std::string, int> lt;
  for (auto& s : c.layer_types) lt[s]++;
  if (lt.empty()) lt["full_attention"] = int(c.num_layers);
  j["layer_types"] = lt;
  std::string layout = "none";
  int64_t params = 0, bytes = 0;
  struct agg {
    int64_t tensors = 0, params = 0, bytes = 0;
  };
  std::map<std::string, agg> roles;
  std::map<std::string, int64_t> dtypes;
  nlohmann::ordered_json tensors = nlohmann::ordered_json::array();
  for (auto& t : ck.tensors()) {
    params += t.numel();
    bytes += int64_t(t.nbytes);
    auto& a = roles[std::string(role_name(t.cls.role))];
    a.tensors++;
    a.params += t.numel();
    a.bytes += int64_t(t.nbytes);
    dtypes[std::string(dtype_name(t.dt))] += t.numel();
    if (t.cls.role == tensor_role::routed_expert) layout = t.cls.fused ? "fused" : "per_expert";
    if (with_tensors) {
      nlohmann::ordered_json e;
      e["name"] = t.name;
      e["role"] = role_name(t.cls.role);
      e["layer"] = t.cls.layer;
      e["expert"] = t.cls.expert;
      e["proj"] = proj_name(t.cls.proj);
      e["fused"] = t.cls.fused;
      e["dtype"] = dtype_name(t.dt);
      e["shape"] = t.shape;
      e["bytes"] = t.nbytes;
      tensors.push_back(std::move(e));
    }
  }
  j["experts"] = {{"total", c.num_experts},
                  {"active", c.num_experts_per_tok},
                  {"shared", c.n_shared_experts},
                  {"moe_intermediate_size", c.moe_intermediate_size},
                  {"layout", layout}};
  j["params_total"] = params;
  j["bytes_total"] = bytes;
  j["shards"] = ck.shards();
  nlohmann::ordered_json r = nlohmann::ordered_json::object();
  for (auto& [k, a] : roles) r[k] = {{"tensors", a.tensors}, {"params", a.params}, {"bytes", a.bytes}};
  j["by_role"] = r;
  j["dtypes"] = dtypes;
  if (with_tensors) j["tensors"] = tensors;
  return nlohmann::json::parse(dump_json(j));
}

}  // namespace razor
