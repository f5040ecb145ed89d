#!/usr/bin/env python3
# Run from the repository root: python3 tests/ui/data/make_method_compare_tiny.py
# Writes tests/ui/data/method-compare-tiny.json: a hand-made razor.method_compare/1 result (4 layers x 8 experts,
# 4 methods) whose figures are known: gptq is best in layers 0, 1 and 3, clip in layer 2; layer 3 expert 5 is unscored.
import json, statistics
L, E = 4, 8
methods = ["clip", "absmax", "rtn-asym", "gptq"]
factor = {"clip": 1.0, "absmax": 1.9, "rtn-asym": 1.15, "gptq": 0.7}
experts, per = [], {m: {l: [] for l in range(L)} for m in methods}
allv = {m: {"expert": [], "gate": [], "up": [], "down": []} for m in methods}
for l in range(L):
    for e in range(E):
        if l == 3 and e == 5: continue
        base = 0.02 + 0.004 * l + 0.0015 * ((e * 5 + l * 3) % 8)
        ent = {"layer": l, "expert": e, "tokens": 40 + 3 * e, "routed": 40 + 3 * e, "calibration": 20 + e, "held_out": 20 + e, "nmse": {}}
        for m in methods:
            f = factor[m]
            if l == 2 and m == "gptq": f = 1.3
            ne = round(base * f, 6)
            ent["nmse"][m] = {"expert": ne, "gate": round(ne * 0.8, 6), "up": round(ne * 0.85, 6), "down": round(ne * 1.1, 6)}
            per[m][l].append(ne)
            for k in allv[m]: allv[m][k].append(ent["nmse"][m][k])
        experts.append(ent)
summary = {}
for m in methods:
    a = allv[m]
    summary[m] = {"mean_nmse": statistics.fmean(a["expert"]), "median_nmse": statistics.median(a["expert"]),
                  "n_experts": len(a["expert"]), "mean_nmse_gate": statistics.fmean(a["gate"]),
                  "mean_nmse_up": statistics.fmean(a["up"]), "mean_nmse_down": statistics.fmean(a["down"]),
                  "slices": 3 * L * E, "quantize_seconds": 0.5, "fallbacks": {"cholesky": 1} if m == "gptq" else {},
                  "kl_mean": 0.01 * factor[m], "kl_p99": 0.08 * factor[m], "topk_kl": 0.009 * factor[m],
                  "same_top1": 0.95 - 0.02 * factor[m], "ppl": 12.0 + factor[m]}
out = {"format": "razor.method_compare/1", "model": "hand-made (tests/ui/data/make_method_compare_tiny.py)", "bits": 3, "group": 128,
       "clip_steps": 16, "min_tokens": 8,
       "calibration": {"text": "resources/data/kernel-docs-calib.txt", "first_token": 0, "tokens": 2048, "seqlen": 256,
                       "max_per_expert": 64, "split": "first half calibrates, second half is held out"},
       "eval": {"text": "resources/data/kernel-docs-eval.txt", "windows": 4, "ctx": 128, "topk": 20, "positions": 508},
       "methods": methods, "summary": summary,
       "per_layer": {str(l): {m: statistics.fmean(per[m][l]) for m in methods} for l in range(L)},
       "experts": experts, "ref_ppl": 11.5, "seconds": 3.2}
json.dump(out, open("tests/ui/data/method-compare-tiny.json", "w"), indent=1)
