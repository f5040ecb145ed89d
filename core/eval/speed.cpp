#include "eval/speed.h"

#include <algorithm>
#include <random>

#include "util/gpu_count.h"

namespace razor::eval {

std::string speed_prompt(int pieces, const std::string& nonce) {
  static const char* const kWords[] = {"the", "model", "reads", "a", "long", "report", "about", "rivers", "and",
                                       "mountains", "in", "spring", "while", "numbers", "grow", "slowly", "over",
                                       "many", "quiet", "years"};
  std::string s = nonce + "\n";
  std::mt19937 rng{uint32_t(pieces)};
  for (int i = 0; i < pieces; ++i) {
    if (i % 8 == 7) s += std::to_string(rng() % 1000);
    else s += kWords[rng() % (sizeof kWords / sizeof *kWords)];
    s += i % 16 == 15 ? ".\n" : " ";
  }
  return s + "\nSummarise the text above.";
}

result<std::vector<speed_point>> measure_speed(client& c, const std::string& model, const speed_options& o) {
  std::vector<speed_point> out;
  std::random_device rd;
  chat_request r;
  r.model = model;
  r.temperature = 0;
  r.top_p = 1;
  r.top_k = 1;
  r.enable_thinking = false;
  r.max_tokens = 1;
  // Warm-up, and how many of the filler's pieces make a token with this server's tokenizer.
  constexpr int kCalibrationPieces = 256;
  r.prompt = speed_prompt(kCalibrationPieces, "warm-up " + std::to_string(rd()));
  auto cal = c.chat(r);
  if (!cal.ok()) return make_error(cal.error().code(), "speed warm-up: " + cal.error().message());
  const double pieces_per_token = kCalibrationPieces / double(std::max(1, cal->prompt_tokens));
  for (int ctx : o.contexts) {
    const std::string where = "speed at " + std::to_string(ctx) + " tokens: ";
    r.prompt = speed_prompt(std::max(1, int(ctx * pieces_per_token + 0.5)),
                            "run " + std::to_string(rd()) + "-" + std::to_string(ctx));
    r.max_tokens = 1;
    r.ignore_eos = false;
    auto pre = c.chat(r);
    if (!pre.ok()) return make_error(pre.error().code(), where + pre.error().message());
    r.max_tokens = std::max(2, o.gen_tokens);
    r.ignore_eos = true;
    auto dec = c.chat(r);
    if (!dec.ok()) return make_error(dec.error().code(), where + dec.error().message());
    speed_point p;
    p.context = ctx;
    p.prompt_tokens = pre->prompt_tokens;
    p.generated = dec->completion_tokens;
    if (pre->timings && dec->timings && pre->timings->prompt_ms > 0 && dec->timings->predicted_ms > 0) {
      p.method = "server timings";
      p.prefill_tok_s = pre->timings->prompt_n / (pre->timings->prompt_ms / 1000.0);
      p.decode_tok_s = dec->timings->predicted_n / (dec->timings->predicted_ms / 1000.0);
    } else {
      p.method = "client wall clock";
      if (pre->seconds > 0) p.prefill_tok_s = pre->prompt_tokens / pre->seconds;
      const double dt = dec->seconds - pre->seconds;
      if (dt > 0 && dec->completion_tokens > 1) p.decode_tok_s = (dec->completion_tokens - 1) / dt;
    }
    p.gpu_memory_used = nvml_memory_used_bytes();
    out.push_back(p);
  }
  return out;
}

nlohmann::json speed_json(const speed_options& o, const std::vector<speed_point>& points) {
  nlohmann::json pts = nlohmann::json::array();
  std::optional<uint64_t> peak;
  for (const auto& p : points) {
    nlohmann::json j = {{"context", p.context},
                        {"prompt_tokens", p.prompt_tokens},
                        {"generated", p.generated},
                        {"prefill_tok_s", p.prefill_tok_s},
                        {"decode_tok_s", p.decode_tok_s},
                        {"method", p.method}};
    if (p.gpu_memory_used) {
      j["gpu_memory_used_bytes"] = *p.gpu_memory_used;
      peak = std::max(peak.value_or(0), *p.gpu_memory_used);
    }
    pts.push_back(std::move(j));
  }
  nlohmann::json j = {{"gen_tokens", o.gen_tokens}, {"points", std::move(pts)}};
  if (peak) {
    j["peak_gpu_memory_used_bytes"] = *peak;
    j["gpu_memory_note"] = "NVML: every GPU of the machine that ran razor eval, all processes";
  }
  return j;
}

}  // namespace razor::eval
