"""Quantization-aware training (--qat-base): the fake-quantization against hand-computed cases, and the student whose
experts are fakequant(W_base + s B A) with a straight-through gradient: at B = 0 it is the fake-quantized base; with
any adapter its forward equals the model with the merged, re-quantized experts (what phase D writes); the gradient
reaches the adapter."""
import json
import os
import shutil
import tempfile
import unittest

from common import MODELS
import torch

from razor_opd.fakequant import clip_ratios, fakequant, grid_scales, quantize_on_grid
from razor_opd.model import ModelError, Student

FIXTURE = os.path.join(MODELS, "tiny-qwen3-moe")


class FakequantTest(unittest.TestCase):
    def test_hand_computed_int3(self):
        # amax 1, qmax 3. ratio 1.0: scale 1/3, w/scale = [0.9, -3, 1.5, 0.15] -> rint [1, -3, 2, 0] (1.5: half to
        # even), error (1/3-0.3)^2 + (2/3-0.5)^2 + 0.05^2 = 0.031389; ratio 0.65: scale 0.21667, [1.38, -4.6, 2.31,
        # 0.23] -> [1, -3 (clamped), 2, 0], error 0.136: the first candidate stays.
        w = torch.tensor([[0.3, -1.0, 0.5, 0.05]])
        out = fakequant(w, 3, group=4, clip_steps=2, out_dtype=None)
        torch.testing.assert_close(out, torch.tensor([[1 / 3, -1.0, 2 / 3, 0.0]]), rtol=0, atol=1e-7)

    def test_clip_candidate_wins_and_groups_are_apart(self):
        # group 1 ([0.1] * 7 + [1.0], int2: qmax 1): ratio 1.0 rounds the 0.1s to 0 (error 0.07); ratio 0.65 too
        # (0.1 / 0.65 < 0.5) and clamps 1.0 to 0.65 (error 0.07 + 0.1225): ratio 1 stays. Group 2 is all 0.5
        # (amax 0.5): ratio 1.0 is exact. Two groups, each with its own scale.
        w = torch.tensor([[0.1] * 7 + [1.0] + [0.5] * 8])
        out = fakequant(w, 2, group=8, clip_steps=16, out_dtype=None)
        want = torch.tensor([[0.0] * 7 + [1.0] + [0.5] * 8])
        torch.testing.assert_close(out, want, rtol=0, atol=0)
        # a case where a smaller ratio wins: int3 (qmax 3), [0.62, 0.62, 0.62, 1.0]. Ratio 1.0 (step 1/3): 0.62 -> 2/3,
        # error 3 * (2/3 - 0.62)^2 = 0.00653; ratio r_1 = 1 - 0.35/15 = 0.97667: 0.62 -> 2 r/3 = 0.65111, 1.0 -> r,
        # error 3 * 0.03111^2 + 0.02333^2 = 0.00345; r_2 = 0.95333: 0.63556 and 0.95333, error 3 * 0.01556^2 +
        # 0.04667^2 = 0.00290; r_3 = 0.93: 0.62 exactly and 0.93, error 0.0049 (larger from here on): r_2 wins.
        w2 = torch.tensor([[0.62, 0.62, 0.62, 1.0]])
        r = clip_ratios(16)
        self.assertAlmostEqual(float(r[2]), 1 - 2 * 0.35 / 15, places=6)
        out2 = fakequant(w2, 3, group=4, clip_steps=16, out_dtype=None)
        s = (r[2] * 1.0) / 3.0
        torch.testing.assert_close(out2, torch.tensor([[2 * s, 2 * s, 2 * s, 3 * s]]), rtol=0, atol=1e-7)

    def test_identity_and_bf16_output(self):
        w = torch.tensor([[0.1234567, -2.5]])
        self.assertTrue(torch.equal(fakequant(w, 16, out_dtype=None), w))
        self.assertTrue(torch.equal(fakequant(w, 16), w.to(torch.bfloat16).float()))


