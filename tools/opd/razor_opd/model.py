"""The student's forward in plain PyTorch (float32, CPU or GPU): qwen3_moe and qwen3_5_moe(_text), the same math as
razor's reference engine (core/engine/model_runner.cpp, docs/engine.md), plus the per-expert output-space LoRA of
the seed's OPD trainer.

  qwen3_moe layer:   h += o(attn(q_norm(q x'), k_norm(k x'), v x')), x' = rms(h) * w_in; h += moe(rms(h) * w_post).
                     Full NeoX RoPE; per-head QK RMSNorm; GQA (query head h reads kv head h / (nh / nkv)).
  qwen3_5_moe:       norms applied as x * (1 + w) (except linear_attn.norm); layer_types picks Gated DeltaNet
                     (linear_attention) or gated full attention (q rows per head [q | gate], output * sigmoid(gate)),
                     partial rotary (the first head_dim * partial_rotary_factor dims); the MoE adds a shared expert
                     scaled by sigmoid(shared_expert_gate x); the router always renormalises the top-k.
  MoE:               softmax over all experts, top-k, renormalised when norm_topk_prob; expert =
                     down(silu(gate x) * up x); with LoRA gate_up(x) = x W_gu^T + s (x A_gu^T) B_gu^T and
                     down(h) = h W_d^T + s (h A_d^T) B_d^T, only for experts that received tokens.

The base weights are frozen float32 tensors (the student checkpoint is the fake-quantized one razor quantize wrote);
only the LoRA tensors are parameters.
"""
import json
import math
import os

import torch
import torch.nn.functional as F

from .fakequant import fakequant, grid_scales, quantize_on_grid
from .safetensors_io import Checkpoint, SafetensorsError

SUPPORTED = ("qwen3_moe", "qwen3_5_moe", "qwen3_5_moe_text")
# QAT's grid during training: "fixed" keeps the per-group scales the recipe's clip search picked on W_base (the
# student's own grid) and only re-rounds W_base + s B A on it after each step; "search" re-runs the clip search every
# time (exactly phase D's merge, 16x the cost). Phase D always re-runs the search (docs/recovery.md).
QAT_GRIDS = ("fixed", "search")


class ModelError(Exception):
    pass


