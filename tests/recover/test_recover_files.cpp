// The files between razor recover's phases (docs/recovery.md): rollouts.jsonl (written, read back, bad lines named)
// and teacher_topk.safetensors (phase B on the fixture equals a direct log-softmax of the teacher's logits), and
// phase A's prompts and generation on the fixture (seeded: the same rollouts twice).
#include <gtest/gtest.h>

#include <fstream>

#include "common/test_util.h"
#include "engine/eval.h"
#include "engine/tokenizer.h"
#include "model/checkpoint.h"
#include "model/safetensors.h"
#include "recover/rollouts.h"
#include "recover/teacher.h"
#include "util/atomic_file.h"

using namespace razor;
using namespace razor::recover;

namespace {
const std::string kModel = std::string(RAZOR_MODELS_DIR) + "/tiny-qwen3-moe";

std::vector<rollout> sample_rollouts() {
  rollout a;
  a.pid = 0, a.k = 0, a.prompt_ids = {5, 6, 7}, a.gen_ids = {8, 9, 0}, a.finish_reason = "stop";
  rollout b;
  b.pid = 0, b.k = 1, b.prompt_ids = {5, 6, 7}, b.gen_ids = {10, 11, 12, 13}, b.finish_reason = "length";
  rollout c;
  c.pid = 1, c.k = 0, c.prompt_ids = {100, 200}, c.gen_ids = {}, c.finish_reason = "length";
  return {a, b, c};
}
}  // namespace

TEST(RecoverFiles, RolloutsRoundTripInTheContractFormat) {
  test::scratch_dir d("recover-files");
  const std::string path = d / "rollouts.jsonl";
  auto rs = sample_rollouts();
  rollout t;  // a teacher-forced text piece (--text-pieces)
  t.pid = 2, t.k = 0, t.prompt_ids = {300}, t.gen_ids = {301, 302, 303}, t.finish_reason = "text";
  rs.push_back(t);
  ASSERT_TRUE(write_rollouts(rs, path).ok());
  // One JSON object per line with exactly the contract's keys.
  std::ifstream f(path);
  std::string line;
  int n = 0;
  while (std::getline(f, line)) {
    auto j = nlohmann::json::parse(line);
    EXPECT_EQ(j.size(), 6u) << line;
    for (const char* k : {"pid", "k", "prompt_ids", "gen_ids", "finish_reason", "correct"}) EXPECT_TRUE(j.contains(k)) << k;
    EXPECT_TRUE(j["correct"].is_null());
    ++n;
  }
  EXPECT_EQ(n, 4);
  auto back = read_rollouts(path, 4096);
  ASSERT_TRUE(back.ok()) << back.error().to_string();
  ASSERT_EQ(back->size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ((*back)[i].pid, rs[i].pid);
    EXPECT_EQ((*back)[i].k, rs[i].k);
    EXPECT_EQ((*back)[i].prompt_ids, rs[i].prompt_ids);
    EXPECT_EQ((*back)[i].gen_ids, rs[i].gen_ids);
    EXPECT_EQ((*back)[i].finish_reason, rs[i].finish_reason);
  }
}

TEST(RecoverFiles, BadRolloutLinesAreNamed) {
  test::scratch_dir d("recover-files");
  const std::string path = d / "bad.jsonl";
  auto check = [&](const std::string& text, const std::string& want) {
    ASSERT_TRUE(write_file_atomic(path, text).ok());
    auto r = read_rollouts(path, 4096);
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_NE(r.error().message().find(want), std::string::npos) << r.error().message();
  };
  const std::string good = "{\"pid\":0,\"k\":0,\"prompt_ids\":[1],\"gen_ids\":[2],\"finish_reason\":\"stop\",\"correct\":null}\n";
  check(good + "{\"pid\":0,\"k\":1,\"prompt_ids\":[1],\"gen_ids\":[4096],\"finish_reason\":\"stop\"}\n", "bad.jsonl:2: gen_ids[0]");
  check(good + good + "{\"pid\":-1}\n", "bad.jsonl:3: pid");
  check("{\"pid\":0,\"k\":0,\"prompt_ids\":[1],\"gen_ids\":[],\"finish_reason\":\"eos\"}\n", ":1: finish_reason");
  check("[1, 2]\n", ":1: not a JSON object");
  check("{\"pid\":0,\n", "bad.jsonl:1");
}

TEST(RecoverFiles, PromptsAtEvenlySpacedOffsets) {
  std::vector<int32_t> stream(1000);
  for (size_t i = 0; i < stream.size(); ++i) stream[i] = int32_t(i);
  auto ps = pick_prompts(stream, 4, 100);
  ASSERT_TRUE(ps.ok());
  EXPECT_EQ(ps->offsets, (std::vector<size_t>{0, 225, 450, 675}));  // floor(i * 900 / 4)
  EXPECT_EQ(ps->prompts[2].front(), 450);
  EXPECT_EQ(ps->prompts[2].size(), 100u);
  EXPECT_FALSE(pick_prompts(stream, 4, 1001).ok());
}

