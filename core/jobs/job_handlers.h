// The registry's heavier jobs (methods.cpp holds the table): each takes params already checked and completed
// by apply_schema (methods.h), so a key with a default is always present. The CLI runs the same handlers
// (app/cli/job_command.h) and prints their result; the worker sends it as the result event.
#pragma once
#include <nlohmann/json.hpp>

#include "engine/model_runner.h"
#include "jobs/methods.h"
#include "quant/quantize.h"

namespace razor::jobs {

result<nlohmann::json> job_probe(const nlohmann::json& p, job_context& ctx);
result<nlohmann::json> job_eval_ppl(const nlohmann::json& p, job_context& ctx);
result<nlohmann::json> job_pack(const nlohmann::json& p, job_context& ctx);
result<nlohmann::json> job_mmproj(const nlohmann::json& p, job_context& ctx);  // job_mmproj.cpp
result<nlohmann::json> job_validate_gguf(const nlohmann::json& p, job_context& ctx);
result<nlohmann::json> job_gguf_info(const nlohmann::json& p, job_context& ctx);
result<nlohmann::json> job_allocate(const nlohmann::json& p, job_context& ctx);
result<nlohmann::json> job_merge(const nlohmann::json& p, job_context& ctx);
result<nlohmann::json> job_study(const nlohmann::json& p, job_context& ctx);
result<nlohmann::json> job_recover(const nlohmann::json& p, job_context& ctx);  // job_recover.cpp
result<nlohmann::json> job_compare_methods(const nlohmann::json& p, job_context& ctx);  // job_compare_methods.cpp

// quantize's calibration tokens (job_compare_methods.cpp): for a recipe whose method needs them (awq, gptq), one
// pass of the reference engine over params.text (calib_tokens, tokens_per_expert, calib_seqlen); the source reads
// what `keep` holds; `info` gets what the summary's ptq_meta records. An empty source for the other methods.
// A --layers part keeps the tokens of its own layers only.
result<quant::calib_source> quantize_calibration(const nlohmann::json& p, const checkpoint& ck, const recipe& r,
                                                 const layer_selection& sel, job_context& ctx,
                                                 std::shared_ptr<void>& keep, nlohmann::json& info);

// params.device and params.gpu_weights of the engine jobs; a worker without GPU permission runs on the CPU.
void engine_device(const nlohmann::json& p, const job_context& ctx, engine::backend& device,
                   engine::gpu_precision& weights);

// The text a job reads when params.text is absent: the bundled held-out text (evaluation) or calibration text.
result<std::string> text_or_bundled(const nlohmann::json& p, bool calibration, const std::string& key = "text");

}  // namespace razor::jobs
