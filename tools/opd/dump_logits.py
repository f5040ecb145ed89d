#!/usr/bin/env python3
"""The student forward's logits (no adapter, or --adapter; quantization-aware with --qat-base) for token sequences, written as safetensors F32
"logits.<i>" [T_i, vocab]: the cross-check of tools/opd's forward against razor's engine (tests/recover)."""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

from razor_opd.model import QAT_GRIDS, ModelError, Student  # noqa: E402
from razor_opd.safetensors_io import SafetensorsError, SafetensorsFile, write_file  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", required=True)
    p.add_argument("--seqs", required=True, help="sequences of token ids: '1,2,3;4,5'")
    p.add_argument("--out", required=True)
    p.add_argument("--adapter", default="")
    p.add_argument("--qat-base", default="", help="the trainer's --qat-base (experts = fakequant(W_base + s B A))")
    p.add_argument("--qat-grid", choices=QAT_GRIDS, default="search",
                   help="search: the clip search on every re-quantization (what phase D writes); fixed: the trainer's grid")
    p.add_argument("--threads", type=int, default=0)
    a = p.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    try:
        seqs = [[int(x) for x in s.split(",") if x.strip()] for s in a.seqs.split(";")]
    except ValueError as e:
        print(f"dump_logits.py: error: --seqs: {e}", file=sys.stderr)
        return 2
    try:
        f = SafetensorsFile(a.adapter) if a.adapter else None
        rank, scale = 16, 2.0
        if f is not None:  # the adapter's own rank and scale (its metadata)
            try:
                rank, scale = int(f.metadata.get("rank", rank)), float(f.metadata.get("scale", scale))
            except ValueError as e:
                print(f"dump_logits.py: error: {a.adapter}: rank / scale metadata: {e}", file=sys.stderr)
                return 2
        m = Student(a.model, rank=rank, scale=scale, qat_base=a.qat_base or None, qat_grid=a.qat_grid)
        if f is not None:
            m.load_adapter({n: f.tensor(n) for n in f.names()})
        out = {}
        with torch.no_grad():
            for i, s in enumerate(seqs):
                if not s or min(s) < 0 or max(s) >= m.cfg.vocab:
                    print(f"dump_logits.py: error: sequence {i} is empty or outside the vocabulary", file=sys.stderr)
                    return 2
                out[f"logits.{i}"] = m(torch.tensor(s, dtype=torch.long)).float()
        write_file(a.out, out, {"model": a.model})
    except (ModelError, SafetensorsError, OSError, KeyError) as e:
        print(f"dump_logits.py: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