// Phase A on the fixture: same seed, same rollouts; the eos ends a rollout with "stop".
TEST(RecoverFiles, RolloutsOnTheFixtureAreSeeded) {
  auto ck = checkpoint::open(kModel);
  ASSERT_TRUE(ck.ok()) << ck.error().to_string();
  auto wp = engine::checkpoint_weights(*ck);
  const std::vector<std::vector<int32_t>> prompts{{640, 355, 1574, 51, 67, 286}, {2921, 199, 257, 3590}};
  rollout_options o;
  o.k = 2;
  o.max_new = 6;
  o.eos = eos_ids(kModel, ck->config());
  EXPECT_EQ(o.eos, std::vector<int32_t>{0});  // config.json / generation_config.json: eos_token_id 0
  int steps = 0;
  o.progress = [&](double, double, const char*) { ++steps; return true; };
  auto a = generate_rollouts(*wp, prompts, o);
  ASSERT_TRUE(a.ok()) << a.error().to_string();
  EXPECT_GE(steps, 2);
  o.batch = 3;  // another batching: the same tokens (each rollout its own generator)
  auto b = generate_rollouts(*wp, prompts, o);
  ASSERT_TRUE(b.ok());
  ASSERT_EQ(a->size(), 4u);
  for (size_t i = 0; i < a->size(); ++i) {
    const rollout& r = (*a)[i];
    EXPECT_EQ(r.pid, int64_t(i / 2));
    EXPECT_EQ(r.k, int64_t(i % 2));
    EXPECT_EQ(r.prompt_ids, prompts[i / 2]);
    EXPECT_EQ(r.gen_ids, (*b)[i].gen_ids);
    ASSERT_FALSE(r.gen_ids.empty());
    if (r.finish_reason == "stop") EXPECT_EQ(r.gen_ids.back(), 0);
    else EXPECT_EQ(r.gen_ids.size(), 6u);
  }
  o.seed = 1;
  auto c = generate_rollouts(*wp, prompts, o);
  ASSERT_TRUE(c.ok());
  bool differs = false;
  for (size_t i = 0; i < a->size(); ++i) differs |= (*a)[i].gen_ids != (*c)[i].gen_ids;
  EXPECT_TRUE(differs);
}

// Phase B: the teacher's top-k at every generated position equals a direct log-softmax of the fixture's logits
// (the same forward batch, so bit-identical), best first; rows too long are left out.
TEST(RecoverFiles, TeacherTopKEqualsADirectLogSoftmax) {
  auto ck = checkpoint::open(kModel);
  ASSERT_TRUE(ck.ok());
  auto wp = engine::checkpoint_weights(*ck);
  auto rs = sample_rollouts();
  rollout longer;
  longer.pid = 2, longer.prompt_ids = std::vector<int32_t>(30, 7), longer.gen_ids = {1, 2};
  rs.push_back(longer);  // 32 tokens: over max_len
  test::scratch_dir d("recover-files");
  const std::string path = d / "teacher_topk.safetensors";
  teacher_options to;
  to.topk = 5;
  to.max_len = 16;
  to.model = kModel;
  auto rep = score_teacher(*wp, rs, path, to);
  ASSERT_TRUE(rep.ok()) << rep.error().to_string();
  EXPECT_EQ(rep->rows, 4u);
  EXPECT_EQ(rep->scored, 2u);   // rows 0 and 1; row 2 has no generated token, row 3 is too long
  EXPECT_EQ(rep->dropped, 2u);
  EXPECT_EQ(rep->positions, 7u);
  auto f = safetensors_file::open(path);
  ASSERT_TRUE(f.ok()) << f.error().to_string();
  EXPECT_EQ(f->header().metadata.at("format"), "razor-opd-teacher-1");
  EXPECT_EQ(f->header().metadata.at("k"), "5");
  EXPECT_EQ(f->header().metadata.at("rows"), "4");
  EXPECT_EQ(f->header().metadata.at("model"), kModel);
  ASSERT_EQ(f->header().tensors.size(), 4u);  // r0.idx, r0.lp, r1.idx, r1.lp
  // The direct computation: the same two sequences in one forward.
  auto d0 = engine::dims_for(*wp);
  ASSERT_TRUE(d0.ok());
  const size_t V = size_t(d0->vocab);
  std::vector<std::vector<int32_t>> seqs;
  for (int i : {0, 1}) {
    auto s = rs[size_t(i)].prompt_ids;
    s.insert(s.end(), rs[size_t(i)].gen_ids.begin(), rs[size_t(i)].gen_ids.end());
    seqs.push_back(s);
  }
  std::vector<float> all;
  ASSERT_TRUE(engine::forward(*wp, *d0, seqs, [&](size_t, size_t n, const float* l) {
    all.insert(all.end(), l, l + n * V);
    return true;
  }).ok());
  size_t row0 = 0;
  for (int i : {0, 1}) {
    const rollout& r = rs[size_t(i)];
    const st_tensor *ti = nullptr, *tl = nullptr;
    for (auto& t : f->header().tensors) {
      if (t.name == "r" + std::to_string(i) + ".idx") ti = &t;
      if (t.name == "r" + std::to_string(i) + ".lp") tl = &t;
    }
    ASSERT_TRUE(ti && tl) << i;
    EXPECT_EQ(ti->dt, dtype::i32);
    EXPECT_EQ(tl->dt, dtype::f32);
    EXPECT_EQ(ti->shape, (std::vector<int64_t>{int64_t(r.gen_ids.size()), 5}));
    const int32_t* ids = reinterpret_cast<const int32_t*>(f->tensor_data(*ti));
    const float* lps = reinterpret_cast<const float*>(f->tensor_data(*tl));
    std::vector<float> lp(V);
    for (size_t t = 0; t < r.gen_ids.size(); ++t) {
      // position t: the distribution of gen_ids[t] given prompt + gen[:t] = the logits of row plen - 1 + t
      engine::log_softmax(all.data() + (row0 + r.prompt_ids.size() - 1 + t) * V, V, lp.data());
      std::vector<float> sorted = lp;
      std::sort(sorted.begin(), sorted.end(), std::greater<float>());
      for (size_t k = 0; k < 5; ++k) {
        EXPECT_EQ(lps[t * 5 + k], lp[size_t(ids[t * 5 + k])]) << "row " << i << " t " << t << " k " << k;
        EXPECT_EQ(lps[t * 5 + k], sorted[k]);
      }
    }
    row0 += seqs[size_t(i)].size();
  }
}
