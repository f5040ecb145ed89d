// The parameter readers the job handlers share (job_handlers.cpp, job_gguf.cpp, job_allocate.cpp): params
// were checked and completed by apply_schema (methods.h), so these only read them.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/eval.h"
#include "util/status.h"

namespace razor::jobs::job_params {

using nlohmann::json;

std::string str(const json& p, const char* key);                    // "" when absent
int64_t num(const json& p, const char* key, int64_t def);
double real(const json& p, const char* key, double def);
bool flag(const json& p, const char* key);                          // false when absent
std::vector<std::string> list(const json& p, const char* key);     // a comma list or an array of strings
status range(const json& p, const char* key, int64_t lo, int64_t hi);  // error naming params.<key>

// The tokens of a text file with the model's tokenizer, as the protocol's evaluations count them.
result<std::vector<int32_t>> protocol_tokens(const std::string& model, const std::string& text_path);

// A KL evaluation as the jobs report it.
json kl_json(const engine::kl_result& r, int topk);

}  // namespace razor::jobs::job_params
