#include "recover/recover.h"

#include <chrono>
#include <cmath>
#include <filesystem>

#include "engine/eval.h"
#include "engine/tokenizer.h"
#include "model/checkpoint.h"
#include "model/recipe.h"
#include "recover/merge.h"
#include "recover/rollouts.h"
#include "recover/teacher.h"
#include "recover/trainer.h"
#include "util/atomic_file.h"
#include "util/json_limits.h"
#include "util/output_guard.h"
#include "util/paths.h"

namespace fs = std::filesystem;

namespace razor::recover {

using nlohmann::json;

result<std::set<char>> parse_phases(const std::string& s) {
  std::set<char> out;
  for (char c : s) {
    if (c == ',' || c == ' ') continue;
    const char u = char(std::toupper(static_cast<unsigned char>(c)));
    if (std::string(kRecoverPhases).find(u) == std::string::npos)
      return make_error(errc::invalid_argument, std::string("phases: unknown phase '") + c + "' in \"" + s +
                                                    "\" (the phases are A, B, C, D, E)");
    out.insert(u);
  }
  if (out.empty()) return make_error(errc::invalid_argument, "phases: none given (the phases are A, B, C, D, E)");
  return out;
}

namespace {

constexpr const char* kWorkFormat = "razor.recover_work/1";

double now_s() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

bool inside(const std::string& a, const std::string& b) {  // a is b or lies under it
  std::error_code ec;
  const fs::path pa = fs::weakly_canonical(a, ec), pb = fs::weakly_canonical(b, ec);
  auto ia = pa.begin();
  for (auto ib = pb.begin(); ib != pb.end(); ++ib, ++ia)
    if (ia == pa.end() || *ia != *ib) return false;
  return true;
}

// The work folder: created, or one razor recover made (its recover.json), or an empty folder.
status open_work(const std::string& work, const std::vector<std::string>& inputs) {
  for (auto& in : inputs)
    if (!in.empty() && (inside(work, in) || inside(in, work)))
      return make_error(errc::invalid_argument, "work folder " + work + " is, contains or lies inside the input " + in);
  std::error_code ec;
  if (fs::is_symlink(work, ec)) return make_error(errc::invalid_argument, work + " is a symbolic link: not a work folder");
  if (fs::exists(work, ec)) {
    if (!fs::is_directory(work, ec)) return make_error(errc::invalid_argument, work + " exists and is not a folder");
    const std::string marker = work + "/recover.json";
    if (fs::is_regular_file(marker, ec)) {
      auto st = razor_json_file(marker, kWorkFormat);
      if (!st) return make_error(errc::invalid_argument, work + " is not razor recover's work folder: " + st.to_string());
      return {};
    }
    if (!fs::is_empty(work, ec))
      return make_error(errc::invalid_argument, work + " exists with files razor recover did not write (no recover.json): "
                                                       "give another --work folder");
  } else {
    fs::create_directories(work, ec);
    if (ec) return make_error(errc::io, work + ": " + ec.message());
  }
  return {};
}

std::string need_file(const std::string& path, char phase, char by) {
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) return {};
  return std::string("phase ") + phase + " needs " + path + ", which phase " + by + " writes (run it first)";
}

result<std::string> text_path(const std::string& given, bool calibration) {
  if (!given.empty()) return given;
  std::string t = calibration ? bundled_calib_text() : bundled_eval_text();
  if (t.empty())
    return make_error(errc::not_found, std::string("no --") + (calibration ? "text" : "eval-text") +
                                           " given and the bundled text is not found (set RAZOR_DATA)");
  return t;
}

result<std::vector<int32_t>> text_tokens(const std::string& model_dir, const std::string& path) {
  RAZOR_ASSIGN_OR_RETURN(bpe_tokenizer tk, bpe_tokenizer::load(model_dir + "/tokenizer.json"));
  RAZOR_ASSIGN_OR_RETURN(std::string text, read_text_file(path));
  return engine::protocol_tokens(tk, text, path);
}

engine::run_options run_opts(const recover_options& o) {
  engine::run_options ro;
  ro.device = o.device;
  ro.gpu_weights = o.gpu_weights;
  return ro;
}

}  // namespace