class Config:
    def __init__(self, directory):
        path = os.path.join(directory, "config.json")
        try:
            with open(path, "r", encoding="utf-8") as f:
                raw = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            raise ModelError(f"{path}: cannot read: {e}")
        if not isinstance(raw, dict):
            raise ModelError(f"{path}: not a JSON object")
        t = raw.get("text_config") if isinstance(raw.get("text_config"), dict) else raw
        self.path = path
        self.model_type = t.get("model_type", raw.get("model_type", ""))
        if self.model_type not in SUPPORTED:
            raise ModelError(f"{path}: model_type {self.model_type!r}: the OPD trainer runs {', '.join(SUPPORTED)} only")
        self.qwen35 = self.model_type != "qwen3_moe"

        def get(key, default=None, *alts):
            for k in (key,) + alts:
                if k in t:
                    return t[k]
            if default is None:
                raise ModelError(f"{path}: needs '{key}'")
            return default

        self.hidden = int(get("hidden_size"))
        self.n_layers = int(get("num_hidden_layers"))
        self.vocab = int(get("vocab_size"))
        self.n_heads = int(get("num_attention_heads"))
        self.n_kv = int(get("num_key_value_heads", self.n_heads))
        self.head_dim = int(get("head_dim", self.hidden // self.n_heads))
        self.eps = float(get("rms_norm_eps", 1e-6))
        rp = t.get("rope_parameters") if isinstance(t.get("rope_parameters"), dict) else {}
        self.rope_theta = float(rp.get("rope_theta", t.get("rope_theta", 10000.0)))
        prf = float(rp.get("partial_rotary_factor", t.get("partial_rotary_factor", 1.0)))
        self.rot = int(math.floor(self.head_dim * prf))
        self.n_experts = int(get("num_experts", 0, "num_local_experts"))
        if self.n_experts <= 0:
            raise ModelError(f"{path}: needs num_experts (or num_local_experts) > 0")
        self.top_k = int(get("num_experts_per_tok"))
        self.moe_ff = int(get("moe_intermediate_size"))
        self.norm_topk = True if self.qwen35 else bool(t.get("norm_topk_prob", True))
        self.shared_ff = int(t.get("shared_expert_intermediate_size", 0) or 0) if self.qwen35 else 0
        self.tie = bool(t.get("tie_word_embeddings", raw.get("tie_word_embeddings", False)))
        lt = t.get("layer_types")
        if self.qwen35 and not lt and t.get("full_attention_interval"):
            k = int(t["full_attention_interval"])
            lt = ["full_attention" if (i + 1) % k == 0 else "linear_attention" for i in range(self.n_layers)]
        self.linear = [bool(lt) and i < len(lt) and lt[i] == "linear_attention" for i in range(self.n_layers)]
        if any(self.linear):
            self.lin_k_heads = int(get("linear_num_key_heads"))
            self.lin_v_heads = int(get("linear_num_value_heads"))
            self.lin_k_dim = int(get("linear_key_head_dim"))
            self.lin_v_dim = int(get("linear_value_head_dim"))
            self.conv_kernel = int(t.get("linear_conv_kernel_dim") or 4)
        mlp_only = t.get("mlp_only_layers") or []
        step = int(t.get("decoder_sparse_step", 1) or 1)
        for L in range(self.n_layers):
            if L in mlp_only or (step > 1 and (L + 1) % step != 0):
                raise ModelError(f"{path}: layer {L} is a dense MLP layer (mlp_only_layers / decoder_sparse_step); "
                                 f"the OPD trainer expects every layer to be MoE")


def _f32(t):
    return t.to(torch.float32).contiguous()


class Student(torch.nn.Module):
    """The frozen student plus per-expert LoRA (lora_A [E, r, in], lora_B [E, out, r] per projection and layer)."""

    def __init__(self, directory, rank=16, scale=2.0, seed=0, device="cpu", qat_base=None, qat_grid="fixed"):
        super().__init__()
        self.cfg = c = Config(directory)
        self.dir = directory
        self.scale = float(scale)
        self.rank = int(rank)
        try:
            ck = Checkpoint(directory)
        except (OSError, SafetensorsError) as e:
            raise ModelError(str(e))
        names = ck.names()
        pre = "model.language_model." if any(n.startswith("model.language_model.") for n in names) else "model."

        def get(name, shape=None, plus_one=False):
            full = pre + name
            if full not in ck:
                if name in ck:
                    full = name
                else:
                    raise ModelError(f"{directory}: tensor '{full}' not found")
            t = _f32(ck.tensor(full)).to(device)
            if shape is not None and list(t.shape) != list(shape):
                raise ModelError(f"{directory}: tensor '{full}' has shape {list(t.shape)}, expected {list(shape)}")
            return t + 1.0 if plus_one else t

        H, zc = c.hidden, c.qwen35
        self.embed = get("embed_tokens.weight", [c.vocab, H])
        self.norm = get("norm.weight", [H], zc)
        if "lm_head.weight" in ck:
            self.lm_head = _f32(ck.tensor("lm_head.weight")).to(device)
        elif c.tie:
            self.lm_head = self.embed
        else:
            raise ModelError(f"{directory}: tensor 'lm_head.weight' not found (and tie_word_embeddings is false)")
        if list(self.lm_head.shape) != [c.vocab, H]:
            raise ModelError(f"{directory}: lm_head.weight has shape {list(self.lm_head.shape)}, expected {[c.vocab, H]}")
        self.layers = []
        E, I = c.n_experts, c.moe_ff
        for L in range(c.n_layers):
            p = f"layers.{L}."
            w = {"in_norm": get(p + "input_layernorm.weight", [H], zc),
                 "post_norm": get(p + "post_attention_layernorm.weight", [H], zc), "linear": c.linear[L]}
            if c.linear[L]:
                kd, vd = c.lin_k_heads * c.lin_k_dim, c.lin_v_heads * c.lin_v_dim
                ch = 2 * kd + vd
                w["qkv"] = get(p + "linear_attn.in_proj_qkv.weight", [ch, H])
                w["z"] = get(p + "linear_attn.in_proj_z.weight", [vd, H])
                w["b"] = get(p + "linear_attn.in_proj_b.weight", [c.lin_v_heads, H])
                w["a"] = get(p + "linear_attn.in_proj_a.weight", [c.lin_v_heads, H])
                w["out"] = get(p + "linear_attn.out_proj.weight", [H, vd])
                w["conv"] = get(p + "linear_attn.conv1d.weight", [ch, 1, c.conv_kernel])
                w["a_log"] = get(p + "linear_attn.A_log", [c.lin_v_heads])
                w["dt_bias"] = get(p + "linear_attn.dt_bias", [c.lin_v_heads])
                w["lin_norm"] = get(p + "linear_attn.norm.weight", [c.lin_v_dim])  # a plain multiplier
            else:
                qd, kvd = c.n_heads * c.head_dim, c.n_kv * c.head_dim
                w["q"] = get(p + "self_attn.q_proj.weight", [2 * qd if c.qwen35 else qd, H])
                w["k"] = get(p + "self_attn.k_proj.weight", [kvd, H])
                w["v"] = get(p + "self_attn.v_proj.weight", [kvd, H])
                w["o"] = get(p + "self_attn.o_proj.weight", [H, qd])
                w["q_norm"] = get(p + "self_attn.q_norm.weight", [c.head_dim], zc)
                w["k_norm"] = get(p + "self_attn.k_norm.weight", [c.head_dim], zc)
            w["router"] = get(p + "mlp.gate.weight", [E, H])
            w["w_gu"], w["w_d"] = self._experts(ck, pre, get, p)
            if c.shared_ff > 0 and (pre + p + "mlp.shared_expert.gate_proj.weight") in ck:
                S = c.shared_ff
                w["sh_gu"] = torch.cat([get(p + "mlp.shared_expert.gate_proj.weight", [S, H]),
                                        get(p + "mlp.shared_expert.up_proj.weight", [S, H])], 0)
                w["sh_d"] = get(p + "mlp.shared_expert.down_proj.weight", [H, S])
                w["sh_gate"] = get(p + "mlp.shared_expert_gate.weight", [1, H])
            self.layers.append(w)
        del ck
        self.qat = None
        if qat_grid not in QAT_GRIDS:
            raise ModelError(f"qat_grid {qat_grid!r} is not one of {QAT_GRIDS}")
        if qat_base:
            self._load_qat(qat_base, device, qat_grid)
        # LoRA: A ~ N(0, 0.01) from `seed` (the same on every rank), B = 0, so the adapter starts as the identity.
        g = torch.Generator().manual_seed(int(seed))
        r = self.rank
        self.lora = torch.nn.ParameterList()
        for L in range(c.n_layers):
            for i, shape in enumerate(([E, r, H], [E, 2 * I, r], [E, r, I], [E, H, r])):
                t = torch.randn(shape, generator=g) * 0.01 if i % 2 == 0 else torch.zeros(shape)
                self.lora.append(torch.nn.Parameter(t.to(device)))
        self._inv_freq = {}
        self.refresh_qat()

    def _experts(self, ck, pre, get, p):
        """The routed experts of layer prefix p as ([E, 2I, H] rows [gate | up], [E, H, I]) float32, and the stored
        dtype of the gate/up weights (fused or per-expert checkpoints)."""
        c = self.cfg
        E, I, H = c.n_experts, c.moe_ff, c.hidden
        fused = pre + p + "mlp.experts.gate_up_proj"
        if fused in ck:  # transformers 5: [E, 2I, H] (rows [gate | up]) and [E, H, I]
            return get(p + "mlp.experts.gate_up_proj", [E, 2 * I, H]), get(p + "mlp.experts.down_proj", [E, H, I])
        gu, dn = [], []
        for e in range(E):
            q = p + f"mlp.experts.{e}."
            gu.append(torch.cat([get(q + "gate_proj.weight", [I, H]), get(q + "up_proj.weight", [I, H])], 0))
            dn.append(get(q + "down_proj.weight", [H, I]))
        return torch.stack(gu), torch.stack(dn)

    def _load_qat(self, base_dir, device, grid):
        """Quantization-aware training (docs/recovery.md): the routed experts' forward is fakequant(W_base + s B A)
        with a straight-through gradient, W_base the unquantized teacher's experts and the grid (bits per expert and
        projection, group, clip search) what <student>/razor_quant_summary.json records, so the trained model is
        the one phase D's merge writes."""
        c = self.cfg
        spath = os.path.join(self.dir, "razor_quant_summary.json")
        try:
            with open(spath, "r", encoding="utf-8") as f:
                summ = json.load(f)
            rec = summ["recipe"]
            group, clip = int(rec.get("group", 128)), int(rec.get("clip_steps", 0))
            entries = summ["experts"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ModelError(f"{spath}: cannot read the student's quantization summary (needed by --qat-base): {e}")
        E = c.n_experts
        # bits[L][proj][e], proj 0 gate, 1 up, 2 down (a fused gate_up entry sets both 0 and 1)
        bits = [[[None] * E for _ in range(3)] for _ in range(c.n_layers)]
        for j in entries:
            try:
                L, e, proj, b = int(j["layer"]), int(j["expert"]), str(j["proj"]), float(j["bits"])
            except (KeyError, TypeError, ValueError):
                raise ModelError(f"{spath}: an 'experts' entry lacks layer / expert / proj / bits: {j}")
            if not (0 <= L < c.n_layers and 0 <= e < E):
                raise ModelError(f"{spath}: expert entry layer {L} expert {e} is outside the model")
            slots = {"gate": (0,), "up": (1,), "gate_up": (0, 1), "down": (2,)}.get(proj)
            if slots is None:
                raise ModelError(f"{spath}: expert entry with proj {proj!r}")
            for sl in slots:
                bits[L][sl][e] = b
        for L in range(c.n_layers):
            for sl in range(3):
                if any(b is None for b in bits[L][sl]):
                    raise ModelError(f"{spath}: layer {L} lacks per-expert bits for {('gate', 'up', 'down')[sl]}")
        try:
            ck = Checkpoint(base_dir)
        except (OSError, SafetensorsError) as e:
            raise ModelError(str(e))
        names = ck.names()
        pre = "model.language_model." if any(n.startswith("model.language_model.") for n in names) else "model."

        def get(name, shape=None):
            full = pre + name if (pre + name) in ck else name
            if full not in ck:
                raise ModelError(f"{base_dir}: tensor '{pre + name}' not found")
            t = ck.tensor(full)
            if shape is not None and list(t.shape) != list(shape):
                raise ModelError(f"{base_dir}: tensor '{full}' has shape {list(t.shape)}, expected {list(shape)}")
            self._qat_dtype = t.dtype if t.dtype in (torch.bfloat16, torch.float16) else None
            return _f32(t).to(device)

        self.qat = {"group": group, "clip": clip, "bits": bits, "dir": base_dir, "grid": grid}
        I = c.moe_ff
        for L, w in enumerate(self.layers):
            w["base_gu"], w["base_d"] = self._experts(ck, pre, get, f"layers.{L}.")
            # (weight key, [(expert indices, row range, bits, fixed scales or None)]): one entry per projection and
            # bit width, the scales the clip search picks on W_base (the grid the student was made on)
            for key, base, rows in (("gu", w["base_gu"], ((0, 0, I), (1, I, 2 * I))),
                                    ("d", w["base_d"], ((2, 0, c.hidden),))):
                parts = []
                for sl, r0, r1 in rows:
                    by_bits = {}
                    for e, bb in enumerate(bits[L][sl]):
                        by_bits.setdefault(bb, []).append(e)
                    for bb, es in by_bits.items():
                        idx = torch.tensor(es, device=base.device)
                        sc = (grid_scales(base[idx, r0:r1], bb, group, clip)
                              if grid == "fixed" and bb < 16 else None)
                        parts.append((idx, r0, r1, bb, sc))
                w["qparts_" + key] = parts
        self.qat["dtype"] = self._qat_dtype
        del ck

    @torch.no_grad()
    def refresh_qat(self):
        """After every optimizer step: the experts' forward weights W_q = fakequant(W_base + s B A) (on the fixed grid
        or with the clip search, qat_grid), held constant until the next step; the forward adds the LoRA's output
        minus itself (zero in value) so that the gradient of s B A is the gradient of W_q (straight-through)."""
        if self.qat is None:
            return
        q, s = self.qat, self.scale
        for L, w in enumerate(self.layers):
            a_gu, b_gu, a_d, b_d = self.lora_of(L)
            for key, base, b, a in (("gu", w["base_gu"], b_gu, a_gu), ("d", w["base_d"], b_d, a_d)):
                merged = base + s * torch.bmm(b, a)
                out = torch.empty_like(merged)
                for idx, r0, r1, bb, sc in w["qparts_" + key]:
                    out[idx, r0:r1] = (quantize_on_grid(merged[idx, r0:r1], sc, bb, q["dtype"]) if sc is not None
                                       else fakequant(merged[idx, r0:r1], bb, q["group"], q["clip"], q["dtype"]))
                w["wq_" + key] = out

    # LoRA tensors of layer L: (A_gu, B_gu, A_d, B_d)
    def lora_of(self, L):
        return tuple(self.lora[4 * L + i] for i in range(4))

    def adapter_tensors(self):
        out = {}
        for L in range(self.cfg.n_layers):
            a_gu, b_gu, a_d, b_d = self.lora_of(L)
            base = f"model.layers.{L}.mlp.experts."
            out[base + "gate_up.lora_A"] = a_gu.detach().float().cpu()
            out[base + "gate_up.lora_B"] = b_gu.detach().float().cpu()
            out[base + "down.lora_A"] = a_d.detach().float().cpu()
            out[base + "down.lora_B"] = b_d.detach().float().cpu()
        return out

    def load_adapter(self, tensors):
        with torch.no_grad():
            for L in range(self.cfg.n_layers):
                base = f"model.layers.{L}.mlp.experts."
                for i, n in enumerate(("gate_up.lora_A", "gate_up.lora_B", "down.lora_A", "down.lora_B")):
                    t = tensors[base + n]
                    if list(t.shape) != list(self.lora[4 * L + i].shape):
                        raise ModelError(f"adapter tensor '{base + n}' has shape {list(t.shape)}, expected "
                                         f"{list(self.lora[4 * L + i].shape)}")
                    self.lora[4 * L + i].copy_(t)
        self.refresh_qat()

    # ---------------------------------------------------------------------------------------------
    def _rms(self, x, w, eps=None):
        eps = self.cfg.eps if eps is None else eps
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w

    def _rope(self, x, pos):
        """NeoX rotary on the first `rot` dims of each head: x [T, heads, hd], angle pos * theta^(-2i/rot) (float32)."""
        rot = self.cfg.rot
        if rot == 0:
            return x
        key = (rot, x.device)
        if key not in self._inv_freq:
            inv = [1.0 / math.pow(self.cfg.rope_theta, 2.0 * i / rot) for i in range(rot // 2)]
            self._inv_freq[key] = torch.tensor(inv, dtype=torch.float32, device=x.device)
        ang = pos[:, None] * self._inv_freq[key][None, :]  # [T, rot/2] in float32, as the engine
        cos, sin = torch.cos(ang)[:, None, :], torch.sin(ang)[:, None, :]
        half = rot // 2
        a, b, rest = x[..., :half], x[..., half:rot], x[..., rot:]
        return torch.cat([a * cos - b * sin, b * cos + a * sin, rest], -1)

    def _attention(self, w, x):
        """x [B, T, hidden] (B sequences of the same length, each from an empty cache)."""
        c = self.cfg
        B, T, hd, nh, nkv = x.shape[0], x.shape[1], c.head_dim, c.n_heads, c.n_kv
        qraw = x @ w["q"].t()
        if c.qwen35:
            qg = qraw.view(B, T, nh, 2 * hd)
            q, gate = qg[..., :hd], qg[..., hd:]
        else:
            q, gate = qraw.view(B, T, nh, hd), None
        k = (x @ w["k"].t()).view(B, T, nkv, hd)
        v = (x @ w["v"].t()).view(B, T, nkv, hd)
        q = self._rms(q, w["q_norm"])
        k = self._rms(k, w["k_norm"])
        pos = torch.arange(T, dtype=torch.float32, device=x.device)
        q, k = self._rope(q, pos), self._rope(k, pos)
        rep = nh // nkv  # query head h reads kv head h / rep
        q = q.view(B, T, nkv, rep, hd)
        s = torch.einsum("btgrd,bsgd->bgrts", q, k) * (1.0 / math.sqrt(hd))
        key = ("mask", T, x.device)
        if key not in self._inv_freq:
            self._inv_freq[key] = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)
        s = s.masked_fill(self._inv_freq[key], float("-inf"))
        p = torch.softmax(s, -1)
        o = torch.einsum("bgrts,bsgd->btgrd", p, v).reshape(B, T, nh, hd)
        if gate is not None:
            o = o * torch.sigmoid(gate)
        return o.reshape(B, T, nh * hd) @ w["o"].t()

    def _deltanet(self, w, x):
        c = self.cfg
        T = x.shape[0]
        nk, nv, dk, dv, K = c.lin_k_heads, c.lin_v_heads, c.lin_k_dim, c.lin_v_dim, c.conv_kernel
        kd, vd = nk * dk, nv * dv
        qkv = x @ w["qkv"].t()
        z = x @ w["z"].t()
        bb = x @ w["b"].t()
        aa = x @ w["a"].t()
        # causal depthwise conv1d (zero history), then SiLU
        conv = F.conv1d(qkv.t().unsqueeze(0), w["conv"], padding=K - 1, groups=qkv.shape[1])[0, :, :T].t()
        conv = F.silu(conv)
        q = conv[:, :kd].reshape(T, nk, dk)
        k = conv[:, kd:2 * kd].reshape(T, nk, dk)
        v = conv[:, 2 * kd:].reshape(T, nv, dv)
        q = q * torch.rsqrt(q.pow(2).sum(-1, keepdim=True) + 1e-6) * (1.0 / math.sqrt(dk))
        k = k * torch.rsqrt(k.pow(2).sum(-1, keepdim=True) + 1e-6)
        rep = nv // nk  # value head h reads key head h / rep
        q = q.repeat_interleave(rep, dim=1)
        k = k.repeat_interleave(rep, dim=1)
        beta = torch.sigmoid(bb)  # [T, nv]
        g = -torch.exp(w["a_log"]) * F.softplus(aa + w["dt_bias"])
        decay = torch.exp(g)
        S = torch.zeros(nv, dk, dv, dtype=x.dtype, device=x.device)
        outs = []
        for t in range(T):  # the gated delta rule, token by token
            S = S * decay[t][:, None, None]
            kt = k[t]
            kv = torch.einsum("hij,hi->hj", S, kt)
            delta = (v[t] - kv) * beta[t][:, None]
            S = S + kt[:, :, None] * delta[:, None, :]
            outs.append(torch.einsum("hij,hi->hj", S, q[t]))
        o = torch.stack(outs)  # [T, nv, dv]
        o = self._rms(o, w["lin_norm"]) * F.silu(z.view(T, nv, dv))
        return o.reshape(T, vd) @ w["out"].t()

    def _moe(self, w, x, L):
        c = self.cfg
        T = x.shape[0]
        p = torch.softmax(x @ w["router"].t(), -1)
        top_w, top_i = torch.topk(p, c.top_k, -1)
        if c.norm_topk:
            top_w = top_w / top_w.sum(-1, keepdim=True)
        a_gu, b_gu, a_d, b_d = self.lora_of(L)
        s, I, E = self.scale, c.moe_ff, c.n_experts
        # the routed (token, expert) pairs sorted by expert, so each expert's tokens go through one matmul
        flat_i = top_i.reshape(-1)
        order = torch.argsort(flat_i, stable=True)
        tok = torch.arange(T, device=x.device).repeat_interleave(c.top_k)[order]
        counts = torch.bincount(flat_i, minlength=E).tolist()
        xs = x[tok]
        qat = self.qat is not None
        wgu, wd = (w["wq_gu"], w["wq_d"]) if qat else (w["w_gu"], w["w_d"])
        # split / unbind rather than per-expert slices and selects: their backward is one concatenation, where a
        # slice's or select's backward allocates a full zero tensor per expert
        parts = torch.split(xs, counts)
        dparts = torch.split(xs.detach(), counts) if qat else parts
        A_gu, B_gu, A_d, B_d = a_gu.unbind(0), b_gu.unbind(0), a_d.unbind(0), b_d.unbind(0)
        outs = []
        for e, n in enumerate(counts):  # only experts that received tokens
            if n == 0:
                continue
            xe = parts[e]
            lo = s * ((dparts[e] @ A_gu[e].t()) @ B_gu[e].t())
            # QAT: W_q (constant) plus the LoRA's output minus itself, the straight-through gradient of s B A
            hu = xe @ wgu[e].t() + ((lo - lo.detach()) if qat else lo)
            g, u = torch.split(hu, I, 1)
            act = F.silu(g) * u
            lo = s * (((act.detach() if qat else act) @ A_d[e].t()) @ B_d[e].t())
            outs.append(act @ wd[e].t() + ((lo - lo.detach()) if qat else lo))
        y = torch.zeros_like(x).index_add(0, tok, torch.cat(outs) * top_w.reshape(-1)[order][:, None])
        if "sh_gu" in w:
            S = w["sh_d"].shape[1]
            hu = x @ w["sh_gu"].t()
            act = F.silu(hu[:, :S]) * hu[:, S:]
            y = y + torch.sigmoid(x @ w["sh_gate"].t()) * (act @ w["sh_d"].t())
        return y

    def hidden_states(self, ids):
        """ids: LongTensor [T] (one sequence from an empty cache) or [B, T] (B sequences of one length, each from an
        empty cache) -> the final-normed hidden states [T, hidden] or [B, T, hidden]."""
        one = ids.dim() == 1
        h = self.embed[ids.unsqueeze(0) if one else ids]
        B, T, H = h.shape
        for L, w in enumerate(self.layers):
            xn = self._rms(h, w["in_norm"])
            if w["linear"]:  # the delta rule's recurrence runs one sequence at a time
                h = h + torch.stack([self._deltanet(w, xn[b]) for b in range(B)])
            else:
                h = h + self._attention(w, xn)
            xn = self._rms(h, w["post_norm"])
            h = h + self._moe(w, xn.reshape(B * T, H), L).view(B, T, H)
        h = self._rms(h, self.norm)
        return h[0] if one else h

    def logits(self, hidden):
        return hidden @ self.lm_head.t()

    def forward(self, ids):
        return self.logits(self.hidden_states(ids))
