// The `recover` job (razor recover, docs/recovery-cli.md): on-policy distillation of a quantized student toward its
// BF16 teacher, core/recover's phases A-E. Progress: one stream whose `what` starts with the phase letter
// ("A: step 3: 12 unfinished", "C: step 5 loss 0.41 kl 0.40 kl_ema 0.42"); every train_log.jsonl entry is also
// a log message "train {json}" (progress is throttled, log messages are not), for the workbench's loss / KL curve.
#include <filesystem>

#include "jobs/job_handlers.h"
#include "jobs/job_params.h"
#include "recover/recover.h"
#include "util/json_limits.h"

namespace razor::jobs {

using nlohmann::json;
using namespace job_params;

result<json> job_recover(const json& p, job_context& ctx) {
  recover::recover_options o;
  o.teacher = str(p, "teacher");
  o.student = str(p, "student");
  o.recipe = str(p, "recipe");
  o.out = str(p, "out");
  o.work = str(p, "work");
  o.phases = str(p, "phases");
  o.text = str(p, "text");
  o.eval_text = str(p, "eval_text");
  // The integer params' ranges (the method table's types say only "integer").
  struct bound {
    const char* key;
    int64_t lo, hi;
  };
  for (const bound& b : {bound{"prompts", 1, 1 << 20},
                         bound{"k", 1, 1 << 12},
                         bound{"prompt_len", 1, 1 << 20},
                         bound{"max_new", 0, 1 << 20},
                         bound{"top_k", 0, 1 << 24},
                         bound{"seed", 0, INT64_MAX},
                         bound{"gen_batch", 1, 1 << 16},
                         bound{"topk", 1, 1 << 16},
                         bound{"max_len", 2, int64_t(1) << 30},
                         bound{"rank", 1, 1 << 16},
                         bound{"epochs", 1, 1 << 16},
                         bound{"accum", 1, 1 << 16},
                         bound{"nproc", 1, 1 << 10},
                         bound{"threads", 0, 1 << 16},
                         bound{"train_max_len", 2, int64_t(1) << 30},
                         bound{"eval_windows", 1, 1 << 20},
                         bound{"eval_ctx", 2, 1 << 20},
                         bound{"eval_batch", 1, 1 << 16},
                         bound{"text_pieces", 0, 1 << 20},
                         bound{"text_piece_len", 2, 1 << 20}})
    RAZOR_TRY(range(p, b.key, b.lo, b.hi));
  o.prompts = int(num(p, "prompts", o.prompts));
  o.k = int(num(p, "k", o.k));
  o.prompt_len = int(num(p, "prompt_len", o.prompt_len));
  o.max_new = int(num(p, "max_new", o.max_new));
  o.sampling.temperature = real(p, "temperature", o.sampling.temperature);
  o.sampling.top_p = real(p, "top_p", o.sampling.top_p);
  o.sampling.top_k = int(num(p, "top_k", o.sampling.top_k));
  RAZOR_TRY(recover::check_sampling(o.sampling));
  o.seed = uint64_t(num(p, "seed", 0));
  o.gen_batch = size_t(num(p, "gen_batch", int64_t(o.gen_batch)));
  o.text_pieces = int(num(p, "text_pieces", o.text_pieces));
  o.text_piece_len = int(num(p, "text_piece_len", o.text_piece_len));
  o.topk = int(num(p, "topk", o.topk));
  o.max_len = num(p, "max_len", o.max_len);
  o.python = str(p, "python");
  o.rank = int(num(p, "rank", o.rank));
  o.scale = real(p, "scale", o.scale);
  o.epochs = int(num(p, "epochs", o.epochs));
  o.accum = int(num(p, "accum", o.accum));
  o.lr = real(p, "lr", o.lr);
  o.tau = real(p, "tau", o.tau);
  o.nproc = int(num(p, "nproc", o.nproc));
  o.threads = int(num(p, "threads", o.threads));
  o.train_max_len = num(p, "train_max_len", o.train_max_len);
  o.reverse = str(p, "kl") != "forward";
  o.finished_only = !flag(p, "all_rollouts");
  o.qat = !flag(p, "no_qat");
  o.eval_windows = int(num(p, "eval_windows", o.eval_windows));
  o.eval_ctx = int(num(p, "eval_ctx", o.eval_ctx));
  o.eval_batch = int(num(p, "eval_batch", o.eval_batch));
  engine_device(p, ctx, o.device, o.gpu_weights);
  o.allow_gpu_quantize = ctx.allow_gpu && !flag(p, "cpu");

  recover::recover_callbacks cb;
  cb.progress = [&ctx](char phase, double done, double total, const std::string& what) {
    return ctx.progress(done, total, (std::string(1, phase) + ": " + what).c_str());
  };
  cb.log = [&ctx](const std::string& line) { ctx.log("info", line); };
  cb.train_step = [&ctx](const json& e) { ctx.log("info", "train " + dump_json(e)); };
  cb.cancelled = [&ctx] { return ctx.is_cancelled(); };
  RAZOR_ASSIGN_OR_RETURN(json res, recover::run_recover(o, cb));
  if (res.contains("A")) ctx.emit_artifact({res["A"]["file"].get<std::string>(), "file", "", {}, {{"what", "rollouts"}}});
  if (res.contains("B")) ctx.emit_artifact({res["B"]["file"].get<std::string>(), "file", "", {}, {{"what", "teacher top-k"}}});
  if (res.contains("C")) {
    ctx.emit_artifact({res["C"]["adapter"].get<std::string>(), "file", "", {}, {{"what", "adapter"}}});
    ctx.emit_artifact({res["C"]["log"].get<std::string>(), "file", "", {}, {{"what", "training log"}}});
  }
  if (res.contains("D")) {
    ctx.emit_artifact({o.out, "checkpoint", "", {}, json::object()});
    ctx.emit_artifact({o.out + "/razor_quant_summary.json", "summary", "", {}, json::object()});
  }
  return res;
}

}  // namespace razor::jobs