result<json> run_recover(const recover_options& o, const recover_callbacks& cb) {
  RAZOR_ASSIGN_OR_RETURN(std::set<char> phases, parse_phases(o.phases));
  if (o.teacher.empty()) return make_error(errc::invalid_argument, "the teacher (the BF16 checkpoint) is required");
  if (o.out.empty() && (phases.count('D') || phases.count('E') || o.work.empty()))
    return make_error(errc::invalid_argument, "--out is required");
  if (o.student.empty() && (phases.count('A') || phases.count('C') || phases.count('E')))
    return make_error(errc::invalid_argument, "--student is required (the quantized checkpoint)");
  if (o.recipe.empty() && phases.count('D'))
    return make_error(errc::invalid_argument, "--recipe is required for phase D (the recipe the student was made with)");
  const std::string work = o.work.empty() ? o.out + ".opd" : o.work;
  RAZOR_TRY(open_work(work, {o.teacher, o.student, o.out}));
  const std::string rollouts = work + "/rollouts.jsonl", meta = work + "/rollouts_meta.json",
                    topk = work + "/teacher_topk.safetensors", adapter = work + "/adapter.safetensors",
                    train_log = work + "/train_log.jsonl";
  json res{{"work", work}, {"out", o.out}, {"teacher", o.teacher}, {"student", o.student}};
  std::string ph;
  for (char c : phases) {
    if (!ph.empty()) ph += ',';
    ph += c;
  }
  res["phases"] = ph;
  {
    json wj{{"format", kWorkFormat}, {"teacher", o.teacher}, {"student", o.student}, {"out", o.out},
            {"recipe", o.recipe}, {"phases", ph}};
    RAZOR_TRY(write_file_atomic(work + "/recover.json", dump_json(wj, 1) + "\n"));
  }
  auto log = [&](const std::string& s) {
    if (cb.log) cb.log(s);
  };
  auto phase_progress = [&](char phase) -> progress_fn {
    return [&cb, phase](double done, double total, const char* what) {
      if (cb.cancelled && cb.cancelled()) return false;
      return !cb.progress || cb.progress(phase, done, total, what ? what : "");
    };
  };

  // ---- A: student rollouts ----
  if (phases.count('A')) {
    const double t0 = now_s();
    RAZOR_ASSIGN_OR_RETURN(checkpoint sck, checkpoint::open(o.student));
    RAZOR_ASSIGN_OR_RETURN(std::string tp, text_path(o.text, true));
    RAZOR_ASSIGN_OR_RETURN(std::vector<int32_t> stream, text_tokens(o.student, tp));
    RAZOR_ASSIGN_OR_RETURN(prompt_set ps, pick_prompts(stream, o.prompts, o.prompt_len));
    rollout_options ro;
    ro.k = o.k;
    ro.max_new = o.max_new;
    ro.sampling = o.sampling;
    ro.seed = o.seed;
    ro.eos = eos_ids(o.student, sck.config());
    ro.batch = o.gen_batch;
    ro.run = run_opts(o);
    ro.progress = phase_progress('A');
    log("A: " + std::to_string(o.prompts) + " prompts of " + std::to_string(o.prompt_len) + " tokens from " + tp + " x " +
        std::to_string(o.k) + " samples, up to " + std::to_string(o.max_new) + " new tokens (engine: " +
        (engine::resolve_backend(ro.run) == engine::backend::cuda ? "cuda" : "cpu") + ")");
    auto wp = engine::checkpoint_weights(sck);
    RAZOR_ASSIGN_OR_RETURN(std::vector<rollout> rs, generate_rollouts(*wp, ps.prompts, ro));
    // Off-policy extra sequences (--text-pieces): teacher-forced pieces of the same calibration text, after the
    // rollouts, pid continuing the prompts' numbering; the trainer keeps them whatever --finished-only says.
    std::vector<size_t> piece_offsets;
    if (o.text_pieces > 0) {
      if (o.text_piece_len < 2) return make_error(errc::invalid_argument, "--text-piece-len must be at least 2");
      RAZOR_ASSIGN_OR_RETURN(prompt_set tp_set, pick_prompts(stream, o.text_pieces, o.text_piece_len));
      piece_offsets = tp_set.offsets;
      for (size_t i = 0; i < tp_set.prompts.size(); ++i) {
        rollout r;
        r.pid = o.prompts + int64_t(i);
        r.prompt_ids.assign(tp_set.prompts[i].begin(), tp_set.prompts[i].begin() + 1);
        r.gen_ids.assign(tp_set.prompts[i].begin() + 1, tp_set.prompts[i].end());
        r.finish_reason = "text";
        rs.push_back(std::move(r));
      }
    }
    RAZOR_TRY(write_rollouts(rs, rollouts));
    size_t stopped = 0, gen = 0;
    for (auto& r : rs) {
      stopped += r.finish_reason == "stop";
      gen += r.finish_reason == "text" ? 0 : r.gen_ids.size();
    }
    json mj{{"format", "razor.opd_rollouts/1"}, {"model", o.student}, {"text", tp}, {"stream_tokens", ps.stream_tokens},
            {"prompts", o.prompts}, {"prompt_len", o.prompt_len}, {"offsets", ps.offsets}, {"k", o.k},
            {"max_new", o.max_new}, {"temperature", o.sampling.temperature}, {"top_p", o.sampling.top_p},
            {"top_k", o.sampling.top_k}, {"seed", o.seed}, {"eos", ro.eos}, {"rollouts", rs.size() - piece_offsets.size()},
            {"text_pieces", piece_offsets.size()}, {"text_piece_len", o.text_piece_len}, {"text_piece_offsets", piece_offsets}};
    RAZOR_TRY(write_file_atomic(meta, dump_json(mj, 1) + "\n"));
    res["A"] = {{"rollouts", rs.size() - piece_offsets.size()}, {"text_pieces", piece_offsets.size()},
                {"stopped", stopped}, {"generated_tokens", gen}, {"file", rollouts},
                {"meta", meta}, {"seconds", now_s() - t0}};
    log("A: " + std::to_string(rs.size() - piece_offsets.size()) + " rollouts (" + std::to_string(stopped) +
        " ended at eos), " + std::to_string(gen) + " tokens, " + std::to_string(piece_offsets.size()) +
        " teacher-forced text pieces -> " + rollouts);
  }

  // ---- B: teacher top-k ----
  if (phases.count('B')) {
    const double t0 = now_s();
    if (auto m = need_file(rollouts, 'B', 'A'); !m.empty()) return make_error(errc::not_found, m);
    RAZOR_ASSIGN_OR_RETURN(checkpoint tck, checkpoint::open(o.teacher));
    RAZOR_ASSIGN_OR_RETURN(std::vector<rollout> rs, read_rollouts(rollouts, tck.config().vocab_size));
    teacher_options to;
    to.topk = o.topk;
    to.max_len = size_t(o.max_len);
    to.model = o.teacher;
    to.run = run_opts(o);
    to.progress = phase_progress('B');
    auto wp = engine::checkpoint_weights(tck);
    RAZOR_ASSIGN_OR_RETURN(teacher_report tr, score_teacher(*wp, rs, topk, to));
    res["B"] = {{"rows", tr.rows}, {"scored", tr.scored}, {"dropped", tr.dropped}, {"positions", tr.positions},
                {"k", o.topk}, {"file", topk}, {"seconds", now_s() - t0}};
    log("B: teacher top-" + std::to_string(o.topk) + " on " + std::to_string(tr.positions) + " positions of " +
        std::to_string(tr.scored) + " rollouts (" + std::to_string(tr.dropped) + " dropped) -> " + topk);
  }

  // ---- C: training (tools/opd/train.py) ----
  if (phases.count('C')) {
    const double t0 = now_s();
    for (auto& [f, by] : {std::pair{rollouts, 'A'}, std::pair{topk, 'B'}})
      if (auto m = need_file(f, 'C', by); !m.empty()) return make_error(errc::not_found, m);
    trainer_options to;
    to.python = o.python;
    if (to.python.empty()) {
      RAZOR_ASSIGN_OR_RETURN(to.python, trainer_python());
    }
    RAZOR_ASSIGN_OR_RETURN(to.script, find_trainer_script());
    to.student = o.student;
    to.rollouts = rollouts;
    to.teacher_topk = topk;
    to.adapter_out = adapter;
    to.log = train_log;
    to.rank = o.rank;
    to.scale = o.scale;
    to.tau = o.tau;
    to.lr = o.lr;
    to.epochs = o.epochs;
    to.accum = o.accum;
    to.nproc = o.nproc;
    to.threads = o.threads;
    to.seed = int(o.seed);
    to.max_len = o.train_max_len;
    to.reverse = o.reverse;
    to.finished_only = o.finished_only;
    if (o.qat) to.qat_base = o.teacher;
    std::error_code ec;
    fs::remove(train_log, ec);  // razor's own (the work folder's), rewritten by this run
    const auto argv = trainer_argv(to);
    std::string cmd;
    for (auto& a : argv) cmd += (cmd.empty() ? "" : " ") + a;
    log("C: " + cmd);
    json last = json::object();
    trainer_callbacks tc;
    tc.on_output = [&](const std::string& l) { log("C: " + l); };
    tc.on_step = [&](const json& e) {
      last = e;
      if (cb.train_step) cb.train_step(e);
      if (cb.progress && e.contains("step") && e["step"].is_number()) {
        std::string what = "step " + e["step"].dump();
        for (const char* k : {"loss", "kl", "kl_ema"})
          if (e.contains(k) && e[k].is_number()) what += std::string(" ") + k + " " + e[k].dump();
        cb.progress('C', e["step"].get<double>(), 0, what);
      }
    };
    tc.cancelled = cb.cancelled;
    RAZOR_TRY(run_trainer(argv, train_log, tc));
    if (auto m = need_file(adapter, 'D', 'C'); !m.empty())
      return make_error(errc::external, "the trainer ended without writing " + adapter);
    res["C"] = {{"adapter", adapter}, {"log", train_log}, {"last", last}, {"seconds", now_s() - t0}};
  }

  // ---- D: merge and re-quantize ----
  if (phases.count('D')) {
    const double t0 = now_s();
    if (auto m = need_file(adapter, 'D', 'C'); !m.empty()) return make_error(errc::not_found, m);
    RAZOR_ASSIGN_OR_RETURN(checkpoint tck, checkpoint::open(o.teacher));
    RAZOR_ASSIGN_OR_RETURN(recipe r, load_recipe(o.recipe));
    RAZOR_ASSIGN_OR_RETURN(lora_adapter ad, load_adapter(adapter, tck.config()));
    // The student's own summary names the recipe it was made with: a different one changes the footprint.
    if (!o.student.empty()) {
      json_limits lim;
      lim.max_bytes = size_t(256) << 20;
      auto sj = read_json_file(o.student + "/razor_quant_summary.json", lim);
      recipe rr = r;
      rr.resolve(tck.config());
      if (sj.ok() && sj->is_object() && sj->contains("recipe") && (*sj)["recipe"] != rr.to_json())
        log("D: warning: " + o.student + "/razor_quant_summary.json records another recipe than " + o.recipe +
            ": the recovered model will not have the student's footprint");
    }
    quant::quantize_options qo;
    qo.allow_gpu = o.allow_gpu_quantize;
    qo.extra_inputs = {work};
    if (!o.student.empty()) qo.extra_inputs.push_back(o.student);
    log("D: merging " + adapter + " (rank " + std::to_string(ad.rank) + ", scale " + json(ad.scale).dump() + ", " +
        std::to_string(ad.layers.size()) + " layers) into " + o.teacher + " and quantizing with " + r.name);
    RAZOR_ASSIGN_OR_RETURN(quant::quantize_report rep, merge_adapter(tck, r, ad, o.out, qo, phase_progress('D')));
    res["D"] = {{"out", o.out}, {"recipe", r.name}, {"backend", rep.backend}, {"rank", ad.rank}, {"scale", ad.scale},
                {"layers", ad.layers.size()}, {"totals", rep.summary.value("totals", json::object())},
                {"seconds", now_s() - t0}};
  }

  // ---- E: baseline vs recovered against the teacher ----
  if (phases.count('E')) {
    const double t0 = now_s();
    std::error_code ec;
    if (!fs::is_directory(o.out, ec))
      return make_error(errc::not_found, "phase E needs the recovered checkpoint " + o.out + ", which phase D writes (run it first)");
    RAZOR_ASSIGN_OR_RETURN(std::string ep, text_path(o.eval_text, false));
    RAZOR_ASSIGN_OR_RETURN(checkpoint tck, checkpoint::open(o.teacher));
    RAZOR_ASSIGN_OR_RETURN(checkpoint sck, checkpoint::open(o.student));
    RAZOR_ASSIGN_OR_RETURN(checkpoint rck, checkpoint::open(o.out));
    RAZOR_ASSIGN_OR_RETURN(std::vector<int32_t> tokens, text_tokens(o.teacher, ep));
    engine::eval_options eo;
    eo.windows = o.eval_windows;
    eo.ctx = o.eval_ctx;
    eo.batch_windows = o.eval_batch;
    eo.run = run_opts(o);
    auto tw = engine::checkpoint_weights(tck);
    json ej{{"text", ep}, {"windows", o.eval_windows}, {"ctx", o.eval_ctx}};
    double teacher_ppl = 0;
    for (auto [name, ck] : {std::pair{"baseline", &sck}, std::pair{"recovered", &rck}}) {
      eo.run.progress = [&cb, n = std::string(name)](double d, double t, const char*) {
        if (cb.cancelled && cb.cancelled()) return false;
        return !cb.progress || cb.progress('E', d, t, n + ": windows");
      };
      auto mw = engine::checkpoint_weights(*ck);
      RAZOR_ASSIGN_OR_RETURN(engine::kl_result kr, engine::kl_divergence(*mw, *tw, tokens, eo));
      ej[name] = {{"model", ck->dir()}, {"kl_mean", kr.kl_mean}, {"kl_p99", kr.kl_p99}, {"topk_kl", kr.topk_kl},
                  {"same_top1", kr.same_top1}, {"ppl", kr.model.ppl}};
      teacher_ppl = kr.ref.ppl;
      log(std::string("E: ") + name + ": KL to the teacher " + json(kr.kl_mean).dump() + ", ppl " + json(kr.model.ppl).dump());
    }
    ej["teacher_ppl"] = teacher_ppl;
    const double kb = ej["baseline"]["kl_mean"].get<double>(), kr = ej["recovered"]["kl_mean"].get<double>();
    ej["kl_reduction"] = kb > 0 ? (kb - kr) / kb : 0.0;
    ej["seconds"] = now_s() - t0;
    res["E"] = ej;
  }
  return res;
}

}  // namespace razor::recover
