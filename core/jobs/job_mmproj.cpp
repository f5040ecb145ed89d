// The mmproj job (razor mmproj): the vision tower's clip GGUF for llama-server --mmproj (gguf/mmproj.h).
#include <filesystem>

#include "ggml/types.h"
#include "gguf/mmproj.h"
#include "jobs/job_handlers.h"
#include "jobs/job_params.h"
#include "model/checkpoint.h"

namespace razor::jobs {

using nlohmann::json;
using namespace job_params;

result<json> job_mmproj(const json& p, job_context& ctx) {
  const std::string model = str(p, "model"), out = str(p, "out");
  const bool dry_run = flag(p, "dry_run");
  RAZOR_TRY(range(p, "threads", 0, 4096));
  if (!dry_run && out.empty()) return make_error(errc::invalid_argument, "params.out is required (the output .gguf)");
  gguf::mmproj_options o;
  RAZOR_ASSIGN_OR_RETURN(o.type, ggml::type_from_name(str(p, "type").empty() ? "f16" : str(p, "type")));
  o.name = str(p, "name");
  o.threads = int(num(p, "threads", 0));
  o.progress = ctx.progress;
  gguf::mmproj_plan plan;
  if (dry_run) {
    RAZOR_ASSIGN_OR_RETURN(checkpoint ck, checkpoint::open(model));
    RAZOR_ASSIGN_OR_RETURN(plan, gguf::plan_mmproj(ck, o));
  } else {
    std::error_code ec;
    if (auto parent = std::filesystem::path(out).parent_path(); !parent.empty())
      std::filesystem::create_directories(parent, ec);
    RAZOR_ASSIGN_OR_RETURN(plan, gguf::write_mmproj(model, out, o));
    for (auto& path : plan.paths) ctx.emit_artifact({path, "gguf", "", {}, json::object()});
  }
  for (auto& n : plan.notes) ctx.log("info", "note: " + n);
  json ts = json::array();
  uint64_t tensor_bytes = 0;
  for (auto& t : plan.tensors) {
    ts.push_back({{"name", t.name}, {"source", t.source}, {"ne", t.ne}, {"type", ggml::type_name(t.type)},
                  {"bytes", t.bytes}, {"why", t.why}});
    tensor_bytes += t.bytes;
  }
  json meta = json::object();
  for (auto& kv : plan.metadata) meta[kv.key] = kv.val.to_string(4);
  json j = {{"out", out},
            {"dry_run", dry_run},
            {"projector", gguf::kMmprojProjector},
            {"type", str(p, "type").empty() ? "f16" : str(p, "type")},
            {"metadata", meta},
            {"tensors", ts},
            {"n_tensors", plan.tensors.size()},
            {"tensor_bytes", tensor_bytes},
            {"file_bytes", plan.file_bytes},
            {"notes", plan.notes}};
  if (!dry_run) j["paths"] = plan.paths;
  return j;
}

}  // namespace razor::jobs
