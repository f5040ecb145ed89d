"""Shared by the OPD trainer's tests: the repository's paths and the synthetic phase A / B files (the contract's
format, docs/recovery.md)."""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OPD = os.path.dirname(HERE)
REPO = os.path.dirname(os.path.dirname(OPD))
MODELS = os.path.join(REPO, "resources", "models")
sys.path.insert(0, OPD)

import torch  # noqa: E402

from razor_opd.safetensors_io import write_file  # noqa: E402


def write_opd_inputs(directory, vocab, rollouts, k=4, seed=0):
    """rollouts: [(prompt_ids, gen_ids, finish_reason, has_teacher)] -> (rollouts.jsonl, teacher_topk.safetensors);
    the teacher's top-k is random but well-formed (ids distinct, log-probs sorted, a proper sub-distribution)."""
    g = torch.Generator().manual_seed(seed)
    rp = os.path.join(directory, "rollouts.jsonl")
    tp = os.path.join(directory, "teacher_topk.safetensors")
    tensors = {}
    with open(rp, "w") as f:
        for i, (p, gen, fr, has) in enumerate(rollouts):
            f.write(json.dumps({"pid": i, "k": 0, "prompt_ids": p, "gen_ids": gen, "finish_reason": fr,
                                "correct": None}) + "\n")
            if not has:
                continue
            T = len(gen)
            idx = torch.stack([torch.randperm(vocab, generator=g)[:k] for _ in range(T)]).to(torch.int32)
            lp = torch.log_softmax(torch.randn(T, k + 1, generator=g) * 2, -1)[:, :k]
            lp, _ = lp.sort(-1, descending=True)
            tensors[f"r{i}.idx"] = idx
            tensors[f"r{i}.lp"] = lp.float()
    write_file(tp, tensors, {"format": "razor-opd-teacher-1", "k": str(k), "rows": str(len(rollouts)),
                             "model": "synthetic"})
    return rp, tp
