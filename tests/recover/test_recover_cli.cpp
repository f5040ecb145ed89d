// `razor recover` on the fixture (docs/recovery-cli.md): phases A and B write the contract's files, phase D merges
// an adapter the test writes and re-quantizes with the student's recipe (an ordinary checkpoint: the experts move,
// every other tensor is the student's), phase E reports KL and perplexity of both against the teacher; an adapter
// for another model and a work folder razor did not make are refused. (Phase C, the PyTorch trainer, is tested
// with tools/opd.)
#include <gtest/gtest.h>

#include <filesystem>

#include "common/test_util.h"
#include "model/checkpoint.h"
#include "model/safetensors.h"
#include "recover/adapter_writer.h"
#include "recover/rollouts.h"
#include "util/atomic_file.h"

using namespace razor;
using namespace razor::recover::test_support;
namespace fs = std::filesystem;

namespace {
const std::string kModel = std::string(RAZOR_MODELS_DIR) + "/tiny-qwen3-moe";

nlohmann::json last_json(const std::string& out) {
  // --json prints the result on the last line of stdout (stderr has the progress).
  size_t end = out.find_last_not_of('\n');
  size_t start = out.rfind('\n', end);
  return nlohmann::json::parse(out.substr(start == std::string::npos ? 0 : start + 1, end - start), nullptr, false);
}

std::vector<uint8_t> tensor_bytes(const checkpoint& ck, const std::string& name) {
  const tensor_entry* t = ck.find(name);
  if (!t) return {};
  return std::vector<uint8_t>(ck.data(*t), ck.data(*t) + t->nbytes);
}
}  // namespace

TEST(RecoverCli, PhasesABDEOnTheFixture) {
  test::scratch_dir d("recover-cli");
  const std::string student = d / "student", out = d / "recovered", work = d / "work";
  auto q = test::run_razor("quantize " + kModel + " --recipe uniform-int3 --out " + student + " --cpu");
  ASSERT_EQ(q.code, 0) << q.out;

  // A and B
  auto ab = test::run_razor("recover " + kModel + " --student " + student + " --recipe uniform-int3 --out " + out +
                            " --work " + work + " --phases A,B --prompts 3 --k 2 --prompt-len 8 --max-new 5 --json");
  ASSERT_EQ(ab.code, 0) << ab.out;
  auto j = last_json(ab.out);
  ASSERT_TRUE(j.is_object()) << ab.out;
  EXPECT_EQ(j["A"]["rollouts"], 6);
  EXPECT_EQ(j["B"]["scored"], 6);
  EXPECT_NE(ab.out.find("A: step"), std::string::npos) << ab.out;  // the per-step progress
  auto rs = recover::read_rollouts(work + "/rollouts.jsonl", 4096);
  ASSERT_TRUE(rs.ok()) << rs.error().to_string();
  ASSERT_EQ(rs->size(), 6u);
  for (auto& r : *rs) {
    EXPECT_EQ(r.prompt_ids.size(), 8u);
    EXPECT_TRUE(r.finish_reason == "stop" || r.gen_ids.size() == 5u);
  }
  auto meta = nlohmann::json::parse(test::slurp(work + "/rollouts_meta.json"));
  EXPECT_EQ(meta["offsets"].size(), 3u);  // the prompts' offsets written down
  EXPECT_EQ(meta["temperature"], 0.6);
  auto topk = safetensors_file::open(work + "/teacher_topk.safetensors");
  ASSERT_TRUE(topk.ok()) << topk.error().to_string();
  EXPECT_EQ(topk->header().tensors.size(), 12u);
  EXPECT_EQ(topk->header().metadata.at("format"), "razor-opd-teacher-1");
  EXPECT_EQ(topk->header().metadata.at("k"), "20");

  // D needs the adapter (phase C's output): without it, the message says so.
  auto no_adapter = test::run_razor("recover " + kModel + " --student " + student + " --recipe uniform-int3 --out " +
                                    out + " --work " + work + " --phases D");
  EXPECT_NE(no_adapter.code, 0);
  EXPECT_NE(no_adapter.out.find("adapter.safetensors"), std::string::npos) << no_adapter.out;
  EXPECT_FALSE(fs::exists(out));

  auto ck = checkpoint::open(kModel);
  ASSERT_TRUE(ck.ok());
  adapter_spec s = spec_for(ck->config(), 4);
  write_adapter(work + "/adapter.safetensors", s);
  auto de = test::run_razor("recover " + kModel + " --student " + student + " --recipe uniform-int3 --out " + out +
                            " --work " + work + " --phases D,E --cpu --eval-windows 2 --eval-ctx 64 --json");
  ASSERT_EQ(de.code, 0) << de.out;
  j = last_json(de.out);
  ASSERT_TRUE(j.is_object()) << de.out;
  EXPECT_EQ(j["D"]["rank"], 4);
  EXPECT_EQ(j["D"]["layers"], 4);
  for (const char* m : {"baseline", "recovered"}) {
    EXPECT_GT(j["E"][m]["kl_mean"].get<double>(), 0.0) << m;
    EXPECT_GT(j["E"][m]["ppl"].get<double>(), 1.0) << m;
  }
  EXPECT_GT(j["E"]["teacher_ppl"].get<double>(), 1.0);
  EXPECT_TRUE(j["E"].contains("kl_reduction"));
  // An ordinary checkpoint with quantize's summary: the experts moved, the rest is exactly the student.
  auto rec = checkpoint::open(out);
  auto stu = checkpoint::open(student);
  ASSERT_TRUE(rec.ok() && stu.ok());
  EXPECT_TRUE(fs::exists(out + "/razor_quant_summary.json"));
  EXPECT_EQ(tensor_bytes(*rec, "model.layers.1.self_attn.q_proj.weight"),
            tensor_bytes(*stu, "model.layers.1.self_attn.q_proj.weight"));
  EXPECT_EQ(tensor_bytes(*rec, "lm_head.weight"), tensor_bytes(*stu, "lm_head.weight"));
  EXPECT_NE(tensor_bytes(*rec, "model.layers.1.mlp.experts.3.gate_proj.weight"),
            tensor_bytes(*stu, "model.layers.1.mlp.experts.3.gate_proj.weight"));
  EXPECT_EQ(rec->tensors().size(), stu->tensors().size());
}

