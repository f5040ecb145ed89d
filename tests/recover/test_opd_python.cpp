// The OPD trainer's Python side (tools/opd) against razor: its student forward's logits equal the reference engine's
// on both fixtures; its Python unit tests (safetensors I/O, LoRA forward and the losses against hand-computed
// cases) and a two-process gloo smoke run of the trainer pass. Python comes from util/python.h (RAZOR_PYTHON, else
// /usr/bin/python3 with torch, else python3): a machine without PyTorch fails these tests, naming what is missing.
#include <gtest/gtest.h>

#include <stdlib.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "common/test_util.h"
#include "engine/model_runner.h"
#include "model/checkpoint.h"
#include "model/safetensors.h"
#include "recover/adapter_writer.h"
#include "util/atomic_file.h"
#include "util/child_process.h"
#include "util/python.h"

namespace {

// Float32 on both sides with different summation orders (PyTorch's BLAS matmuls, einsum attention and a
// token-by-token delta rule vs the engine's blocked loops): measured max |py - engine| / max |engine| per sequence
// is ~1e-6; 1e-4 leaves room for other CPUs' kernels while catching any real difference in the math (a wrong
// norm, rotary or routing moves logits by 1e-2 and more).
constexpr double k_logits_rel_tol = 1e-4;
// QAT against the merged checkpoint: the same, plus the rare clip-ratio near-ties (see the test).
constexpr double k_qat_rel_tol = 1e-3;

std::string tool(const std::string& f) { return std::string(RAZOR_SOURCE_DIR_T) + "/tools/opd/" + f; }

std::string python() {
  auto p = razor::find_python_with("torch");
  EXPECT_TRUE(p.ok()) << p.error().to_string();
  return p.ok() ? *p : "/usr/bin/python3";
}

// Deterministic token sequences inside the vocabulary (an LCG; lengths chosen to cover one token, a few and more
// than the DeltaNet conv kernel and several attention rows).
std::vector<std::vector<int32_t>> sequences(int64_t vocab) {
  std::vector<std::vector<int32_t>> s;
  uint64_t x = 12345;
  for (size_t len : {1u, 7u, 40u}) {
    std::vector<int32_t> v;
    for (size_t i = 0; i < len; ++i) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      v.push_back(int32_t((x >> 33) % uint64_t(vocab)));
    }
    s.push_back(v);
  }
  return s;
}

// The engine's logits of checkpoint `engine_dir` against dump_logits.py's of `py_args` (--model ... [--adapter ...]),
// max |difference| <= tol * max |engine| per sequence.
void compare_logits(const std::string& model, const std::string& engine_dir, const std::vector<std::string>& py_args,
                    double tol) {
  const std::string dir = engine_dir;
  auto ck = razor::checkpoint::open(dir);
  ASSERT_TRUE(ck.ok()) << ck.error().to_string();
  auto wp = razor::engine::checkpoint_weights(*ck);
  auto d = razor::engine::dims_for(*wp);
  ASSERT_TRUE(d.ok()) << d.error().to_string();
  const size_t V = size_t(d->vocab);
  const auto seqs = sequences(d->vocab);
  std::vector<float> engine_logits;
  auto st = razor::engine::forward(*wp, *d, seqs, [&](size_t, size_t n, const float* l) {
    engine_logits.insert(engine_logits.end(), l, l + n * V);
    return true;
  });
  ASSERT_TRUE(st.ok()) << st.to_string();

  razor::test::scratch_dir tmp("opd-forward");
  std::string arg;
  for (size_t i = 0; i < seqs.size(); ++i) {
    if (i) arg += ";";
    for (size_t j = 0; j < seqs[i].size(); ++j) arg += (j ? "," : "") + std::to_string(seqs[i][j]);
  }
  const std::string out = tmp / "logits.safetensors";
  std::vector<std::string> argv{python(), tool("dump_logits.py"), "--seqs", arg, "--out", out, "--threads", "2"};
  argv.insert(argv.end(), py_args.begin(), py_args.end());
  auto r = razor::run_child(argv);
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  ASSERT_EQ(r->exit_code, 0) << r->err;
  auto f = razor::safetensors_file::open(out);
  ASSERT_TRUE(f.ok()) << f.error().to_string();
  size_t row0 = 0;
  for (size_t i = 0; i < seqs.size(); ++i) {
    const std::string name = "logits." + std::to_string(i);
    const razor::st_tensor* t = nullptr;
    for (const auto& e : f->header().tensors)
      if (e.name == name) t = &e;
    ASSERT_NE(t, nullptr) << name;
    ASSERT_EQ(t->dt, razor::dtype::f32);
    ASSERT_EQ(t->shape, (std::vector<int64_t>{int64_t(seqs[i].size()), int64_t(V)}));
    const float* py = reinterpret_cast<const float*>(f->tensor_data(*t));
    double max_diff = 0, max_ref = 0;
    for (size_t k = 0; k < seqs[i].size() * V; ++k) {
      const double e = engine_logits[row0 * V + k];
      max_diff = std::max(max_diff, std::abs(double(py[k]) - e));
      max_ref = std::max(max_ref, std::abs(e));
    }
    std::printf("%s sequence %zu (%zu tokens): max |python - engine| = %.3g, max |engine| = %.3g\n", model.c_str(),
                i, seqs[i].size(), max_diff, max_ref);
    EXPECT_LE(max_diff, tol * max_ref) << model << " sequence " << i;
    row0 += seqs[i].size();
  }
}

