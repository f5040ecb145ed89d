"""The per-expert output-space LoRA: B = 0 is the base model; a nonzero adapter equals the base model with the merged
weights W + s B A (the identity phase D's merge relies on); only the LoRA receives gradients."""
import os
import unittest

from common import MODELS
import torch

from razor_opd.model import Student

# float32 with the matmuls in a different order (x W^T + s (x A^T) B^T vs x (W + s B A)^T)
REL_TOL = 1e-5


class LoraTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        torch.set_num_threads(2)
        cls.m = Student(os.path.join(MODELS, "tiny-qwen3-moe"), rank=4, scale=2.0, seed=0)
        cls.ids = torch.tensor([5, 17, 300, 2048, 9, 77, 1000, 3])

    def test_init_and_shapes(self):
        c = self.m.cfg
        a_gu, b_gu, a_d, b_d = self.m.lora_of(0)
        self.assertEqual(list(a_gu.shape), [c.n_experts, 4, c.hidden])
        self.assertEqual(list(b_gu.shape), [c.n_experts, 2 * c.moe_ff, 4])
        self.assertEqual(list(a_d.shape), [c.n_experts, 4, c.moe_ff])
        self.assertEqual(list(b_d.shape), [c.n_experts, c.hidden, 4])
        self.assertEqual(float(b_gu.abs().max()), 0.0)
        self.assertAlmostEqual(float(a_gu.std()), 0.01, delta=0.001)  # N(0, 0.01)
        again = Student(os.path.join(MODELS, "tiny-qwen3-moe"), rank=4, scale=2.0, seed=0)
        self.assertTrue(torch.equal(again.lora_of(3)[2], self.m.lora_of(3)[2]))  # the seed fixes the init

    def test_merged_weights_equal_lora_forward(self):
        m = self.m
        g = torch.Generator().manual_seed(1)
        with torch.no_grad():
            base = m(self.ids)
            saved = [p.detach().clone() for p in m.lora]
            for p in m.lora:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
            with_lora = m(self.ids)
            self.assertGreater(float((with_lora - base).abs().max()), 1e-3)  # the adapter does something
            merged = {}
            for L, w in enumerate(m.layers):
                a_gu, b_gu, a_d, b_d = m.lora_of(L)
                merged[L] = (w["w_gu"].clone(), w["w_d"].clone())
                w["w_gu"] += m.scale * torch.bmm(b_gu, a_gu)
                w["w_d"] += m.scale * torch.bmm(b_d, a_d)
                m.lora[4 * L + 1].zero_()
                m.lora[4 * L + 3].zero_()
            via_merge = m(self.ids)
            for L, w in enumerate(m.layers):
                w["w_gu"], w["w_d"] = merged[L]
            for p, s in zip(m.lora, saved):
                p.copy_(s)
            self.assertTrue(torch.equal(m(self.ids), base))  # B = 0 again: the base model
        rel = float((via_merge - with_lora).abs().max() / with_lora.abs().max())
        self.assertLess(rel, REL_TOL)

    def test_only_lora_has_gradients_and_they_reach_it(self):
        m = self.m
        m.zero_grad(set_to_none=True)
        out = m(self.ids)
        out.logsumexp(-1).sum().backward()
        grads = [p.grad for p in m.lora]
        # B = 0 at init: B receives the gradient, A none yet (d/dA of s (x A^T) B^T is 0 while B = 0)
        self.assertTrue(any(g is not None and float(g.abs().max()) > 0 for g in grads[1::2]))
        for w in m.layers:
            for t in w.values():
                if isinstance(t, torch.Tensor):
                    self.assertFalse(t.requires_grad)
        m.zero_grad(set_to_none=True)


if __name__ == "__main__":
    unittest.main()