TEST(RecoverCli, RefusesAnAdapterForAnotherModelAndAForeignWorkFolder) {
  test::scratch_dir d("recover-cli");
  const std::string work = d / "work";
  auto ck = checkpoint::open(kModel);
  ASSERT_TRUE(ck.ok());
  // The work folder razor recover made (phase D alone still marks it), with an adapter of rank 4 but 8 experts.
  fs::create_directories(work);
  adapter_spec s = spec_for(ck->config(), 4);
  s.E = 8;
  write_adapter(work + "/adapter.safetensors", s);
  auto r = test::run_razor("recover " + kModel + " --recipe uniform-int3 --out " + (d / "out") + " --work " + work +
                           " --phases D");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("no recover.json"), std::string::npos) << r.out;  // a folder razor did not make: refused first
  ASSERT_TRUE(write_file_atomic(work + "/recover.json", "{\"format\": \"razor.recover_work/1\"}\n").ok());
  r = test::run_razor("recover " + kModel + " --recipe uniform-int3 --out " + (d / "out") + " --work " + work +
                      " --phases D");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("model.layers.0.mlp.experts.gate_up.lora_A has shape [8, 4, 256], the model needs [16, 4, 256]"),
            std::string::npos)
      << r.out;
  EXPECT_FALSE(fs::exists(d / "out"));
  // Unknown phases are named.
  r = test::run_razor("recover " + kModel + " --out " + (d / "out") + " --phases A,X");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("unknown phase 'X'"), std::string::npos) << r.out;
}

// All five phases in one run, phase C through a stand-in trainer (a shell script taking train.py's flags, found
// through RAZOR_OPD_TRAIN, run with --python /bin/sh) that logs two steps and writes the adapter the test made: the
// steps come back as "train {...}" lines, the adapter is merged, E compares.
TEST(RecoverCli, AllPhasesWithAStandInTrainer) {
  test::scratch_dir d("recover-cli");
  const std::string student = d / "student", out = d / "recovered";
  ASSERT_EQ(test::run_razor("quantize " + kModel + " --recipe uniform-int3 --out " + student + " --cpu").code, 0);
  auto ck = checkpoint::open(kModel);
  ASSERT_TRUE(ck.ok());
  write_adapter(d / "made.safetensors", spec_for(ck->config(), 2));
  const std::string script = d / "train.sh";
  ASSERT_TRUE(write_file_atomic(script, "#!/bin/sh\nout= log=\nwhile [ $# -gt 0 ]; do\n  case \"$1\" in\n"
                                        "    --out) out=$2; shift ;;\n    --log) log=$2; shift ;;\n  esac\n  shift\ndone\n"
                                        "echo '{\"step\": 0, \"loss\": 0.5, \"kl\": 0.25, \"kl_ema\": 0.25}' >> \"$log\"\n"
                                        "echo '{\"step\": 5, \"loss\": 0.4, \"kl\": 0.125, \"kl_ema\": 0.2}' >> \"$log\"\n"
                                        "cp \"" + (d / "made.safetensors") + "\" \"$out\"\n"
                                        "echo '{\"done\": true, \"steps\": 6, \"adapter\": \"adapter.safetensors\"}' >> \"$log\"\n"
                                        "echo trained\n").ok());
  ::setenv("RAZOR_OPD_TRAIN", script.c_str(), 1);
  auto r = test::run_razor("recover " + kModel + " --student " + student + " --recipe uniform-int3 --out " + out +
                           " --prompts 2 --k 2 --prompt-len 8 --max-new 4 --python /bin/sh --cpu --eval-windows 2"
                           " --eval-ctx 64 --json");
  ::unsetenv("RAZOR_OPD_TRAIN");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("C: trained"), std::string::npos) << r.out;                // the trainer's output relayed
  EXPECT_NE(r.out.find("train {\"kl\":0.125"), std::string::npos) << r.out;       // its log entries, as they come
  auto j = last_json(r.out);
  ASSERT_TRUE(j.is_object()) << r.out;
  EXPECT_EQ(j["phases"], "A,B,C,D,E");
  EXPECT_EQ(j["C"]["last"]["done"], true);
  EXPECT_EQ(j["D"]["rank"], 2);
  EXPECT_TRUE(j["E"]["recovered"].contains("kl_mean"));
  EXPECT_TRUE(fs::exists(out + ".opd/train_log.jsonl"));  // the default work folder: <out>.opd
  EXPECT_TRUE(fs::exists(out + "/razor_quant_summary.json"));
}