def make_student_dir(tmp, bits=3, group=128, clip=16):
    """The fixture with a razor_quant_summary.json that records `bits` for every routed expert projection (the
    trainer reads the grid from it; the weights themselves are the teacher's, which QAT does not use)."""
    d = os.path.join(tmp, "student")
    os.makedirs(d)
    for f in os.listdir(FIXTURE):
        os.symlink(os.path.join(FIXTURE, f), os.path.join(d, f))
    with open(os.path.join(FIXTURE, "config.json")) as f:
        cfg = json.load(f)
    experts = [{"layer": L, "expert": e, "proj": p, "bits": bits}
               for L in range(cfg["num_hidden_layers"]) for e in range(cfg["num_local_experts"])
               for p in ("gate", "up", "down")]
    with open(os.path.join(d, "razor_quant_summary.json"), "w") as f:
        json.dump({"format": "razor.quant_summary/1", "recipe": {"group": group, "clip_steps": clip},
                   "experts": experts}, f)
    return d


class QatStudentTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        torch.set_num_threads(2)
        cls.tmp = tempfile.mkdtemp()
        cls.sdir = make_student_dir(cls.tmp)
        cls.ids = torch.tensor([5, 17, 300, 2048, 9, 77, 1000, 3])

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    def test_forward_is_the_requantized_merge_and_gradients_pass_through(self):
        m = Student(self.sdir, rank=4, scale=2.0, seed=0, qat_base=FIXTURE, qat_grid="search")
        ref = Student(FIXTURE, rank=4, scale=2.0, seed=0)  # no QAT: its experts are replaced by hand below
        with torch.no_grad():  # B = 0: the experts are fakequant(W_base)
            for L, w in enumerate(ref.layers):
                w["w_gu"] = fakequant(w["w_gu"], 3)
                w["w_d"] = fakequant(w["w_d"], 3)
            torch.testing.assert_close(m(self.ids), ref(self.ids), rtol=0, atol=0)
            g = torch.Generator().manual_seed(1)
            for p in m.lora:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
            m.refresh_qat()
            base = Student(FIXTURE, rank=4, scale=2.0, seed=0)
            for L, (w, wb) in enumerate(zip(ref.layers, base.layers)):
                a_gu, b_gu, a_d, b_d = m.lora_of(L)
                w["w_gu"] = fakequant(wb["w_gu"] + 2.0 * torch.bmm(b_gu, a_gu), 3)
                w["w_d"] = fakequant(wb["w_d"] + 2.0 * torch.bmm(b_d, a_d), 3)
            got, want = m(self.ids), ref(self.ids)
        # off + s B A against fakequant(W + s B A): equal up to float32 rounding of the add / subtract
        self.assertLess(float((got - want).abs().max() / want.abs().max()), 1e-5)
        loss = torch.log_softmax(m(self.ids), -1)[:, 7].sum()
        loss.backward()
        self.assertGreater(float(m.lora_of(0)[1].grad.abs().max()), 0.0)
        self.assertGreater(float(m.lora_of(3)[3].grad.abs().max()), 0.0)

    def test_fixed_grid_keeps_the_students_scales(self):
        # qat_grid "fixed" (the trainer's default): at B = 0 the same model as the clip search (the student); with an
        # adapter the experts are W_base + s B A rounded on the scales the search picked for W_base
        m = Student(self.sdir, rank=4, scale=2.0, seed=0, qat_base=FIXTURE)
        ms = Student(self.sdir, rank=4, scale=2.0, seed=0, qat_base=FIXTURE, qat_grid="search")
        with torch.no_grad():
            torch.testing.assert_close(m(self.ids), ms(self.ids), rtol=0, atol=0)
            g = torch.Generator().manual_seed(2)
            for p in m.lora:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
            m.refresh_qat()
            w = m.layers[1]
            a_gu, b_gu, _, _ = m.lora_of(1)
            merged = w["base_gu"] + 2.0 * torch.bmm(b_gu, a_gu)
            I = m.cfg.moe_ff
            for r0, r1 in ((0, I), (I, 2 * I)):
                want = quantize_on_grid(merged[:, r0:r1], grid_scales(w["base_gu"][:, r0:r1], 3), 3)
                torch.testing.assert_close(w["wq_gu"][:, r0:r1], want, rtol=0, atol=0)
        with self.assertRaisesRegex(ModelError, "qat_grid"):
            Student(self.sdir, rank=4, qat_base=FIXTURE, qat_grid="nearest")

    def test_needs_the_summary(self):
        d = os.path.join(self.tmp, "nosummary")
        shutil.copytree(FIXTURE, d)
        with self.assertRaisesRegex(ModelError, "razor_quant_summary.json"):
            Student(d, rank=4, qat_base=FIXTURE)


if __name__ == "__main__":
    unittest.main()
