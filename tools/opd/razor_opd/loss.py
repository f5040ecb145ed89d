"""The seed's OPD loss against the teacher's top-k (seed-reference.md Appendix A, phase C).

Per position, with the student's logits z divided by tau:
  q      = softmax(z / tau) on the teacher's top-k ids (normalised over the full vocabulary)
  q_rest = 1 - sum q, floored at Q_REST_FLOOR
  p_t    = softmax(teacher top-k log-probabilities) (renormalised over the top-k, as the seed)
  p_rest = 1 - sum p_t, floored at P_REST_FLOOR (so about that floor: seed-reference.md 8.2)
  reverse KL (default): sum_k q (log q - log p_t) + q_rest (log q_rest - log p_rest)
  forward KL:           sum_k p_t (log p_t - log q) + p_rest (log p_rest - log q_rest)
With teacher_rest="true" (trainer flag --teacher-rest true) p_t is the teacher's own probability of each id
(exp of its log-probability, which phase B normalises over the whole vocabulary) and p_rest = 1 - sum p_t, the mass the
teacher puts outside its top-k: a KL over the k + 1 buckets (top-k ids, everything else), which bounds the full KL
from below. The trainer's default is "true"; "seed" is the seed's formula above (its renormalised top-k leaves
p_rest at the floor, which seed-reference.md 8.2 flags and which raised the held-out KL on the fixtures).
A sample's loss is the sum over its generated positions divided by their count (length-normalised); positions are
taken VCHUNK at a time, each chunk's [VCHUNK, vocab] logits recomputed in the backward pass rather than kept.
"""
import torch
import torch.utils.checkpoint

VCHUNK = 128
Q_REST_FLOOR = 1e-9
P_REST_FLOOR = 1e-12


TEACHER_REST = ("seed", "true")


def kl_rows(logits, t_idx, t_lp, reverse=True, tau=1.0, teacher_rest="seed"):
    """logits [n, V], t_idx [n, K] (int), t_lp [n, K] -> per-row KL [n]."""
    lq_all = torch.log_softmax(logits.float() / tau, -1)
    lq = lq_all.gather(1, t_idx.long())
    q = lq.exp()
    q_rest = (1.0 - q.sum(-1)).clamp_min(Q_REST_FLOOR)
    if teacher_rest == "seed":
        lp = torch.log_softmax(t_lp.float(), -1)
    elif teacher_rest == "true":
        lp = t_lp.float()
    else:
        raise ValueError(f"teacher_rest {teacher_rest!r} is not one of {TEACHER_REST}")
    p = lp.exp()
    p_rest = (1.0 - p.sum(-1)).clamp_min(P_REST_FLOOR)
    if reverse:
        return (q * (lq - lp)).sum(-1) + q_rest * (q_rest.log() - p_rest.log())
    return (p * (lp - lq)).sum(-1) + p_rest * (p_rest.log() - q_rest.log())


def sample_loss(model, prompt_ids, gen_ids, t_idx, t_lp, reverse=True, tau=1.0, vchunk=VCHUNK, teacher_rest="seed"):
    """The length-normalised loss of one rollout. Teacher row t is the distribution of gen_ids[t] given
    prompt_ids + gen_ids[:t], so it is compared with the student's logits at sequence position len(prompt) - 1 + t."""
    plen, T = len(prompt_ids), len(gen_ids)
    if plen < 1:
        raise ValueError("a rollout needs at least one prompt token")
    dev = model.embed.device
    ids = torch.tensor(list(prompt_ids) + list(gen_ids[:-1]), dtype=torch.long, device=dev)
    h = model.hidden_states(ids)[plen - 1:]  # [T, hidden]
    t_idx = t_idx.to(dev)
    t_lp = t_lp.to(dev)
    total = h.new_zeros(())

    def chunk(hc, ic, lc):
        return kl_rows(model.logits(hc), ic, lc, reverse, tau, teacher_rest).sum()

    for t0 in range(0, T, vchunk):
        t1 = min(T, t0 + vchunk)
        hc = h[t0:t1]
        if hc.requires_grad:
            total = total + torch.utils.checkpoint.checkpoint(chunk, hc, t_idx[t0:t1], t_lp[t0:t1],
                                                              use_reentrant=False)
        else:
            total = total + chunk(hc, t_idx[t0:t1], t_lp[t0:t1])
    return total / T


def batch_loss(model, samples, reverse=True, tau=1.0, vchunk=VCHUNK, teacher_rest="seed"):
    """sample_loss of several rollouts with the same prompt and generation lengths, through one batched forward:
    the list of their length-normalised losses."""
    plen, T = len(samples[0].prompt_ids), len(samples[0].gen_ids)
    if plen < 1:
        raise ValueError("a rollout needs at least one prompt token")
    if any(len(s.prompt_ids) != plen or len(s.gen_ids) != T for s in samples):
        raise ValueError("batch_loss: the rollouts' prompt and generation lengths differ")
    dev = model.embed.device
    ids = torch.tensor([list(s.prompt_ids) + list(s.gen_ids[:-1]) for s in samples], dtype=torch.long, device=dev)
    h = model.hidden_states(ids)[:, plen - 1:]  # [B, T, hidden]
    out = []
    for b, s in enumerate(samples):
        t_idx, t_lp = (t.to(dev) for t in s.topk())
        total = h.new_zeros(())
        for t0 in range(0, T, vchunk):
            t1 = min(T, t0 + vchunk)
            hc = h[b, t0:t1]

            def chunk(hc, ic, lc):
                return kl_rows(model.logits(hc), ic, lc, reverse, tau, teacher_rest).sum()

            if hc.requires_grad:
                total = total + torch.utils.checkpoint.checkpoint(chunk, hc, t_idx[t0:t1], t_lp[t0:t1],
                                                                  use_reentrant=False)
            else:
                total = total + chunk(hc, t_idx[t0:t1], t_lp[t0:t1])
        out.append(total / T)
    return out