void compare_forward(const std::string& model) {
  const std::string dir = std::string(RAZOR_MODELS_DIR) + "/" + model;
  compare_logits(model, dir, {"--model", dir}, k_logits_rel_tol);
}

}  // namespace

TEST(opd_python, forward_matches_engine_qwen3_moe) { compare_forward("tiny-qwen3-moe"); }

TEST(opd_python, forward_matches_engine_qwen3_5_moe) { compare_forward("tiny-qwen3-5-moe"); }

// Quantization-aware training trains what phase D writes: the trainer's forward with --qat-base (experts =
// fakequant(W_teacher + s B A) on the student's recorded grid) and a nonzero adapter equals the engine's logits of
// the checkpoint `razor recover --phases D` merges from the same adapter. Tolerance: the two fake-quantizations
// sum a group's clip error in different orders (recovery.md), so a near-tie can pick another clip ratio in a
// few groups (none on this fixture: measured max |python - engine| / max |engine| 1.2e-6, the test prints it).
TEST(opd_python, qat_forward_matches_the_merged_checkpoint) {
  const std::string teacher = std::string(RAZOR_MODELS_DIR) + "/tiny-qwen3-moe";
  razor::test::scratch_dir d("opd-qat");
  const std::string student = d / "student", out = d / "merged", work = d / "work";
  auto q = razor::test::run_razor("quantize " + teacher + " --recipe uniform-int3 --out " + student + " --cpu");
  ASSERT_EQ(q.code, 0) << q.out;
  auto ck = razor::checkpoint::open(teacher);
  ASSERT_TRUE(ck.ok());
  std::filesystem::create_directories(work);
  // razor's own work folder (recover.json), holding the adapter phase C would have written
  ASSERT_TRUE(razor::write_file_atomic(work + "/recover.json", "{\"format\": \"razor.recover_work/1\"}\n").ok());
  razor::recover::test_support::adapter_spec s = razor::recover::test_support::spec_for(ck->config(), 4);
  razor::recover::test_support::write_adapter(work + "/adapter.safetensors", s);
  auto m = razor::test::run_razor("recover " + teacher + " --student " + student + " --recipe uniform-int3 --out " +
                                  out + " --work " + work + " --phases D --cpu");
  ASSERT_EQ(m.code, 0) << m.out;
  compare_logits("tiny-qwen3-moe (QAT vs merged)", out,
                 {"--model", student, "--qat-base", teacher, "--adapter", work + "/adapter.safetensors"},
                 k_qat_rel_tol);
}

TEST(opd_python, python_finds_torch) {
  auto p = razor::find_python_with("torch");
  ASSERT_TRUE(p.ok()) << p.error().to_string();
  EXPECT_TRUE(razor::python_imports(*p, "torch"));
  EXPECT_FALSE(razor::python_imports(*p, "no_such_module_razor"));
  EXPECT_FALSE(razor::find_python_with("not a module").ok());
  EXPECT_FALSE(razor::opd_tool_dir().empty());
  // $RAZOR_PYTHON wins when set, and an unusable one is an error naming it (no silent fallback)
  const char* saved = std::getenv("RAZOR_PYTHON");
  const std::string keep = saved ? saved : "";
  ::setenv("RAZOR_PYTHON", p->c_str(), 1);
  auto chosen = razor::find_python_with("torch");
  ASSERT_TRUE(chosen.ok());
  EXPECT_EQ(*chosen, *p);
  ::setenv("RAZOR_PYTHON", "/nonexistent/python3", 1);
  auto bad = razor::find_python_with("torch");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("RAZOR_PYTHON=/nonexistent/python3"), std::string::npos);
  if (saved) ::setenv("RAZOR_PYTHON", keep.c_str(), 1);
  else ::unsetenv("RAZOR_PYTHON");
}

namespace {

// The unittest module `module` of tools/opd/tests; fails when a test fails, is skipped or none ran. Bytecode is
// not written into the source tree.
void run_python_tests(const std::vector<std::string>& modules) {
  ::setenv("PYTHONDONTWRITEBYTECODE", "1", 1);
  std::vector<std::string> argv{python(), "-c",
                                "import sys, unittest; sys.path.insert(0, sys.argv[1]); "
                                "s = unittest.defaultTestLoader.loadTestsFromNames(sys.argv[2:]); "
                                "r = unittest.TextTestRunner(verbosity=2).run(s); "
                                "sys.exit(0 if r.wasSuccessful() and r.testsRun > 0 and not r.skipped else 1)",
                                tool("tests")};
  argv.insert(argv.end(), modules.begin(), modules.end());
  auto r = razor::run_child(argv);
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  std::printf("%s", r->err.c_str());
  EXPECT_EQ(r->exit_code, 0) << r->out << r->err;
}

}  // namespace

// tools/opd/tests: safetensors I/O, the data filters, the losses (reverse and forward KL with the rest mass) against
// hand-computed cases, the LoRA forward against the merged weights W + s B A. One interpreter for all four (torch's
// import is the larger part of the time).
TEST(opd_python, unit_tests_io_data_loss_lora) {
  run_python_tests({"test_safetensors", "test_data", "test_loss", "test_lora", "test_qat"});
}
// The trainer end to end: two processes over gloo ending in SMOKE OK with equal adapters on both ranks, the
// contract's adapter and log; one process on qwen3_5_moe.
TEST(opd_python, trainer_smoke_two_process_gloo) { run_python_tests({"test_smoke"}); }
