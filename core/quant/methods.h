// LOCAL STUB of helper E1's core/quant/methods.h (branch qalgo): the agreed interface only, so that qcompare builds
// before qalgo lands. Deleted when qalgo is merged. rtn_asym is real; awq / gptq / hqq fall back to rtn_asym here.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace razor::quant {

enum class quant_method { clip, absmax, rtn_asym, awq, gptq, hqq };
result<quant_method> parse_quant_method(std::string_view name);
std::string_view quant_method_name(quant_method m);
bool quant_method_needs_tokens(quant_method m);
struct calib_view { const float* x = nullptr; int64_t n = 0; int64_t cols = 0; };
struct method_options { int bits = 3; int64_t group = 128; double gptq_damp = 0.01; int64_t gptq_block = 128;
                        int awq_grid = 20; int hqq_iters = 20; };
struct method_report { std::string fallback; };
result<std::vector<float>> fake_quant_method(quant_method m, const float* w, int64_t rows, int64_t cols,
                                             const calib_view& tokens, const method_options& o, method_report* rep = nullptr);
double output_nmse(const float* w, const float* wq, int64_t rows, int64_t cols, const calib_view& tokens);

}  // namespace razor::quant
