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


def _groups(w, bits, group):
    bits = int(round(bits))
    if bits < 2:
        raise ValueError(f"fakequant: {bits} bits (the trainer's QAT takes integer grids of 2..15 bits)")
    cols = w.shape[-1]
    g = group if group > 0 and cols % group == 0 else cols
    return w.float().reshape(-1, cols // g, g), float(2 ** (bits - 1) - 1)


def grid_scales(w, bits, group=128, clip_steps=16):
    """The per-group scales fakequant's clip search picks for w: [rows, cols / group, 1] (float32)."""
    x, qmax = _groups(w, bits, group)
    amax = x.abs().amax(-1, keepdim=True)
    best_sc, best_err = None, None
    for a in clip_ratios(clip_steps).to(x.device):
        sc = (a * amax) / qmax
        sc = torch.where(sc > 0, sc, torch.ones_like(sc))
        err = (torch.clamp(torch.round(x / sc), -qmax, qmax) * sc - x).pow(2).sum(-1, keepdim=True)
        if best_sc is None:
            best_sc, best_err = sc, err
        else:
            better = err < best_err
            best_sc = torch.where(better, sc, best_sc)
            best_err = torch.where(better, err, best_err)
    return best_sc


def quantize_on_grid(w, scales, bits, out_dtype=torch.bfloat16):
    """w rounded on a fixed grid (scales [rows, groups, 1] from grid_scales): clamp(rint(w / scale), -qmax, qmax) *
    scale, float32 after rounding to out_dtype."""
    qmax = float(2 ** (int(round(bits)) - 1) - 1)
    cols, ng = w.shape[-1], scales.shape[-2]
    x = w.float().reshape(-1, ng, cols // ng)
    out = (torch.clamp(torch.round(x / scales), -qmax, qmax) * scales).reshape(w.shape)
    return out.to(out_dtype).float() if out_dtype is not None else out


def fakequant(w, bits, group=128, clip_steps=16, out_dtype=torch.bfloat16):
    """w [..., cols] (float32) -> the fake-quantized values, float32 after rounding to out_dtype."""
    if bits >= 16:
        return w.to(out_dtype).float() if out_dtype is not None else w
    return quantize_on_grid(w, grid_scales(w, bits, group, clip_steps), bits, out_dtype)
