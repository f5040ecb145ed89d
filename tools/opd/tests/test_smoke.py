"""The trainer end to end on the fixtures: two processes over gloo (equal adapters on both ranks), the contract's
adapter and log, the step-0 gradient check; one process on qwen3_5_moe (gradients through Gated DeltaNet)."""
import json
import os
import re
import subprocess
import sys
import tempfile
import unittest

from common import MODELS, OPD, write_opd_inputs

from razor_opd.safetensors_io import SafetensorsFile


def rollouts(n, vocab):
    out = []
    for i in range(n):
        p = [(7 * i + j * 13) % (vocab - 1) + 1 for j in range(4 + i % 3)]
        g = [(11 * i + j * 29) % (vocab - 1) + 1 for j in range(5 + i % 4)]
        out.append((p, g, "stop" if i % 5 else "length", True))
    return out


class SmokeTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="razor-opd-smoke.")
        self.d = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def train(self, model, extra):
        rp, tp = write_opd_inputs(self.d, 4096, rollouts(10, 4096), k=20)
        out, log = os.path.join(self.d, "adapter.safetensors"), os.path.join(self.d, "train_log.jsonl")
        cmd = [sys.executable, os.path.join(OPD, "train.py"), "--student", os.path.join(MODELS, model),
               "--rollouts", rp, "--teacher-topk", tp, "--out", out, "--log", log, "--threads", "1"] + extra
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
        self.assertEqual(r.returncode, 0, r.stdout)
        return r.stdout, out, log

    def check_adapter(self, out, model, rank):
        f = SafetensorsFile(out)
        self.assertEqual(f.metadata["format"], "razor-opd-lora-1")
        self.assertEqual(f.metadata["rank"], str(rank))
        self.assertEqual(f.metadata["scale"], "2.0")
        self.assertTrue(f.metadata["model"].endswith(model))
        self.assertEqual(f.shape("model.layers.3.mlp.experts.gate_up.lora_A"), [16, rank, 256])
        self.assertEqual(f.shape("model.layers.3.mlp.experts.gate_up.lora_B"), [16, 512, rank])
        self.assertEqual(f.shape("model.layers.0.mlp.experts.down.lora_A"), [16, rank, 256])
        self.assertEqual(f.shape("model.layers.0.mlp.experts.down.lora_B"), [16, 256, rank])
        self.assertEqual(len(f.names()), 16)
        # one optimizer step moved B off zero
        self.assertGreater(float(f.tensor("model.layers.1.mlp.experts.down.lora_B").abs().max()), 0.0)

    def test_two_process_gloo(self):
        text, out, log = self.train("tiny-qwen3-moe", ["--nproc", "2", "--accum", "2", "--smoke", "--rank", "4"])
        self.assertIn("SMOKE OK", text)
        self.assertIn("2 process(es)", text)
        self.assertRegex(text, r"step0 kl=[0-9.]+ grad\(LoRA,avg\)=[0-9.e+-]+")
        sums = dict(re.findall(r"rank (\d) adapter checksum ([0-9a-f]+)", text))
        self.assertEqual(sorted(sums), ["0", "1"], text)
        self.assertEqual(sums["0"], sums["1"])  # the replicas are equal
        self.check_adapter(out, "tiny-qwen3-moe", 4)
        with open(log) as f:
            lines = [json.loads(x) for x in f]
        self.assertEqual(lines[0]["step"], 1)
        for k in ("loss", "kl", "kl_ema", "lr", "tokens", "seconds"):
            self.assertIn(k, lines[0])
        self.assertEqual(lines[-1], {"done": True, "steps": 1, "adapter": "adapter.safetensors"})

    def test_one_process_qwen3_5_moe_several_steps(self):
        text, out, log = self.train("tiny-qwen3-5-moe", ["--accum", "4", "--rank", "4", "--lr", "1e-3",
                                                          "--reverse", "0", "--ckpt-every", "1"])
        self.assertIn("forward KL", text)
        self.check_adapter(out, "tiny-qwen3-5-moe", 4)
        with open(log) as f:
            lines = [json.loads(x) for x in f]
        # 8 finished rollouts (every fifth is "length"), accumulation 4: 2 steps
        self.assertEqual([x.get("step") for x in lines[:-1]], [1, 2])
        self.assertTrue(lines[-1]["done"])

    def test_refuses_to_replace_a_foreign_file(self):
        rp, tp = write_opd_inputs(self.d, 4096, rollouts(4, 4096), k=20)
        out = os.path.join(self.d, "precious.safetensors")
        with open(out, "w") as f:
            f.write("not ours")
        r = subprocess.run([sys.executable, os.path.join(OPD, "train.py"), "--student",
                            os.path.join(MODELS, "tiny-qwen3-moe"), "--rollouts", rp, "--teacher-topk", tp,
                            "--out", out], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
        self.assertEqual(r.returncode, 2)
        self.assertIn("refusing to replace it", r.stdout)
        with open(out) as f:
            self.assertEqual(f.read(), "not ours")


if __name__ == "__main__":
    unittest.main()
