"""The recipe's weight fake-quantization in PyTorch, for quantization-aware LoRA training (docs/recovery.md).

The same arithmetic as razor's core/quant/fake_quant.h (the seed's moe_quant.fakequant): symmetric integer with
`bits` (qmax = 2^(bits-1) - 1), groups of `group` consecutive elements along the last (input) axis (the whole row
when the row length is not a multiple of it), and the clip search over the float32 linspace(1.0, 0.65, clip_steps):
for each candidate ratio a, scale = (a * max|w|) / qmax (1 unless positive), q = clamp(rint(w / scale), -qmax, qmax) *
scale, err = sum (q - w)^2; the first candidate is kept unless a later one is strictly better. Every step is one
float32 operation; the output is rounded to the stored dtype (BF16 / F16) as razor writes it. The one difference:
razor sums a group's error in its lane16 order, torch in its own, so a near-tie between two clip candidates can
rarely be decided differently (a few groups; the merged model's logits then differ slightly, not systematically).
bits >= 16 is the identity.
"""
import torch

CLIP_LO, CLIP_HI = 0.65, 1.0


def clip_ratios(steps):
    return torch.linspace(CLIP_HI, CLIP_LO, steps, dtype=torch.float32) if steps > 0 else torch.ones(1)


def fakequant(w, bits, group=128, clip_steps=16, out_dtype=torch.bfloat16):
    """w [..., cols] (float32) -> the fake-quantized values, float32 after rounding to out_dtype."""
    if bits >= 16:
        return w.to(out_dtype).float() if out_dtype is not None else w
    bits = int(round(bits))
    if bits < 2:
        raise ValueError(f"fakequant: {bits} bits (the trainer's QAT takes integer grids of 2..15 bits)")
    shape = w.shape
    cols = shape[-1]
    g = group if group > 0 and cols % group == 0 else cols
    x = w.float().reshape(-1, cols // g, g)
    qmax = float(2 ** (bits - 1) - 1)
    amax = x.abs().amax(-1, keepdim=True)
    best, best_err = None, None
    for a in clip_ratios(clip_steps).to(x.device):
        sc = (a * amax) / qmax
        sc = torch.where(sc > 0, sc, torch.ones_like(sc))
        q = torch.clamp(torch.round(x / sc), -qmax, qmax) * sc
        err = (q - x).pow(2).sum(-1, keepdim=True)
        if best is None:
            best, best_err = q, err
        else:
            better = err < best_err
            best = torch.where(better, q, best)
            best_err = torch.where(better, err, best_err)
    out = best.reshape(shape)
    return out.to(out_dtype).float() if out_dtype is not None else out
